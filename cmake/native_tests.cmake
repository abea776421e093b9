# native_tests.cmake — libremap_native_tests: the core's internal classes
# tested directly (os/, heap/, ...), without the C ABI in between.
#
# The core sources are compiled into the executable again (not linked from
# libremap.so) so that hidden internal symbols are reachable. Tests live in
# tests/native/*.cpp and register themselves with TEST(name) (check.h);
# tests/kernel/test_native.py builds this and runs each test as a pytest case.
option(LIBREMAP_NATIVE_TESTS "build the native C++ test executable" OFF)
if(LIBREMAP_NATIVE_TESTS)
  file(GLOB LIBREMAP_NATIVE_TEST_SOURCES CONFIGURE_DEPENDS
       ${CMAKE_CURRENT_SOURCE_DIR}/tests/native/*.cpp)
  add_executable(libremap_native_tests ${LIBREMAP_NATIVE_TEST_SOURCES} ${LIBREMAP_SOURCES})
  target_include_directories(libremap_native_tests PRIVATE
    ${CMAKE_CURRENT_SOURCE_DIR}/libremap/include
    ${CMAKE_CURRENT_SOURCE_DIR}/libremap/src
    ${CMAKE_CURRENT_SOURCE_DIR}/tests/native)
  target_compile_definitions(libremap_native_tests PRIVATE LIBREMAP_BUILDING
    LIBREMAP_VERSION_STRING="${PROJECT_VERSION}")
  target_compile_options(libremap_native_tests PRIVATE -Wall -Wextra -Wno-unused-parameter)
  find_package(Threads REQUIRED)
  target_link_libraries(libremap_native_tests PRIVATE Threads::Threads)
endif()

# package.cmake — what a C or C++ runtime needs to embed the installed
# library: a relocatable CMake package (find_package(libremap CONFIG) ->
# libremap::libremap) in <pkg>/cmake, a relocatable libremap.pc in
# <pkg>/pkgconfig, and a linker script libremap.so so that -lremap finds
# libremap.so.0 (the wheel holds one real copy of the core, no symlinks).
include(CMakePackageConfigHelpers)

set(LIBREMAP_PKGFILES ${CMAKE_CURRENT_BINARY_DIR}/pkgfiles)

configure_file(${CMAKE_CURRENT_LIST_DIR}/libremapConfig.cmake.in
  ${LIBREMAP_PKGFILES}/libremapConfig.cmake @ONLY)
# 0.x: a new minor version may break the ABI, so only the same minor matches.
write_basic_package_version_file(${LIBREMAP_PKGFILES}/libremapConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
configure_file(${CMAKE_CURRENT_LIST_DIR}/libremap.pc.in
  ${LIBREMAP_PKGFILES}/libremap.pc @ONLY)
file(WRITE ${LIBREMAP_PKGFILES}/libremap.so
  "/* GNU ld script: -lremap links the one real file of the core. */\nINPUT(libremap.so.0)\n")

install(FILES ${LIBREMAP_PKGFILES}/libremapConfig.cmake
              ${LIBREMAP_PKGFILES}/libremapConfigVersion.cmake
        DESTINATION ${LIBREMAP_PKG_DIR}/cmake)
install(FILES ${LIBREMAP_PKGFILES}/libremap.pc DESTINATION ${LIBREMAP_PKG_DIR}/pkgconfig)
install(FILES ${LIBREMAP_PKGFILES}/libremap.so DESTINATION ${LIBREMAP_PKG_DIR})
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/libremap/examples/embed.c
              ${CMAKE_CURRENT_SOURCE_DIR}/libremap/examples/cycle.c
              ${CMAKE_CURRENT_SOURCE_DIR}/libremap/examples/conformance_cons.c
        DESTINATION ${LIBREMAP_PKG_DIR}/examples)

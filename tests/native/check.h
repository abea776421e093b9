// check.h — the in-house test harness of libremap_native_tests.
//
//   TEST(name) { ... }        registers a test (names are C identifiers)
//   CHECK(cond)               reports file:line and continues
//   CHECK_EQ(a, b)            same, printing both values
//   REQUIRE(cond)             reports and ends the test (later steps depend on it)
//   SKIP("why")               ends the test as skipped, with the reason
//
// main.cpp runs every test, or those named by argv[1] (exact name, else a
// substring), prints "N passed, N failed, N skipped" and exits non-zero on
// failure; `--list` prints the names. Each test runs under an alarm() watchdog
// because a test that touches a registered, unpopulated uffd page by mistake
// blocks forever instead of failing.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <type_traits>
#include <vector>

namespace check {

using TestFn = void (*)();

struct TestCase {
  const char* name;
  TestFn fn;
  const char* file;
};

std::vector<TestCase>& registry();

struct Registrar {
  Registrar(const char* name, TestFn fn, const char* file) { registry().push_back({name, fn, file}); }
};

struct Skip {
  std::string reason;
};
struct Abort {};

// Records one failed check of the running test.
void fail(const char* file, int line, const std::string& what);

template <typename T>
std::string show(const T& v) {
  using U = std::decay_t<T>;
  if constexpr (std::is_same_v<U, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_enum_v<U>) {
    return std::to_string(static_cast<long long>(v));
  } else if constexpr (std::is_integral_v<U>) {
    if constexpr (std::is_signed_v<U>)
      return std::to_string(static_cast<long long>(v));
    else
      return std::to_string(static_cast<unsigned long long>(v));
  } else if constexpr (std::is_floating_point_v<U>) {
    return std::to_string(v);
  } else if constexpr (std::is_pointer_v<U>) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%p", static_cast<const void*>(v));
    return buf;
  } else if constexpr (std::is_convertible_v<U, std::string>) {
    return "\"" + std::string(v) + "\"";
  } else {
    return "<value>";
  }
}

}  // namespace check

#define TEST(name)                                                                    \
  static void check_test_##name();                                                    \
  static ::check::Registrar check_registrar_##name(#name, &check_test_##name, __FILE__); \
  static void check_test_##name()

#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) ::check::fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

#define CHECK_EQ(a, b)                                                                       \
  do {                                                                                       \
    const auto& check_a_ = (a);                                                              \
    const auto& check_b_ = (b);                                                              \
    if (!(check_a_ == check_b_))                                                             \
      ::check::fail(__FILE__, __LINE__,                                                      \
                    "CHECK_EQ(" #a ", " #b "): " + ::check::show(check_a_) + " != " +        \
                        ::check::show(check_b_));                                            \
  } while (0)

#define REQUIRE(cond)                                                   \
  do {                                                                  \
    if (!(cond)) {                                                      \
      ::check::fail(__FILE__, __LINE__, "REQUIRE(" #cond ")");          \
      throw ::check::Abort{};                                           \
    }                                                                   \
  } while (0)

#define SKIP(reason) throw ::check::Skip { std::string(reason) }

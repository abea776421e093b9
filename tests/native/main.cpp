// main.cpp — runs the tests registered with TEST() (see check.h).
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <exception>

#include "check.h"

namespace check {
namespace {
int g_failures_in_test = 0;
const char* g_running = "";

void on_alarm(int) {
  // Only async-signal-safe calls: the test is stuck (often in a uffd fault).
  const char msg[] = "\n[ TIMEOUT ] ";
  (void)!write(2, msg, sizeof msg - 1);
  (void)!write(2, g_running, std::strlen(g_running));
  (void)!write(2, "\n", 1);
  _exit(3);
}
}  // namespace

std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}

void fail(const char* file, int line, const std::string& what) {
  ++g_failures_in_test;
  std::fprintf(stdout, "  %s:%d: %s\n", file, line, what.c_str());
  std::fflush(stdout);
}

}  // namespace check

int main(int argc, char** argv) {
  using namespace check;
  const auto& tests = registry();
  if (argc > 1 && std::strcmp(argv[1], "--list") == 0) {
    for (const auto& t : tests) std::printf("%s\n", t.name);
    return 0;
  }
  std::vector<const TestCase*> chosen;
  if (argc > 1) {
    for (const auto& t : tests)
      if (std::strcmp(t.name, argv[1]) == 0) chosen.push_back(&t);
    if (chosen.empty())
      for (const auto& t : tests)
        if (std::strstr(t.name, argv[1])) chosen.push_back(&t);
    if (chosen.empty()) {
      std::fprintf(stderr, "no test matches '%s' (--list shows them)\n", argv[1]);
      return 2;
    }
  } else {
    for (const auto& t : tests) chosen.push_back(&t);
  }

  unsigned timeout = 60;
  if (const char* e = std::getenv("LIBREMAP_TEST_TIMEOUT")) timeout = unsigned(std::atoi(e));
  struct sigaction sa {};
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, nullptr);

  int passed = 0, failed = 0, skipped = 0;
  for (const TestCase* t : chosen) {
    g_running = t->name;
    g_failures_in_test = 0;
    std::printf("[ RUN  ] %s\n", t->name);
    std::fflush(stdout);
    std::string skip_reason;
    bool was_skipped = false;
    alarm(timeout);
    try {
      t->fn();
    } catch (const Skip& s) {
      was_skipped = true;
      skip_reason = s.reason;
    } catch (const Abort&) {
      // already reported
    } catch (const std::exception& e) {
      fail(t->file, 0, std::string("uncaught exception: ") + e.what());
    } catch (...) {
      fail(t->file, 0, "uncaught exception");
    }
    alarm(0);
    if (g_failures_in_test) {
      ++failed;
      std::printf("[ FAIL ] %s\n", t->name);
    } else if (was_skipped) {
      ++skipped;
      std::printf("[ SKIP ] %s: %s\n", t->name, skip_reason.c_str());
    } else {
      ++passed;
      std::printf("[ PASS ] %s\n", t->name);
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed ? 1 : 0;
}

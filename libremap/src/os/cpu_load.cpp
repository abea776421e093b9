// cpu_load.cpp — see cpu_load.h.
#include "os/cpu_load.h"

#include <sched.h>
#include <unistd.h>

#include <new>
#include <string>

#include "os/procfs.h"

namespace remap::os {

int runnable_threads() noexcept {
  // "0.36 1.14 1.34 2/345 12345": the number after the third space, ended by '/'.
  std::string text;
  try {
    if (!read_small_file("/proc/loadavg", &text, 128)) return -1;
  } catch (const std::bad_alloc&) {
    return -1;  // as unreadable: the helper claims
  }
  const char* p = text.c_str();
  for (int spaces = 0; *p && spaces < 3; p++)
    if (*p == ' ') spaces++;
  int v = 0;
  bool digits = false;
  for (; *p >= '0' && *p <= '9'; p++, digits = true) v = v * 10 + (*p - '0');
  return digits && *p == '/' ? v : -1;
}

int usable_cpus() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  const int n = CPU_COUNT(&set);
  return n > 0 ? n : 1;
}

int online_cpus() noexcept {
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? int(n) : 1;
}

int helper_cpu_budget() noexcept {
  const int online = online_cpus();
  return usable_cpus() >= online ? online : 0;
}

}  // namespace remap::os

// cpu_load.cpp — see cpu_load.h.
#include "os/cpu_load.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>

#include "os/fd.h"

namespace remap::os {

int runnable_threads() noexcept {
  // "0.36 1.14 1.34 2/345 12345": a few dozen bytes, one read.
  UniqueFd fd(::open("/proc/loadavg", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return -1;
  char buf[128];
  ssize_t n;
  do n = ::read(fd.get(), buf, sizeof buf - 1);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return -1;
  buf[n] = 0;
  // The number after the third space, ended by '/'.
  const char* p = buf;
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

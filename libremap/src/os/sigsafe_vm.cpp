// sigsafe_vm.cpp — see sigsafe_vm.h.
#include "os/sigsafe_vm.h"

#include <sys/mman.h>

#include <cerrno>

#include "os/failure_injection.h"

namespace remap::os {

int protect_nothrow(void* addr, size_t len, int prot) noexcept {
  int saved = errno;
  int r = injected_failure(InjectSite::mprotect);
  if (r == 0) r = ::mprotect(addr, len, prot) == 0 ? 0 : errno;
  errno = saved;
  return r;
}

int map_zero_fixed_nothrow(void* addr, size_t len) noexcept {
  int saved = errno;
  int r = injected_failure(InjectSite::mmap);
  if (r == 0)
    r = ::mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
                MAP_FAILED
            ? errno
            : 0;
  errno = saved;
  return r;
}

}  // namespace remap::os

// sigsafe_vm.cpp — see sigsafe_vm.h.
#include "os/sigsafe_vm.h"

#include <sys/mman.h>

#include <cerrno>

namespace remap::os {

int protect_nothrow(void* addr, size_t len, int prot) noexcept {
  int saved = errno;
  int r = ::mprotect(addr, len, prot) == 0 ? 0 : errno;
  errno = saved;
  return r;
}

}  // namespace remap::os

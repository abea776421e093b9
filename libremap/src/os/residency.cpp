// residency.cpp — mincore(2) over a page-aligned range.
#include "os/residency.h"

#include <string.h>
#include <sys/mman.h>

#include <cerrno>

#include "os/vm.h"

namespace remap::os {

Status resident_pages(void* addr, size_t len, std::vector<uint8_t>* out) {
  const size_t page = page_size();
  out->assign((len + page - 1) / page, 0);
  if (len == 0) return Status::ok();
  if (mincore(addr, len, reinterpret_cast<unsigned char*>(out->data())) != 0)
    return fail(errno == ENOMEM ? REMAP_EINVAL : REMAP_EKERNEL,
                "mincore(%p, %zu) failed: %s", addr, len, strerror(errno));
  return Status::ok();
}

}  // namespace remap::os

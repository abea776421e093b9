// uffd_install.h — what the anon backends (move, copy) both do with the
// kernel: UFFDIO_COPY of a run of pages, and from-space given back with one
// madvise, each counted the one way the cycle stats expect.
#pragma once

#include <cstddef>
#include <cstdint>

#include "compact/backend.h"
#include "os/clock.h"
#include "os/uffd_ops.h"
#include "os/vm.h"

namespace remap {

// UFFDIO_COPY of `npages` pages from src to dst. A page someone else mapped
// meanwhile (EEXIST) is skipped as installed. Counts ioctl_copy,
// pages_copied, pages_installed and install_ns; the caller counts what the
// pages were (buffers_new, pages_zero). Async-signal-safe.
inline InstallOutcome copy_pages(const BackendEnv& env, uintptr_t dst, const void* src,
                                 size_t npages) noexcept {
  CycleCounters& c = *env.counters;
  const size_t len = npages * env.page;
  const uint64_t t0 = now_ns();
  for (size_t off = 0; off < len;) {
    os::UffdResult r = os::uffd_copy(env.uffd, reinterpret_cast<void*>(dst + off),
                                     static_cast<const char*>(src) + off, len - off, 0);
    c.ioctl_copy.add(1);
    c.pages_copied.add(r.done / env.page);
    off += r.done;
    if (r.ok()) break;
    if (r.err != os::UffdErr::exists) {
      c.install_ns.add(now_ns() - t0);
      return {false, r.sys_errno, "UFFDIO_COPY"};
    }
    off += env.page;  // mapped by someone else: success
  }
  c.install_ns.add(now_ns() - t0);
  c.pages_installed.add(npages);
  return {};
}

// [from, from+len) of from-space back to the OS (MADV_DONTNEED), counted as
// one madvise.
inline Status drop_from_space(const BackendEnv& env, uintptr_t from, size_t len) noexcept {
  const uint64_t t0 = now_ns();
  Status s = os::advise(reinterpret_cast<void*>(from), len, os::Advice::dontneed);
  env.counters->madvise_calls.add(1);
  env.counters->madvise_ns.add(now_ns() - t0);
  return s;
}

}  // namespace remap

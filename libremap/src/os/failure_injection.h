// failure_injection.h — a test-only hook that makes the n-th call of one
// kernel primitive fail with a chosen errno.
//
// Every userfaultfd ioctl, mremap, madvise, mprotect and mmap of the core
// goes through os/ (uffd_ops.cpp, vm.cpp, sigsafe_vm.cpp); each wrapper asks
// injected_failure(site) first and, when it answers an errno, behaves as if
// the kernel had returned -1 with that errno and done nothing (a fill ioctl's
// output field holds -errno, as mm/userfaultfd.c writes it when no page
// moved). The callers' error handling is then exercised exactly as a real
// failure would exercise it.
//
// Off by default, and then one relaxed atomic load per call. Armed only
// from the environment, read at every heap creation (remap_heap_create), so
// no entry point is added to the ABI:
//
//   LIBREMAP_INJECT_FAILURE=<site>:<nth>:<errno>[:<times>]
//       site   uffd_move uffd_copy uffd_zeropage uffd_continue uffd_wake
//              uffd_register uffd_unregister mremap madvise mprotect mmap
//       nth    the first failing call, counted from 1 since arming
//       errno  EAGAIN ENOMEM EFAULT EINVAL ESRCH EBUSY EEXIST ENOENT EINTR
//              EPERM, or a number
//       times  how many calls in a row fail (default 1; 0: every call from
//              nth on)
//   LIBREMAP_INJECT_FAILURE=<spec>,<spec>...
//       up to four specs, for different sites (a failure whose undo fails
//       too: uffd_register:1:ENOMEM,mremap:2:ENOMEM:0)
//   LIBREMAP_INJECT_FAILURE=count
//       counts only.
//
// Armed, each injected failure writes one line to stderr, and at exit the
// per-site call counts are written ("libremap: inject counts: site=n ...")
// so a test can tell a failure that fired from one that was never reached,
// and choose nth from a counting run. Counts are per process, across heaps
// and threads; arming again (a new heap) starts them from zero.
//
// Async-signal-safe: the SIGBUS handler installs pages through these
// wrappers. No allocation, no locks, write(2) only.
//
// A second test-only hook, in the same spirit, plays a kernel that lacks
// some userfaultfd features (docs/LIMITS.md):
//
//   LIBREMAP_MASK_UFFD_FEATURES=<name>[,<name>...]
//       name   a UFFD_FEATURE bit as the probe spells it (move, sigbus,
//              minor_shmem, thread_id, ...), or a number (a bit mask)
//
// The UFFDIO_API handshake (os/uffd_open.cpp) then answers as such a kernel
// would: asking for a masked feature fails with EINVAL, the features the
// kernel offers leave it out, and UFFDIO_MOVE's ioctl bit is dropped when
// move is masked. Read at every handshake (heap creation, the probe), never
// in a signal handler; an unknown name is reported on stderr and ignored.
#pragma once

#include <atomic>
#include <cstdint>

namespace remap::os {

enum class InjectSite : uint8_t {
  uffd_move,
  uffd_copy,
  uffd_zeropage,
  uffd_continue,
  uffd_wake,
  uffd_register,
  uffd_unregister,
  mremap,
  madvise,
  mprotect,
  mmap,
  count_,  // the number of sites
};

namespace detail {
extern std::atomic<int> g_inject_armed;
int inject_slow(InjectSite site) noexcept;
}  // namespace detail

// The errno the call at `site` must fail with, or 0 to make the real call.
inline int injected_failure(InjectSite site) noexcept {
  if (__builtin_expect(detail::g_inject_armed.load(std::memory_order_relaxed) == 0, 1)) return 0;
  return detail::inject_slow(site);
}

// Reads LIBREMAP_INJECT_FAILURE and arms (or disarms) the hook, counts
// reset. A malformed value is reported on stderr and disarms. Not
// async-signal-safe; called at heap creation.
void inject_arm_from_env() noexcept;

// The UFFD_FEATURE bits LIBREMAP_MASK_UFFD_FEATURES hides (0: none).
uint64_t masked_uffd_features() noexcept;

}  // namespace remap::os

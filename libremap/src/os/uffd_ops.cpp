// uffd_ops.cpp — the userfaultfd ioctls, with partial progress and errno
// classified once. See uffd_ops.h for the contract; every function except
// uffd_status() is async-signal-safe.
#include "os/uffd_ops.h"

#include <sched.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "os/failure_injection.h"
#include "os/uffd_abi.h"

namespace remap::os {
namespace {

// EINTR comes back from the fill ioctls only when a fatal signal is pending
// (mm/userfaultfd.c checks fatal_signal_pending between pages); a few retries
// cover a spurious one without spinning forever on a dying process.
constexpr int kMaxEintrRetries = 16;
// EAGAIN with nothing done: the mm is changing under the call (mmap_changing
// while a non-cooperative event is queued, or a page table or folio lock the
// kernel would not wait for). The uffd selftests retry it, and so do we,
// yielding the CPU between attempts, a bounded number of times: a condition
// that persists (an event nobody reads) is then reported, not spun on.
// Without the retry, one transient EAGAIN would make the heap BROKEN.
constexpr int kMaxEagainRetries = 64;

// Restores errno when leaving scope: the SIGBUS handler calls these.
struct ErrnoGuard {
  int saved = errno;
  ~ErrnoGuard() { errno = saved; }
};

inline uint64_t addr_of(const void* p) { return reinterpret_cast<uint64_t>(p); }

// The loop every fill ioctl shares. `issue(offset, len, &progress)` runs the
// ioctl on [start+offset, start+offset+len), returns its return value and
// stores the output field in *progress (zeroed by the caller first).
template <typename Issue>
UffdResult fill_loop(InjectSite site, size_t len, Issue&& issue) noexcept {
  ErrnoGuard guard;
  UffdResult r;
  int eintr = 0;
  int eagain = 0;
  while (r.done < len) {
    int64_t progress = 0;  // early EINVAL/EFAULT/ESRCH leave it unwritten
    errno = 0;
    // An injected failure (tests only): -1, nothing done, the field unwritten.
    const int injected = injected_failure(site);
    int rc = injected ? (errno = injected, -1) : issue(r.done, len - r.done, &progress);
    if (rc == 0) {
      r.done = len;
      break;
    }
    int e = errno;
    if (progress > 0) {
      // Stopped after `progress` bytes (EAGAIN): continue from there to
      // finish or to learn the real error of the next page.
      r.done += static_cast<size_t>(progress);
      eintr = 0;
      eagain = 0;
      continue;
    }
    if (e == EINTR && ++eintr <= kMaxEintrRetries) continue;
    if (e == EAGAIN && ++eagain <= kMaxEagainRetries) {
      ::sched_yield();  // async-signal-safe
      continue;
    }
    r.err = uffd_classify(e);
    r.sys_errno = e;
    break;
  }
  if (r.done > len) r.done = len;  // defensive: the kernel never reports more
  return r;
}

}  // namespace

UffdErr uffd_classify(int err) noexcept {
  switch (err) {
    case 0: return UffdErr::ok;
    case EEXIST: return UffdErr::exists;
    case EBUSY: return UffdErr::busy;
    case ENOENT: return UffdErr::hole;
    case EAGAIN: return UffdErr::again;
    case ENOMEM: return UffdErr::nomem;
    case EINVAL: return UffdErr::invalid;
    case EFAULT: return UffdErr::fault;
    case ESRCH: return UffdErr::srch;
    case EINTR: return UffdErr::intr;
    default: return UffdErr::other;
  }
}

remap_status uffd_err_code(UffdErr e, int sys_errno) noexcept {
  switch (e) {
    case UffdErr::ok: return REMAP_OK;
    case UffdErr::exists: return REMAP_EEXIST;
    case UffdErr::busy: return REMAP_EBUSY;
    case UffdErr::hole: return REMAP_ENOENT;
    case UffdErr::again: return REMAP_EAGAIN;
    case UffdErr::intr: return REMAP_EAGAIN;
    case UffdErr::nomem: return REMAP_ENOMEM;
    case UffdErr::invalid: return REMAP_EINVAL;
    case UffdErr::fault: return REMAP_EINVAL;
    case UffdErr::srch: return REMAP_EKERNEL;
    case UffdErr::other:
      switch (sys_errno) {
        case EPERM: return REMAP_EPERM;
        case EBADF:
        case ENOTTY: return REMAP_EINVAL;
        case ENOSYS:
        case EOPNOTSUPP: return REMAP_EUNSUPPORTED;
        default: return REMAP_EKERNEL;
      }
  }
  return REMAP_EINTERNAL;
}

namespace {
// An ioctl with no progress field (register, unregister): all of `len` or
// nothing, retried on a spurious EINTR like the fill ioctls.
UffdResult single_shot(InjectSite site, int fd, unsigned long request, void* arg,
                       size_t len) noexcept {
  UffdResult r;
  int rc;
  int eintr = 0;
  do {
    const int injected = injected_failure(site);
    rc = injected ? (errno = injected, -1) : ::ioctl(fd, request, arg);
  } while (rc != 0 && errno == EINTR && ++eintr <= kMaxEintrRetries);
  if (rc != 0) {
    r.sys_errno = errno;
    r.err = uffd_classify(r.sys_errno);
    return r;
  }
  r.done = len;
  return r;
}
}  // namespace

UffdResult uffd_register(int fd, void* addr, size_t len, uint64_t mode, uint64_t* ioctls) noexcept {
  ErrnoGuard guard;
  struct uffdio_register reg;
  reg.range.start = addr_of(addr);
  reg.range.len = len;
  reg.mode = mode;
  reg.ioctls = 0;
  UffdResult r = single_shot(InjectSite::uffd_register, fd, UFFDIO_REGISTER, &reg, len);
  if (r.ok() && ioctls) *ioctls = reg.ioctls;
  return r;
}

UffdResult uffd_unregister(int fd, void* addr, size_t len) noexcept {
  ErrnoGuard guard;
  struct uffdio_range range;
  range.start = addr_of(addr);
  range.len = len;
  return single_shot(InjectSite::uffd_unregister, fd, UFFDIO_UNREGISTER, &range, len);
}

UffdResult uffd_move(int fd, void* dst, void* src, size_t len, uint64_t mode) noexcept {
  return fill_loop(InjectSite::uffd_move, len, [&](size_t off, size_t n, int64_t* progress) {
    uffdio_move_abi m;
    m.dst = addr_of(dst) + off;
    m.src = addr_of(src) + off;
    m.len = n;
    m.mode = mode;
    m.move = 0;
    int rc = ::ioctl(fd, kIoctlMove, &m);
    *progress = m.move;
    return rc;
  });
}

UffdResult uffd_copy(int fd, void* dst, const void* src, size_t len, uint64_t mode) noexcept {
  return fill_loop(InjectSite::uffd_copy, len, [&](size_t off, size_t n, int64_t* progress) {
    struct uffdio_copy c;
    c.dst = addr_of(dst) + off;
    c.src = addr_of(src) + off;
    c.len = n;
    c.mode = mode;
    c.copy = 0;
    int rc = ::ioctl(fd, UFFDIO_COPY, &c);
    *progress = c.copy;
    return rc;
  });
}

UffdResult uffd_zeropage(int fd, void* dst, size_t len, uint64_t mode) noexcept {
  return fill_loop(InjectSite::uffd_zeropage, len, [&](size_t off, size_t n, int64_t* progress) {
    struct uffdio_zeropage z;
    z.range.start = addr_of(dst) + off;
    z.range.len = n;
    z.mode = mode;
    z.zeropage = 0;
    int rc = ::ioctl(fd, UFFDIO_ZEROPAGE, &z);
    *progress = z.zeropage;
    return rc;
  });
}

UffdResult uffd_continue(int fd, void* dst, size_t len, uint64_t mode) noexcept {
  return fill_loop(InjectSite::uffd_continue, len, [&](size_t off, size_t n, int64_t* progress) {
    uffdio_continue_abi c;
    c.range.start = addr_of(dst) + off;
    c.range.len = n;
    c.mode = mode;
    c.mapped = 0;
    int rc = ::ioctl(fd, kIoctlContinue, &c);
    *progress = c.mapped;
    return rc;
  });
}

long uffd_read(int fd, void* buf, size_t len) noexcept {
  ssize_t got = read(fd, buf, len);
  return got < 0 ? -long(errno) : long(got);
}

UffdResult uffd_wake(int fd, void* addr, size_t len) noexcept {
  ErrnoGuard guard;
  struct uffdio_range range;
  range.start = addr_of(addr);
  range.len = len;
  UffdResult r;
  const int injected = injected_failure(InjectSite::uffd_wake);
  if (injected ? (errno = injected, true) : ::ioctl(fd, UFFDIO_WAKE, &range) != 0) {
    r.sys_errno = errno;
    r.err = uffd_classify(r.sys_errno);
    return r;
  }
  r.done = len;
  return r;
}

Status uffd_status(const char* op, const UffdResult& r, const void* dst, size_t len) {
  if (r.ok()) return Status::ok();
  const bool is_move = std::strcmp(op, "UFFDIO_MOVE") == 0;
  const bool is_register = std::strcmp(op, "UFFDIO_REGISTER") == 0;
  const void* at = static_cast<const char*>(dst) + r.done;
  const remap_status code = uffd_err_code(r.err, r.sys_errno);
  const char* what = nullptr;
  switch (r.err) {
    case UffdErr::ok: return Status::ok();
    case UffdErr::exists:
      what = "the destination page is already mapped (EEXIST): another thread installed it "
             "first (count it as done and UFFDIO_WAKE the range), or the range was not emptied";
      break;
    case UffdErr::busy:
      what = is_register
                 ? "the range is already registered with another userfaultfd (EBUSY): "
                   "unregister it there first"
                 : "the source page is not exclusive to this process (EBUSY): shared "
                   "copy-on-write after fork(), merged by KSM, pinned (O_DIRECT, io_uring, "
                   "vmsplice) or under writeback; install it with UFFDIO_COPY instead, or "
                   "write to it once so it becomes exclusive";
      break;
    case UffdErr::hole:
      what = is_move ? "the source page is not mapped (ENOENT): pass ALLOW_SRC_HOLES to skip "
                       "holes, or populate the source first"
                     : "no VMA registered with this userfaultfd at that address (ENOENT): "
                       "register the destination first (MISSING for COPY/ZEROPAGE, MINOR "
                       "for CONTINUE), and do not unmap it while filling";
      break;
    case UffdErr::again:
      what = "the address space is changing (EAGAIN): a non-cooperative userfaultfd event "
             "(fork, mremap, munmap, MADV_REMOVE) is in flight; read the uffd's events, then "
             "retry from this address";
      break;
    case UffdErr::nomem:
      what = "out of memory (ENOMEM): free memory or raise the limits, then retry";
      break;
    case UffdErr::invalid:
      what = is_register
                 ? "the kernel rejected the range (EINVAL): it must be page aligned, fully "
                   "mapped, and of a kind the mode supports (MISSING: anonymous, shmem, "
                   "hugetlb; MINOR: shmem/hugetlb with UFFD_FEATURE_MINOR_SHMEM)"
                 : is_move
                       ? "the kernel rejected the move (EINVAL): each range must lie in one "
                         "VMA, both private anonymous with the same protection, the "
                         "destination registered with this userfaultfd, ranges not "
                         "overlapping; UFFDIO_MOVE needs Linux 6.8+ (the handshake then "
                         "reports UFFD_FEATURE_MOVE)"
                       : "the kernel rejected the range (EINVAL): it must be page aligned, "
                         "inside one VMA, and registered with this userfaultfd in the mode "
                         "this ioctl needs (MISSING for COPY/ZEROPAGE, MINOR for CONTINUE)";
      break;
    case UffdErr::fault:
      what = "an address is not accessible (EFAULT): check that the source buffer is "
             "readable; with a user-mode-only userfaultfd, kernel accesses to registered "
             "ranges fail this way";
      break;
    case UffdErr::srch:
      what = "the address space that owns this userfaultfd is gone (ESRCH)";
      break;
    case UffdErr::intr:
      what = "interrupted again and again (EINTR): a fatal signal is pending";
      break;
    case UffdErr::other:
      if (r.sys_errno == EBADF || r.sys_errno == ENOTTY)
        what = "the fd is not an open userfaultfd (EBADF/ENOTTY)";
      else if (r.sys_errno == EPERM)
        what = "permission denied (EPERM)";
      break;
  }
  if (!what) {
    // strerror is fine here: this helper is never called from a signal handler.
    return fail(code, "%s of [%p, +%zu) failed at %p after %zu bytes: %s (errno %d)", op, dst,
                len, at, r.done, std::strerror(r.sys_errno), r.sys_errno);
  }
  return fail(code, "%s of [%p, +%zu) stopped at %p after %zu bytes: %s", op, dst, len, at,
              r.done, what);
}

}  // namespace remap::os

// uffd_ops.h — the userfaultfd ioctls on an open, handshaken fd.
//
// These run per page-run in the compaction engine and inside the SIGBUS
// handler, so every operation here is async-signal-safe: no allocation, no
// locks, no exceptions, no text. errno is saved and restored around each
// call (a signal handler must not clobber the interrupted code's errno); the
// outcome comes back as a small POD: the errno classified once into UffdErr,
// the raw errno, and the bytes handled before the call stopped.
//
// Partial progress (Linux 6.8 uapi, fs/userfaultfd.c): COPY, ZEROPAGE,
// CONTINUE and MOVE return -1/EAGAIN with a positive count in their output
// field when they stopped early; the count is added to `done` and the call is
// repeated from there, which either finishes or reports the real error of the
// page at start + done. With nothing done the field holds -errno, but early
// validation failures (EINVAL, EFAULT, ESRCH) never write it: the field is
// zeroed before every call so a stale value is never read as progress.
//
// uffd_status() (not signal-safe) turns a result into a Status whose message
// says what to do.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/status.h"

namespace remap::os {

enum class UffdErr : uint8_t {
  ok = 0,
  exists,   // EEXIST: destination page already mapped (someone else won)
  busy,     // EBUSY: source page not exclusive (fork COW, KSM, pinned, writeback)
  hole,     // ENOENT: source hole (MOVE without ALLOW_SRC_HOLES) or no VMA
  again,    // EAGAIN with no progress: the mm is changing (non-cooperative event)
  nomem,    // ENOMEM
  invalid,  // EINVAL: bad range, VMA not registered/compatible, ioctl unknown
  fault,    // EFAULT: an address not accessible (or kernel access in user-mode-only uffd)
  srch,     // ESRCH: the mm is gone (process exiting)
  intr,     // EINTR that kept coming back
  other,    // anything else; see UffdResult::sys_errno
};

struct UffdResult {
  UffdErr err = UffdErr::ok;
  int sys_errno = 0;  // raw errno of the failing call, 0 when ok
  size_t done = 0;    // bytes handled (moved/copied/mapped/registered) before stopping

  bool ok() const { return err == UffdErr::ok; }
};

// Classifies an errno value (async-signal-safe, pure).
UffdErr uffd_classify(int err) noexcept;
// The public status code for a class (EEXIST -> REMAP_EEXIST, ...).
remap_status uffd_err_code(UffdErr e, int sys_errno) noexcept;

// UFFDIO_REGISTER of [addr, addr+len) with UFFDIO_REGISTER_MODE_* `mode`.
// On success *ioctls (may be null) receives the ioctl bits usable on the
// range (1 << _UFFDIO_MOVE etc.). `done` is len on success.
UffdResult uffd_register(int fd, void* addr, size_t len, uint64_t mode, uint64_t* ioctls) noexcept;
UffdResult uffd_unregister(int fd, void* addr, size_t len) noexcept;

// UFFDIO_MOVE: moves the pages of [src, src+len) to [dst, dst+len). `mode` is
// UFFDIO_MOVE_MODE_* (kMoveModeDontwake, kMoveModeAllowSrcHoles).
UffdResult uffd_move(int fd, void* dst, void* src, size_t len, uint64_t mode) noexcept;
// UFFDIO_COPY: allocates pages at dst and copies src into them.
UffdResult uffd_copy(int fd, void* dst, const void* src, size_t len, uint64_t mode) noexcept;
// UFFDIO_ZEROPAGE: maps the zero page (anonymous) or zeroed pages.
UffdResult uffd_zeropage(int fd, void* dst, size_t len, uint64_t mode) noexcept;
// UFFDIO_CONTINUE: maps the page-cache pages of a MINOR-registered range.
UffdResult uffd_continue(int fd, void* dst, size_t len, uint64_t mode) noexcept;
// UFFDIO_WAKE: wakes threads blocked in faults on [addr, addr+len).
UffdResult uffd_wake(int fd, void* addr, size_t len) noexcept;

// read(2) of fault messages into [buf, buf+len): the bytes read, or -errno
// (-EAGAIN: nothing queued on a non-blocking uffd, or another reader took it).
long uffd_read(int fd, void* buf, size_t len) noexcept;

// Not async-signal-safe. `op` names the ioctl ("UFFDIO_MOVE"); dst/len are
// the call's arguments, used in the message.
Status uffd_status(const char* op, const UffdResult& r, const void* dst, size_t len);

}  // namespace remap::os

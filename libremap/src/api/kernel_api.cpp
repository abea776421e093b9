// kernel_api.cpp — the public remap_uffd_* functions: the kernel layer with
// libremap's argument checks and error messages.
//
// Every argument that can be checked is checked here (NULL, alignment, zero
// length, overflow, unknown flag bits) and rejected with REMAP_EINVAL before
// any ioctl: a runtime that drives the kernel itself gets a message naming
// the argument instead of a bare EINVAL from the kernel.
#include <cstdint>
#include <new>
#include <utility>

#include "api/api_call.h"
#include "libremap.h"
#include "os/fd.h"
#include "os/uffd_abi.h"
#include "os/uffd_open.h"
#include "os/uffd_ops.h"
#include "os/vm.h"

struct remap_uffd {
  remap::os::UniqueFd fd;
  uint64_t features = 0;  // granted by the UFFDIO_API handshake
  uint64_t ioctls = 0;    // ioctls the handshake reported
  int path = REMAP_UFFD_NONE;
};

namespace {

using remap::fail;
using remap::Status;

constexpr unsigned kOpenFlags = REMAP_UFFD_OPEN_NONBLOCK | REMAP_UFFD_OPEN_USER_MODE;
constexpr unsigned kRegisterModes = REMAP_REGISTER_MISSING | REMAP_REGISTER_WP | REMAP_REGISTER_MINOR;
constexpr unsigned kMoveModes = REMAP_MOVE_DONTWAKE | REMAP_MOVE_ALLOW_SRC_HOLES;
constexpr unsigned kCopyModes = REMAP_COPY_DONTWAKE;

Status check_uffd(const remap_uffd* u) {
  if (!u) return fail(REMAP_EINVAL, "uffd is NULL (open one with remap_uffd_open)");
  if (!u->fd.valid()) return fail(REMAP_EINVAL, "uffd has no open file descriptor");
  return Status::ok();
}

// A page-aligned, non-empty range that does not wrap around.
Status check_range(const char* name, const void* addr, size_t len) {
  const size_t ps = remap::os::page_size();
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  if (!addr) return fail(REMAP_EINVAL, "%s is NULL", name);
  if (a % ps) return fail(REMAP_EINVAL, "%s %p is not aligned to the page size (%zu)", name, addr, ps);
  if (len == 0) return fail(REMAP_EINVAL, "len is 0: give a non-zero multiple of %zu bytes", ps);
  if (len % ps)
    return fail(REMAP_EINVAL, "len %zu is not a multiple of the page size (%zu)", len, ps);
  if (a + len < a) return fail(REMAP_EINVAL, "%s %p + len %zu wraps around", name, addr, len);
  return Status::ok();
}

Status check_mode(const char* what, unsigned mode, unsigned allowed) {
  if (mode & ~allowed)
    return fail(REMAP_EINVAL, "%s has unknown bits 0x%x (allowed: 0x%x)", what, mode & ~allowed,
                allowed);
  return Status::ok();
}

Status check_disjoint(const void* dst, const void* src, size_t len) {
  const uintptr_t d = reinterpret_cast<uintptr_t>(dst), s = reinterpret_cast<uintptr_t>(src);
  if (d < s + len && s < d + len)
    return fail(REMAP_EINVAL, "dst [%p, +%zu) overlaps src %p: the ranges must be disjoint", dst,
                len, src);
  return Status::ok();
}

}  // namespace

extern "C" {

REMAP_API remap_status remap_uffd_open(uint64_t features, int flags, remap_uffd** out) {
  return remap::api_call("remap_uffd_open", [&]() -> Status {
    if (!out) return fail(REMAP_EINVAL, "out is NULL");
    *out = nullptr;
    if (Status s = check_mode("flags", static_cast<unsigned>(flags), kOpenFlags); !s) return s;
    remap::os::UffdOpenResult opened;
    Status s = remap::os::uffd_open(flags & REMAP_UFFD_OPEN_NONBLOCK,
                                    flags & REMAP_UFFD_OPEN_USER_MODE, &opened);
    if (!s) return s;
    uint64_t granted = 0, ioctls = 0;
    // Not best-effort: a caller that asks for MOVE must learn that it is
    // missing here, not from EINVAL on its first move.
    s = remap::os::uffd_api(opened.fd.get(), features, false, &granted, &ioctls);
    if (!s) return s;
    auto* u = new remap_uffd;
    u->fd = std::move(opened.fd);
    u->features = granted;
    u->ioctls = ioctls;
    u->path = opened.path;
    *out = u;
    return Status::ok();
  });
}

REMAP_API void remap_uffd_close(remap_uffd* uffd) { delete uffd; }

REMAP_API int remap_uffd_fd(const remap_uffd* uffd) { return uffd ? uffd->fd.get() : -1; }

REMAP_API uint64_t remap_uffd_features(const remap_uffd* uffd) { return uffd ? uffd->features : 0; }

REMAP_API remap_status remap_uffd_register(remap_uffd* uffd, void* addr, size_t len, unsigned mode,
                                           uint64_t* ioctls_out) {
  return remap::api_call("remap_uffd_register", [&]() -> Status {
    if (ioctls_out) *ioctls_out = 0;
    if (Status s = check_uffd(uffd); !s) return s;
    if (Status s = check_range("addr", addr, len); !s) return s;
    if (mode == 0)
      return fail(REMAP_EINVAL, "mode is 0: give REMAP_REGISTER_MISSING, _WP and/or _MINOR");
    if (Status s = check_mode("mode", mode, kRegisterModes); !s) return s;
    auto r = remap::os::uffd_register(uffd->fd.get(), addr, len, mode, ioctls_out);
    return remap::os::uffd_status("UFFDIO_REGISTER", r, addr, len);
  });
}

REMAP_API remap_status remap_uffd_unregister(remap_uffd* uffd, void* addr, size_t len) {
  return remap::api_call("remap_uffd_unregister", [&]() -> Status {
    if (Status s = check_uffd(uffd); !s) return s;
    if (Status s = check_range("addr", addr, len); !s) return s;
    auto r = remap::os::uffd_unregister(uffd->fd.get(), addr, len);
    return remap::os::uffd_status("UFFDIO_UNREGISTER", r, addr, len);
  });
}

REMAP_API remap_status remap_uffd_move(remap_uffd* uffd, void* dst, void* src, size_t len,
                                       unsigned mode, size_t* done) {
  return remap::api_call("remap_uffd_move", [&]() -> Status {
    if (done) *done = 0;
    if (Status s = check_uffd(uffd); !s) return s;
    if (Status s = check_range("dst", dst, len); !s) return s;
    if (Status s = check_range("src", src, len); !s) return s;
    if (Status s = check_mode("mode", mode, kMoveModes); !s) return s;
    if (Status s = check_disjoint(dst, src, len); !s) return s;
    auto r = remap::os::uffd_move(uffd->fd.get(), dst, src, len, mode);
    if (done) *done = r.done;
    return remap::os::uffd_status("UFFDIO_MOVE", r, dst, len);
  });
}

REMAP_API remap_status remap_uffd_copy(remap_uffd* uffd, void* dst, const void* src, size_t len,
                                       unsigned mode, size_t* done) {
  return remap::api_call("remap_uffd_copy", [&]() -> Status {
    if (done) *done = 0;
    if (Status s = check_uffd(uffd); !s) return s;
    if (Status s = check_range("dst", dst, len); !s) return s;
    // The source of a copy is a plain buffer: the kernel reads it with
    // copy_from_user and does not need it page aligned, but the library's
    // contract keeps all kernel-layer addresses page aligned.
    if (Status s = check_range("src", src, len); !s) return s;
    if (Status s = check_mode("mode", mode, kCopyModes); !s) return s;
    if (Status s = check_disjoint(dst, src, len); !s) return s;
    auto r = remap::os::uffd_copy(uffd->fd.get(), dst, src, len, mode);
    if (done) *done = r.done;
    return remap::os::uffd_status("UFFDIO_COPY", r, dst, len);
  });
}

REMAP_API remap_status remap_uffd_zeropage(remap_uffd* uffd, void* dst, size_t len, size_t* done) {
  return remap::api_call("remap_uffd_zeropage", [&]() -> Status {
    if (done) *done = 0;
    if (Status s = check_uffd(uffd); !s) return s;
    if (Status s = check_range("dst", dst, len); !s) return s;
    auto r = remap::os::uffd_zeropage(uffd->fd.get(), dst, len, 0);
    if (done) *done = r.done;
    return remap::os::uffd_status("UFFDIO_ZEROPAGE", r, dst, len);
  });
}

REMAP_API remap_status remap_uffd_continue(remap_uffd* uffd, void* dst, size_t len, size_t* done) {
  return remap::api_call("remap_uffd_continue", [&]() -> Status {
    if (done) *done = 0;
    if (Status s = check_uffd(uffd); !s) return s;
    if (Status s = check_range("dst", dst, len); !s) return s;
    auto r = remap::os::uffd_continue(uffd->fd.get(), dst, len, 0);
    if (done) *done = r.done;
    return remap::os::uffd_status("UFFDIO_CONTINUE", r, dst, len);
  });
}

REMAP_API remap_status remap_uffd_wake(remap_uffd* uffd, void* addr, size_t len) {
  return remap::api_call("remap_uffd_wake", [&]() -> Status {
    if (Status s = check_uffd(uffd); !s) return s;
    if (Status s = check_range("addr", addr, len); !s) return s;
    auto r = remap::os::uffd_wake(uffd->fd.get(), addr, len);
    return remap::os::uffd_status("UFFDIO_WAKE", r, addr, len);
  });
}

}  // extern "C"

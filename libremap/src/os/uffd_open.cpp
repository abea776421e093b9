// uffd_open.cpp — the three ways to get a userfaultfd and the UFFDIO_API
// handshake (see uffd_open.h for the order and why).
#include "os/uffd_open.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "os/failure_injection.h"
#include "os/probe.h"
#include "os/uffd_abi.h"

namespace remap::os {
namespace {

int sys_userfaultfd(int flags) {
#ifdef __NR_userfaultfd
  return int(::syscall(__NR_userfaultfd, flags));
#else
  errno = ENOSYS;
  return -1;
#endif
}

// /dev/userfaultfd (Linux 6.1): access is the device file's permission, not
// vm.unprivileged_userfaultfd; the ioctl returns the new uffd.
int dev_userfaultfd(int flags, int* err) {
  UniqueFd dev(::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC));
  if (!dev.valid()) {
    *err = errno;
    return -1;
  }
  int fd = ::ioctl(dev.get(), USERFAULTFD_IOC_NEW, flags);
  if (fd < 0) *err = errno;
  return fd;
}

const char* errno_name(int e) {
  switch (e) {
    case 0: return "ok";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOSYS: return "ENOSYS";
    case ENOENT: return "ENOENT";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOMEM: return "ENOMEM";
    case ENOTTY: return "ENOTTY";
    default: return "other";
  }
}

int ioctl_retry(int fd, unsigned long req, void* arg) {
  int r;
  do r = ::ioctl(fd, req, arg);
  while (r < 0 && errno == EINTR);
  return r;
}

// Every feature the kernel offers, learned from a features=0 handshake on a
// throwaway user-mode-only uffd: a successful UFFDIO_API reports all of
// UFFD_API_FEATURES, while a failed one zeroes the struct (fs/userfaultfd.c).
bool available_features(uint64_t* out) {
  UniqueFd fd(sys_userfaultfd(O_CLOEXEC | UFFD_USER_MODE_ONLY));
  if (!fd.valid()) return false;
  struct uffdio_api api {};
  api.api = UFFD_API;
  if (ioctl_retry(fd.get(), UFFDIO_API, &api) != 0) return false;
  *out = api.features & ~masked_uffd_features();
  return true;
}

// The handshake itself. Features LIBREMAP_MASK_UFFD_FEATURES hides are
// refused with EINVAL before the kernel sees them, as a kernel without them
// refuses them (the context stays unconfigured, so a retry is allowed).
int api_handshake(int fd, uffdio_api* api) {
  if (api->features & masked_uffd_features()) {
    errno = EINVAL;
    return -1;
  }
  return ioctl_retry(fd, UFFDIO_API, api);
}

// "move, sigbus" for the bits of `bits` (a fixed buffer: no allocation).
const char* feature_list(uint64_t bits, char* buf, size_t cap) {
  size_t at = 0;
  buf[0] = 0;
  for (unsigned b = 0; b < 64 && at < cap; b++) {
    if (!(bits >> b & 1)) continue;
    const char* name = uffd_feature_name(b);
    int n = name ? std::snprintf(buf + at, cap - at, "%s%s", at ? ", " : "", name)
                 : std::snprintf(buf + at, cap - at, "%sbit %u", at ? ", " : "", b);
    if (n < 0) break;
    at += size_t(n);
  }
  return buf;
}

}  // namespace

Status uffd_open(bool nonblock, bool user_mode_only, UffdOpenResult* out) {
  *out = UffdOpenResult{};
  int flags = O_CLOEXEC | (nonblock ? O_NONBLOCK : 0);
  if (!user_mode_only) {
    int fd = sys_userfaultfd(flags);
    if (fd >= 0) {
      out->fd.reset(fd);
      out->path = REMAP_UFFD_SYSCALL;
      return Status::ok();
    }
    out->syscall_errno = errno;
    fd = dev_userfaultfd(flags, &out->dev_errno);
    if (fd >= 0) {
      out->fd.reset(fd);
      out->path = REMAP_UFFD_DEV;
      return Status::ok();
    }
  }
  int fd = sys_userfaultfd(flags | UFFD_USER_MODE_ONLY);
  if (fd >= 0) {
    out->fd.reset(fd);
    out->path = REMAP_UFFD_USER_MODE_ONLY;
    return Status::ok();
  }
  out->user_mode_errno = errno;

  const int errs[3] = {out->syscall_errno, out->dev_errno, out->user_mode_errno};
  bool denied = false, missing = true;
  for (int e : errs) {
    if (e == EPERM || e == EACCES) denied = true;
    if (e != 0 && e != ENOSYS && e != ENOENT) missing = false;
  }
  // The user-mode path is the one any process may use; its errno says most.
  remap_status code = REMAP_EKERNEL;
  const char* advice = "";
  if (out->user_mode_errno == ENOSYS || (missing && !denied)) {
    code = REMAP_EUNSUPPORTED;
    advice = "this kernel has no userfaultfd (CONFIG_USERFAULTFD) or a seccomp filter hides it";
  } else if (denied) {
    code = REMAP_EPERM;
    advice =
        "userfaultfd is denied: a seccomp profile (containers) or the LSM forbids it; allow the "
        "userfaultfd syscall, or use backend stw";
  } else if (out->user_mode_errno == EMFILE || out->user_mode_errno == ENFILE) {
    code = REMAP_ELIMIT;
    advice = "out of file descriptors";
  }
  return fail(code, "cannot open a userfaultfd (syscall: %s, /dev/userfaultfd: %s, user-mode-only: %s): %s",
              user_mode_only ? "not tried" : errno_name(out->syscall_errno),
              user_mode_only ? "not tried" : errno_name(out->dev_errno),
              errno_name(out->user_mode_errno), advice);
}

Status uffd_api(int fd, uint64_t features, bool best_effort, uint64_t* granted, uint64_t* ioctls) {
  uint64_t want = features;
  bool masked = false;
  // Each failed UFFDIO_API leaves the context unconfigured, so it may be
  // retried with fewer bits; only a successful one is final.
  for (int attempt = 0; attempt < 4; ++attempt) {
    struct uffdio_api api {};
    api.api = UFFD_API;
    api.features = want;
    if (api_handshake(fd, &api) == 0) {
      if (granted) *granted = want;
      if (ioctls) *ioctls = api.ioctls;
      return Status::ok();
    }
    int e = errno;
    if (!best_effort || (e != EINVAL && e != EPERM)) {
      uint64_t avail = 0;
      if (e == EINVAL && available_features(&avail) && (want & ~avail)) {
        char names[160];
        const uint64_t hidden = want & masked_uffd_features();
        return fail(REMAP_EUNSUPPORTED,
                    "UFFDIO_API refused features 0x%llx: this kernel lacks UFFD_FEATURE %s%s",
                    (unsigned long long)want, feature_list(want & ~avail, names, sizeof names),
                    hidden ? " (hidden by the test hook LIBREMAP_MASK_UFFD_FEATURES)" : "");
      }
      if (e == EINVAL && (want & ~uint64_t(UFFD_API_FEATURES)))
        return fail(REMAP_EUNSUPPORTED,
                    "UFFDIO_API refused features 0x%llx: this kernel lacks some of them",
                    (unsigned long long)want);
      if (e == EPERM)
        return fail(REMAP_EPERM,
                    "UFFDIO_API refused features 0x%llx with EPERM (EVENT_FORK needs "
                    "CAP_SYS_PTRACE)",
                    (unsigned long long)want);
      return fail(REMAP_EKERNEL, "UFFDIO_API (features 0x%llx) failed: %s",
                  (unsigned long long)want, std::strerror(e));
    }
    // EVENT_FORK without CAP_SYS_PTRACE: EPERM since 4.11-era kernels;
    // some report EINVAL. Drop it first, then anything this kernel lacks.
    if (want & UFFD_FEATURE_EVENT_FORK) {
      want &= ~uint64_t(UFFD_FEATURE_EVENT_FORK);
      continue;
    }
    if (!masked) {
      uint64_t avail = 0;
      masked = true;
      if (available_features(&avail) && (want & ~avail)) {
        want &= avail;
        continue;
      }
    }
    return fail(REMAP_EKERNEL, "UFFDIO_API failed even with features 0x%llx: %s",
                (unsigned long long)want, std::strerror(e));
  }
  return fail(REMAP_EKERNEL, "UFFDIO_API did not settle on a feature set");
}

}  // namespace remap::os

// uffd_open.h — opening a userfaultfd and the UFFDIO_API handshake.
//
// Paths, tried in this order (docs/ARCHITECTURE.md, "Kernel reach"):
//   1. userfaultfd(2) in full mode (needs CAP_SYS_PTRACE or
//      vm.unprivileged_userfaultfd=1; seccomp may answer EPERM/ENOSYS);
//   2. /dev/userfaultfd + USERFAULTFD_IOC_NEW (governed by the file's mode);
//   3. userfaultfd(UFFD_USER_MODE_ONLY): always allowed where the syscall is,
//      but kernel-originated faults in registered ranges then fail with EFAULT.
#pragma once

#include <cstdint>

#include "base/status.h"
#include "os/fd.h"

namespace remap::os {

struct UffdOpenResult {
  UniqueFd fd;
  int path = REMAP_UFFD_NONE;  // remap_uffd_path
  int syscall_errno = 0;       // errno of each path tried, 0 if it worked or was not tried
  int dev_errno = 0;
  int user_mode_errno = 0;
};

// Tries the paths in order (only path 3 if user_mode_only). On failure of
// every path returns a Status classified from the errnos (EPERM -> REMAP_EPERM,
// ENOSYS -> REMAP_EUNSUPPORTED) and still fills the errno fields of *out.
Status uffd_open(bool nonblock, bool user_mode_only, UffdOpenResult* out);

// UFFDIO_API handshake asking for `features`. A feature the kernel lacks makes
// the handshake fail with EINVAL; this retries without unknown bits only when
// `best_effort` is set. Returns the granted features and supported ioctls.
Status uffd_api(int fd, uint64_t features, bool best_effort, uint64_t* granted,
                uint64_t* ioctls);

}  // namespace remap::os

// probe.cpp — the capability probe (see probe.h). Every check uses its own
// short-lived fd and mapping, and releases them before returning.
#include "os/probe.h"

#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "os/failure_injection.h"
#include "os/procfs.h"
#include "os/uffd_abi.h"
#include "os/uffd_open.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

namespace remap::os {
namespace {

constexpr int kCapSysPtrace = 19;

// Every feature bit this library knows; the handshake drops the ones the
// kernel lacks.
constexpr uint64_t kAllFeatures = (uint64_t(1) << 17) - 1;

bool has_cap_sys_ptrace() {
  __user_cap_header_struct hdr{};
  __user_cap_data_struct data[2]{};
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  if (::syscall(SYS_capget, &hdr, data) == 0) return (data[0].effective >> kCapSysPtrace) & 1;
  return (read_cap_eff() >> kCapSysPtrace) & 1;
}

// MREMAP_DONTUNMAP (5.7 for private anonymous memory) is the flip: the heap's
// pages move to from-space and the heap range stays mapped, empty. *err: the
// errno when a call failed (ENOMEM: the process has no maps or memory left,
// which says nothing about the kernel).
bool try_mremap_dontunmap(size_t page, int* err) {
  size_t len = 2 * page;
  *err = 0;
  void* src = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (src == MAP_FAILED) {
    *err = errno;
    return false;
  }
  static_cast<volatile char*>(src)[0] = 42;
  // mremap is variadic: without MREMAP_FIXED the fifth argument is still
  // read, and a recent kernel (seen on 6.18) rejects a garbage new_address with EINVAL when
  // MREMAP_DONTUNMAP is set, so pass nullptr explicitly.
  void* dst = ::mremap(src, len, len, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, nullptr);
  if (dst == MAP_FAILED) *err = errno;
  bool ok = dst != MAP_FAILED && static_cast<volatile char*>(dst)[0] == 42 &&
            static_cast<volatile char*>(src)[0] == 0;
  if (dst != MAP_FAILED) ::munmap(dst, len);
  ::munmap(src, len);
  return ok;
}

// ioctl bits UFFDIO_REGISTER grants for MISSING mode on private anonymous
// memory (COPY, ZEROPAGE, WAKE, MOVE where the kernel has it).
uint64_t register_ioctls(int fd, size_t page) {
  void* p = ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 0;
  struct uffdio_register reg {};
  reg.range.start = reinterpret_cast<uint64_t>(p);
  reg.range.len = page;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  uint64_t bits = 0;
  if (::ioctl(fd, UFFDIO_REGISTER, &reg) == 0) {
    bits = reg.ioctls;
    // A kernel without the MOVE feature has no MOVE ioctl either.
    if (masked_uffd_features() & UFFD_FEATURE_MOVE) bits &= ~(uint64_t(1) << _UFFDIO_MOVE);
    // Unregister before munmap, so that the range never outlives its use.
    ::ioctl(fd, UFFDIO_UNREGISTER, &reg.range);
  }
  ::munmap(p, page);
  return bits;
}

void copy_str(char* dst, size_t cap, const char* src) { std::snprintf(dst, cap, "%s", src); }

}  // namespace

const char* uffd_feature_name(unsigned bit) {
  static const char* const kNames[] = {
      "pagefault_flag_wp", "event_fork",     "event_remap",        "event_remove",
      "missing_hugetlbfs", "missing_shmem",  "event_unmap",        "sigbus",
      "thread_id",         "minor_hugetlbfs", "minor_shmem",       "exact_address",
      "wp_hugetlbfs_shmem", "wp_unpopulated", "poison",            "wp_async",
      "move",
  };
  return bit < sizeof kNames / sizeof kNames[0] ? kNames[bit] : nullptr;
}

int resolve_auto_backend(const remap_probe_info& info, char* reason, size_t reason_len) {
  const bool umo = info.uffd_path == REMAP_UFFD_USER_MODE_ONLY;
  const char* caveat = umo
      ? " (user-mode-only userfaultfd: system calls that touch an uncompacted heap page fail "
        "with EFAULT, call remap_touch first)"
      : "";
  if (!info.uffd_available) {
    std::snprintf(reason, reason_len,
                  "no userfaultfd could be opened (syscall errno %d, /dev/userfaultfd errno %d, "
                  "user-mode-only errno %d), so compaction runs in the pause.",
                  info.uffd_syscall_errno, info.uffd_dev_errno, info.uffd_user_mode_errno);
    return REMAP_BACKEND_STW;
  }
  if (!info.mremap_dontunmap) {
    copy_str(reason, reason_len,
             "MREMAP_DONTUNMAP does not work on anonymous memory (Linux < 5.7), so the heap "
             "cannot be flipped and compaction runs in the pause.");
    return REMAP_BACKEND_STW;
  }
  const uint64_t move_ioctl = uint64_t(1) << _UFFDIO_MOVE;
  const uint64_t copy_ioctl = uint64_t(1) << _UFFDIO_COPY;
  if ((info.uffd_features & UFFD_FEATURE_MOVE) && (info.uffd_ioctls & move_ioctl)) {
    std::snprintf(reason, reason_len, "the kernel has UFFDIO_MOVE (Linux 6.8+)%s.", caveat);
    return REMAP_BACKEND_MOVE;
  }
  if (info.uffd_ioctls & copy_ioctl) {
    std::snprintf(reason, reason_len,
                  "the kernel lacks UFFDIO_MOVE (Linux < 6.8) but userfaultfd serves missing "
                  "faults with UFFDIO_COPY%s.",
                  caveat);
    return REMAP_BACKEND_COPY;
  }
  copy_str(reason, reason_len,
           "userfaultfd opened but cannot register anonymous memory for missing faults, so "
           "compaction runs in the pause.");
  return REMAP_BACKEND_STW;
}

void probe_kernel(remap_probe_info* out) {
  remap_probe_info info{};
  info.struct_size = sizeof info;
  copy_str(info.kernel_release, sizeof info.kernel_release, kernel_release().c_str());
  long ps = ::sysconf(_SC_PAGESIZE);
  info.page_size = ps > 0 ? size_t(ps) : 4096;
  info.euid = ::geteuid();
  info.cap_sys_ptrace = has_cap_sys_ptrace();
  info.thp_mode = read_thp_mode();
  info.max_map_count = read_sysctl_int("/proc/sys/vm/max_map_count");
  info.unprivileged_userfaultfd = int(read_sysctl_int("/proc/sys/vm/unprivileged_userfaultfd"));
  info.swap_present = swap_active() == 1;
  int dontunmap_errno = 0;
  info.mremap_dontunmap = try_mremap_dontunmap(info.page_size, &dontunmap_errno);

  UffdOpenResult r;
  Status opened = uffd_open(false, false, &r);
  info.uffd_syscall_errno = r.syscall_errno;
  info.uffd_dev_errno = r.dev_errno;
  info.uffd_user_mode_errno = r.user_mode_errno;
  info.uffd_path = r.path;
  if (opened) {
    uint64_t want = kAllFeatures;
    if (!info.cap_sys_ptrace) want &= ~uint64_t(UFFD_FEATURE_EVENT_FORK);
    uint64_t granted = 0, api_ioctls = 0;
    if (uffd_api(r.fd.get(), want, true, &granted, &api_ioctls)) {
      info.uffd_available = 1;
      info.uffd_features = granted;
      // Register on a second uffd with no features: with the EVENT_* bits
      // granted above, a fork or munmap in another thread touching the
      // registered range would wait for this probe to read the event. The
      // range ioctls do not depend on the features asked for.
      UffdOpenResult plain;
      if (uffd_open(false, r.path == REMAP_UFFD_USER_MODE_ONLY, &plain) &&
          uffd_api(plain.fd.get(), 0, false, nullptr, nullptr))
        info.uffd_ioctls = register_ioctls(plain.fd.get(), info.page_size);
    }
  }
  info.auto_backend = resolve_auto_backend(info, info.auto_reason, sizeof info.auto_reason);
  if (!info.mremap_dontunmap && dontunmap_errno == ENOMEM && info.uffd_available)
    // Not the kernel's age (this once blamed Linux < 5.7 in a process
    // at vm.max_map_count): auto still falls back, for the right reason.
    copy_str(info.auto_reason, sizeof info.auto_reason,
             "MREMAP_DONTUNMAP untried: ENOMEM (the process is at vm.max_map_count or "
             "RLIMIT_AS, or out of memory), so compaction runs in the pause.");
  if (masked_uffd_features()) {
    // Say so (the field is short): a probe that plays an older kernel must
    // not be mistaken for the kernel's own answer.
    const size_t at = std::strlen(info.auto_reason);
    std::snprintf(info.auto_reason + at, sizeof info.auto_reason - at,
                  " [LIBREMAP_MASK_UFFD_FEATURES]");
  }
  *out = info;
}

}  // namespace remap::os

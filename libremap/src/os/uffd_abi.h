// uffd_abi.h — the userfaultfd ABI as of Linux 6.8+, defined here because the
// system's headers may predate UFFDIO_MOVE (Debian 12 ships 6.1's). Values are
// the kernel's uapi (include/uapi/linux/userfaultfd.h); a static_assert pins
// each struct's layout.
#pragma once

#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#include <cstdint>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC
#define USERFAULTFD_IOC 0xAA
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(USERFAULTFD_IOC, 0x00)
#endif

#ifndef UFFD_FEATURE_MINOR_SHMEM
#define UFFD_FEATURE_MINOR_SHMEM (1 << 10)
#endif
#ifndef UFFD_FEATURE_EXACT_ADDRESS
#define UFFD_FEATURE_EXACT_ADDRESS (1 << 11)
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif

#ifndef UFFDIO_REGISTER_MODE_MINOR
#define UFFDIO_REGISTER_MODE_MINOR ((__u64)1 << 2)
#endif

#ifndef _UFFDIO_CONTINUE
#define _UFFDIO_CONTINUE (0x07)
#endif
#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
#endif
#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
#endif

// struct uffdio_continue arrived in 5.13; define our own copy under another
// name so the code compiles against either header.
namespace remap::os {

struct uffdio_range_abi {
  uint64_t start;
  uint64_t len;
};

struct uffdio_continue_abi {
  uffdio_range_abi range;
  uint64_t mode;
  int64_t mapped;  // out: bytes mapped, or -errno
};
static_assert(sizeof(uffdio_continue_abi) == 32);

struct uffdio_move_abi {
  uint64_t dst;
  uint64_t src;
  uint64_t len;
  uint64_t mode;
  int64_t move;  // out: bytes moved, or -errno; not written on early EINVAL/EFAULT/ESRCH
};
static_assert(sizeof(uffdio_move_abi) == 40);

constexpr uint64_t kMoveModeDontwake = 1ull << 0;
constexpr uint64_t kMoveModeAllowSrcHoles = 1ull << 1;
constexpr uint64_t kContinueModeDontwake = 1ull << 0;

constexpr unsigned long kIoctlContinue = _IOWR(UFFDIO, _UFFDIO_CONTINUE, uffdio_continue_abi);
constexpr unsigned long kIoctlMove = _IOWR(UFFDIO, _UFFDIO_MOVE, uffdio_move_abi);

}  // namespace remap::os

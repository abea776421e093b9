// test_procfs_open.cpp — os/procfs readers against what this test does to
// its own address space, and os/uffd_open's path order and best-effort
// UFFDIO_API handshake; os/cpu_load's readers.
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "check.h"
#include "os/cpu_load.h"
#include "os/probe.h"
#include "os/procfs.h"
#include "os/uffd_abi.h"
#include "os/uffd_open.h"

using namespace remap;

TEST(procfs_count_vmas_sees_a_split) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  char* p = static_cast<char*>(
      mmap(nullptr, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  REQUIRE(p != MAP_FAILED);
  int64_t before = os::count_vmas();
  REQUIRE(before > 0);
  // A different protection in the middle splits one VMA into three.
  REQUIRE(mprotect(p + page, page, PROT_READ) == 0);
  CHECK_EQ(os::count_vmas(), before + 2);
  munmap(p, 3 * page);
}

TEST(procfs_rss_grows_with_touched_memory) {
  const size_t len = size_t(32) << 20;
  os::MemStatus a = os::read_mem_status();
  REQUIRE(a.rss_bytes > 0);
  CHECK(a.swap_bytes >= 0);
  char* p = static_cast<char*>(
      mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  REQUIRE(p != MAP_FAILED);
  for (size_t i = 0; i < len; i += 4096) static_cast<volatile char*>(p)[i] = 1;
  os::MemStatus b = os::read_mem_status();
  CHECK(b.rss_bytes - a.rss_bytes >= int64_t(len) * 3 / 4);
  munmap(p, len);
}

TEST(procfs_sysctls_and_release) {
  CHECK(os::read_sysctl_int("/proc/sys/vm/max_map_count") > 0);
  CHECK_EQ(os::read_sysctl_int("/proc/sys/vm/no_such_sysctl"), int64_t(-1));
  CHECK(!os::kernel_release().empty());
  int thp = os::read_thp_mode();
  CHECK(thp >= REMAP_THP_UNKNOWN && thp <= REMAP_THP_NEVER);
  int swap = os::swap_active();
  CHECK(swap == 0 || swap == 1);
}

TEST(uffd_open_user_mode_only_path) {
  os::UffdOpenResult r;
  Status s = os::uffd_open(false, true, &r);
  if (!s && r.user_mode_errno == ENOSYS) SKIP("no userfaultfd in this kernel");
  REQUIRE(s.is_ok());
  CHECK_EQ(r.path, int(REMAP_UFFD_USER_MODE_ONLY));
  CHECK_EQ(r.syscall_errno, 0);  // not tried
  CHECK_EQ(r.dev_errno, 0);
  CHECK(r.fd.valid());
}

TEST(uffd_api_best_effort_drops_unknown_bits) {
  const uint64_t unknown = uint64_t(1) << 40;
  os::UffdOpenResult r;
  if (!os::uffd_open(false, true, &r)) SKIP("no userfaultfd");
  uint64_t granted = 0, ioctls = 0;
  // Strict: a bit the kernel lacks fails the handshake (EINVAL) ...
  Status strict = os::uffd_api(r.fd.get(), UFFD_FEATURE_SIGBUS | unknown, false, &granted, &ioctls);
  CHECK_EQ(strict.code, REMAP_EUNSUPPORTED);
  // ... and leaves the context unconfigured, so best effort may retry on it.
  Status s = os::uffd_api(r.fd.get(), UFFD_FEATURE_SIGBUS | unknown, true, &granted, &ioctls);
  REQUIRE(s.is_ok());
  CHECK_EQ(granted, uint64_t(UFFD_FEATURE_SIGBUS));
  CHECK(ioctls & (uint64_t(1) << _UFFDIO_REGISTER));
  // A second handshake on a configured uffd is refused (EINVAL).
  CHECK(!os::uffd_api(r.fd.get(), 0, false, &granted, &ioctls).is_ok());
}

TEST(probe_auto_backend_rules) {
  remap_probe_info info{};
  char reason[160];
  info.uffd_available = 1;
  info.mremap_dontunmap = 1;
  info.uffd_features = UFFD_FEATURE_MOVE;
  info.uffd_ioctls = (uint64_t(1) << _UFFDIO_MOVE) | (uint64_t(1) << _UFFDIO_COPY);
  CHECK_EQ(os::resolve_auto_backend(info, reason, sizeof reason), int(REMAP_BACKEND_MOVE));
  info.uffd_features = 0;
  CHECK_EQ(os::resolve_auto_backend(info, reason, sizeof reason), int(REMAP_BACKEND_COPY));
  info.mremap_dontunmap = 0;
  CHECK_EQ(os::resolve_auto_backend(info, reason, sizeof reason), int(REMAP_BACKEND_STW));
  info.mremap_dontunmap = 1;
  info.uffd_available = 0;
  CHECK_EQ(os::resolve_auto_backend(info, reason, sizeof reason), int(REMAP_BACKEND_STW));
}

TEST(cpu_load_counts_this_thread_and_its_cpus) {
  // The caller is running while it reads /proc/loadavg, so it counts itself.
  CHECK(os::runnable_threads() >= 1);
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0);
  CHECK_EQ(os::usable_cpus(), CPU_COUNT(&set));
  // Narrowed to one CPU (as taskset would), the count follows.
  cpu_set_t one;
  CPU_ZERO(&one);
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &set)) {
      CPU_SET(c, &one);
      break;
    }
  REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
  CHECK_EQ(os::usable_cpus(), 1);
  // Pinned to fewer CPUs than the machine has, the machine-wide load says
  // nothing about ours: helpers never wait.
  if (os::online_cpus() > 1) CHECK_EQ(os::helper_cpu_budget(), 0);
  REQUIRE(sched_setaffinity(0, sizeof set, &set) == 0);
  if (os::usable_cpus() == os::online_cpus()) CHECK_EQ(os::helper_cpu_budget(), os::online_cpus());
}

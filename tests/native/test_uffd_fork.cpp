// test_uffd_fork.cpp — what fork() does to a userfaultfd and the ranges it
// registered, which api/fork_guard.h is built on (issue 12.6). Each test
// fails if its rule changes.
//
//   - Without UFFD_FEATURE_EVENT_FORK the child's copies of registered VMAs
//     are not registered: an unpopulated page reads zero there instead of
//     faulting (a cycle's unproduced page would silently read as zero).
//   - The inherited uffd still works in the child, on the parent's mm:
//     UFFDIO_MOVE refuses a caller that is not the uffd's mm (EINVAL), while
//     UFFDIO_COPY installs the child's bytes into the parent's address space.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include "check.h"
#include "os/fork.h"
#include "os/uffd_ops.h"
#include "os/vm.h"
#include "test_uffd_util.h"

using namespace remap;
using os::UffdErr;

namespace {

// Runs `fn` in a forked child with a watchdog; returns its exit status (a
// child stuck on a fault dies by SIGALRM).
template <typename Fn>
int in_child(Fn fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::alarm(10);
    ::_exit(fn());
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return -1;
  return status;
}

}  // namespace

TEST(uffd_fork_child_loses_the_registration) {
  auto uffd = tu::open_uffd();
  os::Mapping dst = tu::anon(2 * tu::ps());
  tu::fill_pages(dst.data() + tu::ps(), 1, 41);  // page 1 populated, page 0 a hole
  tu::Registration reg(uffd.get(), dst.data(), dst.size());
  REQUIRE(reg.ok());
  // In the parent a read of page 0 would block (no handler): only the child
  // touches it.
  int status = in_child([&] {
    if (!tu::page_is_zero(dst.data())) return 1;                  // no fault: reads zero
    if (!tu::page_matches(dst.data() + tu::ps(), 0, 41)) return 2;  // COW copy of page 1
    return 0;
  });
  CHECK(WIFEXITED(status));
  CHECK_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
}

TEST(uffd_fork_child_ioctls_act_on_the_parent) {
  auto uffd = tu::open_uffd();
  const size_t n = 2;
  os::Mapping src = tu::anon(n * tu::ps()), dst = tu::anon(n * tu::ps());
  tu::fill_pages(src.data(), n, 42);
  tu::Registration reg(uffd.get(), dst.data(), dst.size());
  REQUIRE(reg.ok());
  int status = in_child([&] {
    // MOVE: the child is not the uffd's mm.
    tu::touch_write(src.data());  // exclusive to the child: not the EBUSY rule
    auto r = os::uffd_move(uffd.get(), dst.data(), src.data(), tu::ps(), 0);
    if (r.ok() || r.sys_errno != EINVAL) return 10 + (r.ok() ? 0 : 1);
    // COPY: reads the child's bytes, installs them in the parent's dst.
    char page[4096];
    std::memset(page, 0x5a, sizeof page);
    r = os::uffd_copy(uffd.get(), dst.data() + tu::ps(), page, tu::ps(), 0);
    if (!r.ok()) return 20;
    return 0;
  });
  REQUIRE(WIFEXITED(status));
  CHECK_EQ(WEXITSTATUS(status), 0);
  // Unregistered, the parent can look without blocking: page 0 was never
  // installed (the child's MOVE failed), page 1 holds the child's bytes.
  REQUIRE(os::uffd_unregister(uffd.get(), dst.data(), dst.size()).ok());
  CHECK(tu::page_is_zero(dst.data()));
  bool all = true;
  for (size_t i = 0; i < tu::ps(); i++) all = all && dst.data()[tu::ps() + i] == 0x5a;
  CHECK(all);
  CHECK(tu::page_matches(src.data(), 0, 42));  // the parent's source is untouched
}

// fork_guard's prepare handler skips a heap mutex the forking thread holds
// (a fork from an object-model callback): glibc must record the owner.
TEST(fork_mutex_owner_is_known) {
  std::mutex m;
  CHECK(!os::held_by_this_thread(m));
  m.lock();
#if defined(__GLIBC__)
  CHECK(os::held_by_this_thread(m));
#endif
  bool other = true;
  std::thread t([&] { other = os::held_by_this_thread(m); });
  t.join();
  CHECK(!other);
  m.unlock();
  CHECK(!os::held_by_this_thread(m));
}

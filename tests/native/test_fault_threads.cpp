// test_fault_threads.cpp — FaultThreads' last resorts, with a stand-in
// target: a fault nobody can map a page for still ends (its page is
// unregistered, so the kernel wakes the thread and the retry faults in
// normally), and a uffd that can no longer be polled is reported to the
// target instead of ending the handler loop silently (or spinning on it).
//
// Every access that could park for good runs on a helper thread the test
// waits for with a deadline, never on the test's own thread.
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "check.h"
#include "compact/fault_threads.h"
#include "test_uffd_util.h"

namespace {

using namespace remap;

// Answers every fault with `answer`, mapping nothing; records delivery_failed.
class StandIn final : public FaultTarget {
 public:
  explicit StandIn(FaultOutcome answer) : answer_(answer) {}
  bool covers(uintptr_t) const noexcept override { return true; }
  FaultOutcome resolve_fault(uintptr_t) noexcept override {
    faults.fetch_add(1);
    return answer_;
  }
  void delivery_failed(const char* what, int) noexcept override {
    failed_what.store(what);
    failures.fetch_add(1);
  }
  std::atomic<int> faults{0};
  std::atomic<int> failures{0};
  std::atomic<const char*> failed_what{""};

 private:
  FaultOutcome answer_;
};

struct NonblockUffd {
  os::UniqueFd fd;
};

NonblockUffd open_nonblock() {
  os::UffdOpenResult r;
  Status s = os::uffd_open(/*nonblock=*/true, false, &r);
  if (!s) SKIP("no userfaultfd here: " + s.message);
  uint64_t granted = 0, ioctls = 0;
  s = os::uffd_api(r.fd.get(), 0, false, &granted, &ioctls);
  if (!s) SKIP("UFFDIO_API: " + s.message);
  return NonblockUffd{std::move(r.fd)};
}

// Waits up to `ms` for flag to become true.
bool wait_for(const std::atomic<bool>& flag, int ms) {
  for (int i = 0; i < ms && !flag.load(); i++) usleep(1000);
  return flag.load();
}

}  // namespace

// The target maps nothing (unserved): the handler thread unregisters the
// page, whose pending fault the kernel then wakes (fs/userfaultfd.c,
// userfaultfd_unregister), and the retry faults in a zero page.
TEST(fault_threads_unserved_fault_is_released) {
  NonblockUffd u = open_nonblock();
  os::Mapping m = tu::anon(4 * tu::ps());
  char* p = static_cast<char*>(m.addr());
  tu::Registration reg(u.fd.get(), p, 4 * tu::ps());
  REQUIRE(reg.ok());
  StandIn target(FaultOutcome::unserved);
  FaultThreads threads;
  REQUIRE(threads.start(u.fd.get(), 1, &target).is_ok());

  std::atomic<bool> done{false};
  std::atomic<int> seen{-1};
  std::thread t([&] {
    seen = *reinterpret_cast<volatile char*>(p + tu::ps());
    done = true;
  });
  bool returned = wait_for(done, 10000);
  if (!returned) {
    // Release it ourselves so the test can end, then report.
    os::uffd_unregister(u.fd.get(), p, 4 * tu::ps());
    wait_for(done, 10000);
  }
  t.join();
  CHECK(returned);
  CHECK_EQ(seen.load(), 0);
  CHECK_EQ(target.faults.load(), 1);
  CHECK_EQ(threads.unresolved(), uint64_t(1));
  // The other pages are still registered: a later fault still reaches the
  // handler thread (it kept running).
  std::atomic<bool> done2{false};
  std::thread t2([&] {
    (void)*reinterpret_cast<volatile char*>(p + 3 * tu::ps());
    done2 = true;
  });
  bool returned2 = wait_for(done2, 10000);
  if (!returned2) {
    os::uffd_unregister(u.fd.get(), p, 4 * tu::ps());
    wait_for(done2, 10000);
  }
  t2.join();
  CHECK(returned2);
  CHECK_EQ(target.faults.load(), 2);
  threads.stop();
}

// The uffd's descriptor is not open (closed by someone, as a runtime that
// closes descriptors it does not own would): poll answers POLLNVAL at once,
// for ever. Each thread tells the target (which, for the engine, stops
// faulting and breaks the heap) and ends, instead of spinning. (A thread
// already asleep in poll when the fd is closed keeps sleeping: the poll
// table holds the file; it sees POLLNVAL when it next polls, which is what
// a descriptor that is closed from the start shows deterministically.)
TEST(fault_threads_report_a_closed_uffd) {
  int fd = 999;  // a number far above anything this test opens
  while (fd > 100 && fcntl(fd, F_GETFD) != -1) fd--;
  REQUIRE(fcntl(fd, F_GETFD) == -1);
  StandIn target(FaultOutcome::resolved);
  FaultThreads threads;
  REQUIRE(threads.start(fd, 2, &target).is_ok());
  for (int i = 0; i < 5000 && target.failures.load() < 2; i++) usleep(1000);
  CHECK_EQ(target.failures.load(), 2);
  CHECK(std::strstr(target.failed_what.load(), "POLLNVAL") != nullptr);
  auto t0 = std::chrono::steady_clock::now();
  threads.stop();
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
}

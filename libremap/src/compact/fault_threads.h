// fault_threads.h — handler-thread fault delivery.
//
// Without UFFD_FEATURE_SIGBUS a fault in a registered range parks the
// faulting thread and queues a uffd_msg. N handler threads read the uffd,
// make the page exist through the FaultTarget and wake the range. This is the
// mode that serves kernel-originated faults (a write(2) from an unproduced
// heap buffer), which SIGBUS mode cannot: the syscall would get EFAULT. Its
// cost: a parked thread cannot run signal handlers until woken, and every
// fault pays two context switches.
#pragma once

#include <atomic>
#include <thread>
#include <vector>

#include "api/status.h"
#include "compact/fault_target.h"
#include "os/fd.h"

namespace remap {

class FaultThreads {
 public:
  FaultThreads() = default;
  FaultThreads(const FaultThreads&) = delete;
  FaultThreads& operator=(const FaultThreads&) = delete;
  ~FaultThreads() { stop(); }

  // Starts `n` threads reading `uffd` (which must be O_NONBLOCK) on behalf of
  // `target`. Each resolved fault is followed by UFFDIO_WAKE of its page.
  Status start(int uffd, unsigned n, FaultTarget* target);
  // Stops and joins the threads (idempotent).
  void stop();
  bool running() const { return !threads_.empty(); }
  uint64_t unresolved() const { return unresolved_.load(); }

 private:
  void loop();

  int uffd_ = -1;
  FaultTarget* target_ = nullptr;
  os::UniqueFd stop_fd_;  // eventfd: readable once stop() is called
  std::vector<std::thread> threads_;
  std::atomic<uint64_t> unresolved_{0};
};

}  // namespace remap

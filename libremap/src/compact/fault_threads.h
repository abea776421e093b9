// fault_threads.h — handler-thread fault delivery.
//
// Without UFFD_FEATURE_SIGBUS a fault in a registered range parks the
// faulting thread and queues a uffd_msg. N handler threads read the uffd,
// make the page exist through the FaultTarget and wake the range. This is the
// mode that serves kernel-originated faults (a write(2) from an unproduced
// heap buffer), which SIGBUS mode cannot: the syscall would get EFAULT. Its
// cost: a parked thread cannot run signal handlers until woken, and every
// fault pays two context switches.
//
// A parked thread is only ever released by a wake (UFFDIO_WAKE, or an ioctl
// that maps the page without DONTWAKE) or by its range leaving the uffd
// (UFFDIO_UNREGISTER and closing the uffd wake every fault pending there), so
// no fault read here is ever dropped: a fault the target cannot resolve is
// zero-filled by the target, or failing that its page is unregistered (see
// fault_target.h). If the uffd itself can no longer be polled or read, the
// target is told (delivery_failed) and stops faulting on its whole range.
#pragma once

#include <atomic>
#include <thread>
#include <vector>

#include "base/status.h"
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
  // Faults the target could not resolve (each was zero-filled or its page
  // unregistered; the target recorded why).
  uint64_t unresolved() const { return unresolved_.load(); }

 private:
  void loop();
  // Ends a fault the target could not serve at all: unregisters its page.
  void release_page(uintptr_t page);

  int uffd_ = -1;
  FaultTarget* target_ = nullptr;
  os::UniqueFd stop_fd_;  // eventfd: readable once stop() is called
  std::atomic<bool> stopping_{false};  // also set, for a thread that lost stop_fd_
  std::vector<std::thread> threads_;
  std::atomic<uint64_t> unresolved_{0};
};

}  // namespace remap

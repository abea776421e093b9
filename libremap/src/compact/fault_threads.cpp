// fault_threads.cpp — handler threads: poll the uffd, resolve, wake.
#include "compact/fault_threads.h"

#include <cerrno>

#include "os/event.h"
#include "os/uffd_abi.h"
#include "os/uffd_ops.h"
#include "os/vm.h"

namespace remap {
namespace {

// poll(2) failing with ENOMEM (or EAGAIN) is the kernel short of memory for
// its wait tables; it may pass. Retried this many times, 1 ms apart, before
// delivery counts as lost (parked threads wait that long at most).
constexpr int kPollRetries = 1000;

}  // namespace

Status FaultThreads::start(int uffd, unsigned n, FaultTarget* target) {
  stop();
  Status s = os::make_event(&stop_fd_);
  if (!s) return s;
  stopping_.store(false);
  uffd_ = uffd;
  target_ = target;
  try {
    for (unsigned i = 0; i < n; i++) threads_.emplace_back([this] { loop(); });
  } catch (const std::system_error& e) {
    stop();
    return fail(REMAP_ENOMEM, "cannot start a fault handler thread: %s", e.what());
  }
  return Status::ok();
}

void FaultThreads::stop() {
  if (threads_.empty()) return;
  stopping_.store(true);
  // Nobody reads the event, so it stays readable: one signal stops them all.
  os::signal_event(stop_fd_.get());
  for (auto& t : threads_) t.join();
  threads_.clear();
  stop_fd_.reset();
}

void FaultThreads::release_page(uintptr_t page) {
  // The target could not even map a zero page. Unregistering the page wakes
  // every fault pending on it (fs/userfaultfd.c, userfaultfd_unregister) and
  // its retry faults in like any anonymous or file page: the thread goes on,
  // and the heap is already broken (the target recorded why). If the kernel
  // refuses that too, the wake below makes the thread fault again and come
  // back here: a retry loop through the kernel, never a parked thread.
  os::uffd_unregister(uffd_, reinterpret_cast<void*>(page), os::page_size());
}

void FaultThreads::loop() {
  const uintptr_t page_mask = ~uintptr_t(os::page_size() - 1);
  pollfd fds[2] = {{uffd_, POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
  nfds_t nfds = 2;
  int timeout_ms = -1;
  int retries = 0;
  for (;;) {
    if (stopping_.load()) return;
    const int r = os::poll_fds(fds, nfds, timeout_ms);
    if (r < 0) {
      const int err = -r;
      if (err == EINTR) continue;
      if ((err == ENOMEM || err == EAGAIN) && ++retries <= kPollRetries) {
        os::sleep_ms(1);
        continue;
      }
      // No thread can read this uffd any more (EINVAL: nfds above
      // RLIMIT_NOFILE; EFAULT; ENOMEM that did not pass): every fault from
      // now on would park for good. The target stops faulting instead.
      target_->delivery_failed("poll", err);
      return;
    }
    retries = 0;
    if (nfds == 2 && (fds[1].revents & POLLIN)) return;
    if (nfds == 2 && fds[1].revents) {
      // The stop eventfd was closed under us (POLLNVAL) or broke: keep
      // serving faults, and notice stop() through stopping_ instead.
      nfds = 1;
      timeout_ms = 50;
    }
    if (fds[0].revents & (POLLNVAL | POLLERR | POLLHUP)) {
      // POLLNVAL: the uffd was closed (the kernel then released every range
      // and woke its faults); POLLERR: the uffd is not usable (the kernel
      // reports it for a uffd without its UFFDIO_API handshake).
      target_->delivery_failed(fds[0].revents & POLLNVAL ? "poll (the uffd is closed: POLLNVAL)"
                                                          : "poll (POLLERR or POLLHUP on the uffd)",
                               0);
      return;
    }
    if (!(fds[0].revents & POLLIN)) continue;
    uffd_msg msg;
    const long got = os::uffd_read(uffd_, &msg, sizeof msg);
    if (got < 0) {
      const int err = int(-got);
      if (err == EAGAIN || err == EINTR) continue;  // another handler thread took it
      target_->delivery_failed("read", err);
      return;
    }
    if (got != long(sizeof msg)) {
      // A uffd returns whole messages or nothing: this is not one any more.
      target_->delivery_failed("read (a short message)", 0);
      return;
    }
    if (msg.event != UFFD_EVENT_PAGEFAULT) continue;  // no other event was asked for
    const uintptr_t page = uintptr_t(msg.arg.pagefault.address) & page_mask;
    FaultOutcome out = target_->resolve_fault(page);
    if (out != FaultOutcome::resolved) {
      unresolved_.fetch_add(1);
      if (out == FaultOutcome::unserved) release_page(page);
    }
    // Resolving with MOVE/COPY/ZEROPAGE already woke the range unless someone
    // else mapped it first; waking again is cheap and covers that case (and
    // a fault that only needs a retry). If even this wake fails, the thread
    // may stay parked for good (no later install covers a page already
    // mapped): a delivery failure like a failed read. Stopping faults on the
    // range wakes every parked thread (tests/kernel/test_injected_failures.py:
    // every wake failing from some call on hung a mutator in ~5% of runs).
    const os::UffdResult w = os::uffd_wake(uffd_, reinterpret_cast<void*>(page), os::page_size());
    if (!w.ok()) {
      target_->delivery_failed("UFFDIO_WAKE", w.sys_errno);
      return;
    }
  }
}

}  // namespace remap

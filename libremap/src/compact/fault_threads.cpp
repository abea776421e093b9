// fault_threads.cpp — handler threads: poll the uffd, resolve, wake.
#include "compact/fault_threads.h"

#include <linux/userfaultfd.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "os/uffd_ops.h"
#include "os/vm.h"

namespace remap {

Status FaultThreads::start(int uffd, unsigned n, FaultTarget* target) {
  stop();
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) return fail(REMAP_EKERNEL, "eventfd failed: %s", strerror(errno));
  stop_fd_.reset(efd);
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
  uint64_t one = 1;
  // An eventfd counter: every thread sees it readable until it is read, and
  // nobody reads it, so one write stops them all.
  ssize_t w = write(stop_fd_.get(), &one, sizeof one);
  (void)w;
  for (auto& t : threads_) t.join();
  threads_.clear();
  stop_fd_.reset();
}

void FaultThreads::loop() {
  const uintptr_t page_mask = ~uintptr_t(os::page_size() - 1);
  pollfd fds[2] = {{uffd_, POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
  for (;;) {
    int r = poll(fds, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) {
      if (fds[0].revents & (POLLERR | POLLHUP)) return;
      continue;
    }
    uffd_msg msg;
    ssize_t got = read(uffd_, &msg, sizeof msg);
    if (got != sizeof msg) continue;  // EAGAIN: another handler thread took it
    if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
    uintptr_t page = uintptr_t(msg.arg.pagefault.address) & page_mask;
    if (!target_->covers(page) || !target_->resolve_fault(page)) {
      // Never leave a thread parked forever: the fault was not ours or could
      // not be produced. Count it; the engine reports it at finish.
      unresolved_.fetch_add(1);
      continue;
    }
    // Resolving with MOVE/COPY already woke the range unless someone else
    // mapped it first; waking again is cheap and covers that case.
    os::uffd_wake(uffd_, reinterpret_cast<void*>(page), os::page_size());
  }
}

}  // namespace remap

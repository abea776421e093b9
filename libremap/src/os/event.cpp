// event.cpp — see event.h.
#include "os/event.h"

#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace remap::os {

Status make_event(UniqueFd* out) {
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) return fail(REMAP_EKERNEL, "eventfd failed: %s", strerror(errno));
  out->reset(efd);
  return Status::ok();
}

void signal_event(int fd) noexcept {
  uint64_t one = 1;
  ssize_t w = write(fd, &one, sizeof one);
  (void)w;  // a full counter is still readable, which is all a stop needs
}

int poll_fds(pollfd* fds, nfds_t nfds, int timeout_ms) noexcept {
  int r = poll(fds, nfds, timeout_ms);
  return r < 0 ? -errno : r;
}

void sleep_ms(unsigned ms) noexcept { usleep(ms * 1000u); }

}  // namespace remap::os

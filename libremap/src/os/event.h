// event.h — the calls a handler thread waits with (compact/fault_threads.cpp):
// an eventfd as a stop flag, poll(2), and a short sleep.
#pragma once

#include <poll.h>

#include "base/status.h"
#include "os/fd.h"

namespace remap::os {

// A non-blocking, close-on-exec eventfd. Once signalled it stays readable
// for every poller until someone reads it, so one signal stops any number
// of threads that poll it.
Status make_event(UniqueFd* out);
void signal_event(int fd) noexcept;

// poll(2): the number of ready fds, or -errno.
int poll_fds(pollfd* fds, nfds_t nfds, int timeout_ms) noexcept;

void sleep_ms(unsigned ms) noexcept;

}  // namespace remap::os

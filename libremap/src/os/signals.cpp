// signals.cpp — see signals.h.
#include "os/signals.h"

#include <string.h>
#include <unistd.h>

#include <cerrno>

namespace remap::os {

Status install_fault_handler(int sig, FaultHandler handler, struct sigaction* previous) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = handler;
  // SA_RESTART: a mutator interrupted in a syscall by someone else's signal
  // is not our business. No SA_NODEFER: a fault of the same kind inside the
  // handler is a bug and the kernel then kills the process, which is what
  // we want. No SA_ONSTACK: producing a page may need more stack than an
  // alternate signal stack has (Python's faulthandler's is a few KiB); the
  // faulting thread's own stack is the one the runtime sized.
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(sig, &sa, previous) != 0)
    return fail(REMAP_EKERNEL, "sigaction(%s) failed: %s",
                sig == SIGBUS ? "SIGBUS" : sig == SIGSEGV ? "SIGSEGV" : "?", strerror(errno));
  return Status::ok();
}

void raise_default(int sig) noexcept {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigaction(sig, &dfl, nullptr);
  raise(sig);
}

void write_stderr(const char* text, size_t len) noexcept {
  while (len > 0) {
    ssize_t w = write(2, text, len);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return;
    }
    text += w;
    len -= size_t(w);
  }
}

}  // namespace remap::os

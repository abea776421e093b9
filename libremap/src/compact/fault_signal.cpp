// fault_sigbus.cpp — the process-wide SIGBUS handler and its target table.
#include "compact/fault_sigbus.h"

#include <sched.h>
#include <signal.h>
#include <string.h>

#include <atomic>
#include <cerrno>
#include <mutex>

namespace remap {
namespace {

constexpr int kSlots = 64;

struct Slot {
  std::atomic<FaultTarget*> target{nullptr};
  std::atomic<int> in_flight{0};
};

Slot g_slots[kSlots];
std::mutex g_install_mutex;        // registration only; never taken in the handler
bool g_installed = false;
struct sigaction g_previous;       // written once, before the handler can run

void chain_to_previous(int sig, siginfo_t* info, void* uctx) {
  const struct sigaction& prev = g_previous;
  if ((prev.sa_flags & SA_SIGINFO) && prev.sa_sigaction) {
    prev.sa_sigaction(sig, info, uctx);
    return;
  }
  if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
    return;
  }
  // Default action (or an ignored synchronous SIGBUS, which would loop):
  // restore the default and re-raise; the signal is blocked while we run, so
  // it is delivered, and kills the process, as soon as we return.
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGBUS, &dfl, nullptr);
  raise(SIGBUS);
}

void on_sigbus(int sig, siginfo_t* info, void* uctx) {
  int saved_errno = errno;  // the interrupted code must not see ours
  uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  if (info->si_code == BUS_ADRERR) {
    for (Slot& slot : g_slots) {
      if (!slot.target.load()) continue;
      // Announce ourselves before re-reading the target: unregister nulls the
      // target and then waits for in_flight == 0 (both seq_cst), so either it
      // sees our count or we see its null.
      slot.in_flight.fetch_add(1);
      FaultTarget* t = slot.target.load();
      bool mine = t && t->covers(addr);
      bool ok = mine && t->resolve_fault(addr);
      slot.in_flight.fetch_sub(1);
      if (ok) {
        errno = saved_errno;
        return;
      }
      if (mine) break;  // an unresolvable heap fault: the previous handler or default acts
    }
  }
  errno = saved_errno;
  chain_to_previous(sig, info, uctx);
}

}  // namespace

Status sigbus_register(FaultTarget* target) {
  std::lock_guard<std::mutex> lock(g_install_mutex);
  if (!g_installed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    // SA_RESTART: a mutator interrupted in a syscall by someone else's signal
    // is not our business; no SA_NODEFER: a SIGBUS inside our handler is a
    // bug and the kernel then kills the process, which is what we want.
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &g_previous) != 0)
      return fail(REMAP_EKERNEL, "sigaction(SIGBUS) failed: %s", strerror(errno));
    g_installed = true;
  }
  for (Slot& slot : g_slots) {
    FaultTarget* expect = nullptr;
    if (slot.target.compare_exchange_strong(expect, target)) return Status::ok();
  }
  return fail(REMAP_ELIMIT, "more than %d heaps are compacting at once in SIGBUS mode", kSlots);
}

void sigbus_unregister(FaultTarget* target) {
  for (Slot& slot : g_slots) {
    FaultTarget* expect = target;
    if (slot.target.compare_exchange_strong(expect, nullptr)) {
      while (slot.in_flight.load() != 0) sched_yield();
      return;
    }
  }
}

}  // namespace remap

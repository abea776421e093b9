// fault_signal.cpp — the process-wide SIGBUS and SIGSEGV handlers and their
// target tables. Everything the handlers touch is async-signal-safe: atomics,
// the targets' resolve_fault, and os::raise_default.
#include "compact/fault_signal.h"

#include <sched.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <mutex>

#include "os/signals.h"

namespace remap {
namespace {

constexpr int kSlots = 64;

struct Slot {
  std::atomic<FaultTarget*> target{nullptr};
  std::atomic<int> in_flight{0};
};

struct SignalTable {
  int sig;
  int our_code;                  // the si_code that can be ours
  Slot slots[kSlots];
  bool installed = false;        // under g_install_mutex
  struct sigaction previous;     // written once, before our handler can run
};

SignalTable g_bus{SIGBUS, BUS_ADRERR, {}, false, {}};
SignalTable g_segv{SIGSEGV, SEGV_ACCERR, {}, false, {}};
std::mutex g_install_mutex;      // registration only; never taken in a handler

SignalTable* table_for(int sig) {
  return sig == SIGBUS ? &g_bus : sig == SIGSEGV ? &g_segv : nullptr;
}

void chain_to_previous(SignalTable& t, int sig, siginfo_t* info, void* uctx) {
  const struct sigaction& prev = t.previous;
  if ((prev.sa_flags & SA_SIGINFO) && prev.sa_sigaction) {
    prev.sa_sigaction(sig, info, uctx);
    return;
  }
  if (!(prev.sa_flags & SA_SIGINFO) && prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
    return;
  }
  // Default action (or an ignored synchronous fault, which would loop):
  // restore the default and re-raise; the signal is blocked while we run, so
  // it is delivered, and kills the process, as soon as we return. (For a
  // synchronous fault, returning re-executes the access, which faults again
  // under the default action: the same outcome.)
  os::raise_default(sig);
}

void on_fault_signal(int sig, siginfo_t* info, void* uctx) {
  int saved_errno = errno;  // the interrupted code must not see ours
  SignalTable& t = sig == SIGBUS ? g_bus : g_segv;
  uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  if (info->si_code == t.our_code) {
    for (Slot& slot : t.slots) {
      if (!slot.target.load()) continue;
      // Announce ourselves before re-reading the target: unregister nulls the
      // target and then waits for in_flight == 0 (both seq_cst), so either it
      // sees our count or we see its null.
      slot.in_flight.fetch_add(1);
      FaultTarget* target = slot.target.load();
      bool mine = target && target->covers(addr);
      FaultOutcome out = mine ? target->resolve_fault(addr) : FaultOutcome::unserved;
      slot.in_flight.fetch_sub(1);
      if (!mine) continue;
      // A heap fault the target could not produce was recorded (the heap is
      // broken; finish says why) and zero-filled: returning retries the
      // access, which now succeeds, as the same fault in thread mode would.
      // Only if nothing could be mapped does it chain: returning would fault
      // again forever, so the previous handler or the default action (which
      // ends the process) is the loud way out.
      if (out != FaultOutcome::unserved) {
        errno = saved_errno;
        return;
      }
      break;
    }
  }
  errno = saved_errno;
  chain_to_previous(t, sig, info, uctx);
}

}  // namespace

Status signal_register(int sig, FaultTarget* target) {
  SignalTable* t = table_for(sig);
  if (!t) return fail(REMAP_EINVAL, "fault delivery by signal %d is not supported", sig);
  std::lock_guard<std::mutex> lock(g_install_mutex);
  if (!t->installed) {
    Status s = os::install_fault_handler(sig, on_fault_signal, &t->previous);
    if (!s) return s;
    t->installed = true;
  }
  for (Slot& slot : t->slots) {
    FaultTarget* expect = nullptr;
    if (slot.target.compare_exchange_strong(expect, target)) return Status::ok();
  }
  return fail(REMAP_ELIMIT, "more than %d heaps are compacting at once with %s delivery", kSlots,
              sig == SIGBUS ? "SIGBUS" : "SIGSEGV");
}

void signal_unregister(int sig, FaultTarget* target) {
  SignalTable* t = table_for(sig);
  if (!t) return;
  for (Slot& slot : t->slots) {
    FaultTarget* expect = target;
    if (slot.target.compare_exchange_strong(expect, nullptr)) {
      while (slot.in_flight.load() != 0) sched_yield();
      return;
    }
  }
}

}  // namespace remap

// fault_target.h — what fault delivery calls: "make the page at addr exist".
//
// The promise fault delivery keeps (thread mode and signal mode alike): a
// fault is never dropped. Either the page gets its data, or the target
// records why it cannot (the heap is then broken: finish returns that
// message and the heap becomes REMAP_PHASE_BROKEN) and maps a zero page so
// the faulting thread goes on instead of parking in the kernel forever (a
// userfaultfd MISSING fault is only ever ended by a wake) or faulting again
// in a loop. Only if even the zero page cannot be mapped does delivery use
// its own last resort (fault_threads.cpp, fault_signal.cpp).
#pragma once

#include <cstdint>

namespace remap {

enum class FaultOutcome : uint8_t {
  resolved,     // the page holds its data, or the access may simply be retried
  zero_filled,  // not producible: the failure is recorded (the heap is broken)
                // and a zero page (or whatever the range holds) is mapped there
  unserved,     // recorded, but nothing could be mapped either
};

class FaultTarget {
 public:
  virtual ~FaultTarget() = default;
  // True if addr lies in the range this target resolves faults for.
  virtual bool covers(uintptr_t addr) const noexcept = 0;
  // Makes the page containing addr accessible, producing it or waiting for
  // the thread that is (see FaultOutcome). An address the target does not
  // cover that still reached its delivery (a page registered with its
  // userfaultfd outside the heap) is a failure like any other. Must be
  // async-signal-safe (it runs in a SIGBUS/SIGSEGV handler).
  virtual FaultOutcome resolve_fault(uintptr_t addr) noexcept = 0;
  // Thread mode: delivery itself failed (`what`, e.g. "poll", failed with
  // `err`, 0 if no errno applies), so no later fault can be served. Records
  // it (the heap is broken) and stops faulting on the whole range, which
  // wakes every thread parked there. Not async-signal-safe.
  virtual void delivery_failed(const char* what, int err) noexcept = 0;
};

}  // namespace remap

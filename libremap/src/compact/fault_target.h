// fault_target.h — what fault delivery calls: "make the page at addr exist".
#pragma once

#include <cstdint>

namespace remap {

class FaultTarget {
 public:
  virtual ~FaultTarget() = default;
  // True if addr lies in the range this target resolves faults for.
  virtual bool covers(uintptr_t addr) const noexcept = 0;
  // Makes the page containing addr mapped, producing it or waiting for the
  // thread that is. Must be async-signal-safe (it runs in a SIGBUS handler).
  // Returns false if the page cannot be resolved (a bug or a broken heap).
  virtual bool resolve_fault(uintptr_t addr) noexcept = 0;
};

}  // namespace remap

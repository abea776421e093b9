// new_layout.h — what the heap needs to know of a cycle's outcome to take it
// on: per region, what the cycle found and leaves, and the large objects
// that change place.
//
// The plan (plan/plan.h) computes all of this; the heap only reads it when it
// adopts the layout (Heap::adopt_layout, complete_cycle). The heap sits below
// the plan, so it sees the plan through this interface and never includes it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "heap/region.h"

namespace remap {

// A live large object that changes place this cycle: regions
// [old_head, old_head + regions) -> [new_head, new_head + regions),
// new_head < old_head.
struct LargeMove {
  uint32_t old_head = 0;
  uint32_t new_head = 0;
  uint32_t regions = 0;
  size_t bytes = 0;  // the object's page-rounded allocation (the head's top)
};

class NewLayout {
 public:
  // Regions the cycle covered (the capacity when it was planned).
  virtual size_t region_count() const = 0;
  // The region's RegionState when the cycle was planned.
  virtual RegionState old_state(size_t r) const = 0;
  virtual RegionClass region_class(size_t r) const = 0;
  // End of region r's data in the new layout (absolute address).
  virtual uintptr_t new_top(size_t r) const = 0;
  // The large objects that slide, in address order.
  virtual const std::vector<LargeMove>& large_moves() const = 0;
  // Regions allocated in the cycle's black window.
  virtual const std::vector<uint32_t>& black_regions() const = 0;

 protected:
  ~NewLayout() = default;
};

}  // namespace remap

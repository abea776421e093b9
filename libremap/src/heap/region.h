// region.h — one region of the heap: its allocation state, its top, and the
// live bytes marking reported for it.
//
// Invariants:
//   - A region's bytes [base, base + top) are allocated memory (objects the
//     runtime bump-allocated); [base + top, base + region_size) is free and
//     reads as zero between cycles (compaction zeroes/releases free tails).
//   - An object never crosses a region boundary, except a large object, which
//     starts at the base of a LARGE_HEAD region and continues over the
//     following LARGE_TAIL regions; the head's top is the object's byte size
//     rounded up to pages (it may exceed region_size), tails have top 0.
//   - live_bytes is the sum of the sizes of the objects marked in the region
//     since the last clear_marks.
//   - State changes happen under the heap's allocation mutex; state, top and
//     live_bytes are atomics so that marking threads can read them lock-free.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace remap {

enum class RegionState : uint8_t {
  FREE = 0,        // nothing allocated, not handed out
  ALLOCATING = 1,  // handed out by acquire_region, the runtime bumps in [base+top, end)
  RETIRED = 2,     // handed back by retire_region (or compacted): [base, base+top) allocated
  LARGE_HEAD = 3,  // first region of a large object (object at base)
  LARGE_TAIL = 4,  // a following region of a large object
};

// How prepare classified a region (plan/plan.h).
enum class RegionClass : uint8_t {
  EMPTY = 0,       // no live bytes: every page is free after the cycle
  DENSE = 1,       // live/top >= dense_threshold: objects stay, references are updated
  FRAGMENTED = 2,  // live objects slide down in order: to the region start, or packed
                   // after an earlier fragmented region's (REMAP_HEAP_EVACUATE)
  LARGE = 3,       // a live large object (head and tails); it may slide (plan.h)
  BLACK = 4,       // allocated since remap_cycle_begin: stays; slots found by walking it
};

const char* region_state_name(RegionState s);

struct Region {
  // RegionState; atomic so that mark() can check it without the mutex.
  std::atomic<uint8_t> state{uint8_t(RegionState::FREE)};
  // The class the last prepare gave this region (for info and tests; the
  // plan holds the authoritative copy for its cycle).
  RegionClass last_class = RegionClass::EMPTY;
  // After a cycle, a compacted region's free tail [new_top, end) may be
  // handed out once by acquire_region (see Heap::acquire_region's policy).
  bool tail_offered = false;
  // FREE, but promised to a large object the prepared plan slides here:
  // neither acquire_region nor alloc_large hands it out (Heap::reserve_slide,
  // under the allocation mutex; cleared when the layout is adopted or the
  // cycle is cancelled).
  bool reserved = false;
  // FREE, set aside while a cycle compacts for a GC worker to install zero
  // pages in (filling), then handed out by acquire_region before any other
  // FREE region (filled); alloc_large may take a filled one too. Heap::
  // take_region_to_prefill; under the allocation mutex.
  enum class Prefill : uint8_t { none, filling, filled };
  Prefill prefill = Prefill::none;
  // Bytes used from the region base (see the invariants above).
  std::atomic<size_t> top{0};
  // Sum of the sizes of the objects marked here since clear_marks.
  std::atomic<size_t> live_bytes{0};
  // LARGE_TAIL: index of the head region. LARGE_HEAD: its own index.
  uint32_t large_head = 0;
  // LARGE_HEAD: number of regions the large object spans (>= 1).
  uint32_t large_regions = 0;
  // Acquired (or, for a large object's regions, allocated) in the black
  // window of a concurrent cycle: every object in it is black (see
  // Heap::begin_cycle). Cleared when that cycle ends.
  std::atomic<bool> black{false};

  RegionState get_state() const { return RegionState(state.load(std::memory_order_acquire)); }
  // FREE, not promised to a sliding large object nor set aside to prefill:
  // may be handed out (both flags are read under the allocation mutex).
  bool takeable() const {
    return get_state() == RegionState::FREE && !reserved && prefill == Prefill::none;
  }
  // ... for a large object: a filled region's zero pages serve it as well.
  bool takeable_for_large() const {
    return get_state() == RegionState::FREE && !reserved && prefill != Prefill::filling;
  }
  void set_state(RegionState s) { state.store(uint8_t(s), std::memory_order_release); }
};

}  // namespace remap

// stats.h — what the toy VM records about each garbage collection: its own
// timers (the pause as mutators see it, split into its parts) joined with the
// library's remap_cycle_stats of the same cycle.
#pragma once

#include <cstdint>
#include <vector>

#include "libremap.h"

namespace toyvm {

struct GcRecord {
  uint64_t index = 0;          // 1 for the first collection of this VM
  const char* cause = "";      // "allocation", "exhausted", "explicit"
  // The stop-the-world pause, ns. pause = ttsp + mark + prepare + flip.
  uint64_t pause_ns = 0;
  uint64_t ttsp_ns = 0;        // safepoint request to every mutator stopped
  uint64_t mark_ns = 0;        // tracing from the roots, remap_mark per live object
  uint64_t prepare_ns = 0;     // remap_prepare + forwarding the roots
  uint64_t flip_ns = 0;        // remap_flip + rewriting the roots
  // After the pause, with mutators running: remap_compact + remap_finish
  // (0 with stw, which compacts inside the flip).
  uint64_t concurrent_ns = 0;
  uint64_t verify_ns = 0;      // the workload's after-GC check (its own pause)
  // Tracing.
  uint64_t roots = 0;
  uint64_t objects_marked = 0;
  uint64_t bytes_marked = 0;
  // Heap occupancy (sum of region tops) before the pause and right after
  // the flip (the compacted layout), and the capacity.
  uint64_t heap_before = 0;
  uint64_t heap_after = 0;
  uint64_t capacity = 0;
  // The library's view of the same cycle.
  remap_cycle_stats lib{};
};

}  // namespace toyvm

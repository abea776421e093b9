// stw.h — the stop-the-world reference backend: the whole compaction in the
// runtime's pause, with plain memmove. Every other backend must
// leave a byte-identical heap.
//
// Result, per region class of the plan:
//   FRAGMENTED: live objects slid to the region start in order, reference
//               slots forwarded; [new_top, end of its page) zeroed; the whole
//               free pages after it released (MADV_DONTNEED: read as zero).
//   DENSE/LARGE: reference slots of live objects forwarded in place; dead
//               bytes untouched (pages past top are already zero).
//   EMPTY:      every page up to the old top released.
// Slots holding NULL or a value outside the heap are left as they are.
#pragma once

#include "base/status.h"
#include "heap/heap.h"
#include "libremap.h"
#include "plan/plan.h"

namespace remap {

// Compacts `heap` according to `plan` (built from the heap's current marks;
// the object model was validated by Plan::build). Does not complete the cycle
// (the caller calls heap.complete_cycle(plan)). Adds to *stats (may be NULL):
// bytes_copied, madvise_calls, madvise_ns, produce_ns. When the plan moves
// nothing (Plan::nothing_moves) it only releases free memory: the engine's
// flip uses it then for every backend, instead of a flip and a cycle of
// page production that would rebuild every page as it was.
Status stw_compact(Heap& heap, const Plan& plan, remap_cycle_stats* stats);

// Only the last step of stw_compact: the free memory the plan leaves
// (EMPTY regions, FRAGMENTED tails) released so that it reads as zero. For
// a plan that moves nothing this is the whole cycle, and the concurrent
// backends run it after the flip's pause (api/cycle_api.cpp: flip_trivial).
Status stw_release(Heap& heap, const Plan& plan, remap_cycle_stats* stats);

}  // namespace remap

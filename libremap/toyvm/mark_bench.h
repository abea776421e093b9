// mark_bench.h — what marking one object costs the library, against the
// floor: the same objects of one built heap, in the order a tracer reaches
// them, are marked with remap_mark and, in alternating passes, by setting
// their bit in a plain side bitmap (the least any marker does per object).
//
// The heap is GCBench-shaped: complete binary trees of the toy VM's
// GCBench.Node (16 B header, two reference slots, 8 B of fields = 40 B),
// allocated top-down as GCBench's Populate does, bump-allocated in regions
// from the library like the VM's TLABs. The trace order (a depth-first walk
// with an explicit stack, as Collector::mark) is computed once, outside
// the timed passes; every pass reads each object's header, so both sides
// pay the same cache misses on the objects themselves.
//
// Issue 13 sets ≤ 15 ns per object as the goal for the library's marking:
// remap_try_mark (the mark bit, sizes and slots read at prepare) is measured
// too, with the part of remap_prepare that completes its marks (prepare
// minus an empty prepare's cost is not separable, so the whole prepare is
// timed: it runs off the pause when the runtime prepares beside its
// mutators).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "libremap.h"

namespace toyvm {

struct MarkBenchOptions {
  uint64_t objects = uint64_t(1) << 20;  // rounded down to whole trees
  unsigned reps = 3;                     // timed passes of each kind
  int backend = REMAP_BACKEND_STW;       // marking does not depend on it
  size_t region_size = size_t(256) << 10;
};

struct MarkBenchResult {
  uint64_t objects = 0;         // objects marked per pass
  uint64_t object_bytes = 0;    // their total size
  // One entry per timed pass, ns for the whole pass.
  std::vector<uint64_t> remap_mark_ns;     // remap_mark(heap, obj)
  std::vector<uint64_t> try_mark_ns;       // remap_try_mark(heap, obj): the mark bit only
  std::vector<uint64_t> try_complete_ns;   // the rest of those marks, done by remap_prepare
  std::vector<uint64_t> bitmap_ns;         // plain `bits[w / 64] |= bit`
  std::vector<uint64_t> bitmap_atomic_ns;  // relaxed atomic fetch_or (thread-safe, as remap_mark is)
  remap_status status = REMAP_OK;          // not OK: `error` says why
  std::string error;
};

// Never throws for library failures: they are in the result.
MarkBenchResult run_mark_bench(const MarkBenchOptions& options);

}  // namespace toyvm

// stress.h — concurrent compaction under real mutator threads (issue 4,
// "Proof of correctness": concurrency).
//
// A small runtime on the public C ABI only (objects of object_layout.h):
// `mutators` C++ threads walk the object graph from roots kept outside the
// heap, reading every object they reach and writing payloads and
// references (and allocating new objects) while a driver thread runs
// compaction cycles. Each cycle the mutators stop at a safepoint (a plain
// barrier) for marking, prepare and flip; the driver rewrites the roots with
// remap_forward, resumes them, and calls remap_compact then remap_finish
// while they run.
//
// The graph: slot 0 of every object is a spine (insertions keep what they
// displace reachable; a bypass drops about one object), slots 1.. carry
// cross edges that are redirected or cleared; the live set grows until the
// heap is nearly full and allocation fails until a cycle makes room.
//
// What proves correctness:
//   - Every object has its id in the header and payload words that all
//     encode (id, version). Writes (payload or reference) take the object's
//     seqlock (outside the heap), bump the version and commit it, with the
//     slot's target id, to a table outside the heap. A reader takes a
//     seqlock-consistent snapshot and checks: the id, size and shape
//     match the table, the object is at the address the table says, every
//     payload word encodes (id, committed version) — a stale page or a
//     half-built one fails here — and every slot holds the current address
//     of its committed target (references were forwarded).
//   - Every write is also appended to its thread's log. At each safepoint
//     (heap IDLE, mutators stopped) the logs are replayed into a model, and
//     the whole reachable graph in the heap is compared with it (versions
//     and slot targets: no write was lost), then a graph checksum of the
//     heap is compared with the model's.
//
// Large objects (DESIGN §8; issue 7): a `large_fraction` of the objects the
// mutators allocate (and a share of the build) come from remap_alloc_large,
// from just over large_object_threshold up to three regions. The mutator
// that links one unlinks it (clears the edge, or bypasses it on the spine)
// 1 to 4 cycles later if the edge still names it, and large objects are
// seldom made targets of other edges, so that in most cycles some die and
// live ones slide down over them. Most are primitive (no slots); some have
// 1 to 4 slots, some more than a page of slots (the layout keeps every
// slot right after the header, so a large object with >= 511 slots has
// slots on its second page): the stress tracks slots 0, 1, 2 and the last
// one, which lies on page 1; the untracked slots in between hold a
// per-(id, slot) constant outside the heap that the library must leave
// alone. A write to a large object rewrites only some of its pages (which
// ones: a function of (id, new version)), each page's payload then encoding
// (id, version of the page's last write, word index); the page versions are
// kept beside the version under the seqlock. A reader never copies a large
// object: it checks the header, the tracked slots (their targets' current
// addresses), a random untracked slot, and the first and last payload word
// of every page plus a random one (so every page is touched: a page left
// behind, stale or misplaced, fails) against the page versions. At a
// safepoint every payload word and every untracked slot of every reachable
// large object is compared with the page versions the log replay gives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "libremap.h"

namespace libremap_py {

struct StressParams {
  int backend = REMAP_BACKEND_MOVE;
  int fault_mode = REMAP_FAULT_SIGBUS;
  unsigned gc_threads = 1;
  unsigned mutators = 2;
  unsigned cycles = 10;
  size_t heap_mib = 4;
  uint64_t seed = 0;
  size_t region_kib = 64;
  double fill_fraction = 0.5;    // regions filled with objects at build
  size_t idle_ops = 500;         // object visits per mutator between finish and the next safepoint
  double write_fraction = 0.25;  // visits that also write the object
  double alloc_fraction = 0.3;   // writes that link a newly allocated object
  unsigned roots = 64;
  // Of the objects mutators allocate, the fraction that are large (whole
  // regions via remap_alloc_large); the build spends min(0.5, 5 *
  // large_fraction) of its bytes on large objects. 0: none, and the run is
  // the same as before large objects were part of it (same random streams).
  double large_fraction = 0.05;
  double timeout_s = 60;         // safepoint wait; a failure (not a hang) past it
  bool keep_stats = false;       // return every cycle's remap_cycle_stats
  // Testing the checker: at the safepoint of this cycle (1-based; 0 never)
  // the driver rolls one root object's payload back to its previous version
  // behind the log's back, as a stale page would. The run must then fail.
  unsigned inject_stale_cycle = 0;
  // ... and with this set, the object rolled back is a reachable large
  // object, one page of it (a root object if there is none).
  bool inject_stale_large = false;
  // Tagged references (issue 12): every tracked slot holds its target's
  // address | a 3-bit tag that depends on (owner id, slot), with the heap's
  // ref_tag_mask = 7; readers and the safepoint check expect the tag back
  // with the target's current address. Untagged when false.
  bool tagged = false;
  // Prepare beside the mutators (remap_cycle_begin; issue 13): the first
  // safepoint calls remap_cycle_begin and marks, then the mutators run
  // (walking, writing, allocating black objects) while the driver calls
  // remap_prepare; a second safepoint flips. Objects allocated after the
  // marking are black: live, at their address.
  bool concurrent_prepare = false;
  // REMAP_HEAP_EVACUATE: survivors of fragmented regions are packed into
  // lower regions, so objects change region under the mutators.
  bool evacuate = false;
  // Heap sizing (issue 16): 0 keeps the heap at heap_mib. Otherwise the heap
  // reserves max_heap_mib and, after each cycle's finish, while the
  // mutators run (allocating, so racing the resize for the top regions),
  // the driver moves the capacity: up by a quarter of the way to the maximum
  // after odd cycles, down to min_capacity (not below heap_mib) after even
  // ones, retrying a shrink refused with REMAP_EBUSY once with the new
  // min_capacity. Every object must stay below the capacity.
  size_t max_heap_mib = 0;
};

struct StressResult {
  uint64_t cycles = 0;
  uint64_t reads = 0;            // object snapshots checked by mutators
  uint64_t writes = 0;
  uint64_t allocs = 0;
  uint64_t retries = 0;          // snapshots retried (seqlock changed under the reader)
  uint64_t objects_verified = 0; // objects compared with the model at safepoints
  uint64_t live_objects = 0;     // reachable at the last safepoint
  uint64_t pages_by_mutator = 0; // summed over cycles (stats)
  uint64_t pages_by_gc = 0;
  uint64_t faults = 0;
  uint64_t fallback_ebusy = 0;
  uint64_t log_entries = 0;      // write-log entries replayed
  // Large objects.
  uint64_t large_allocs = 0;     // by mutators and the build
  uint64_t large_reads = 0;      // large-object samples checked by mutators
  uint64_t large_reads_compacting = 0;  // of those, while the heap was compacting
  // Pages of large objects not yet installed when a mutator was about to
  // read them while compacting (mincore; move and copy only, where such a
  // page is not resident): the reads fault on them unless the GC wins.
  uint64_t large_pages_missing = 0;
  uint64_t large_writes = 0;
  uint64_t large_died = 0;       // allocated large objects found unreachable at a safepoint
  uint64_t large_live = 0;       // reachable at the last safepoint
  uint64_t large_verified = 0;   // large objects compared word by word at safepoints
  uint64_t large_cycles_moved = 0;  // cycles in which at least one large object slid
  uint64_t large_objects_moved = 0; // summed over cycles (stats)
  uint64_t large_pages_moved = 0;
  uint64_t large_pages_copied = 0;
  uint64_t large_pages_updated = 0;
  // Heap sizing (max_heap_mib): resizes that changed the capacity, shrinks
  // refused because a region had been taken (REMAP_EBUSY), and the
  // capacity's extremes.
  uint64_t grows = 0;
  uint64_t shrinks = 0;
  uint64_t shrinks_busy = 0;
  uint64_t capacity_min = 0;
  uint64_t capacity_max = 0;
  bool verified = false;
  std::string error;             // the first failure, "" if none
  // The first library call that failed ("" if none), and the heap's phase
  // at the end (remap_phase): with a kernel call made to fail (tests'
  // LIBREMAP_INJECT_FAILURE), a cycle either completes, is refused with the
  // heap still IDLE, or leaves it BROKEN.
  std::string lib_error;
  int final_phase = -1;
  // A refused cycle (the library's failure came first, the heap IDLE): the
  // graph was then checked against the write logs once more, with the
  // mutators stopped, and matched (error says what differed if not).
  bool verified_after_refusal = false;
  std::vector<remap_cycle_stats> stats;  // keep_stats only
};

// Runs the whole stress; never throws for a detected corruption (it is in
// result.error with verified false); throws StatusError if the heap cannot
// be created (REMAP_EUNSUPPORTED for a backend this kernel cannot run).
StressResult run_stress(const StressParams& params);

}  // namespace libremap_py

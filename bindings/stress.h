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
  double timeout_s = 60;         // safepoint wait; a failure (not a hang) past it
  bool keep_stats = false;       // return every cycle's remap_cycle_stats
  // Testing the checker: at the safepoint of this cycle (1-based; 0 never)
  // the driver rolls one root object's payload back to its previous version
  // behind the log's back, as a stale page would. The run must then fail.
  unsigned inject_stale_cycle = 0;
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
  bool verified = false;
  std::string error;             // the first failure, "" if none
  std::vector<remap_cycle_stats> stats;  // keep_stats only
};

// Runs the whole stress; never throws for a detected corruption (it is in
// result.error with verified false); throws StatusError if the heap cannot
// be created (REMAP_EUNSUPPORTED for a backend this kernel cannot run).
StressResult run_stress(const StressParams& params);

}  // namespace libremap_py

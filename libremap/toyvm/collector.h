// collector.h — the toy VM's garbage collector. One collection is, with
// stop-the-world marking (Marking::stw):
//   pause:  stop the world, hand back every TLAB, trace from the roots and
//           remap_mark each live object, remap_prepare, forward the roots,
//           remap_flip, rewrite the roots, resume the world;
// and with concurrent marking (Marking::concurrent):
//   initial-mark pause: hand back every TLAB, remap_cycle_begin, snapshot
//           the roots, turn the SATB write barrier on;
//   concurrent:  trace from the snapshot and from the barrier's logs while
//           the mutators run (what they allocate now is black: marking.h);
//   remark pause: take every mutator's log, trace what is left; when that
//           runs over its time budget, resume and trace on, then remark
//           again (the last remark finishes whatever is left); barrier off;
//   concurrent:  remap_prepare;
//   flip pause: hand back every TLAB, remap_flip, forward the roots;
// then, either way:
//   if the heap is COMPACTING, remap_compact + remap_finish on this (the
//           collector) thread while the mutators run;
//   last:   the workload's after-GC check in a pause of its own.
// Backend-agnostic: with stw the flip compacts and returns the heap to IDLE,
// so there is nothing after the pause.
#pragma once

#include <cstdint>
#include <vector>

#include "object.h"
#include "stats.h"

namespace toyvm {

class Vm;
class Marker;

class Collector {
 public:
  explicit Collector(Vm& vm);
  // One full collection (on the collector thread). Failures fail the VM.
  void collect(const char* cause);

  // For a driver outside the VM that runs libremap's cycle itself (the
  // conformance kit, bindings/testing/conformance_toyvm.cpp): stw_cycle's marking
  // (TLABs retired, roots gathered and traced with remap_try_mark), and its
  // root rewrite after remap_flip. Only while no collection runs and no
  // mutator runs but the caller's own thread. False once the VM failed.
  bool mark_for_driver();
  bool forward_roots_for_driver();

 private:
  // Each returns false once the VM failed (the cycle was cancelled).
  bool stw_cycle(GcRecord& rec);
  bool concurrent_cycle(GcRecord& rec);
  // Traces (mutators running) until the grey stack and the published SATB
  // buffers are both empty.
  bool trace_concurrently();
  // After the flip: occupancy, the next trigger, compaction, the stats.
  bool after_flip(GcRecord& rec);
  // Heap IDLE, mutators running: the growable heap's policy (vm.h,
  // VmConfig::max_heap_bytes). Sets capacity_ and the record's capacity_after.
  bool size_heap(GcRecord& rec);
  // The next collection's trigger and the free space it is measured against.
  void set_trigger(uint64_t bytes_allocated);
  void check_after_gc(GcRecord& rec);
  // Every root slot (handles, globals) and hands back every TLAB: in a pause.
  void gather_roots_retire_tlabs();
  bool fail_library(const char* call, int status);
  uint64_t heap_bytes_allocated();

  Vm& vm_;
  Marker& marker_;
  size_t capacity_ = 0;
  std::vector<Ref*> root_slots_;     // every root of this pause
  std::vector<Ref> forwarded_;       // remap_forward of each root, taken at prepare (stw)
  std::vector<uintptr_t> snapshot_;  // root values at the initial mark (concurrent)
  uint64_t count_ = 0;
};

}  // namespace toyvm

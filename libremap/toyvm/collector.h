// collector.h — the toy VM's garbage collector: one collection is
//   pause:  stop the world, hand back every TLAB, trace from the roots and
//           remap_mark each live object, remap_prepare, forward the roots,
//           remap_flip, rewrite the roots, resume the world;
//   then:   if the heap is COMPACTING, remap_compact + remap_finish on this
//           (the collector) thread while the mutators run;
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

class Collector {
 public:
  explicit Collector(Vm& vm);
  // One full collection (on the collector thread). Failures fail the VM.
  void collect(const char* cause);

 private:
  // Returns false (after failing the VM) on a library error or a bad object.
  bool mark(GcRecord& rec);
  bool check_object(uintptr_t obj, uintptr_t from);
  bool fail_library(const char* call, int status);
  uint64_t heap_bytes_allocated();

  Vm& vm_;
  uintptr_t base_ = 0;
  size_t capacity_ = 0;
  std::vector<uint64_t> marks_;      // one bit per heap word: visited by the tracer
  std::vector<uintptr_t> stack_;     // grey objects
  std::vector<Ref*> root_slots_;     // every root of this pause
  std::vector<Ref> forwarded_;       // remap_forward of each root, taken at prepare
  uint64_t count_ = 0;
};

}  // namespace toyvm

// marking.h — the toy VM's tracer: a side mark bitmap outside the heap, the
// grey stack, the black-allocation table and the queue of SATB buffers that
// mutators hand to the collector. Both collectors use it: the stop-the-world
// one traces everything in its pause; the concurrent one traces from a root
// snapshot while the mutators run (see collector.h).
//
// Invariants a concurrent trace relies on:
//   - Only objects reachable at the snapshot (the initial-mark pause) are
//     marked and traced. Their headers never change, so reading them beside
//     running mutators is safe; their reference slots are read with acquire
//     loads (object.h) while mutators store to them.
//   - Objects allocated from the initial mark on are black: live by
//     construction, never marked, never traced, so the tracer never reads an
//     object its allocating mutator may still be initialising. They live in
//     regions acquired in the window only (libremap offers no older memory
//     then: remap_cycle_begin), so a region table stamped with the cycle's
//     epoch at acquisition tells them apart. A mutator stamps a region
//     before it allocates in it, and publishes a reference to an object
//     there only with a release store, so a tracer that loads the reference
//     (acquire) sees the stamp.
//   - Every reference a mutator overwrites during marking is logged first
//     (the SATB barrier, Mutator::write_ref): whatever was reachable at the
//     snapshot stays reachable from a root snapshot, a traced slot, or a log.
//   - The mark bitmap is set with an atomic test-and-set, so a second tracer
//     thread (or a mutator reading it to filter its log) is safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "object.h"

namespace toyvm {

class Vm;

// Entries a mutator logs before it hands its buffer to the collector.
inline constexpr size_t kSatbBufferEntries = 1024;

class Marker {
 public:
  explicit Marker(Vm& vm);

  // ---- per cycle (collector thread) ----
  // Clears the bitmap and the grey stack: O(heap / 64) bytes, so it runs
  // before the cycle's first pause, while the mutators run.
  void reset(uint64_t gc_index);
  // In the initial-mark pause: regions stamped from now on are black.
  void begin_black_epoch() { epoch_.fetch_add(1, std::memory_order_relaxed); }
  // Whether the concurrent rules (black regions) apply to this trace.
  void set_concurrent(bool on) { concurrent_ = on; }

  // ---- black allocation (mutators) ----
  // Stamps the regions of [start, start + bytes) with the current epoch.
  void note_allocated(uintptr_t start, size_t bytes) {
    const uint32_t e = epoch_.load(std::memory_order_relaxed);
    const size_t first = (start - base_) >> region_shift_;
    const size_t last = (start + (bytes ? bytes : 1) - 1 - base_) >> region_shift_;
    for (size_t r = first; r <= last && r < regions_; ++r) region_epoch_[r].store(e, std::memory_order_relaxed);
  }
  bool is_black(uintptr_t v) const {
    const size_t r = (v - base_) >> region_shift_;
    return r < regions_ &&
           region_epoch_[r].load(std::memory_order_relaxed) == epoch_.load(std::memory_order_relaxed);
  }
  bool is_marked(uintptr_t v) const {
    const size_t w = (v - base_) / 8;
    return (marks_[w / 64].load(std::memory_order_relaxed) >> (w % 64)) & 1;
  }
  // Whether a logged old value can be dropped at once: null, outside the
  // heap, already marked, or black.
  bool needs_log(uintptr_t v) const {
    return v != 0 && v - base_ < capacity_ && !is_marked(v) && !is_black(v);
  }

  // ---- SATB buffers ----
  // A mutator's full (or last) buffer: moved to the collector's queue.
  void publish(std::vector<uintptr_t>& buf);
  // Greys every entry of `buf` (collector thread; in a pause for a
  // mutator's own buffer) and empties it.
  bool grey_entries(std::vector<uintptr_t>& buf);
  // Greys every published buffer; false on a failure. *any: there were some.
  bool grey_published(bool* any);

  // ---- tracing (collector thread) ----
  // First visit of v (0 is fine): checks it against the class table, marks it
  // for us and libremap, queues it if it has slots. False on a failure (the
  // VM failed). Black objects are skipped in a concurrent trace.
  bool grey(uintptr_t v, uintptr_t from);
  // Pops and scans grey objects until the stack is empty (*drained = true)
  // or deadline_ns (CLOCK_MONOTONIC; 0 = none) passes.
  bool trace(uint64_t deadline_ns, bool* drained);
  bool stack_empty() const { return stack_.empty(); }

  uint64_t objects_marked = 0;
  uint64_t bytes_marked = 0;
  uint64_t satb_logged = 0;   // entries taken from mutators' buffers
  uint64_t black_skipped = 0; // references to black objects met by the tracer

 private:
  bool check_object(uintptr_t obj, uintptr_t from);

  Vm& vm_;
  uintptr_t base_ = 0;
  size_t capacity_ = 0;
  unsigned region_shift_ = 0;
  size_t regions_ = 0;
  uint64_t gc_index_ = 0;
  bool concurrent_ = false;
  std::unique_ptr<std::atomic<uint64_t>[]> marks_;  // one bit per heap word
  size_t mark_words_ = 0;
  std::unique_ptr<std::atomic<uint32_t>[]> region_epoch_;
  std::atomic<uint32_t> epoch_{1};
  std::vector<uintptr_t> stack_;  // grey objects

  std::mutex queue_mu_;
  std::vector<std::vector<uintptr_t>> queue_;  // published SATB buffers
  std::vector<std::vector<uintptr_t>> spare_;  // emptied buffers, handed back to mutators
};

}  // namespace toyvm

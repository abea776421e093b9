// collector.cpp — one collection of the toy VM (see collector.h).
//
// Marking is a stop-the-world trace with an explicit stack and a side mark
// bitmap (one bit per heap word) outside the heap: headers stay read-only
// for the GC, as libremap's model callbacks may read them at any time during
// compaction. Every object reached is checked against the class table before
// its slots are followed, so heap corruption is reported, never chased.
//
// Roots are forwarded between prepare and flip: remap_forward is valid from
// prepare to the end of finish, and with stw the flip already ends the cycle.
#include "collector.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "vm.h"

namespace toyvm {

namespace {

// Resumes the world when a pause ends early on a failure.
struct WorldStopped {
  Vm* vm;
  void (Vm::*resume)();
  bool active = true;
  ~WorldStopped() { end(); }
  void end() {
    if (active) (vm->*resume)();
    active = false;
  }
};

std::string hex(uintptr_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(v));
  return buf;
}

}  // namespace

Collector::Collector(Vm& vm) : vm_(vm) {
  base_ = reinterpret_cast<uintptr_t>(vm.info().base);
  capacity_ = vm.info().capacity;
  marks_.assign(capacity_ / 8 / 64 + 1, 0);
}

bool Collector::fail_library(const char* call, int status) {
  vm_.fail(VmErrorKind::library, status, status_message(call, status));
  return false;
}

uint64_t Collector::heap_bytes_allocated() {
  remap_heap_info hi;
  std::memset(&hi, 0, sizeof hi);
  hi.struct_size = sizeof hi;
  if (remap_heap_get_info(vm_.heap(), &hi) != REMAP_OK) return 0;
  return hi.bytes_allocated;
}

// The shape the class table says an object must have. `from` is the object
// (or 0 for a root) whose slot led here, for the message.
bool Collector::check_object(uintptr_t obj, uintptr_t from) {
  auto bad = [&](const std::string& what) {
    vm_.fail(VmErrorKind::corrupt_heap, REMAP_OK,
             "toyvm: corrupt heap at GC " + std::to_string(count_) + ": object base+" +
                 hex(obj - base_) + " (reached from " + (from ? "base+" + hex(from - base_) : "a root") +
                 "): " + what);
    return false;
  };
  if (obj - base_ >= capacity_ || (obj & 7) != 0) return bad("a reference outside the heap or misaligned");
  const ObjectHeader* h = header(reinterpret_cast<const void*>(obj));
  if (h->klass >= vm_.class_count()) return bad("class id " + std::to_string(h->klass) + " is not defined");
  const ClassInfo& c = vm_.klass(h->klass);
  size_t want = 0;
  uint32_t nrefs = 0;
  switch (c.kind) {
    case ClassKind::instance:
      want = kHeaderBytes + kSlotBytes * c.nrefs + c.payload_bytes;
      nrefs = c.nrefs;
      break;
    case ClassKind::ref_array:
      want = kHeaderBytes + kSlotBytes * size_t(h->aux);
      nrefs = h->aux;
      break;
    case ClassKind::prim_array:
      want = (kHeaderBytes + size_t(c.elem_size) * h->aux + 7) & ~size_t(7);
      break;
  }
  if (h->size != want || h->nrefs != nrefs)
    return bad("header (size " + std::to_string(h->size) + ", nrefs " + std::to_string(h->nrefs) +
               ") does not match class " + c.name + " (size " + std::to_string(want) + ", nrefs " +
               std::to_string(nrefs) + ")");
  const size_t region = vm_.info().region_size;
  if (h->size < vm_.large_threshold()) {
    if ((obj & (region - 1)) + h->size > region) return bad("crosses its region's end");
  } else if ((obj & (vm_.info().page_size - 1)) != 0) {
    return bad("a large object not at a page start");
  }
  if (obj - base_ + h->size > capacity_) return bad("runs past the heap");
  return true;
}

bool Collector::mark(GcRecord& rec) {
  std::fill(marks_.begin(), marks_.end(), 0);
  stack_.clear();
  // Visit: set the mark bit; first visit checks, reports and queues.
  auto visit = [&](uintptr_t v, uintptr_t from) -> bool {
    if (v == 0) return true;
    size_t w = (v - base_) / 8;
    if (v - base_ < capacity_ && (marks_[w / 64] >> (w % 64) & 1)) return true;
    if (!check_object(v, from)) return false;
    marks_[w / 64] |= uint64_t(1) << (w % 64);
    remap_status s = remap_mark(vm_.heap(), reinterpret_cast<const void*>(v));
    if (s != REMAP_OK) return fail_library("remap_mark", s);
    ++rec.objects_marked;
    rec.bytes_marked += header(reinterpret_cast<const void*>(v))->size;
    if (header(reinterpret_cast<const void*>(v))->nrefs) stack_.push_back(v);
    return true;
  };
  for (Ref* slot : root_slots_)
    if (!visit(reinterpret_cast<uintptr_t>(*slot), 0)) return false;
  while (!stack_.empty()) {
    uintptr_t obj = stack_.back();
    stack_.pop_back();
    const uint32_t n = header(reinterpret_cast<const void*>(obj))->nrefs;
    for (uint32_t i = 0; i < n; ++i)
      if (!visit(reinterpret_cast<uintptr_t>(get_ref(reinterpret_cast<Ref>(obj), i)), obj)) return false;
  }
  return true;
}

void Collector::collect(const char* cause) {
  GcRecord rec;
  rec.index = ++count_;
  rec.cause = cause;
  rec.capacity = capacity_;
  std::memset(&rec.lib, 0, sizeof rec.lib);
  rec.lib.struct_size = sizeof rec.lib;

  const uint64_t t0 = now_ns();
  vm_.stop_world(PauseKind::collection, rec.index);
  WorldStopped world{&vm_, &Vm::resume_world};
  const uint64_t t1 = now_ns();
  rec.ttsp_ns = t1 - t0;

  // Every region must be retired before prepare (objects above an
  // allocating region's top are unknown to the library).
  root_slots_.clear();
  for (Mutator* m : vm_.mutators_) {
    m->retire_tlab();
    for (Ref& r : m->handles_)
      if (r) root_slots_.push_back(&r);
  }
  for (size_t i = 0; i < vm_.global_count_; ++i)
    if (vm_.globals_[i]) root_slots_.push_back(&vm_.globals_[i]);
  rec.roots = root_slots_.size();
  rec.heap_before = heap_bytes_allocated();
  if (vm_.failed()) return;

  if (!mark(rec)) {
    (void)remap_clear_marks(vm_.heap());
    return;
  }
  const uint64_t t2 = now_ns();
  rec.mark_ns = t2 - t1;

  remap_status s = remap_prepare(vm_.heap());
  if (s != REMAP_OK) {
    (void)remap_clear_marks(vm_.heap());
    fail_library("remap_prepare", s);
    return;
  }
  forwarded_.resize(root_slots_.size());
  for (size_t i = 0; i < root_slots_.size(); ++i) {
    void* nw = nullptr;
    s = remap_forward(vm_.heap(), *root_slots_[i], &nw);
    if (s != REMAP_OK) {
      (void)remap_clear_marks(vm_.heap());
      fail_library("remap_forward", s);
      return;
    }
    forwarded_[i] = nw;
  }
  const uint64_t t3 = now_ns();
  rec.prepare_ns = t3 - t2;

  s = remap_flip(vm_.heap());
  if (s != REMAP_OK) {
    // A flip that failed before changing anything leaves the heap PREPARED:
    // cancel the cycle so that the VM can still be torn down cleanly.
    (void)remap_clear_marks(vm_.heap());
    fail_library("remap_flip", s);
    return;
  }
  for (size_t i = 0; i < root_slots_.size(); ++i) *root_slots_[i] = forwarded_[i];
  const uint64_t t4 = now_ns();
  rec.flip_ns = t4 - t3;
  rec.pause_ns = t4 - t0;
  vm_.allocated_since_gc_.store(0, std::memory_order_relaxed);
  world.end();

  // Occupancy after the cycle, read once the mutators run again: after a
  // concurrent flip the library applies the new region layout at this
  // call (O(regions)), which has no reason to be in the pause.
  remap_heap_info hi;
  std::memset(&hi, 0, sizeof hi);
  hi.struct_size = sizeof hi;
  s = remap_heap_get_info(vm_.heap(), &hi);
  if (s != REMAP_OK) {
    fail_library("remap_heap_get_info", s);
    return;
  }
  rec.heap_after = hi.bytes_allocated;
  // The next collection: after mutators take half (trigger_fraction) of
  // what this one left free.
  const uint64_t free_bytes = capacity_ > hi.bytes_allocated ? capacity_ - hi.bytes_allocated : 0;
  vm_.trigger_bytes_.store(std::max<uint64_t>(vm_.config().trigger_min_bytes,
                                              uint64_t(double(free_bytes) * vm_.config().trigger_fraction)));
  vm_.free_after_gc_.store(free_bytes, std::memory_order_relaxed);

  if (hi.phase == REMAP_PHASE_COMPACTING) {
    const uint64_t tc = now_ns();
    s = remap_compact(vm_.heap());
    if (s != REMAP_OK) {
      fail_library("remap_compact", s);
      (void)remap_finish(vm_.heap());
      return;
    }
    s = remap_finish(vm_.heap());
    if (s != REMAP_OK) {
      fail_library("remap_finish", s);
      return;
    }
    rec.concurrent_ns = now_ns() - tc;
  }
  s = remap_heap_last_stats(vm_.heap(), &rec.lib);
  if (s != REMAP_OK) {
    fail_library("remap_heap_last_stats", s);
    return;
  }

  if (vm_.after_gc_) {
    const uint64_t tv = now_ns();
    vm_.stop_world(PauseKind::check, rec.index);
    std::string problem;
    try {
      problem = vm_.after_gc_();
    } catch (const std::exception& e) {
      problem = e.what();
    }
    vm_.resume_world();
    rec.verify_ns = now_ns() - tv;
    if (!problem.empty()) {
      vm_.fail(VmErrorKind::workload, REMAP_OK,
               "toyvm: check after GC " + std::to_string(rec.index) + " failed: " + problem);
    }
  }
  std::lock_guard<std::mutex> g(vm_.records_mu_);
  vm_.records_.push_back(rec);
}

}  // namespace toyvm

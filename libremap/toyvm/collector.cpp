// collector.cpp — one collection of the toy VM (see collector.h); the
// tracer itself is in marking.cpp.
//
// Roots: with stw marking they are forwarded between prepare and flip
// (remap_forward is valid from prepare to the end of finish, and with stw
// the flip already ends the cycle). With concurrent marking the mutators
// change their roots until the flip pause, so they are forwarded in it,
// after remap_flip; a root at a black object comes back unchanged.
//
// Remark termination: SATB needs no root rescan (a root can only hold an
// object reachable at the snapshot or a black one), so a remark's work is
// the mutators' partly filled logs plus what those reach. It traces for at
// most kRemarkBudgetNs; with work left it resumes the world (barrier still
// on), traces concurrently and remarks again; remark kMaxRemarks finishes
// unbounded, so a cycle always ends.
#include "collector.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "marking.h"
#include "vm.h"

namespace toyvm {

namespace {

constexpr uint64_t kRemarkBudgetNs = 200'000;
constexpr unsigned kMaxRemarks = 4;
// How long the collector lets the mutators wake up after a pause before it
// competes with them for a CPU again.
constexpr uint64_t kWakeWaitNs = 2'000'000;

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

}  // namespace

Collector::Collector(Vm& vm) : vm_(vm), marker_(*vm.marker_) { capacity_ = vm.info().capacity; }

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

void Collector::gather_roots_retire_tlabs() {
  // Every region must be retired before prepare, cycle_begin and a
  // concurrent cycle's flip (objects above an allocating region's top are
  // unknown to the library).
  root_slots_.clear();
  for (Mutator* m : vm_.mutators_) {
    m->retire_tlab();
    for (Ref& r : m->handles_)
      if (r) root_slots_.push_back(&r);
  }
  for (size_t i = 0; i < vm_.global_count_; ++i)
    if (vm_.globals_[i]) root_slots_.push_back(&vm_.globals_[i]);
}

void Collector::collect(const char* cause) {
  GcRecord rec;
  rec.index = ++count_;
  rec.cause = cause;
  rec.capacity = capacity_;
  std::memset(&rec.lib, 0, sizeof rec.lib);
  rec.lib.struct_size = sizeof rec.lib;
  // The bitmap is cleared here, mutators running: no pause pays O(heap).
  marker_.reset(rec.index);
  const bool ok = vm_.marking_ == Marking::concurrent ? concurrent_cycle(rec) : stw_cycle(rec);
  if (!ok) return;
  vm_.await_running(kWakeWaitNs);
  if (!after_flip(rec)) return;
  check_after_gc(rec);
  std::lock_guard<std::mutex> g(vm_.records_mu_);
  vm_.records_.push_back(rec);
}

bool Collector::stw_cycle(GcRecord& rec) {
  rec.marking = marking_name(Marking::stw);
  marker_.set_concurrent(false);
  const uint64_t t0 = vm_.stop_world(PauseKind::collection, rec.index);
  WorldStopped world{&vm_, &Vm::resume_world};
  const uint64_t t1 = now_ns();
  rec.ttsp_ns = t1 - t0;

  gather_roots_retire_tlabs();
  rec.roots = root_slots_.size();
  rec.heap_before = heap_bytes_allocated();
  if (vm_.failed()) return false;

  bool drained = false;
  for (Ref* slot : root_slots_)
    if (!marker_.grey(reinterpret_cast<uintptr_t>(*slot), 0)) break;
  if (vm_.failed() || !marker_.trace(0, &drained)) {
    (void)remap_clear_marks(vm_.heap());
    return false;
  }
  rec.objects_marked = marker_.objects_marked;
  rec.bytes_marked = marker_.bytes_marked;
  const uint64_t t2 = now_ns();
  rec.mark_ns = t2 - t1;

  remap_status s = remap_prepare(vm_.heap());
  if (s != REMAP_OK) {
    (void)remap_clear_marks(vm_.heap());
    return fail_library("remap_prepare", s);
  }
  forwarded_.resize(root_slots_.size());
  for (size_t i = 0; i < root_slots_.size(); ++i) {
    void* nw = nullptr;
    s = remap_forward(vm_.heap(), *root_slots_[i], &nw);
    if (s != REMAP_OK) {
      (void)remap_clear_marks(vm_.heap());
      return fail_library("remap_forward", s);
    }
    forwarded_[i] = nw;
  }
  const uint64_t t3 = now_ns();
  rec.prepare_ns = t3 - t2;

  s = remap_flip(vm_.heap());
  if (s != REMAP_OK) {
    // A flip that failed before changing anything leaves the heap PREPARED:
    // cancel the cycle so that the VM can still be torn down cleanly. The
    // library's message first: remap_last_error() is the last call's, and
    // the soak once reported a refused flip as "REMAP_ELIMIT: remap_flip: ".
    const bool ok = fail_library("remap_flip", s);
    (void)remap_clear_marks(vm_.heap());
    return ok;
  }
  for (size_t i = 0; i < root_slots_.size(); ++i) *root_slots_[i] = forwarded_[i];
  const uint64_t t4 = now_ns();
  rec.flip_ns = t4 - t3;
  rec.pause_ns = t4 - t0;
  vm_.allocated_since_gc_.store(0, std::memory_order_relaxed);
  return true;
}

bool Collector::mark_for_driver() {
  marker_.reset(++count_);
  marker_.set_concurrent(false);
  gather_roots_retire_tlabs();
  if (vm_.failed()) return false;
  for (Ref* slot : root_slots_)
    if (!marker_.grey(reinterpret_cast<uintptr_t>(*slot), 0)) return false;
  bool drained = false;
  return marker_.trace(0, &drained) && !vm_.failed();
}

bool Collector::forward_roots_for_driver() {
  // The slots gathered by mark_for_driver: the driver adds no root between.
  for (Ref* slot : root_slots_) {
    void* nw = nullptr;
    remap_status s = remap_forward(vm_.heap(), *slot, &nw);
    if (s != REMAP_OK) return fail_library("remap_forward", s);
    *slot = nw;
  }
  return true;
}

bool Collector::trace_concurrently() {
  for (;;) {
    bool drained = false, any = false;
    if (!marker_.trace(0, &drained) || !marker_.grey_published(&any)) return false;
    if (!any && marker_.stack_empty()) return true;
    if (vm_.failed()) return false;
  }
}

bool Collector::concurrent_cycle(GcRecord& rec) {
  rec.marking = marking_name(Marking::concurrent);
  marker_.set_concurrent(true);
  // Whatever fails from here on: the barrier goes off and the cycle is
  // cancelled (a failed VM only tears down).
  struct Cancel {
    Vm& vm;
    bool armed = true;
    ~Cancel() {
      if (!armed) return;
      vm.close_black_window();
      vm.satb_active_.store(false, std::memory_order_relaxed);
      (void)remap_clear_marks(vm.heap());
    }
  } cancel{vm_};

  // ---- initial mark ----
  uint64_t t0 = vm_.stop_world(PauseKind::initial_mark, rec.index);
  {
    WorldStopped world{&vm_, &Vm::resume_world};
    uint64_t t1 = now_ns();
    rec.ttsp_ns += t1 - t0;
    gather_roots_retire_tlabs();
    if (vm_.failed()) return false;
    remap_status s = remap_cycle_begin(vm_.heap());
    if (s == REMAP_EUNSUPPORTED) {
      // A backend that cannot keep marking beside mutators (vm.cpp already
      // keeps minor and sigsegv off this path): mark stop-the-world from now on.
      cancel.armed = false;
      {
        std::lock_guard<std::mutex> g(vm_.mu_);
        vm_.marking_ = Marking::stw;
        vm_.marking_note_ = status_message("remap_cycle_begin", s) + ": marked stop-the-world";
      }
      world.end();
      return stw_cycle(rec);
    }
    if (s != REMAP_OK) return fail_library("remap_cycle_begin", s);
    marker_.begin_black_epoch();
    {
      std::lock_guard<std::mutex> g(vm_.mu_);
      vm_.black_window_ = true;
    }
    snapshot_.clear();
    for (Ref* slot : root_slots_) snapshot_.push_back(reinterpret_cast<uintptr_t>(*slot));
    vm_.satb_active_.store(true, std::memory_order_relaxed);
    rec.initial_mark_ns = now_ns() - t0;
  }
  vm_.await_running(kWakeWaitNs);
  rec.roots = snapshot_.size();
  rec.heap_before = heap_bytes_allocated();
  if (vm_.config().mark_delay_us)
    std::this_thread::sleep_for(std::chrono::microseconds(vm_.config().mark_delay_us));

  // ---- concurrent trace and remark ----
  const uint64_t tm = now_ns();
  for (uintptr_t v : snapshot_)
    if (!marker_.grey(v, 0)) return false;
  if (!trace_concurrently()) return false;
  for (unsigned round = 1;; ++round) {
    t0 = vm_.stop_world(PauseKind::remark, rec.index);
    WorldStopped world{&vm_, &Vm::resume_world};
    const uint64_t t1 = now_ns();
    rec.ttsp_ns += t1 - t0;
    bool any = false, drained = false;
    for (Mutator* m : vm_.mutators_)
      if (!marker_.grey_entries(m->satb_)) return false;
    if (!marker_.grey_published(&any)) return false;
    if (!marker_.trace(round < kMaxRemarks ? t1 + kRemarkBudgetNs : 0, &drained)) return false;
    if (drained) vm_.satb_active_.store(false, std::memory_order_relaxed);
    rec.remark_ns += now_ns() - t0;
    ++rec.remarks;
    world.end();
    vm_.await_running(kWakeWaitNs);
    if (drained) break;
    if (!trace_concurrently()) return false;
  }
  rec.mark_ns = now_ns() - tm;
  rec.objects_marked = marker_.objects_marked;
  rec.bytes_marked = marker_.bytes_marked;
  rec.satb_logged = marker_.satb_logged;

  // ---- prepare, beside the mutators ----
  const uint64_t tp = now_ns();
  remap_status s = remap_prepare(vm_.heap());
  if (s != REMAP_OK) return fail_library("remap_prepare", s);
  rec.prepare_ns = now_ns() - tp;

  // ---- flip ----
  t0 = vm_.stop_world(PauseKind::flip, rec.index);
  WorldStopped world{&vm_, &Vm::resume_world};
  const uint64_t t1 = now_ns();
  rec.ttsp_ns += t1 - t0;
  gather_roots_retire_tlabs();
  if (vm_.failed()) return false;
  s = remap_flip(vm_.heap());
  // A flip that failed before changing anything leaves the heap PREPARED:
  // Cancel clears the marks so that the VM can still be torn down cleanly.
  if (s != REMAP_OK) return fail_library("remap_flip", s);
  vm_.close_black_window();
  cancel.armed = false;
  for (Ref* slot : root_slots_) {
    void* nw = nullptr;
    s = remap_forward(vm_.heap(), *slot, &nw);
    if (s == REMAP_EINVAL) {
      // Not a marked object start and not black: the marker missed it.
      vm_.fail(VmErrorKind::corrupt_heap, s,
               "toyvm: GC " + std::to_string(rec.index) +
                   ": a root points at an object concurrent marking missed (" +
                   status_message("remap_forward", s) + ")");
      return false;
    }
    if (s != REMAP_OK) return fail_library("remap_forward", s);
    *slot = nw;
  }
  const uint64_t t2 = now_ns();
  rec.flip_ns = t2 - t1;
  rec.pause_ns = rec.initial_mark_ns + rec.remark_ns + (t2 - t0);
  vm_.allocated_since_gc_.store(0, std::memory_order_relaxed);
  return true;
}

bool Collector::after_flip(GcRecord& rec) {
  // Occupancy after the cycle, read once the mutators run again: after a
  // concurrent flip the library applies the new region layout at this
  // call (O(regions)), which has no reason to be in the pause.
  remap_heap_info hi;
  std::memset(&hi, 0, sizeof hi);
  hi.struct_size = sizeof hi;
  remap_status s = remap_heap_get_info(vm_.heap(), &hi);
  if (s != REMAP_OK) return fail_library("remap_heap_get_info", s);
  rec.heap_after = hi.bytes_allocated;
  set_trigger(hi.bytes_allocated);

  if (hi.phase == REMAP_PHASE_COMPACTING) {
    const uint64_t tc = now_ns();
    s = remap_compact(vm_.heap());
    if (s != REMAP_OK) {
      fail_library("remap_compact", s);
      (void)remap_finish(vm_.heap());
      return false;
    }
    s = remap_finish(vm_.heap());
    if (s != REMAP_OK) return fail_library("remap_finish", s);
    rec.concurrent_ns = now_ns() - tc;
  }
  s = remap_heap_last_stats(vm_.heap(), &rec.lib);
  if (s != REMAP_OK) return fail_library("remap_heap_last_stats", s);
  // The roots were forwarded in the flip's pause: forwarding is not needed
  // any more. Dropping it now, beside the mutators, keeps the work out of
  // the next initial-mark pause, where remap_cycle_begin would otherwise do
  // it (clearing the mark bitmaps and freeing the plan: 0.5 ms at 256 MiB).
  s = remap_clear_marks(vm_.heap());
  if (s != REMAP_OK) return fail_library("remap_clear_marks", s);
  return size_heap(rec);
}

void Collector::set_trigger(uint64_t bytes_allocated) {
  // The next collection: after mutators take half (trigger_fraction) of
  // what this one left free.
  const uint64_t free_bytes = capacity_ > bytes_allocated ? capacity_ - bytes_allocated : 0;
  vm_.trigger_bytes_.store(std::max<uint64_t>(vm_.config().trigger_min_bytes,
                                              uint64_t(double(free_bytes) * vm_.config().trigger_fraction)));
  vm_.free_after_gc_.store(free_bytes, std::memory_order_relaxed);
}

bool Collector::size_heap(GcRecord& rec) {
  rec.capacity_after = capacity_;
  const VmConfig& c = vm_.config();
  if (c.max_heap_bytes <= c.heap_bytes) return true;
  remap_heap_info hi;
  std::memset(&hi, 0, sizeof hi);
  hi.struct_size = sizeof hi;
  remap_status s = remap_heap_get_info(vm_.heap(), &hi);
  if (s != REMAP_OK) return fail_library("remap_heap_get_info", s);
  // Free space is whole free regions: what a TLAB or a large object needs
  // (compacted regions' tails are reused too, but cannot hold either).
  const size_t region = hi.region_size;
  const double cap = double(hi.capacity), used = cap - double(hi.regions_free * region);
  auto regions_for = [&](double bytes) { return (size_t(bytes) + region - 1) / region * region; };
  size_t want = hi.capacity;
  // An allocation refused since the last collection chose the capacity
  // (a TLAB, or a large object that found no run of free regions): the
  // heap grows by at least that much, at its end, where the run is whole.
  const size_t refused = vm_.refused_bytes_.exchange(0, std::memory_order_relaxed);
  if (cap - used < c.min_free_ratio * cap)
    want = std::max(hi.capacity + region, regions_for(used / (1.0 - c.min_free_ratio)));
  if (refused) want = std::max(want, hi.capacity + regions_for(double(refused)));
  else if (cap - used > c.max_free_ratio * cap)
    want = std::max({regions_for(used / (1.0 - c.max_free_ratio)), hi.min_capacity, c.heap_bytes});
  want = std::min(want, hi.max_capacity);
  if (want != hi.capacity) {
    s = remap_heap_resize(vm_.heap(), want);
    // A shrink a mutator raced (it took a region at the end since
    // min_capacity was read) waits for the next collection.
    if (s == REMAP_EBUSY && want < hi.capacity) want = hi.capacity;
    else if (s != REMAP_OK) return fail_library("remap_heap_resize", s);
  }
  if (want != capacity_) {
    capacity_ = want;
    vm_.capacity_.store(want, std::memory_order_release);
    set_trigger(hi.bytes_allocated);
  }
  rec.capacity_after = want;
  s = remap_heap_get_info(vm_.heap(), &hi);
  if (s != REMAP_OK) return fail_library("remap_heap_get_info", s);
  rec.committed_after = hi.committed_bytes;
  return true;
}

void Collector::check_after_gc(GcRecord& rec) {
  if (!vm_.after_gc_) return;
  const uint64_t tv = vm_.stop_world(PauseKind::check, rec.index);
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

}  // namespace toyvm

// vm.h — the toy VM: a heap from libremap, a class table, mutator threads
// with thread-local bump allocation and handle (root) tables, a safepoint
// protocol, and a collector thread that drives libremap's cycle.
//
// Rules a mutator lives by (as in a JVM's native interface):
//   - A Ref is valid until the thread's next safepoint: an allocation, a
//     poll(), or leaving a blocking() section. Anything that must survive one
//     is kept in a handle (Mutator::push / HandleScope), which the collector
//     treats as a root and rewrites when the object moves.
//   - A thread polls often (allocation polls for it): a stop-the-world pause
//     waits for every RUNNING mutator to reach a poll. Code that blocks
//     (joins, waits) does it inside blocking(), where the thread counts as
//     stopped and must not touch the heap or its handles.
//   - A reference is stored into a heap object with write_ref (the write
//     barrier of concurrent marking); set_ref only initialises a slot of an
//     object no other thread or collector can see yet, or outside a VM.
//   - When the VM fails (heap exhausted, a library error, a corrupt object)
//     every mutator's next safepoint throws VmAbort; the run's error says why.
//
// Mutators keep running during concurrent compaction: a page they touch that
// libremap has not produced yet is produced on the spot (SIGBUS handler or
// handler threads, the heap's fault mode) — the VM does nothing for that.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "libremap.h"
#include "marking.h"
#include "object.h"
#include "stats.h"

namespace toyvm {

// How a collection marks: everything in one pause (stw), or an initial-mark
// pause, tracing beside the mutators with a SATB write barrier, a remark
// pause and a flip pause (concurrent; collector.h).
enum class Marking : uint8_t { stw, concurrent };
const char* marking_name(Marking m);

struct VmConfig {
  size_t heap_bytes = size_t(64) << 20;
  // A growable heap (remap_heap_resize): the heap reserves this much and,
  // after each collection, grows when less than min_free_ratio of it is in
  // free regions (to where that much would be free, in whole regions) and
  // shrinks, not below heap_bytes, when more than max_free_ratio is (to
  // where max_free_ratio would be free, as far as free regions at the end
  // allow). 0: a fixed heap of heap_bytes. (HotSpot's MinHeapFreeRatio and
  // MaxHeapFreeRatio are the model.)
  size_t max_heap_bytes = 0;
  double min_free_ratio = 0.3;
  double max_free_ratio = 0.6;
  size_t region_size = size_t(256) << 10;
  int backend = REMAP_BACKEND_AUTO;
  int fault_mode = REMAP_FAULT_AUTO;
  unsigned gc_threads = 1;
  unsigned handler_threads = 1;
  double dense_threshold = 0.90;
  // A collection starts once the bytes handed to mutators since the last one
  // exceed trigger_fraction of the heap left free by it (at least
  // trigger_min_bytes).
  double trigger_fraction = 0.5;
  size_t trigger_min_bytes = size_t(1) << 20;
  // Collections a thread that found the heap full waits for before it gives
  // up with an out-of-memory error, counting only those that left less than
  // two regions free (a collection that freed room which other threads
  // took first is not the heap being too small), and at most 16 in all.
  unsigned exhausted_retries = 2;
  // Concurrent marking needs remap_cycle_begin, which the minor and sigsegv
  // backends refuse: they mark stop-the-world (Vm::marking() says which).
  Marking marking = Marking::concurrent;
  // REMAP_HEAP_VERIFY_REFS: prepare refuses a cycle that would leave a slot
  // pointing at moved or freed memory (a marking bug), naming the slot.
  bool verify_refs = false;
  // REMAP_HEAP_EVACUATE: survivors of sparse regions are packed into fewer
  // regions, so a heap whose survivors are spread thin still frees whole
  // regions for large objects. Off: each region compacts in place.
  bool evacuate = true;
  // Test switches. satb_barrier = false drops the write barrier's log (the
  // collector then misses objects whose last path was cut during marking);
  // mark_delay_us holds the concurrent trace back after the initial mark so
  // that mutators rewrite the graph before the tracer sees it.
  bool satb_barrier = true;
  unsigned mark_delay_us = 0;
  // Keep libremap's events (remap_heap_set_event_callback) in the VM's log,
  // as a runtime forwards them to its own tracing: Vm::events().
  bool record_events = false;
};

// One of libremap's events as the VM logged it; time since the VM's birth,
// the clock of its pause log.
struct EventRecord {
  int kind = 0;          // remap_event_kind
  int phase = 0;         // remap_phase
  uint64_t time_ns = 0;  // since the VM was created
  uint64_t cycle = 0;
  uint64_t value = 0;
  remap_status status = REMAP_OK;
  const char* call = "";  // the library's static string
};

// Why a VM stopped working.
enum class VmErrorKind { none, out_of_memory, library, corrupt_heap, workload };
const char* error_kind_name(VmErrorKind k);

// Thrown at a mutator's safepoint once the VM has failed: unwinds the
// workload; the failure itself is in Vm::error().
struct VmAbort {};

class Vm;

class Mutator {
 public:
  Mutator(const Mutator&) = delete;
  Mutator& operator=(const Mutator&) = delete;
  ~Mutator();

  Vm& vm() { return vm_; }
  unsigned id() const { return id_; }

  // ---- handles (this thread's roots) ----
  size_t push(Ref r) {
    handles_.push_back(r);
    return handles_.size() - 1;
  }
  Ref get(size_t h) const { return handles_[h]; }
  void set(size_t h, Ref r) { handles_[h] = r; }
  size_t handle_count() const { return handles_.size(); }
  void truncate(size_t n) { handles_.resize(n); }

  // ---- allocation: each is a safepoint; memory is zeroed ----
  Ref alloc_instance(ClassId klass);
  Ref alloc_ref_array(ClassId klass, uint32_t length);
  Ref alloc_prim_array(ClassId klass, uint32_t length);

  // ---- reference stores (the write barrier) ----
  // Every store of a reference into a heap object goes here. While the
  // collector marks concurrently, the slot's old value is logged first
  // (snapshot-at-the-beginning): an object reachable at the initial mark
  // whose last path this store cuts is then still traced.
  void write_ref(Ref obj, uint32_t i, Ref value) {
    if (satb_active_->load(std::memory_order_relaxed)) log_old(get_ref(obj, i));
    set_ref(obj, i, value);
  }

  // ---- safepoints ----
  void poll() {
    if (safepoint_flag_->load(std::memory_order_acquire)) slow_poll();
  }
  // Runs f() as a stopped thread (it must not touch the heap or handles).
  template <typename F>
  auto blocking(F&& f) -> decltype(f());

 private:
  friend class Vm;
  friend class Collector;
  Mutator(Vm& vm, unsigned id);
  void slow_poll();
  void enter_native();
  void leave_native();
  Ref alloc(size_t size, uint32_t nrefs, ClassId klass, uint32_t aux);
  Ref alloc_large(size_t size);
  bool refill(size_t size);
  // Waits for a collection after the heap was found full; throws VmAbort
  // (out of memory) when collections stop making room.
  void wait_after_exhaustion(unsigned& futile, unsigned& total, size_t size, const char* what);
  std::string last_refusal_;  // remap_alloc_large's last ENOMEM message
  // Hands the TLAB back to the heap (this thread, or the collector in a pause).
  void retire_tlab();
  // The barrier's slow path: keeps `old` in this thread's SATB buffer.
  void log_old(Ref old);
  // Hands a non-empty SATB buffer to the collector.
  void flush_satb();

  Vm& vm_;
  unsigned id_;  // set by Vm::attach
  const std::atomic<bool>* safepoint_flag_;
  const std::atomic<bool>* satb_active_;
  std::vector<Ref> handles_;
  std::vector<uintptr_t> satb_;  // old values logged by the barrier
  uintptr_t tlab_start_ = 0, tlab_cursor_ = 0, tlab_end_ = 0;
  // Identity hashes, per mutator (as HotSpot's thread-local xorshift): a
  // process-wide counter was one contended atomic per allocation, the toy
  // VM's largest cost on GCBench with two mutators (perf: 16 % of the run
  // in alloc_instance).
  uint32_t hash_state_;
  bool running_ = true;  // under Vm::mu_
};

// A stack discipline for handles: everything pushed inside a scope is
// dropped when it ends.
class HandleScope {
 public:
  explicit HandleScope(Mutator& m) : m_(m), mark_(m.handle_count()) {}
  ~HandleScope() { m_.truncate(mark_); }
  HandleScope(const HandleScope&) = delete;
  HandleScope& operator=(const HandleScope&) = delete;
  size_t make(Ref r) { return m_.push(r); }

 private:
  Mutator& m_;
  size_t mark_;
};

class Collector;

class Vm {
 public:
  // Creates the heap (throws VmStartError if libremap refuses) and starts
  // the collector thread. Classes must be defined before mutators attach.
  explicit Vm(const VmConfig& config);
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  ClassId define_instance(const std::string& name, uint32_t nrefs, uint32_t payload_bytes);
  ClassId define_ref_array(const std::string& name);
  ClassId define_prim_array(const std::string& name, uint32_t elem_size);
  const ClassInfo& klass(ClassId id) const { return classes_[id]; }
  size_t class_count() const { return class_count_.load(std::memory_order_acquire); }

  // The calling thread becomes a mutator until the Mutator is destroyed.
  std::unique_ptr<Mutator> attach();

  // Global roots (rewritten by the collector): set only in a pause or by the
  // only thread using the slot; read by any mutator between safepoints.
  size_t add_global(Ref r);
  Ref global(size_t i) const { return globals_[i]; }
  void set_global(size_t i, Ref r) { globals_[i] = r; }

  // Runs after every collection, in a pause of its own, on the collector
  // thread (mutators stopped, heap IDLE): the workloads' shadow-model checks.
  // Returns "" when fine, else what is wrong (the VM then fails).
  void set_after_gc(std::function<std::string()> check) { after_gc_ = std::move(check); }

  // From a thread that is not a mutator: one full collection, waited for.
  void collect_now();
  // Stops accepting collections and waits for the one running to end.
  void quiesce();
  // A cycle driven from outside (Collector::mark_for_driver): the caller
  // calls remap_prepare / remap_flip / compact / finish itself.
  bool driver_mark();
  bool driver_forward_roots();

  // Failure.
  void fail(VmErrorKind kind, remap_status status, const std::string& message);
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  VmErrorKind error_kind() const;
  remap_status error_status() const;
  std::string error_message() const;

  std::vector<GcRecord> records() const;
  // libremap's events so far (VmConfig::record_events), in order.
  std::vector<EventRecord> events() const;
  // Every stop-the-world pause so far, in order (stats.h, PauseRecord).
  std::vector<PauseRecord> pauses() const;
  remap_heap* heap() const { return heap_; }
  // The heap as created (its capacity then: capacity() is the current one).
  const remap_heap_info& info() const { return info_; }
  size_t capacity() const { return capacity_.load(std::memory_order_acquire); }
  const VmConfig& config() const { return config_; }
  // How this VM marks, after the backend had its say; and why, when that is
  // not what the config asked for ("" otherwise).
  Marking marking() const { return marking_; }
  std::string marking_note() const;
  size_t large_threshold() const { return large_threshold_; }
  const ModelContext& model_context() const { return model_ctx_; }
  uint64_t bytes_allocated_total() const { return allocated_total_.load(std::memory_order_relaxed); }

 private:
  friend class Mutator;
  friend class Collector;

  // Safepoint protocol (Vm::mu_). Each stop..resume is one entry of the
  // pause log, of the given kind.
  // Returns the request's timestamp, the start of the pause as the log has
  // it: the collector times its pause from there too, so the two agree.
  uint64_t stop_world(PauseKind kind, uint64_t gc_index);
  void resume_world();
  // After resume_world, on the collector thread: waits (at most max_ns)
  // until every mutator that stopped at a poll runs again, so that the
  // collector's next work does not compete with their wake-ups for a CPU
  // (on a busy machine that stretches the pause the mutators see).
  void await_running(uint64_t max_ns);
  // The flip (or a cancelled cycle) ends the black window: wakes the
  // mutators that found no free region in it.
  void close_black_window();
  // Bytes handed to a mutator: may ask the collector for a cycle.
  void note_allocated(size_t bytes);
  void request_gc(const char* cause);
  // A mutator found the heap full: wait (stopped) for a collection that
  // starts after now to end; or, inside a concurrent cycle's black window
  // (*window set), for that window to close. False if the VM failed or is
  // shutting down.
  bool wait_for_gc(Mutator& m, bool* window);
  void collector_loop();

  VmConfig config_;
  Marking marking_ = Marking::stw;
  std::string marking_note_;  // under mu_
  ModelContext model_ctx_;  // the object model's ctx: lives as long as the heap
  remap_heap* heap_ = nullptr;
  remap_heap_info info_{};
  std::atomic<size_t> capacity_{0};  // the collector resizes (VmConfig::max_heap_bytes)
  size_t large_threshold_ = 0;

  static constexpr size_t kMaxClasses = 256;
  ClassInfo classes_[kMaxClasses];
  std::atomic<size_t> class_count_{0};
  static constexpr size_t kMaxGlobals = 256;
  Ref globals_[kMaxGlobals] = {};
  size_t global_count_ = 0;

  mutable std::mutex mu_;
  std::condition_variable world_cv_;   // the collector waits for mutators to stop
  std::condition_variable resume_cv_;  // stopped mutators wait for the pause to end
  std::condition_variable gc_cv_;      // requests to the collector, and its completions
  std::atomic<bool> safepoint_{false}; // stop requested or VM failed: mutators take the slow path
  bool stop_requested_ = false;
  size_t running_ = 0;                 // attached mutators not stopped
  size_t parked_ = 0;                  // mutators stopped in slow_poll, not yet running again
  std::vector<Mutator*> mutators_;
  // The pause log (under mu_): absolute CLOCK_MONOTONIC times while open;
  // a stopped mutator that wakes moves its pause's end to its wake-up.
  struct OpenPause {
    PauseRecord rec;
    uint64_t t_request = 0, t_resume = 0, t_last_running = 0;
  };
  std::vector<OpenPause> pauses_;
  uint64_t born_ns_ = 0;
  unsigned next_mutator_id_ = 0;
  bool gc_pending_ = false;
  const char* gc_cause_ = "allocation";
  uint64_t gc_started_ = 0, gc_completed_ = 0;
  bool accepting_ = true, shutdown_ = false;
  std::atomic<bool> gc_pending_hint_{false};
  std::atomic<uint64_t> allocated_since_gc_{0};
  std::atomic<uint64_t> trigger_bytes_{0};
  std::atomic<uint64_t> allocated_total_{0};
  std::atomic<uint64_t> free_after_gc_{~uint64_t(0)};  // capacity - occupancy after the last flip
  // The largest allocation that found no room since the last collection
  // chose the capacity: a growable heap grows by at least that much.
  std::atomic<uint64_t> refused_bytes_{0};

  std::atomic<bool> satb_active_{false};  // mutators log overwritten references
  bool black_window_ = false;             // under mu_: remap_cycle_begin .. remap_flip
  uint64_t windows_closed_ = 0;           // under mu_: black windows closed (gc_cv_ tells)
  std::unique_ptr<Marker> marker_;

  std::atomic<bool> failed_{false};
  VmErrorKind error_kind_ = VmErrorKind::none;
  remap_status error_status_ = REMAP_OK;
  std::string error_message_;

  std::function<std::string()> after_gc_;
  static void on_event(void* ctx, const remap_event* ev);
  mutable std::mutex events_mu_;
  std::vector<EventRecord> events_;
  mutable std::mutex records_mu_;
  std::vector<GcRecord> records_;
  std::unique_ptr<Collector> collector_;
  std::thread collector_thread_;
};

// libremap refused to create the heap.
class VmStartError : public std::runtime_error {
 public:
  VmStartError(remap_status s, const std::string& m) : std::runtime_error(m), status(s) {}
  remap_status status;
};

template <typename F>
auto Mutator::blocking(F&& f) -> decltype(f()) {
  enter_native();
  struct Leave {
    Mutator* m;
    ~Leave() { m->leave_native(); }
  } leave{this};
  return f();
}

// "<status name>: <call>: <remap_last_error()>" for the calling thread.
std::string status_message(const char* call, remap_status s);
uint64_t now_ns();

}  // namespace toyvm

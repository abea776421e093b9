// vm.cpp — the VM's life cycle, class table, safepoint protocol and the
// mutators' allocation path. The collection itself is in collector.cpp.
//
// Safepoint protocol (all under mu_):
//   running_ counts attached mutators that may touch the heap. A pause sets
//   stop_requested_ (and the polled atomic safepoint_) and waits until
//   running_ is 0; a mutator leaves running_ at a poll (slow_poll), on
//   entering blocking(), or on detaching, and re-enters only when no pause
//   is requested. So between stop_world() and resume_world() the collector
//   owns every handle table and TLAB.
//
// Pause log: stop_world opens an entry at the request (before taking mu_,
// so a contended lock counts too), resume_world stamps its resume, and each
// mutator that waited in slow_poll stamps its own wake-up: the pause ends
// for mutators when the last of them runs again, which on a busy machine is
// later than the collector's resume by a scheduling delay.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "collector.h"
#include "vm.h"

namespace toyvm {

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

std::string status_message(const char* call, remap_status s) {
  // The library's message usually names the call already.
  std::string msg = remap_last_error();
  std::string head = std::string(remap_status_name(s)) + ": ";
  if (msg.rfind(call, 0) == 0) return head + msg;
  return head + call + ": " + msg;
}

const char* pause_kind_name(PauseKind k) {
  switch (k) {
    case PauseKind::collection: return "collection";
    case PauseKind::initial_mark: return "initial_mark";
    case PauseKind::remark: return "remark";
    case PauseKind::flip: return "flip";
    case PauseKind::check: return "check";
    case PauseKind::other: return "other";
  }
  return "?";
}

const char* marking_name(Marking m) {
  switch (m) {
    case Marking::stw: return "stw";
    case Marking::concurrent: return "concurrent";
  }
  return "?";
}

const char* error_kind_name(VmErrorKind k) {
  switch (k) {
    case VmErrorKind::none: return "none";
    case VmErrorKind::out_of_memory: return "out_of_memory";
    case VmErrorKind::library: return "library";
    case VmErrorKind::corrupt_heap: return "corrupt_heap";
    case VmErrorKind::workload: return "workload";
  }
  return "?";
}

// ---------------------------------------------------------------------------
// Life cycle

Vm::Vm(const VmConfig& config) : config_(config), born_ns_(now_ns()) {
  remap_heap_config cfg;
  std::memset(&cfg, 0, sizeof cfg);
  remap_heap_config_init(&cfg);
  cfg.capacity = config.heap_bytes;
  cfg.max_capacity = std::max(config.max_heap_bytes, config.heap_bytes);
  cfg.region_size = config.region_size;
  cfg.dense_threshold = config.dense_threshold;
  cfg.backend = config.backend;
  cfg.fault_mode = config.fault_mode;
  cfg.gc_threads = config.gc_threads;
  cfg.handler_threads = config.handler_threads;
  install_model(cfg.model, &model_ctx_);
  if (config.verify_refs) cfg.flags |= REMAP_HEAP_VERIFY_REFS;
  if (config.evacuate) cfg.flags |= REMAP_HEAP_EVACUATE;
  remap_status s = remap_heap_create(&cfg, &heap_);
  if (s != REMAP_OK) throw VmStartError(s, status_message("remap_heap_create", s));
  std::memset(&info_, 0, sizeof info_);
  info_.struct_size = sizeof info_;
  s = remap_heap_get_info(heap_, &info_);
  if (s != REMAP_OK) {
    std::string m = status_message("remap_heap_get_info", s);
    remap_heap_destroy(heap_);
    throw VmStartError(s, m);
  }
  capacity_.store(info_.capacity, std::memory_order_release);
  // The library's default threshold: half a region (remap_heap_config).
  large_threshold_ = cfg.large_object_threshold ? cfg.large_object_threshold : info_.region_size / 2;
  trigger_bytes_ = std::max<uint64_t>(config_.trigger_min_bytes,
                                      uint64_t(double(info_.capacity) * config_.trigger_fraction));
  marking_ = config_.marking;
  if (marking_ == Marking::concurrent &&
      !(remap_backend_caps(info_.backend) & REMAP_BACKEND_CAP_CYCLE_BEGIN)) {
    // remap_cycle_begin answers REMAP_EUNSUPPORTED for these backends.
    marking_ = Marking::stw;
    marking_note_ = std::string("concurrent marking is not supported by the ") +
                    remap_backend_name(info_.backend) +
                    " backend (remap_cycle_begin): marked stop-the-world";
  }
  if (config_.record_events) {
    s = remap_heap_set_event_callback(heap_, &Vm::on_event, this);
    if (s != REMAP_OK) {
      std::string m = status_message("remap_heap_set_event_callback", s);
      remap_heap_destroy(heap_);
      throw VmStartError(s, m);
    }
  }
  marker_ = std::make_unique<Marker>(*this);
  collector_ = std::make_unique<Collector>(*this);
  collector_thread_ = std::thread([this] { collector_loop(); });
}

Vm::~Vm() {
  {
    std::lock_guard<std::mutex> g(mu_);
    shutdown_ = true;
    accepting_ = false;
    gc_cv_.notify_all();
  }
  if (collector_thread_.joinable()) collector_thread_.join();
  collector_.reset();
  // Destroy finishes a cycle left COMPACTING (after a failure) by itself.
  remap_heap_destroy(heap_);
}

ClassId Vm::define_instance(const std::string& name, uint32_t nrefs, uint32_t payload_bytes) {
  size_t n = class_count_.load(std::memory_order_relaxed);
  if (n >= kMaxClasses) throw std::length_error("toyvm: too many classes");
  classes_[n] = ClassInfo{name, ClassKind::instance, nrefs, (payload_bytes + 7u) & ~7u, 0};
  class_count_.store(n + 1, std::memory_order_release);
  return ClassId(n);
}

ClassId Vm::define_ref_array(const std::string& name) {
  size_t n = class_count_.load(std::memory_order_relaxed);
  if (n >= kMaxClasses) throw std::length_error("toyvm: too many classes");
  classes_[n] = ClassInfo{name, ClassKind::ref_array, 0, 0, 8};
  class_count_.store(n + 1, std::memory_order_release);
  return ClassId(n);
}

ClassId Vm::define_prim_array(const std::string& name, uint32_t elem_size) {
  size_t n = class_count_.load(std::memory_order_relaxed);
  if (n >= kMaxClasses) throw std::length_error("toyvm: too many classes");
  if (elem_size != 1 && elem_size != 2 && elem_size != 4 && elem_size != 8)
    throw std::invalid_argument("toyvm: element size must be 1, 2, 4 or 8");
  classes_[n] = ClassInfo{name, ClassKind::prim_array, 0, 0, elem_size};
  class_count_.store(n + 1, std::memory_order_release);
  return ClassId(n);
}

size_t Vm::add_global(Ref r) {
  std::lock_guard<std::mutex> g(mu_);
  if (global_count_ >= kMaxGlobals) throw std::length_error("toyvm: too many global roots");
  globals_[global_count_] = r;
  return global_count_++;
}

std::unique_ptr<Mutator> Vm::attach() {
  std::unique_ptr<Mutator> m(new Mutator(*this, 0));
  std::unique_lock<std::mutex> lk(mu_);
  resume_cv_.wait(lk, [&] { return !stop_requested_; });
  m->id_ = next_mutator_id_++;
  mutators_.push_back(m.get());
  ++running_;
  return m;
}

Mutator::Mutator(Vm& vm, unsigned id)
    : vm_(vm),
      id_(id),
      safepoint_flag_(&vm.safepoint_),
      satb_active_(&vm.satb_active_),
      hash_state_(0x9e3779b9u * (id + 1)) {
  handles_.reserve(256);
  satb_.reserve(kSatbBufferEntries);
}

std::string Vm::marking_note() const {
  std::lock_guard<std::mutex> g(mu_);
  return marking_note_;
}

Mutator::~Mutator() {
  // Detach. A pause waits for us while we are RUNNING, so the heap is not
  // PREPARED here and our TLAB may be handed back.
  if (!running_) leave_native();
  retire_tlab();
  flush_satb();
  std::lock_guard<std::mutex> g(vm_.mu_);
  running_ = false;
  --vm_.running_;
  vm_.world_cv_.notify_all();
  vm_.mutators_.erase(std::find(vm_.mutators_.begin(), vm_.mutators_.end(), this));
}

// ---------------------------------------------------------------------------
// Safepoints

void Mutator::slow_poll() {
  {
    std::unique_lock<std::mutex> lk(vm_.mu_);
    if (vm_.stop_requested_) {
      const size_t pause = vm_.pauses_.size() - 1;  // stop_world opened it
      vm_.pauses_[pause].rec.mutators_stopped += 1;
      running_ = false;
      --vm_.running_;
      ++vm_.parked_;
      vm_.world_cv_.notify_all();
      vm_.resume_cv_.wait(lk, [&] { return !vm_.stop_requested_; });
      running_ = true;
      ++vm_.running_;
      if (--vm_.parked_ == 0) vm_.world_cv_.notify_all();
      // Woken by a later pause's resume (we never ran in between): that
      // pause is the one we resume from, and we stopped for it too.
      const size_t last = vm_.pauses_.size() - 1;
      if (last != pause) vm_.pauses_[last].rec.mutators_stopped += 1;
      auto& p = vm_.pauses_[last];
      p.t_last_running = std::max(p.t_last_running, now_ns());
    }
  }
  if (vm_.failed()) throw VmAbort{};
}

void Mutator::enter_native() {
  std::lock_guard<std::mutex> g(vm_.mu_);
  running_ = false;
  --vm_.running_;
  vm_.world_cv_.notify_all();
}

void Mutator::leave_native() {
  std::unique_lock<std::mutex> lk(vm_.mu_);
  const bool held = vm_.stop_requested_;
  vm_.resume_cv_.wait(lk, [&] { return !vm_.stop_requested_; });
  running_ = true;
  ++vm_.running_;
  // Held back by a pause on the way out of native code: that pause ends for
  // the mutators when this one runs too.
  if (held) {
    auto& p = vm_.pauses_.back();
    p.t_last_running = std::max(p.t_last_running, now_ns());
  }
}

uint64_t Vm::stop_world(PauseKind kind, uint64_t gc_index) {
  const uint64_t t0 = now_ns();
  std::unique_lock<std::mutex> lk(mu_);
  OpenPause p;
  p.rec.kind = kind;
  p.rec.gc_index = gc_index;
  p.t_request = t0;
  pauses_.push_back(p);
  stop_requested_ = true;
  safepoint_.store(true, std::memory_order_release);
  world_cv_.wait(lk, [&] { return running_ == 0; });
  pauses_.back().rec.ttsp_ns = now_ns() - t0;
  return t0;
}

void Vm::resume_world() {
  std::lock_guard<std::mutex> g(mu_);
  stop_requested_ = false;
  safepoint_.store(failed_.load(), std::memory_order_release);
  resume_cv_.notify_all();
  if (!pauses_.empty()) pauses_.back().t_resume = now_ns();
}

void Vm::close_black_window() {
  std::lock_guard<std::mutex> g(mu_);
  if (!black_window_) return;
  black_window_ = false;
  ++windows_closed_;
  gc_cv_.notify_all();
}

void Vm::await_running(uint64_t max_ns) {
  std::unique_lock<std::mutex> lk(mu_);
  world_cv_.wait_for(lk, std::chrono::nanoseconds(max_ns),
                     [&] { return parked_ == 0 || stop_requested_ || failed_.load(); });
}

std::vector<PauseRecord> Vm::pauses() const {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<PauseRecord> out;
  out.reserve(pauses_.size());
  for (const OpenPause& p : pauses_) {
    PauseRecord r = p.rec;
    r.start_ns = p.t_request - born_ns_;
    const uint64_t end = std::max(p.t_resume, p.t_last_running);
    r.resume_ns = p.t_resume ? p.t_resume - p.t_request : 0;
    r.duration_ns = end ? end - p.t_request : 0;
    out.push_back(r);
  }
  return out;
}

void Vm::fail(VmErrorKind kind, remap_status status, const std::string& message) {
  std::lock_guard<std::mutex> g(mu_);
  if (!failed_.load()) {
    error_kind_ = kind;
    error_status_ = status;
    error_message_ = message;
    failed_.store(true, std::memory_order_release);
  }
  safepoint_.store(true, std::memory_order_release);
  gc_cv_.notify_all();
  resume_cv_.notify_all();
}

VmErrorKind Vm::error_kind() const {
  std::lock_guard<std::mutex> g(mu_);
  return error_kind_;
}
remap_status Vm::error_status() const {
  std::lock_guard<std::mutex> g(mu_);
  return error_status_;
}
std::string Vm::error_message() const {
  std::lock_guard<std::mutex> g(mu_);
  return error_message_;
}

void Vm::on_event(void* ctx, const remap_event* ev) {
  // On the thread of the libremap call (the collector's; inside the flip's
  // pause for PAUSE_*): record and return.
  Vm* vm = static_cast<Vm*>(ctx);
  EventRecord r;
  r.kind = ev->kind;
  r.phase = ev->phase;
  r.time_ns = ev->time_ns - vm->born_ns_;
  r.cycle = ev->cycle;
  r.value = ev->value;
  r.status = ev->status;
  r.call = ev->call;
  std::lock_guard<std::mutex> g(vm->events_mu_);
  vm->events_.push_back(r);
}

std::vector<EventRecord> Vm::events() const {
  std::lock_guard<std::mutex> g(events_mu_);
  return events_;
}

std::vector<GcRecord> Vm::records() const {
  std::lock_guard<std::mutex> g(records_mu_);
  return records_;
}

// ---------------------------------------------------------------------------
// Requests to the collector

void Vm::note_allocated(size_t bytes) {
  allocated_total_.fetch_add(bytes, std::memory_order_relaxed);
  uint64_t since = allocated_since_gc_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  if (since >= trigger_bytes_.load(std::memory_order_relaxed) &&
      !gc_pending_hint_.load(std::memory_order_relaxed))
    request_gc("allocation");
}

void Vm::request_gc(const char* cause) {
  std::lock_guard<std::mutex> g(mu_);
  if (!accepting_ || gc_pending_) return;
  gc_pending_ = true;
  gc_cause_ = cause;
  gc_pending_hint_.store(true, std::memory_order_relaxed);
  gc_cv_.notify_all();
}

bool Vm::wait_for_gc(Mutator& m, bool* window) {
  m.retire_tlab();
  *window = false;
  bool ok = m.blocking([&] {
    std::unique_lock<std::mutex> lk(mu_);
    if (!accepting_ || failed_.load()) return false;
    if (black_window_) {
      // Inside a concurrent cycle's black window the library offers free
      // regions only (no compacted tails): this may be that, not a full
      // heap. Wait for the window to close (the flip: tails are offered
      // again while the heap compacts) and ask for no cycle, or the next
      // one's window would refuse us again.
      *window = true;
      const uint64_t closes = windows_closed_;
      gc_cv_.wait(lk, [&] { return windows_closed_ != closes || failed_.load() || shutdown_; });
      return !failed_.load() && !shutdown_;
    }
    const uint64_t target = gc_started_ + 1;
    if (!gc_pending_) {
      // A cycle running now may have flipped before our allocation failed:
      // only one that starts after this point is sure to see our garbage.
      gc_pending_ = true;
      gc_cause_ = "exhausted";
      gc_pending_hint_.store(true, std::memory_order_relaxed);
      gc_cv_.notify_all();
    }
    gc_cv_.wait(lk, [&] { return gc_completed_ >= target || failed_.load() || shutdown_; });
    return gc_completed_ >= target && !failed_.load();
  });
  m.poll();
  return ok;
}

void Vm::collect_now() {
  std::unique_lock<std::mutex> lk(mu_);
  if (!accepting_ || failed_.load()) return;
  uint64_t target = gc_started_ + 1;
  if (!gc_pending_) {
    gc_pending_ = true;
    gc_cause_ = "explicit";
    gc_pending_hint_.store(true, std::memory_order_relaxed);
    gc_cv_.notify_all();
  }
  gc_cv_.wait(lk, [&] { return gc_completed_ >= target || failed_.load() || shutdown_; });
}

bool Vm::driver_mark() { return collector_->mark_for_driver(); }
bool Vm::driver_forward_roots() { return collector_->forward_roots_for_driver(); }

void Vm::quiesce() {
  std::unique_lock<std::mutex> lk(mu_);
  accepting_ = false;
  gc_pending_ = false;
  gc_cv_.wait(lk, [&] { return gc_completed_ == gc_started_; });
}

void Vm::collector_loop() {
  for (;;) {
    const char* cause;
    {
      std::unique_lock<std::mutex> lk(mu_);
      gc_cv_.wait(lk, [&] { return gc_pending_ || shutdown_; });
      if (!gc_pending_ || failed_.load()) {
        if (shutdown_ || failed_.load()) return;
        continue;
      }
      gc_pending_ = false;
      cause = gc_cause_;
      ++gc_started_;
    }
    collector_->collect(cause);
    {
      std::lock_guard<std::mutex> g(mu_);
      gc_completed_ = gc_started_;
      // Cleared only now: requests made while this cycle ran are for the next.
      gc_pending_hint_.store(gc_pending_, std::memory_order_relaxed);
      gc_cv_.notify_all();
    }
  }
}

// ---------------------------------------------------------------------------
// Allocation

Ref Mutator::alloc_instance(ClassId klass) {
  const ClassInfo& c = vm_.klass(klass);
  size_t size = kHeaderBytes + kSlotBytes * c.nrefs + c.payload_bytes;
  // A cheap identity hash (never 0), as JVMs keep in the header: xorshift32.
  hash_state_ ^= hash_state_ << 13;
  hash_state_ ^= hash_state_ >> 17;
  hash_state_ ^= hash_state_ << 5;
  return alloc(size, c.nrefs, klass, hash_state_ | 1u);
}

Ref Mutator::alloc_ref_array(ClassId klass, uint32_t length) {
  return alloc(kHeaderBytes + kSlotBytes * size_t(length), length, klass, length);
}

Ref Mutator::alloc_prim_array(ClassId klass, uint32_t length) {
  size_t bytes = (kHeaderBytes + size_t(vm_.klass(klass).elem_size) * length + 7) & ~size_t(7);
  return alloc(bytes, 0, klass, length);
}

Ref Mutator::alloc(size_t size, uint32_t nrefs, ClassId klass, uint32_t aux) {
  poll();
  if (size > UINT32_MAX) {
    vm_.fail(VmErrorKind::out_of_memory, REMAP_ENOMEM,
             "toyvm: an object of " + std::to_string(size) + " bytes exceeds the 4 GiB size field");
    throw VmAbort{};
  }
  Ref p;
  if (size >= vm_.large_threshold_) {
    p = alloc_large(size);
  } else {
    if (tlab_end_ - tlab_cursor_ < size || tlab_start_ == 0) {
      unsigned futile = 0, total = 0;
      while (!refill(size)) wait_after_exhaustion(futile, total, size, "no region for a");
    }
    p = reinterpret_cast<Ref>(tlab_cursor_);
    tlab_cursor_ += size;
  }
  // Zeroed like Java memory: slots are null, payload is 0. Pages of a fresh
  // region may be faulted in here (during compaction libremap installs them).
  std::memset(p, 0, size);
  ObjectHeader* h = header(p);
  h->size = uint32_t(size);
  h->nrefs = nrefs;
  h->klass = klass;
  h->aux = aux;
  return p;
}

Ref Mutator::alloc_large(size_t size) {
  unsigned futile = 0, total = 0;
  for (;;) {
    void* p = nullptr;
    remap_status s = remap_alloc_large(vm_.heap_, size, &p);
    if (s == REMAP_OK) {
      vm_.marker_->note_allocated(reinterpret_cast<uintptr_t>(p), size);
      vm_.note_allocated(size);
      return p;
    }
    if (s != REMAP_ENOMEM) {
      vm_.fail(VmErrorKind::library, s, status_message("remap_alloc_large", s));
      throw VmAbort{};
    }
    // The library's words (how many regions are free, the longest run):
    // whether the heap is full or cut up, for the message if this is the end.
    last_refusal_ = remap_last_error();
    wait_after_exhaustion(futile, total, size, "no contiguous free regions for a large");
  }
}

void Mutator::wait_after_exhaustion(unsigned& futile, unsigned& total, size_t size, const char* what) {
  constexpr unsigned kMaxWaits = 16;
  uint64_t seen = vm_.refused_bytes_.load(std::memory_order_relaxed);
  while (seen < size && !vm_.refused_bytes_.compare_exchange_weak(seen, size)) {
  }
  bool window = false;
  bool ok = futile < vm_.config_.exhausted_retries && total < kMaxWaits && vm_.wait_for_gc(*this, &window);
  if (ok && window) return;  // waited for a black window to close: the heap was not found full
  ++total;
  if (ok) {
    if (vm_.free_after_gc_.load(std::memory_order_relaxed) < 2 * vm_.info_.region_size) ++futile;
    return;
  }
  vm_.fail(VmErrorKind::out_of_memory, REMAP_ENOMEM,
           std::string("toyvm: heap exhausted: ") + what + " " + std::to_string(size) +
               "-byte object after " + std::to_string(total - 1) + " collection(s) (" +
               std::to_string(vm_.capacity() >> 20) + " MiB heap, " +
               std::to_string(vm_.free_after_gc_.load() >> 10) + " KiB free after the last)" +
               (last_refusal_.empty() ? "" : "; libremap: " + last_refusal_));
  throw VmAbort{};
}

// Gets a TLAB with room for `size`; false when the heap has no region left.
bool Mutator::refill(size_t size) {
  for (;;) {
    retire_tlab();
    void *s = nullptr, *e = nullptr;
    remap_status st = remap_region_acquire(vm_.heap_, &s, &e);
    if (st == REMAP_ENOMEM) return false;
    if (st != REMAP_OK) {
      vm_.fail(VmErrorKind::library, st, status_message("remap_region_acquire", st));
      throw VmAbort{};
    }
    tlab_start_ = tlab_cursor_ = reinterpret_cast<uintptr_t>(s);
    tlab_end_ = reinterpret_cast<uintptr_t>(e);
    // Before any object is allocated here (and so before any reference to
    // one is published): while the collector marks, this region is black.
    vm_.marker_->note_allocated(tlab_start_, tlab_end_ - tlab_start_);
    vm_.note_allocated(tlab_end_ - tlab_start_);
    // A compacted region's free tail can be shorter than this object: hand
    // it back untouched and take the next one.
    if (tlab_end_ - tlab_cursor_ >= size) return true;
  }
}

void Mutator::log_old(Ref old) {
  if (!vm_.config_.satb_barrier) return;  // test switch: the barrier is off
  const uintptr_t v = reinterpret_cast<uintptr_t>(old);
  if (!vm_.marker_->needs_log(v)) return;
  satb_.push_back(v);
  if (satb_.size() >= kSatbBufferEntries) flush_satb();
}

void Mutator::flush_satb() {
  if (!satb_.empty()) vm_.marker_->publish(satb_);
}

void Mutator::retire_tlab() {
  if (tlab_start_ == 0) return;
  remap_status s = remap_region_retire(vm_.heap_, reinterpret_cast<void*>(tlab_start_),
                                       reinterpret_cast<void*>(tlab_cursor_));
  tlab_start_ = tlab_cursor_ = tlab_end_ = 0;
  if (s != REMAP_OK) vm_.fail(VmErrorKind::library, s, status_message("remap_region_retire", s));
}

}  // namespace toyvm

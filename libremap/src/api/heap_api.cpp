// heap_api.cpp — the heap entry points of the C ABI: config, create/destroy,
// info, allocation, marking, prepare, forward, last stats.
//
// Every entry point checks its arguments (NULL handles and out pointers,
// struct_size) and the phase, then calls into heap/ and plan/ through
// api_call(), so no exception crosses the boundary. remap_forward's success
// path avoids api_call: it must stay async-signal-safe (no thread-local
// string access, which may allocate on a thread's first use).
#include <cstddef>
#include <cstring>

#include "api/handle.h"
#include "api/api_call.h"
#include "os/clock.h"
#include "os/failure_injection.h"
#include "heap/config.h"
#include "heap/heap.h"
#include "plan/plan.h"

#include "api/concurrent_cycle.h"  // engine_attach, engine_prepare
#include "api/events.h"
#include "api/fork_guard.h"        // fork_guard_detach
#include "compact/compactor.h"
#include "compact/producer.h"  // Compactor's inline constructor needs ~Producer

remap_heap::remap_heap() { last_stats.struct_size = sizeof last_stats; }
remap_heap::~remap_heap() = default;

namespace remap::api {

const char* phase_name(int phase) {
  switch (phase) {
    case REMAP_PHASE_IDLE: return "IDLE";
    case REMAP_PHASE_PREPARED: return "PREPARED";
    case REMAP_PHASE_COMPACTING: return "COMPACTING";
    case REMAP_PHASE_BROKEN: return "BROKEN";
  }
  return "UNKNOWN";
}

Status wrong_phase(const char* what, int phase, const char* expected) {
  if (phase == REMAP_PHASE_BROKEN)
    return fail(REMAP_EPHASE,
                "the heap is BROKEN after an unrecoverable failure; only remap_heap_destroy works");
  return fail(REMAP_EPHASE, "%s is allowed in %s; the heap is %s", what, expected,
              phase_name(phase));
}

uint64_t now_ns() { return os::now_ns(); }

}  // namespace remap::api

namespace {

using remap::fail;
using remap::Status;
using remap::api::wrong_phase;

// The backend and fault mode AUTO resolve to, from the kernel probe (stw and
// handler threads when the probe cannot tell).
void resolve_auto(int* backend, int* fault_mode) {
  remap_probe_info info;
  std::memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  bool probed = remap_probe(&info) == REMAP_OK;
  if (*backend == REMAP_BACKEND_AUTO)
    *backend = probed && info.auto_backend != REMAP_BACKEND_AUTO ? info.auto_backend
                                                                 : REMAP_BACKEND_STW;
  if (*fault_mode == REMAP_FAULT_AUTO)
    *fault_mode = probed && info.uffd_available && (info.uffd_features & REMAP_FEATURE_SIGBUS)
                      ? REMAP_FAULT_SIGBUS
                      : REMAP_FAULT_THREAD;
}

Status need_heap(const remap_heap* h) {
  if (!h) return fail(REMAP_EINVAL, "heap is NULL");
  return Status::ok();
}

// Allocation is allowed in IDLE and COMPACTING, and in PREPARED when the
// cycle was begun with remap_cycle_begin (what is allocated then is black).
Status alloc_phase(const remap_heap* h, const char* what) {
  int ph = h->phase.load(std::memory_order_acquire);
  if (ph == REMAP_PHASE_PREPARED && h->heap->black_window()) return Status::ok();
  if (ph != REMAP_PHASE_IDLE && ph != REMAP_PHASE_COMPACTING)
    return wrong_phase(what, ph, "IDLE and COMPACTING (and PREPARED after remap_cycle_begin)");
  return Status::ok();
}

}  // namespace

extern "C" {

REMAP_API void remap_heap_config_init(remap_heap_config* config) {
  if (config) remap::config_defaults(config);
}

REMAP_API remap_status remap_heap_create(const remap_heap_config* config, remap_heap** out) {
  return remap::api_call("remap_heap_create", [&]() -> Status {
    if (!config) return fail(REMAP_EINVAL, "config is NULL (fill one with remap_heap_config_init)");
    if (!out) return fail(REMAP_EINVAL, "out is NULL");
    *out = nullptr;
    remap::os::inject_arm_from_env();  // tests only: LIBREMAP_INJECT_FAILURE
    auto h = std::make_unique<remap_heap>();
    Status s = remap::Heap::create(*config, &h->heap);
    if (!s) return s;
    // The backend is the registry's to check (the heap does not know them).
    h->backend = h->heap->config().backend;
    if (!remap::find_backend(h->backend))
      return fail(REMAP_EINVAL, "backend %d is not a remap_backend (0..%d)", h->backend,
                  remap::backend_count() - 1);
    h->fault_mode = h->heap->config().fault_mode;
    resolve_auto(&h->backend, &h->fault_mode);
    h->kind = remap::find_backend(h->backend);
    h->last_stats.backend = h->backend;
    h->last_stats.fault_mode = h->fault_mode;
    if (!(s = remap::api::engine_attach(*h))) return s;  // the compactor of concurrent heaps
    *out = h.release();
    return Status::ok();
  });
}

REMAP_API void remap_heap_destroy(remap_heap* heap) {
  if (!heap) return;
  if (heap->phase.load() == REMAP_PHASE_COMPACTING) (void)remap_finish(heap);
  remap::api::fork_guard_detach(*heap);  // a fork child leaks the parent's engine
  delete heap;
}

REMAP_API remap_status remap_heap_get_info(const remap_heap* heap, remap_heap_info* out) {
  return remap::api_call("remap_heap_get_info", [&]() -> Status {
    Status s = need_heap(heap);
    if (!s) return s;
    if (!out) return fail(REMAP_EINVAL, "out is NULL");
    s = remap::check_struct_size("remap_heap_info", out->struct_size,
                                 offsetof(remap_heap_info, phase), sizeof(remap_heap_info));
    if (!s) return s;
    remap::Heap& hp = *heap->heap;
    // After a concurrent flip the new layout is applied lazily; occupancy
    // must describe it, not the heap before compaction.
    hp.adopt_published();
    remap_heap_info info;
    std::memset(&info, 0, sizeof info);
    info.struct_size = out->struct_size;
    info.base = reinterpret_cast<void*>(hp.base());
    info.capacity = hp.capacity();
    info.region_size = hp.region_size();
    info.region_count = hp.region_count();
    info.page_size = hp.page_size();
    info.phase = heap->phase.load(std::memory_order_acquire);
    info.backend = heap->backend;
    info.fault_mode = heap->fault_mode;
    info.cycles = hp.cycles();
    info.regions_free = hp.regions_free();
    info.bytes_allocated = hp.bytes_allocated();
    info.large_object_threshold = hp.config().large_object_threshold;
    info.flags = hp.config().flags;
    info.max_capacity = hp.max_capacity();
    info.min_capacity = hp.min_capacity();
    // mincore over the capacity: only when the caller's struct has the field.
    if (out->struct_size >= offsetof(remap_heap_info, committed_bytes) + sizeof(size_t))
      info.committed_bytes = hp.committed_bytes();
    info.pool_bytes = remap::api::engine_pool_bytes(*heap);
    std::memcpy(out, &info, out->struct_size);
    return Status::ok();
  });
}

REMAP_API remap_status remap_region_acquire(remap_heap* heap, void** start, void** end) {
  return remap::api_call("remap_region_acquire", [&]() -> Status {
    Status s = need_heap(heap);
    if (!s) return s;
    if (!start || !end) return fail(REMAP_EINVAL, "start and end must not be NULL");
    if (!(s = alloc_phase(heap, "remap_region_acquire"))) return s;
    uintptr_t a = 0, b = 0;
    if (!(s = heap->heap->acquire_region(&a, &b))) return s;
    *start = reinterpret_cast<void*>(a);
    *end = reinterpret_cast<void*>(b);
    return Status::ok();
  });
}

REMAP_API remap_status remap_region_retire(remap_heap* heap, void* start, void* cursor) {
  return remap::api_call("remap_region_retire", [&]() -> Status {
    Status s = need_heap(heap);
    if (!s) return s;
    if (!(s = alloc_phase(heap, "remap_region_retire"))) return s;
    return heap->heap->retire_region(uintptr_t(start), uintptr_t(cursor));
  });
}

REMAP_API remap_status remap_alloc_large(remap_heap* heap, size_t size, void** out) {
  return remap::api_call("remap_alloc_large", [&]() -> Status {
    Status s = need_heap(heap);
    if (!s) return s;
    if (!out) return fail(REMAP_EINVAL, "out is NULL");
    if (!(s = alloc_phase(heap, "remap_alloc_large"))) return s;
    uintptr_t a = 0;
    if (!(s = heap->heap->alloc_large(size, &a))) return s;
    *out = reinterpret_cast<void*>(a);
    return Status::ok();
  });
}

// What remap_mark and remap_try_mark check before marking: the phase, and
// that a completed cycle's plan (kept for remap_forward) is dropped, since
// the first mark of a cycle ends the last one's forwarding.
static Status begin_marking(remap_heap* heap, const char* what) {
  Status s = need_heap(heap);
  if (!s) return s;
  int ph = heap->phase.load(std::memory_order_acquire);
  if (ph != REMAP_PHASE_IDLE) return wrong_phase(what, ph, "IDLE");
  if (heap->plan_done.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> g(heap->cycle_mutex);
    remap::api::drop_done_plan(*heap);
  }
  return Status::ok();
}

REMAP_API remap_status remap_mark(remap_heap* heap, const void* obj) {
  return remap::api_call("remap_mark", [&]() -> Status {
    Status s = begin_marking(heap, "remap_mark");
    if (!s) return s;
    return heap->heap->mark(uintptr_t(obj));
  });
}

REMAP_API int remap_try_mark(remap_heap* heap, const void* obj) {
  // The fast path takes no lock and formats nothing; errors, a completed
  // cycle's plan still kept, and phase failures go the checked way.
  if (heap && heap->phase.load(std::memory_order_acquire) == REMAP_PHASE_IDLE &&
      !heap->plan_done.load(std::memory_order_acquire)) {
    const int r = heap->heap->try_mark_fast(uintptr_t(obj));
    if (r >= 0) return r;
  }
  int newly = 0;
  remap_status st = remap::api_call("remap_try_mark", [&]() -> Status {
    Status s = begin_marking(heap, "remap_try_mark");
    if (!s) return s;
    return heap->heap->try_mark(uintptr_t(obj), &newly);
  });
  return st == REMAP_OK ? newly : st;
}

REMAP_API remap_status remap_clear_marks(remap_heap* heap) {
  return remap::api_call("remap_clear_marks", [&]() -> Status {
    Status s = need_heap(heap);
    if (!s) return s;
    std::lock_guard<std::mutex> g(heap->cycle_mutex);
    int ph = heap->phase.load(std::memory_order_acquire);
    if (ph != REMAP_PHASE_IDLE && ph != REMAP_PHASE_PREPARED)
      return wrong_phase("remap_clear_marks", ph, "IDLE and PREPARED");
    heap->plan.reset();  // a prepared cycle is cancelled, or a completed one's plan dropped
    heap->heap->release_reservations();  // its large objects' targets, if it was prepared
    heap->plan_done.store(false, std::memory_order_release);
    heap->heap->clear_marks();
    heap->heap->end_black({});  // a cycle begun concurrently is cancelled too
    remap::api::set_phase(*heap, REMAP_PHASE_IDLE);
    remap::api::close_cycle(*heap, 0, REMAP_OK);  // if one was running
    return Status::ok();
  });
}

REMAP_API remap_status remap_cycle_begin(remap_heap* heap) {
  return remap::api_call("remap_cycle_begin", [&]() -> Status {
    Status s = need_heap(heap);
    if (!s) return s;
    if (heap->kind->shared_layout)
      return fail(REMAP_EUNSUPPORTED,
                  "backend %s cannot take allocation beside a prepared cycle (its layout is "
                  "fixed at prepare): use move, copy or stw, or mark and prepare in the pause",
                  remap_backend_name(heap->backend));
    std::lock_guard<std::mutex> g(heap->cycle_mutex);
    int ph = heap->phase.load(std::memory_order_acquire);
    if (ph != REMAP_PHASE_IDLE) return wrong_phase("remap_cycle_begin", ph, "IDLE");
    // The start of a cycle: the last one's forwarding ends here.
    remap::api::drop_done_plan(*heap);
    heap->heap->discard_stale_marks();
    if (!(s = heap->heap->begin_cycle())) return s;
    remap::api::open_cycle(*heap);
    return Status::ok();
  });
}

REMAP_API remap_status remap_prepare(remap_heap* heap) {
  const uint64_t e0 =
      heap ? remap::api::call_begin(*heap, REMAP_EVENT_CALL_BEGIN, "remap_prepare") : 0;
  const remap_status result = remap::api_call("remap_prepare", [&]() -> Status {
    Status s = need_heap(heap);
    if (!s) return s;
    std::lock_guard<std::mutex> g(heap->cycle_mutex);
    int ph = heap->phase.load(std::memory_order_acquire);
    if (ph != REMAP_PHASE_IDLE) return wrong_phase("remap_prepare", ph, "IDLE");
    remap::api::open_cycle(*heap);  // unless remap_cycle_begin opened it
    uint64_t t0 = remap::api::now_ns();
    remap::api::drop_done_plan(*heap);
    heap->heap->discard_stale_marks();  // prepare with no mark: nothing is live
    if (!(s = heap->heap->complete_deferred_marks())) return s;  // remap_try_mark's
    std::unique_ptr<remap::Plan> plan;
    if (!(s = remap::Plan::build(*heap->heap, &plan))) {
      // A plan refused after its slide was chosen (REMAP_HEAP_VERIFY_REFS)
      // gives back the regions reserved for it.
      heap->heap->release_reservations();
      return s;
    }
    remap_cycle_stats& st = heap->current;
    std::memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    st.backend = heap->backend;
    st.fault_mode = heap->fault_mode;
    st.live_bytes = plan->live_bytes_total();
    st.regions_dense = plan->regions_dense();
    st.regions_fragmented = plan->regions_fragmented();
    st.regions_empty = plan->regions_empty();
    st.regions_large = plan->regions_large();
    st.large_objects_moved = plan->large_objects_moved();
    st.regions_evacuated = plan->regions_evacuated();
    heap->plan = std::move(plan);
    if (!(s = remap::api::engine_prepare(*heap))) {  // page states, outside the pause
      heap->plan.reset();
      heap->heap->release_reservations();
      return s;
    }
    st.prepare_ns = remap::api::now_ns() - t0;
    remap::api::set_phase(*heap, REMAP_PHASE_PREPARED);
    return Status::ok();
  });
  remap::api::call_end(heap, REMAP_EVENT_CALL_END, "remap_prepare", e0, result);
  return result;
}

// The plan remap_forward may read: from prepare until the next cycle starts
// (PREPARED, COMPACTING, or IDLE with a completed cycle's plan kept), on
// every backend. NULL otherwise.
static const remap::Plan* forwarding_plan(const remap_heap* h) {
  int ph = h->phase.load(std::memory_order_acquire);
  if (ph == REMAP_PHASE_PREPARED || ph == REMAP_PHASE_COMPACTING ||
      (ph == REMAP_PHASE_IDLE && h->plan_done.load(std::memory_order_acquire)))
    return h->plan.get();
  return nullptr;
}

static Status no_forwarding(const remap_heap* h, const char* what) {
  int ph = h->phase.load(std::memory_order_acquire);
  if (ph == REMAP_PHASE_IDLE)
    return fail(REMAP_EPHASE,
                "the heap is IDLE with no forwarding: it is valid from remap_prepare until the "
                "next cycle starts (remap_mark, remap_clear_marks or remap_prepare)");
  return wrong_phase(what, ph, "PREPARED, COMPACTING, or IDLE after a cycle");
}

REMAP_API remap_status remap_forward(const remap_heap* heap, const void* old, void** new_out) {
  // Fast path: no api_call (see the file comment). Failures below take the
  // ordinary error path.
  if (heap && new_out) {
    if (const remap::Plan* plan = forwarding_plan(heap)) {
      uintptr_t o = uintptr_t(old);
      if (!plan->in_heap(o)) {
        *new_out = const_cast<void*>(old);
        return REMAP_OK;
      }
      if ((o & 7) == 0 && plan->is_live_start(o)) {
        *new_out = reinterpret_cast<void*>(plan->forward(o));
        return REMAP_OK;
      }
    }
  }
  return remap::api_call("remap_forward", [&]() -> Status {
    Status s = need_heap(heap);
    if (!s) return s;
    if (!new_out) return fail(REMAP_EINVAL, "new_out is NULL");
    const remap::Plan* plan = forwarding_plan(heap);
    if (!plan) return no_forwarding(heap, "remap_forward");
    uintptr_t n = 0;
    if (!(s = plan->forward_checked(uintptr_t(old), &n))) return s;
    *new_out = reinterpret_cast<void*>(n);
    return Status::ok();
  });
}

REMAP_API remap_status remap_forward_value(const remap_heap* heap, uint64_t value,
                                           uint64_t* new_out) {
  if (heap && new_out) {
    if (const remap::Plan* plan = forwarding_plan(heap)) {
      uint64_t stray = 0;  // a root is the runtime's business: not counted
      *new_out = plan->forward_value(value, &stray);
      return REMAP_OK;
    }
  }
  return remap::api_call("remap_forward_value", [&]() -> Status {
    Status s = need_heap(heap);
    if (!s) return s;
    if (!new_out) return fail(REMAP_EINVAL, "new_out is NULL");
    return no_forwarding(heap, "remap_forward_value");
  });
}

REMAP_API remap_status remap_heap_last_stats(const remap_heap* heap, remap_cycle_stats* out) {
  return remap::api_call("remap_heap_last_stats", [&]() -> Status {
    Status s = need_heap(heap);
    if (!s) return s;
    if (!out) return fail(REMAP_EINVAL, "out is NULL");
    s = remap::check_struct_size("remap_cycle_stats", out->struct_size,
                                 offsetof(remap_cycle_stats, prepare_ns),
                                 sizeof(remap_cycle_stats));
    if (!s) return s;
    size_t n = out->struct_size;
    remap_cycle_stats copy;
    {
      std::lock_guard<std::mutex> g(heap->stats_mutex);
      copy = heap->last_stats;
    }
    copy.struct_size = n;
    std::memcpy(out, &copy, n);
    return Status::ok();
  });
}

}  // extern "C"

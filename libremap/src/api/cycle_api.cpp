// cycle_api.cpp — the cycle entry points after prepare: flip, compact, work,
// finish, touch.
//
// The stw backend's flip does the whole compaction in the pause (flip_stw)
// and the heap goes back to IDLE. The concurrent backends (move, copy) go
// through api/concurrent_cycle.h when the engine is in the tree; otherwise
// they answer REMAP_EUNSUPPORTED.
#include <cstring>

#include "api/handle.h"
#include "api/status.h"
#include "backends/stw.h"

#if __has_include("api/concurrent_cycle.h") && __has_include("compact/compactor.cpp")
#define REMAP_HAVE_ENGINE 1
#include "api/concurrent_cycle.h"
#endif

namespace remap::api {

Status flip_stw(remap_heap& h, uint64_t pause_start_ns) {
  Heap& heap = *h.heap;
  const Plan& plan = *h.plan;
  remap_cycle_stats& st = h.current;
  Status s = stw_compact(heap, plan, &st);
  if (!s) {
    // Plan::build validated the object model, so this is a kernel-level
    // failure in the middle of the pass: the heap cannot be trusted.
    h.phase.store(REMAP_PHASE_BROKEN, std::memory_order_release);
    return s;
  }
  heap.complete_cycle(plan);
  uint64_t end = now_ns();
  st.cycle = heap.cycles();
  st.flip_pause_ns = end - pause_start_ns;
  st.compaction_ns = 0;  // nothing runs after the pause
  st.finish_ns = 0;
  publish_cycle(h, st);
  return Status::ok();
}

void publish_cycle(remap_heap& h, const remap_cycle_stats& st) {
  {
    std::lock_guard<std::mutex> g(h.stats_mutex);
    h.last_stats = st;
  }
  h.plan.reset();
  h.phase.store(REMAP_PHASE_IDLE, std::memory_order_release);
}

}  // namespace remap::api

namespace {

using remap::fail;
using remap::Status;
using remap::api::wrong_phase;

Status need_heap(const remap_heap* h) {
  if (!h) return fail(REMAP_EINVAL, "heap is NULL");
  return Status::ok();
}

Status not_built(const remap_heap* h) {
  return fail(REMAP_EUNSUPPORTED, "backend %s: concurrent engine not built yet (use stw)",
              remap_backend_name(h->backend));
}

// compact / work / finish: only in COMPACTING, which only a concurrent
// backend reaches; *engine tells whether the engine can take the call.
Status compacting_only(remap_heap* h, const char* what, bool* engine) {
  *engine = false;
  Status s = need_heap(h);
  if (!s) return s;
  int ph = h->phase.load(std::memory_order_acquire);
  if (ph != REMAP_PHASE_COMPACTING) return wrong_phase(what, ph, "COMPACTING");
  if (!h->compactor) return not_built(h);
  *engine = true;
  return Status::ok();
}

}  // namespace

extern "C" {

REMAP_API remap_status remap_flip(remap_heap* heap) {
  return remap::api_call("remap_flip", [&]() -> Status {
    uint64_t t0 = remap::api::now_ns();
    Status s = need_heap(heap);
    if (!s) return s;
    std::lock_guard<std::mutex> g(heap->cycle_mutex);
    int ph = heap->phase.load(std::memory_order_acquire);
    if (ph != REMAP_PHASE_PREPARED || !heap->plan) return wrong_phase("remap_flip", ph, "PREPARED");
    if (heap->backend == REMAP_BACKEND_STW) return remap::api::flip_stw(*heap, t0);
#ifdef REMAP_HAVE_ENGINE
    if (heap->compactor) return remap::api::flip_concurrent(*heap, t0);
#endif
    return not_built(heap);
  });
}

REMAP_API remap_status remap_compact(remap_heap* heap) {
  return remap::api_call("remap_compact", [&]() -> Status {
    bool engine = false;
    Status s = compacting_only(heap, "remap_compact", &engine);
#ifdef REMAP_HAVE_ENGINE
    if (engine) return remap::api::compact_concurrent(*heap);
#endif
    return s;
  });
}

REMAP_API remap_status remap_compact_work(remap_heap* heap) {
  return remap::api_call("remap_compact_work", [&]() -> Status {
    bool engine = false;
    Status s = compacting_only(heap, "remap_compact_work", &engine);
#ifdef REMAP_HAVE_ENGINE
    if (engine) return remap::api::work_concurrent(*heap);
#endif
    return s;
  });
}

REMAP_API remap_status remap_finish(remap_heap* heap) {
  return remap::api_call("remap_finish", [&]() -> Status {
    bool engine = false;
    Status s = compacting_only(heap, "remap_finish", &engine);
    if (!engine) return s;
#ifdef REMAP_HAVE_ENGINE
    std::lock_guard<std::mutex> g(heap->cycle_mutex);
    if (heap->phase.load(std::memory_order_acquire) != REMAP_PHASE_COMPACTING)
      return wrong_phase("remap_finish", heap->phase.load(), "COMPACTING");
    return remap::api::finish_concurrent(*heap);
#else
    return s;
#endif
  });
}

REMAP_API remap_status remap_touch(remap_heap* heap, const void* addr, size_t len) {
  return remap::api_call("remap_touch", [&]() -> Status {
    Status s = need_heap(heap);
    if (!s) return s;
    if (len && !addr) return fail(REMAP_EINVAL, "addr is NULL with len %zu", len);
    // Outside COMPACTING every page is in place: nothing to do.
    if (heap->phase.load(std::memory_order_acquire) != REMAP_PHASE_COMPACTING)
      return Status::ok();
#ifdef REMAP_HAVE_ENGINE
    if (heap->compactor) return remap::api::touch_concurrent(*heap, addr, len);
#endif
    return not_built(heap);
  });
}

}  // extern "C"

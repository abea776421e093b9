// cycle_api.cpp — the cycle entry points after prepare: flip, compact, work,
// finish, touch.
//
// The stw backend's flip does the whole compaction in the pause (flip_stw)
// and the heap goes back to IDLE. The concurrent backends go through
// api/concurrent_cycle.h.
#include <chrono>
#include <cstring>
#include <vector>

#include "api/handle.h"
#include "api/api_call.h"
#include "backends/stw.h"
#include "compact/compactor.h"
#include "compact/producer.h"

#include "api/concurrent_cycle.h"
#include "api/events.h"

namespace remap::api {

Status flip_stw(remap_heap& h, uint64_t pause_start_ns) {
  Heap& heap = *h.heap;
  const Plan& plan = *h.plan;
  remap_cycle_stats& st = h.current;
  Status s = stw_compact(heap, plan, &st);
  if (!s) {
    // Plan::build validated the object model, so this is a kernel-level
    // failure in the middle of the pass: the heap cannot be trusted.
    remap::api::set_phase(h, REMAP_PHASE_BROKEN);
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

Status flip_trivial(remap_heap& h, uint64_t pause_start_ns) {
  if (h.plan->regions_empty() == 0) return flip_stw(h, pause_start_ns);  // nothing to release
  {
    std::lock_guard<std::mutex> g(h.release_mutex);
    h.release_done = false;
  }
  h.heap->withdraw_tails(*h.plan);  // release_trivial frees their memory
  h.trivial_compacting = true;
  h.current.flip_pause_ns = now_ns() - pause_start_ns;
  remap::api::set_phase(h, REMAP_PHASE_COMPACTING);
  return Status::ok();
}

Status release_trivial(remap_heap& h) {
  std::lock_guard<std::mutex> g(h.release_mutex);
  if (h.release_done) return Status::ok();
  const uint64_t t0 = now_ns();
  Status s = stw_release(*h.heap, *h.plan, &h.current);
  h.current.compaction_ns += now_ns() - t0;
  h.release_done = true;  // a failed madvise wrote zeros instead (stw.cpp): done either way
  return s;
}

Status finish_trivial(remap_heap& h) {
  const uint64_t t0 = now_ns();
  Status s = release_trivial(h);
  h.trivial_compacting = false;
  if (!s) {
    remap::api::set_phase(h, REMAP_PHASE_BROKEN);
    return s;
  }
  h.heap->complete_cycle(*h.plan);
  remap_cycle_stats& st = h.current;
  st.cycle = h.heap->cycles();
  st.finish_ns = now_ns() - t0;
  publish_cycle(h, st);
  return Status::ok();
}

void set_phase(remap_heap& h, int phase, bool notify) {
  int old;
  {
    std::lock_guard<std::mutex> g(h.idle_mutex);
    old = h.phase.exchange(phase, std::memory_order_acq_rel);
  }
  h.idle_cv.notify_all();
  if (notify && old != phase) emit(h, REMAP_EVENT_PHASE, nullptr, uint64_t(old));
}

// A shared layout (memfd slots) re-maps the heap at every flip, so only a
// private anonymous heap can skip the flip when nothing moves.
bool trivial_cycle(const remap_heap& h) {
  return h.kind->concurrent() && !h.kind->shared_layout && h.plan && h.plan->nothing_moves();
}

void publish_cycle(remap_heap& h, const remap_cycle_stats& st) {
  {
    std::lock_guard<std::mutex> g(h.stats_mutex);
    h.last_stats = st;
  }
  h.plan_done.store(true, std::memory_order_release);
  remap::api::set_phase(h, REMAP_PHASE_IDLE);
  close_cycle(h, st.cycle, REMAP_OK);
}

void drop_done_plan(remap_heap& h) {
  if (!h.plan_done.load(std::memory_order_acquire)) return;
  h.plan.reset();
  h.plan_done.store(false, std::memory_order_release);
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

// Only a concurrent backend's heap reaches COMPACTING, and it always has a
// compactor (engine_attach at create).
Status compacting_only(remap_heap* h, const char* what) {
  Status s = need_heap(h);
  if (!s) return s;
  int ph = h->phase.load(std::memory_order_acquire);
  if (ph != REMAP_PHASE_COMPACTING) return wrong_phase(what, ph, "COMPACTING");
  if (!h->compactor) return fail(REMAP_EINTERNAL, "%s: a COMPACTING heap has no engine", what);
  return Status::ok();
}

}  // namespace

extern "C" {

REMAP_API remap_status remap_flip(remap_heap* heap) {
  const uint64_t e0 =
      heap ? remap::api::call_begin(*heap, REMAP_EVENT_PAUSE_BEGIN, "remap_flip") : 0;
  const remap_status st = remap::api_call("remap_flip", [&]() -> Status {
    uint64_t t0 = remap::api::now_ns();
    Status s = need_heap(heap);
    if (!s) return s;
    std::lock_guard<std::mutex> g(heap->cycle_mutex);
    int ph = heap->phase.load(std::memory_order_acquire);
    if (ph != REMAP_PHASE_PREPARED || !heap->plan) return wrong_phase("remap_flip", ph, "PREPARED");
    // A cycle begun with remap_cycle_begin: what was allocated since is black
    // (every region of it must be retired now; nothing changes otherwise).
    if (heap->heap->black_window()) {
      std::vector<uint32_t> black;
      if (!(s = heap->heap->close_black_window(&black))) return s;
      heap->plan->patch_black(black);
      heap->current.regions_black = heap->plan->regions_black();
      if (heap->compactor && !remap::api::trivial_cycle(*heap))
        heap->compactor->add_black_pages(*heap->plan);
    }
    if (!heap->kind->concurrent()) return remap::api::flip_stw(*heap, t0);
    if (remap::api::trivial_cycle(*heap)) return remap::api::flip_trivial(*heap, t0);
    if (!heap->compactor)
      return fail(REMAP_EINTERNAL, "backend %s has no engine", remap_backend_name(heap->backend));
    return remap::api::flip_concurrent(*heap, t0);
  });
  remap::api::call_end(heap, REMAP_EVENT_PAUSE_END, "remap_flip", e0, st);
  return st;
}

REMAP_API remap_status remap_compact(remap_heap* heap) {
  const uint64_t e0 =
      heap ? remap::api::call_begin(*heap, REMAP_EVENT_CALL_BEGIN, "remap_compact") : 0;
  const remap_status st = remap::api_call("remap_compact", [&]() -> Status {
    Status s = compacting_only(heap, "remap_compact");
    if (!s) return s;
    if (heap->trivial_compacting) return remap::api::release_trivial(*heap);
    return remap::api::compact_concurrent(*heap);
  });
  remap::api::call_end(heap, REMAP_EVENT_CALL_END, "remap_compact", e0, st);
  return st;
}

REMAP_API remap_status remap_compact_work(remap_heap* heap) {
  const uint64_t e0 =
      heap ? remap::api::call_begin(*heap, REMAP_EVENT_CALL_BEGIN, "remap_compact_work") : 0;
  const remap_status st = remap::api_call("remap_compact_work", [&]() -> Status {
    Status s = compacting_only(heap, "remap_compact_work");
    if (!s) return s;
    if (heap->trivial_compacting) return remap::api::release_trivial(*heap);
    return remap::api::work_concurrent(*heap);
  });
  remap::api::call_end(heap, REMAP_EVENT_CALL_END, "remap_compact_work", e0, st);
  return st;
}

REMAP_API remap_status remap_finish(remap_heap* heap) {
  const uint64_t e0 =
      heap ? remap::api::call_begin(*heap, REMAP_EVENT_CALL_BEGIN, "remap_finish") : 0;
  const remap_status st = remap::api_call("remap_finish", [&]() -> Status {
    Status s = compacting_only(heap, "remap_finish");
    if (!s) return s;
    std::lock_guard<std::mutex> g(heap->cycle_mutex);
    if (heap->phase.load(std::memory_order_acquire) != REMAP_PHASE_COMPACTING)
      return wrong_phase("remap_finish", heap->phase.load(), "COMPACTING");
    if (heap->trivial_compacting) return remap::api::finish_trivial(*heap);
    return remap::api::finish_concurrent(*heap);
  });
  remap::api::call_end(heap, REMAP_EVENT_CALL_END, "remap_finish", e0, st);
  return st;
}

REMAP_API remap_status remap_wait_idle(remap_heap* heap, int64_t timeout_ns) {
  return remap::api_call("remap_wait_idle", [&]() -> Status {
    Status s = need_heap(heap);
    if (!s) return s;
    auto settled = [&] {
      const int ph = heap->phase.load(std::memory_order_acquire);
      return ph == REMAP_PHASE_IDLE || ph == REMAP_PHASE_BROKEN;
    };
    std::unique_lock<std::mutex> lk(heap->idle_mutex);
    if (timeout_ns < 0)
      heap->idle_cv.wait(lk, settled);
    else if (!heap->idle_cv.wait_for(lk, std::chrono::nanoseconds(timeout_ns), settled))
      return fail(REMAP_EAGAIN, "remap_wait_idle: the cycle is still %s after %lld ns",
                  remap::api::phase_name(heap->phase.load()), (long long)timeout_ns);
    if (heap->phase.load(std::memory_order_acquire) == REMAP_PHASE_BROKEN)
      return fail(REMAP_EPHASE, "remap_wait_idle: the heap is BROKEN (see remap_finish's error)");
    return Status::ok();
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
    if (!heap->compactor) return fail(REMAP_EINTERNAL, "a COMPACTING heap has no engine");
    if (heap->trivial_compacting) return Status::ok();  // no page is missing: nothing moved
    return remap::api::touch_concurrent(*heap, addr, len);
  });
}

}  // extern "C"

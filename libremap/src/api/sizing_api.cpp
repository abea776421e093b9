// sizing_api.cpp — heap sizing entry points of the C ABI: remap_heap_resize
// and remap_heap_trim (libremap.h, "Heap sizing").
//
// Both hold the heap's cycle_mutex, so that no cycle starts while they run
// and they never run together, and require IDLE: a prepared plan, page
// states and the engine's layout were built for the capacity of their
// cycle. Mutators keep allocating and marking meanwhile (heap/heap.h,
// Heap::resize holds the allocation mutex only while it changes the
// region count).
#include "api/concurrent_cycle.h"
#include "api/events.h"
#include "api/handle.h"
#include "api/api_call.h"

namespace {

using remap::fail;
using remap::Status;

Status idle_only(remap_heap* h, const char* what) {
  if (!h) return fail(REMAP_EINVAL, "heap is NULL");
  const int ph = h->phase.load(std::memory_order_acquire);
  if (ph != REMAP_PHASE_IDLE) return remap::api::wrong_phase(what, ph, "IDLE");
  return Status::ok();
}

}  // namespace

extern "C" {

REMAP_API remap_status remap_heap_resize(remap_heap* heap, size_t capacity) {
  const uint64_t e0 =
      heap ? remap::api::call_begin(*heap, REMAP_EVENT_CALL_BEGIN, "remap_heap_resize") : 0;
  bool changed = false;
  const remap_status st = remap::api_call("remap_heap_resize", [&]() -> Status {
    if (!heap) return fail(REMAP_EINVAL, "heap is NULL");
    std::lock_guard<std::mutex> g(heap->cycle_mutex);
    Status s = idle_only(heap, "remap_heap_resize");
    if (!s) return s;
    const size_t before = heap->heap->capacity();
    s = heap->heap->resize(capacity);
    changed = heap->heap->capacity() != before;
    return s;
  });
  if (changed) remap::api::emit(*heap, REMAP_EVENT_RESIZE, "remap_heap_resize", capacity);
  remap::api::call_end(heap, REMAP_EVENT_CALL_END, "remap_heap_resize", e0, st);
  return st;
}

REMAP_API remap_status remap_heap_trim(remap_heap* heap, size_t pool_keep_bytes) {
  const uint64_t e0 =
      heap ? remap::api::call_begin(*heap, REMAP_EVENT_CALL_BEGIN, "remap_heap_trim") : 0;
  const remap_status st = remap::api_call("remap_heap_trim", [&]() -> Status {
    if (!heap) return fail(REMAP_EINVAL, "heap is NULL");
    std::lock_guard<std::mutex> g(heap->cycle_mutex);
    Status s = idle_only(heap, "remap_heap_trim");
    if (!s) return s;
    // The pool is touched by no one between cycles (faults and GC workers
    // take buffers only while COMPACTING), and cycle_mutex keeps one away.
    if (pool_keep_bytes != SIZE_MAX) remap::api::engine_trim_pool(*heap, pool_keep_bytes);
    size_t covered = 0;
    return heap->heap->release_free_regions(&covered);
  });
  remap::api::call_end(heap, REMAP_EVENT_CALL_END, "remap_heap_trim", e0, st);
  return st;
}

}  // extern "C"

// concurrent_cycle.cpp — the cycle API's calls into the concurrent engine
// (compact/compactor.h) for the backends that compact while mutators run.
// cycle_api.cpp and heap_api.cpp check arguments and phases, then call these.
#include "api/concurrent_cycle.h"

#include "compact/compactor.h"
#include "compact/producer.h"

namespace remap::api {

bool is_concurrent(int backend) {
  return backend == REMAP_BACKEND_MOVE || backend == REMAP_BACKEND_COPY ||
         backend == REMAP_BACKEND_MINOR || backend == REMAP_BACKEND_SIGSEGV;
}

Status engine_attach(remap_heap& h) {
  if (!is_concurrent(h.backend)) return Status::ok();
  return Compactor::create(*h.heap, h.backend, h.fault_mode, &h.compactor);
}

Status engine_prepare(remap_heap& h) {
  if (!h.compactor) return Status::ok();
  // A cycle that moves nothing needs no engine (trivial_cycle), but a
  // broken engine is reported all the same.
  Status s = trivial_cycle(h) ? (h.compactor->broken() ? h.compactor->broken_status() : Status::ok())
                              : h.compactor->prepare(*h.plan);
  // The engine broke between cycles (thread mode: its handler threads lost
  // the uffd after the last finish): this prepare is where the runtime
  // hears of it, so the heap is BROKEN from here, like after a failed finish.
  if (!s && h.compactor->broken()) h.phase.store(REMAP_PHASE_BROKEN, std::memory_order_release);
  return s;
}

Status flip_concurrent(remap_heap& h, uint64_t pause_start_ns) {
  Status s = h.compactor->flip();
  if (!s) return s;  // the heap is as it was: still PREPARED
  h.current.flip_pause_ns = now_ns() - pause_start_ns;
  h.phase.store(REMAP_PHASE_COMPACTING, std::memory_order_release);
  return Status::ok();
}

Status compact_concurrent(remap_heap& h) {
  return h.compactor->run(h.heap->config().gc_threads);
}

Status work_concurrent(remap_heap& h) { return h.compactor->work(); }

Status touch_concurrent(remap_heap& h, const void* addr, size_t len) {
  return h.compactor->touch(reinterpret_cast<uintptr_t>(addr), len);
}

Status finish_concurrent(remap_heap& h) {
  const uint64_t t0 = now_ns();
  remap_cycle_stats& st = h.current;
  Status s = h.compactor->finish(&st);
  // Any failure here is final, and a fault the engine could not serve during
  // the cycle (a page the kernel would not install, a fault past capacity,
  // handler threads that lost the uffd) surfaces here: the engine returns
  // the first one's message (compactor.h).
  if (!s) {
    h.phase.store(REMAP_PHASE_BROKEN, std::memory_order_release);
    return s;
  }
  st.cycle = h.heap->cycles();
  st.backend = h.backend;
  st.fault_mode = h.fault_mode;
  st.finish_ns = now_ns() - t0;
  publish_cycle(h, st);
  return Status::ok();
}

}  // namespace remap::api

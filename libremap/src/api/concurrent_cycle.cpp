// concurrent_cycle.cpp — the cycle API's calls into the concurrent engine
// (compact/compactor.h) for the backends that compact while mutators run.
// cycle_api.cpp and heap_api.cpp check arguments and phases, then call these.
//
// A heap inherited across fork() (api/fork_guard.h) keeps the parent's
// engine until its next cycle starts: a cycle that was COMPACTING at the fork
// was completed before it, so compact/work/touch have nothing to do and
// finish is bookkeeping; prepare (or the flip of a heap inherited PREPARED)
// first gives the heap an engine of this process.
#include "api/concurrent_cycle.h"

#include "api/fork_guard.h"
#include "compact/compactor.h"
#include "compact/producer.h"

namespace remap::api {
namespace {

Status create_engine(remap_heap& h) {
  if (!is_concurrent(h.backend)) return Status::ok();
  return Compactor::create(*h.heap, h.backend, h.fault_mode, &h.compactor);
}

// In a fork child: a new engine for the heap's memory, which is this
// process's own (private copy-on-write pages, or the private snapshot of a
// shared heap), replaces the parent's, which is abandoned and leaked (its
// threads are the parent's). A heap inherited PREPARED has the new engine
// prepare the same plan. The old engine stays until the new one is ready, so
// a failure leaves the heap inherited and the next call tries again. Pages
// still shared with the parent make UFFDIO_MOVE fail EBUSY: the move backend
// installs those with UFFDIO_COPY (counted as fallback_ebusy).
Status replace_engine(remap_heap& h) {
  std::unique_ptr<Compactor> fresh;
  Status s = Compactor::create(*h.heap, h.backend, h.fault_mode, &fresh);
  if (!s) return s;
  if (h.phase.load(std::memory_order_acquire) == REMAP_PHASE_PREPARED &&
      !(s = fresh->prepare(*h.plan)))
    return s;
  if (h.compactor) {
    h.compactor->abandon_in_child();
    (void)h.compactor.release();
  }
  h.compactor = std::move(fresh);
  return Status::ok();
}

Status own_engine(remap_heap& h) {
  if (!fork_inherited(h)) return Status::ok();
  Status s = fork_guard_attach(h, replace_engine);
  if (!s) return fork_refusal(h, s);
  return Status::ok();
}

}  // namespace

bool is_concurrent(int backend) {
  const BackendKind* b = find_backend(backend);
  return b && b->concurrent();
}

Status engine_attach(remap_heap& h) { return fork_guard_attach(h, create_engine); }

Status engine_prepare(remap_heap& h) {
  if (!is_concurrent(h.backend)) return Status::ok();
  Status s = own_engine(h);  // a child's first prepare after a fork: an engine of its own
  if (!s) return s;
  // A cycle that moves nothing needs no engine (trivial_cycle), but a
  // broken engine is reported all the same.
  s = trivial_cycle(h) ? (h.compactor->broken() ? h.compactor->broken_status() : Status::ok())
                       : h.compactor->prepare(*h.plan);
  // The engine broke between cycles (thread mode: its handler threads lost
  // the uffd after the last finish): this prepare is where the runtime
  // hears of it, so the heap is BROKEN from here, like after a failed finish.
  if (!s && h.compactor->broken()) remap::api::set_phase(h, REMAP_PHASE_BROKEN);
  return s;
}

Status flip_concurrent(remap_heap& h, uint64_t pause_start_ns) {
  Status s = own_engine(h);  // inherited PREPARED: prepared anew
  if (!s) return s;
  s = h.compactor->flip();
  if (!s) {
    // The heap is as it was (still PREPARED), unless the layout could not
    // even undo the flip: then the engine broke the heap.
    if (h.compactor->broken()) remap::api::set_phase(h, REMAP_PHASE_BROKEN);
    return s;
  }
  h.current.flip_pause_ns = now_ns() - pause_start_ns;
  remap::api::set_phase(h, REMAP_PHASE_COMPACTING);
  return Status::ok();
}

Status compact_concurrent(remap_heap& h) {
  if (fork_inherited(h)) return Status::ok();  // completed before the fork
  return h.compactor->run(h.heap->config().gc_threads);
}

Status work_concurrent(remap_heap& h) {
  if (fork_inherited(h)) return Status::ok();
  return h.compactor->work();
}

Status touch_concurrent(remap_heap& h, const void* addr, size_t len) {
  if (fork_inherited(h)) return Status::ok();
  return h.compactor->touch(reinterpret_cast<uintptr_t>(addr), len);
}

Status finish_concurrent(remap_heap& h) {
  const uint64_t t0 = now_ns();
  remap_cycle_stats& st = h.current;
  // Any failure here is final, and a fault the engine could not serve during
  // the cycle (a page the kernel would not install, a fault past capacity,
  // handler threads that lost the uffd) surfaces here: the engine returns
  // the first one's message (compactor.h). A cycle inherited across fork()
  // was completed before it: only its bookkeeping is left.
  Status s = fork_inherited(h) ? h.compactor->finish_inherited(&st) : h.compactor->finish(&st);
  if (!s) {
    remap::api::set_phase(h, REMAP_PHASE_BROKEN);
    return s;
  }
  st.cycle = h.heap->cycles();
  st.backend = h.backend;
  st.fault_mode = h.fault_mode;
  st.finish_ns = now_ns() - t0;
  publish_cycle(h, st);
  return Status::ok();
}

size_t engine_pool_bytes(const remap_heap& h) {
  if (!h.compactor || fork_inherited(h)) return 0;
  return h.compactor->pool_pages() * h.heap->page_size();
}

void engine_trim_pool(remap_heap& h, size_t keep_bytes) {
  if (!h.compactor || fork_inherited(h)) return;
  h.compactor->trim_pool(keep_bytes / h.heap->page_size());
}

}  // namespace remap::api

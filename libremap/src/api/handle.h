// handle.h — struct remap_heap, the opaque handle behind the C ABI.
//
// Owns the heap, the plan of the current cycle (from prepare until the next
// cycle starts), the phase, the last cycle's stats, and the concurrent
// compactor.
//
// Invariants:
//   - phase is a remap_phase. PREPARED and COMPACTING: plan is set and the
//     heap's marks are frozen. IDLE: plan is either NULL or the completed
//     cycle's (plan_done), kept so that remap_forward answers on every
//     backend until the next mark, clear_marks or prepare drops it.
//   - cycle_mutex serializes the cycle's transitions (prepare, flip, finish,
//     clear_marks); marking and allocation do not take it (phase checks are
//     atomic loads: a runtime that marks while it prepares breaks the rules).
//   - backend and fault_mode are resolved at create, never AUTO; kind is
//     backend's row of the registry.
//   - fork_gen/owner_pid name the process whose engine this is (set when the
//     engine is attached or rebuilt); a heap whose fork_gen is not the
//     process's current fork generation was inherited across fork() and its
//     engine belongs to the parent (api/fork_guard.h).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "base/status.h"
#include "compact/backend.h"
#include "heap/heap.h"
#include "libremap.h"
#include "plan/plan.h"

namespace remap {
class Compactor;  // compact/compactor.h (the concurrent engine)
}

namespace remap::api {
// The runtime's event callback (api/events.h): immutable once published.
struct EventSink {
  remap_event_fn fn;
  void* ctx;
};
}  // namespace remap::api

struct remap_heap {
  std::unique_ptr<remap::Heap> heap;
  std::unique_ptr<remap::Plan> plan;
  std::atomic<bool> plan_done{false};  // plan is a completed cycle's (IDLE)
  std::atomic<int> phase{REMAP_PHASE_IDLE};
  int backend = REMAP_BACKEND_STW;    // resolved remap_backend
  const remap::BackendKind* kind = nullptr;  // its registry row (compact/backend.h)
  int fault_mode = REMAP_FAULT_THREAD;  // resolved remap_fault_mode
  std::mutex cycle_mutex;
  // remap_wait_idle sleeps on idle_cv; set_phase notifies it.
  std::mutex idle_mutex;
  std::condition_variable idle_cv;
  mutable std::mutex stats_mutex;     // guards last_stats (readers must not wait for a cycle)
  remap_cycle_stats last_stats{};     // the last completed cycle (struct_size set)
  remap_cycle_stats current{};        // the cycle in progress (prepare_ns set at prepare)
  std::unique_ptr<remap::Compactor> compactor;
  // A cycle that moves nothing, COMPACTING only to release its dead regions
  // after the flip's pause (cycle_api.cpp: flip_trivial): set at the flip,
  // cleared at finish (cycle_mutex). release_mutex makes the release run
  // once, by remap_compact, remap_compact_work or else remap_finish.
  bool trivial_compacting = false;
  std::mutex release_mutex;
  bool release_done = false;  // under release_mutex
  // api/fork_guard.h
  std::atomic<uint64_t> fork_gen{0};  // read relaxed on the cycle calls
  int owner_pid = 0;
  bool fork_registered = false;  // in the fork registry (under its lock)
  unsigned fork_locked = 0;      // which mutexes the atfork prepare handler took
  // api/events.h. events: the sink in use (NULL: none, and nothing is
  // recorded); every sink ever set stays in event_sinks until destroy, so
  // a call that loaded one before it was replaced can still use it.
  std::atomic<const remap::api::EventSink*> events{nullptr};
  std::mutex events_mutex;  // event_sinks
  std::vector<std::unique_ptr<remap::api::EventSink>> event_sinks;
  // From CYCLE_BEGIN to CYCLE_END (kept whether or not a sink is set, so
  // that events count cycles right from whenever one is).
  // (Both under cycle_mutex: every call that opens or closes a cycle holds it.)
  std::atomic<bool> cycle_open{false};
  std::atomic<uint64_t> cycle_number{0};  // the running cycle's (valid while cycle_open)

  remap_heap();
  ~remap_heap();  // defined where Compactor is complete (api/heap_api.cpp)
};

namespace remap::api {

// "IDLE", "PREPARED", ...
const char* phase_name(int phase);
// REMAP_EPHASE naming the current and the expected phase.
Status wrong_phase(const char* what, int phase, const char* expected);
// Monotonic clock, ns.
uint64_t now_ns();

// Every phase change: stores it and wakes remap_wait_idle's sleepers (the
// store is made under idle_mutex, so a waiter that checked the phase just
// before cannot miss the wakeup), and sends REMAP_EVENT_PHASE unless
// `notify` is false (a fork child's atfork handler calls no runtime code).
void set_phase(remap_heap& h, int phase, bool notify = true);

// The end of every cycle, whatever the backend: `st` becomes the last
// cycle's stats, the plan is kept for remap_forward (plan_done), the heap is
// IDLE again. The caller holds cycle_mutex.
void publish_cycle(remap_heap& h, const remap_cycle_stats& st);
// The start of the next cycle: drops a completed cycle's plan (the caller
// holds cycle_mutex; the heap's stale marks go at the next mark or prepare).
void drop_done_plan(remap_heap& h);

// A cycle that moves nothing (Plan::nothing_moves: every region dense or
// empty, no large object sliding) on a private anonymous heap (move, copy):
// it needs no flip and no page production, only the empty regions' memory
// released: flip_trivial. Shared layouts
// (minor, sigsegv) keep their cycle: MADV_DONTNEED does not free a memfd's
// pages.
bool trivial_cycle(const remap_heap& h);

// The whole STW cycle for a PREPARED heap (caller holds cycle_mutex): runs
// stw_compact in the pause, completes the cycle, fills last_stats, phase ->
// IDLE. On a compaction failure the heap is BROKEN (nothing is half-moved by
// an object-model error: Plan::build validated the model).
Status flip_stw(remap_heap& h, uint64_t pause_start_ns);

// The flip of a trivial cycle (caller holds cycle_mutex): with no dead
// region, the cycle ends here (flip_stw). Otherwise the heap goes to
// COMPACTING with nothing to produce: releasing the dead regions' memory
// (MADV_DONTNEED; 4 ms for 92 MiB of dead regions on these machines) is
// left to remap_compact / remap_compact_work / remap_finish, after the
// pause, and the new layout (those regions free) is adopted at finish.
Status flip_trivial(remap_heap& h, uint64_t pause_start_ns);
// The release of a trivial cycle, once (any of compact, work, finish).
Status release_trivial(remap_heap& h);
// remap_finish of a trivial cycle (caller holds cycle_mutex).
Status finish_trivial(remap_heap& h);

}  // namespace remap::api

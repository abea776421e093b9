// compactor.h — the concurrent compaction engine (docs/ARCHITECTURE.md,
// "The cycle" and "Producing a page").
//
// One per heap whose backend is concurrent. Owns the heap's userfaultfd, the
// layout (from-space reservation or memfd slots), the page pool, the per-page states, fault delivery
// and the cycle's counters. The cycle:
//
//   prepare(plan)  outside the pause: page states from the plan, VMA count.
//   flip()         in the runtime's pause: the layout makes the heap range
//                  fault (anon: mremap(MREMAP_DONTUNMAP) onto from-space and
//                  register MISSING, O(1) in heap size; shmem: re-map region
//                  runs onto their file slots, then register MISSING|MINOR
//                  (minor) or map them PROT_NONE (sigsegv), O(runs); see
//                  layout.h and shmem_layout.h).
//   work()         GC workers produce pages region by region (see producer.h).
//                  Mutators that touch an unproduced page produce it first.
//   finish()       every page with data is mapped; the VMA count is taken
//                  (stats vmas_after: the cycle's peak); unregister (or open
//                  the whole range); from-space leftovers recycled, released
//                  or punched; counters published.
//
// Invariants: mutators only ever see to-space addresses and final page
// contents; a page is installed exactly once (the state CAS decides who);
// from-space bytes are read only while some unproduced page needs them
// (producer.h states the exact rule).
//
// Unless the engine is broken. A page the kernel refuses to install (an
// ioctl failing with an errno the backend cannot work around), a fault past
// the heap's capacity or outside the heap, or handler threads that can no
// longer read the uffd break it: the first failure's message is kept
// (async-signal-safe, fault handlers record it), written to stderr at once,
// and returned by work(), touch() and finish(); the API then makes the heap
// REMAP_PHASE_BROKEN. A broken engine never leaves a thread parked or
// looping: a page whose install failed is marked MAPPED (so nobody waits for
// it) and any fault on it, or on a page it cannot produce, gets a zero page
// (fault_target.h); finish still stops faults on the whole range, and a
// fault that arrives after a finish that could not is zero-filled too.
// Pages that could be produced still are, with their data.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "base/status.h"
#include "compact/backend.h"
#include "compact/counters.h"
#include "compact/fault_target.h"
#include "compact/fault_threads.h"
#include "compact/layout.h"
#include "compact/page_state.h"
#include "heap/heap.h"
#include "heap/pool.h"
#include "libremap.h"
#include "os/fd.h"
#include "os/vm.h"
#include "plan/plan.h"

namespace remap {

class Producer;

class Compactor final : public FaultTarget {
 public:
  // backend: a concurrent remap_backend (its registry row has an engine,
  // compact/backend.h); fault_mode: SIGBUS or THREAD (resolved; a backend
  // that takes no userfaultfd faults records it and delivers by SIGSEGV).
  static Status create(Heap& heap, int backend, int fault_mode, std::unique_ptr<Compactor>* out);
  ~Compactor() override;

  Status prepare(const Plan& plan);
  // The pause. On failure the heap is unchanged (mapping back in place).
  Status flip();
  // In the flip's pause, after Plan::patch_black: the pages of the black
  // regions are to be produced (their states were set EMPTY at prepare,
  // before those regions were known). O(their pages).
  void add_black_pages(const Plan& plan);
  // Joins as a GC worker until no region is left.
  Status work();
  // Runs `threads` GC workers and returns when every region is done.
  Status run(unsigned threads);
  // Produces and installs [addr, addr+len) now.
  Status touch(uintptr_t addr, size_t len);
  Status finish(remap_cycle_stats* stats);
  bool compacting() const { return active_.load(std::memory_order_acquire); }

  // FaultTarget
  bool covers(uintptr_t addr) const noexcept override;
  FaultOutcome resolve_fault(uintptr_t addr) noexcept override;
  void delivery_failed(const char* what, int err) noexcept override;

  // True once a failure broke the engine (see above); for good.
  bool broken() const noexcept { return broken_.load(std::memory_order_acquire) != 0; }
  // The failure as a Status (for work/touch/finish, and for a prepare that
  // needs no engine but must report one that broke).
  Status broken_status() const;

  const CycleCounters& counters() const { return counters_; }

  // The page pool (move, copy; none otherwise): populated pages it holds,
  // and remap_heap_trim's trim to at most keep_pages. Between cycles only.
  size_t pool_pages() const { return pool_ ? pool_->populated_pages() : 0; }
  void trim_pool(size_t keep_pages) {
    if (pool_) (void)pool_->trim(keep_pages);
  }

  // Tests only (tests/native): the backend, to wrap in a fault-injecting one
  // before prepare() (the producer binds to it there; the layout keeps the
  // wrapped one, which the wrapper owns).
  std::unique_ptr<Backend>& backend_slot_for_test() { return backend_; }
  // --- fork() (api/fork_guard.cpp; see there for the rules) ---------------
  // Parent, atfork prepare, the heap's cycle_mutex held: installs every page
  // a cycle in progress has not installed yet (the work remap_touch over the
  // whole heap does; GC workers may run meanwhile), so the child inherits a
  // complete heap, then lets the layout take what the child needs.
  void fork_prepare() noexcept;
  void fork_parent() noexcept;
  // Child, single-threaded: from now on this engine is inherited. Its
  // userfaultfd belongs to the parent's mm (ioctls on it would act there),
  // its threads do not exist here and the kernel dropped its registrations:
  // it never makes another kernel call. False if the layout could not make
  // the heap range this process's own (it is then inaccessible).
  bool fork_child() noexcept;
  bool inherited() const { return inherited_; }
  // Child: the end of the cycle that was in progress at the fork. Every page
  // was installed before it, so this is bookkeeping only: the heap adopts the
  // new layout and the counters are published. No kernel call.
  Status finish_inherited(remap_cycle_stats* stats);
  // Child: the engine is given up (leaked by the caller: its std::thread
  // objects name threads of the parent, which must not be joined). Faults it
  // would have claimed go to the previous handler; closes the child's
  // references to the parent's userfaultfd and memfd.
  void abandon_in_child() noexcept;

 private:
  explicit Compactor(Heap& heap) : heap_(heap) {}
  Status init(int backend, int fault_mode);
  // Makes page `page` mapped; by_fault: count and time it as a mutator fault.
  // False if it could not (the engine is then broken).
  bool ensure_page(size_t page, bool by_fault) noexcept;
  // Records the first failure (code, message) and writes it to stderr.
  // Async-signal-safe; later failures keep the first message.
  void break_heap(remap_status code, const char* msg) noexcept;
  // The last answer to a fault the engine cannot serve: a zero page at addr.
  FaultOutcome zero_fill(uintptr_t addr) noexcept;
  // zero_fill's last resort, when the page at addr cannot be mapped at all
  // (every CONTINUE refused for minor, mprotect at vm.max_map_count for
  // sigsegv): that page, or if need be the whole range, stops faulting.
  FaultOutcome stop_faulting_now(uintptr_t addr) noexcept;
  // After an unregister with no handler thread left: UFFDIO_WAKE of the
  // whole mapping, for a fault that queued itself during the unregister.
  // On a broken heap whose wake fails too, the uffd is released instead.
  void wake_stragglers() noexcept;
  void prefill() noexcept;
  // work()'s claim loop; helper: a thread run() started (helper_may_claim).
  Status work_loop(bool helper);
  // A helper, before a claim: waits while every CPU is busy. False once no
  // claim is left.
  bool helper_may_claim(size_t n);

  Heap& heap_;
  const BackendKind* kind_ = nullptr;  // the backend's registry row
  int fault_mode_ = REMAP_FAULT_SIGBUS;
  os::UniqueFd uffd_;
  uint64_t features_ = 0;
  std::unique_ptr<heap::PagePool> pool_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Layout> layout_;   // after backend_: it may use it
  RegionSpaces spaces_;
  FaultThreads threads_;
  PageStates states_;
  CycleCounters counters_;
  std::unique_ptr<Producer> producer_;
  const Plan* plan_ = nullptr;
  std::atomic<bool> active_{false};     // between flip and finish: faults are ours
  std::atomic<bool> closing_{false};    // finish is stopping faults: handlers do no work
  // The range was unregistered at finish: a fault still arriving was raised
  // before, and its retry faults in normally (nothing to zero-fill).
  std::atomic<bool> faults_stopped_{false};
  std::atomic<int> in_flight_{0};       // fault handlers inside resolve_fault
  std::atomic<size_t> next_region_{0};  // claims, counted from first_region_ (work)
  size_t first_region_ = 0;
  std::atomic<int> workers_{0};         // threads inside work()
  int helper_cpus_ = 0;                 // os::helper_cpu_budget; 0: helpers never wait
  std::mutex claims_mutex_;             // with claims_cv_: wakes waiting helpers
  std::condition_variable claims_cv_;   // when the last claim is taken
  uint64_t flip_end_ns_ = 0;
  uint64_t vmas_before_ = 0;
  // 0: sound; 1: the first failure is writing its message; 2: broken.
  std::atomic<int> broken_{0};
  remap_status broken_code_ = REMAP_OK;
  char broken_msg_[512] = {};
  std::atomic<uint64_t> zero_filled_{0};  // faults given a zero page instead of their data
  bool inherited_ = false;              // fork child: never a kernel call again
  std::atomic<bool> abandoned_{false};  // covers() nothing (read by signal handlers)
  std::atomic<bool> uffd_released_{false};  // broken: wake_stragglers' last resort was taken
  bool prefill_ = false;  // move, copy: prefill() (set at prepare)
  bool fault_copies_ = false;  // move: ensure_page COPYs a built page (set at prepare)
  std::atomic<bool> finishing_{false};  // finish began: prefill() fills no more
  static constexpr size_t kPrefillRegions = 16;  // at most this many filled and waiting
};

}  // namespace remap

// compactor.h — the concurrent compaction engine (DESIGN.md §5–§6).
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
#pragma once

#include <atomic>
#include <memory>

#include "api/status.h"
#include "backends/backend.h"
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
  // backend: MOVE, COPY, MINOR or SIGSEGV; fault_mode: SIGBUS or THREAD
  // (resolved; sigsegv records it but always delivers by SIGSEGV). Only move,
  // copy and minor open a userfaultfd.
  static Status create(Heap& heap, int backend, int fault_mode, std::unique_ptr<Compactor>* out);
  ~Compactor() override;

  Status prepare(const Plan& plan);
  // The pause. On failure the heap is unchanged (mapping back in place).
  Status flip();
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
  bool resolve_fault(uintptr_t addr) noexcept override;

  const CycleCounters& counters() const { return counters_; }

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
  bool ensure_page(size_t page, bool by_fault) noexcept;
  [[noreturn]] void fatal(const char* what, const InstallOutcome& o) noexcept;

  Heap& heap_;
  int backend_kind_ = REMAP_BACKEND_MOVE;
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
  std::atomic<int> in_flight_{0};       // fault handlers inside resolve_fault
  std::atomic<size_t> next_region_{0};
  std::atomic<int> workers_{0};         // threads inside work()
  uint64_t flip_end_ns_ = 0;
  uint64_t vmas_before_ = 0;
  bool inherited_ = false;              // fork child: never a kernel call again
  std::atomic<bool> abandoned_{false};  // covers() nothing (read by signal handlers)
};

}  // namespace remap

// page_state.h — the per to-space page state machine (docs/ARCHITECTURE.md,
// "The five state machines").
//
// One atomic byte per to-space page. Transitions are CAS; whoever loses waits
// until the page is MAPPED (spin, then sched_yield: both async-signal-safe,
// so a SIGBUS handler can wait too).
//
//   EMPTY ──(a mutator touches it)──> MUTATOR_PROCESSING ──> MAPPED
//   EMPTY ──> PROCESSING (move: a GC worker installs a region's free tail
//             with its data run) ──> PROCESSED ──> MAPPED
//   EMPTY ──> PROCESSING (a GC worker fills a free region ahead of
//             allocation: Compactor::prefill) ──> MAPPED
//   UNPROCESSED ──> PROCESSING (a GC worker) ──> PROCESSED ──> MAPPED
//   UNPROCESSED ──> MUTATOR_PROCESSING (a faulting thread) ──> MAPPED
//
// EMPTY pages hold no live data after compaction; they are installed zeroed
// only if touched during compaction, and otherwise fault in normally once the
// heap is unregistered. Only the owner of a page (the thread that won the
// CAS) writes its buffer and installs it; PROCESSED means "built, waiting in
// a run to be installed by its owner".
#pragma once

#include <sched.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace remap {

enum PageState : uint8_t {
  kPageEmpty = 0,
  kPageUnprocessed = 1,
  kPageProcessing = 2,
  kPageMutatorProcessing = 3,
  kPageProcessed = 4,
  kPageMapped = 5,
};

class PageStates {
 public:
  void reset(size_t pages) {
    if (pages != count_) {
      states_.reset(new std::atomic<uint8_t>[pages]);
      count_ = pages;
    }
    for (size_t i = 0; i < pages; i++) states_[i].store(kPageEmpty, std::memory_order_relaxed);
  }
  size_t count() const { return count_; }

  uint8_t load(size_t page) const { return states_[page].load(std::memory_order_acquire); }
  void init(size_t page, PageState s) { states_[page].store(s, std::memory_order_relaxed); }
  void set(size_t page, PageState s) { states_[page].store(s, std::memory_order_release); }

  // Claims `page` for a GC worker (UNPROCESSED -> PROCESSING).
  bool claim_for_gc(size_t page) { return take(page, kPageUnprocessed, kPageProcessing); }
  // Claims an EMPTY `page` for a GC worker (EMPTY -> PROCESSING): a free
  // page it installs zeroed with the run before it (producer.cpp, tails).
  bool claim_empty_for_gc(size_t page) { return take(page, kPageEmpty, kPageProcessing); }
  // Claims an EMPTY `page` for a faulting thread (EMPTY ->
  // MUTATOR_PROCESSING): a page after the one it faulted on, zero-filled
  // with it (Compactor::ensure_page).
  bool claim_empty_for_mutator(size_t page) {
    return take(page, kPageEmpty, kPageMutatorProcessing);
  }
  // Claims `page` for a faulting thread (UNPROCESSED or EMPTY ->
  // MUTATOR_PROCESSING). *was receives the state it had.
  bool claim_for_mutator(size_t page, uint8_t* was) {
    uint8_t s = states_[page].load(std::memory_order_acquire);
    while (s == kPageUnprocessed || s == kPageEmpty) {
      if (states_[page].compare_exchange_weak(s, kPageMutatorProcessing,
                                              std::memory_order_acq_rel)) {
        *was = s;
        return true;
      }
    }
    *was = s;
    return false;
  }

  // A thread waits for a page a GC worker owns: while any thread waits,
  // workers end their runs at Producer::kWaitedRunPages instead of
  // kMaxRunPages, so that long runs, which save TLB shootdowns, do not make
  // a fault wait longer than short ones did.
  void add_waiter() { waiters_.fetch_add(1, std::memory_order_acq_rel); }
  void remove_waiter() { waiters_.fetch_sub(1, std::memory_order_acq_rel); }
  bool has_waiters() const { return waiters_.load(std::memory_order_relaxed) != 0; }

  // Waits until `page` is MAPPED. Returns the number of yields (0: it was).
  uint64_t wait_mapped(size_t page) const {
    uint64_t spins = 0;
    while (states_[page].load(std::memory_order_acquire) != kPageMapped) {
      if (++spins > 64) sched_yield();
      else cpu_relax();
    }
    return spins;
  }

 private:
  bool take(size_t page, PageState from, PageState to) {
    uint8_t expect = from;
    return states_[page].compare_exchange_strong(expect, to, std::memory_order_acq_rel);
  }
  static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  std::unique_ptr<std::atomic<uint8_t>[]> states_;
  size_t count_ = 0;
  std::atomic<uint32_t> waiters_{0};
};

}  // namespace remap

// producer.h — building to-space pages (docs/ARCHITECTURE.md, "Producing a page").
//
// A page's bytes come from from-space (the old heap, at old + delta). Two
// ways to build, one rule that makes them safe together:
//
//   GC worker, in place: walks a region's live objects in address order; for
//   each object X it first owns every to-space page X's new range touches
//   (CAS-claims them, or waits until a mutator that owns one has MAPPED it),
//   then forwards X's reference slots and memmoves X to its new address at
//   the same from-space offset. A to-space page whose objects are all done
//   is complete: complete pages form contiguous runs that are installed with
//   one ioctl straight from from-space (dense pages move back to where they
//   were, updated in place: no copy at all).
//
//   Faulting mutator, in a buffer: copies the parts of the objects that
//   overlap its page from from-space into a private buffer page, forwards
//   the slots that fall in the page, installs the buffer. It never writes
//   from-space.
//
// A live large object's pages are not built from objects but slid whole
// (gc_large): to-space page i of the object is its old page i,
// slots forwarded, so they need none of the ordering above.
//
// With a shared layout (layout.h: minor, sigsegv) the build address of a page
// is the page the heap will map, so the worker builds "clipped": it copies
// and forwards only the parts of an object that fall in pages it owns.
//
// Why that is safe: sliding only moves data down (new <= old), so a write of
// object Y to its new range lands below the next object's new start, hence
// below every later object's old bytes; a mutator building page q reads only
// the old bytes of the objects that overlap q, and the worker touches those
// objects only after q is MAPPED; a from-space page is moved away only when
// every object overlapping its to-space page has been processed, which
// includes every object whose old bytes lie in it (old >= new).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "compact/backend.h"
#include "compact/counters.h"
#include "compact/layout.h"
#include "compact/page_state.h"
#include "heap/heap.h"
#include "plan/plan.h"

namespace remap {

class Producer {
 public:
  // Longest run of pages a worker installs with one call. Each MOVE ends in
  // one TLB flush of the source range, and while another thread of the
  // process runs that is an IPI to its CPU (~20-30 us in a VM, measured as a
  // quarter of two GC workers' time with 64-page runs): runs are long, and
  // end at kWaitedRunPages while a thread waits for a GC-owned page
  // (PageStates::has_waiters), so a fault waits no longer than it did with
  // 64-page runs. Not shorter: with mutators faulting all the time, flushing
  // at every page made every install one ioctl and one IPI (two reading
  // threads: the cycle 2x longer).
  static constexpr size_t kMaxRunPages = 512;
  static constexpr size_t kWaitedRunPages = 64;
  // move: a run shorter than this is installed with UFFDIO_COPY, page by
  // page, instead of one MOVE (not a large object's run: see flush). With
  // mutators faulting, the pages they build cut the GC's runs short (two
  // reading threads: ~7 pages a MOVE on average with 8 as the bar), and
  // each MOVE still costs its TLB shootdown, an IPI to every
  // other CPU running the process (~20-30 us here), where a COPY fills
  // empty PTEs (no flush) for ~1-2 us of allocation and copying a page.
  // The copied pages' old ones stay in from-space until their region's is
  // dropped or recycled at finish, as for pages mutators build. The bar is
  // kWaitedRunPages: a run flushed early for a waiting thread, or cut by
  // mutators' pages, is copied, so the waiter is not held up by a shootdown
  // too. Two reading threads, 256 MiB, five alternated runs: move's fault
  // p99 21.3 -> 16.9 us (copy's 16.3), the cycle unchanged (206 / 207 ms);
  // with no mutator, runs are 512 pages and nothing changes.
  static constexpr size_t kCopyBelowPages = kWaitedRunPages;

  // `spaces` must outlive the producer. clip: see above. kind: the
  // backend's registry row, for what becomes of from-space (released region
  // by region, or recycled) and whether the kernel copies what it installs.
  // free_tails: a region's free pages after its data are installed, zeroed,
  // in the same run (see gc_tail), until mutators have taken
  // tail_budget_pages fresh buffers in this cycle (then they stop: see
  // gc_region).
  Producer(const Heap& heap, const Plan& plan, PageStates& states, Backend& backend,
           CycleCounters& counters, const RegionSpaces& spaces, bool clip,
           const BackendKind& kind, bool free_tails, size_t tail_budget_pages,
           bool copy_short_runs);

  // GC worker: produces every page with data of regions [r0, r1), in place.
  // Returns false (and *bad) if the kernel refused to install a page.
  bool gc_regions(size_t r0, size_t r1, InstallOutcome* bad);

  // Mutator: builds page `page` (owned: MUTATOR_PROCESSING, state before the
  // claim was UNPROCESSED) into `buf` (one page). Async-signal-safe.
  void build_page(size_t page, char* buf) const noexcept;

  // Mutator, unclipped layouts, a LARGE page (owned as for build_page):
  // forwards the slots of the old page where it lies in from-space and
  // returns its address, for the backend to install as a run of one (move:
  // the page itself, untouched if it has no slots) or, will_copy, with
  // UFFDIO_COPY from there (counted as a copied large page).
  // Async-signal-safe.
  uintptr_t large_in_place(size_t page, bool will_copy) const noexcept;

 private:
  struct Pass;  // one worker's state over a chunk of regions
  struct LargePage {
    char* build = nullptr;  // where the page's new bytes are
    bool moved = false;     // the object slid: the page is at a new address
    bool copied = false;    // the library copied the page to get them there
    bool updated = false;   // it had reference slots to forward
    uint64_t stray = 0;     // slots left unchanged as stray (Plan::forward_value)
  };
  void gc_region(Pass& pass, size_t r);
  void gc_large(Pass& pass, size_t head);
  void gc_black(Pass& pass, size_t r);
  // The free pages of small-object region r from `from` (its data's end) to
  // the region's end, appended to the run its data pages ended.
  void gc_tail(Pass& pass, size_t r, uintptr_t from, intptr_t wd);
  // Page `page` (to-space) of a live large object, from the same page of the
  // old object: built where it lies in from-space (into == nullptr) or in
  // `into` (copied there first unless that is the old page itself), slots
  // forwarded. Async-signal-safe.
  LargePage large_page(size_t page, char* into) const noexcept;
  // The counters of one large page a faulting mutator produced;
  // kernel_copies: this page's install copies it (UFFDIO_COPY).
  void count_mutator_large(const LargePage& lp, bool kernel_copies = false) const noexcept;
  // Adds page `page`, built at page + delta, to the pass's run (PROCESSED);
  // large: a large object's page (its run is never copied: kCopyBelowPages).
  void append(Pass& pass, size_t page, intptr_t delta, bool large = false);
  // Installs the pass's pending run of complete pages and marks them MAPPED.
  void flush(Pass& pass);

  const Heap& heap_;
  const Plan& plan_;
  PageStates& states_;
  Backend& backend_;
  CycleCounters& c_;
  const RegionSpaces& spaces_;
  const size_t page_;
  const bool clip_;
  // from_space_done per region, once workers and mutators are done with it.
  const bool release_regions_;
  // Regions some of whose pages mutators built are kept for finish to
  // recycle (held_), unless the pool runs dry.
  const bool recycle_after_mutators_;
  // The kernel copies every page it installs (counted as large_pages_copied).
  const bool kernel_copies_;
  const bool free_tails_;
  const uint64_t tail_budget_pages_;
  const bool copy_short_runs_;  // kCopyBelowPages
  // move: from-space ranges of regions mutators built pages of, finished
  // while the pool still had buffers (kept for finish to recycle); dropped
  // all at once if the pool runs dry later in the cycle.
  std::mutex held_mutex_;
  std::vector<std::pair<uintptr_t, size_t>> held_;
};

}  // namespace remap

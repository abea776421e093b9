// heap.h — the heap: the reserved range, its regions, allocation hand-out to
// the runtime, large objects, and the marks the runtime reports.
//
// Invariants:
//   - The mapping is 1 GiB aligned and a whole number of GiB (virtual only,
//     MAP_NORESERVE) covering max_capacity; the heap is its first
//     `capacity` bytes, so base() is region aligned and the flip's mremap
//     moves page tables at PUD level.
//   - The config was validated at create and never changes. The capacity
//     does (resize, in IDLE, under alloc_mutex_); the region table and the
//     bitmaps are sized for max_capacity once, so nothing a marking thread
//     reads is ever reallocated. Regions past the capacity are FREE and
//     hold no memory (resize returned it).
//   - Region states/tops change under alloc_mutex_; marking only reads them
//     and writes the bitmaps and live_bytes with atomics.
//   - Marks (the bitmaps, live_bytes) are valid from the end of marking until
//     the next cycle starts: complete_cycle() only flags them stale, and the
//     next mark(), clear_marks() or discard_stale_marks() clears them. The
//     plan reads them for forward(), which a runtime may call after the
//     cycle ended (remap_forward's contract: valid until the next cycle).
//
// The marks are heap/live_bitmap.h bitmaps, filled here at marking and read
// by the plan. The heap never includes the plan: it takes a cycle's outcome
// through heap/new_layout.h.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "heap/config.h"
#include "heap/live_bitmap.h"
#include "heap/new_layout.h"
#include "heap/region.h"
#include "libremap.h"
#include "os/vm.h"

namespace remap {

class Heap {
 public:
  // Validates `config` (see heap/config.h), reserves the range, allocates the
  // region table and the bitmaps.
  static Status create(const remap_heap_config& config, std::unique_ptr<Heap>* out);
  ~Heap();
  Heap(const Heap&) = delete;
  Heap& operator=(const Heap&) = delete;

  // --- geometry (constant after create) -------------------------------------
  // The validated config (large_object_threshold resolved, never 0).
  const remap_heap_config& config() const { return config_; }
  const remap_object_model& model() const { return config_.model; }
  // The whole reservation: 1 GiB aligned, a whole number of GiB, at least
  // max_capacity().
  uintptr_t map_base() const { return uintptr_t(mapping_.addr()); }
  size_t map_size() const { return mapping_.size(); }
  // The heap proper: [base(), base() + capacity()), base() == map_base().
  // capacity() is the current capacity: everything sized per cycle (the
  // plan, page states, shared layouts' runs) follows it. A reader racing a
  // resize sees the old or the new value; the regions between them are
  // FREE either way, so what it concludes from either is right.
  uintptr_t base() const { return base_; }
  size_t capacity() const { return capacity_.load(std::memory_order_acquire); }
  size_t max_capacity() const { return max_capacity_; }
  uintptr_t end() const { return base_ + capacity(); }
  bool contains(uintptr_t a) const { return a - base_ < capacity(); }
  size_t region_size() const { return region_size_; }
  unsigned region_shift() const { return region_shift_; }
  size_t region_count() const { return region_count_.load(std::memory_order_acquire); }
  size_t max_region_count() const { return max_region_count_; }
  size_t region_index(uintptr_t a) const { return (a - base_) >> region_shift_; }
  uintptr_t region_base(size_t r) const { return base_ + (r << region_shift_); }
  size_t page_size() const { return page_size_; }
  unsigned page_shift() const { return page_shift_; }
  size_t page_count() const { return capacity() >> page_shift_; }
  size_t page_index(uintptr_t a) const { return (a - base_) >> page_shift_; }
  uintptr_t page_addr(size_t page) const { return base_ + (page << page_shift_); }
  const Region& region(size_t r) const { return regions_[r]; }

  // --- allocation (thread-safe; not the hot path: one mutex) ----------------
  // Hands out [*start, *end) for bump allocation and marks its region
  // ALLOCATING. Policy: first the lowest-addressed compacted region whose free
  // tail [top, end) the last cycle opened and that is at least a quarter of a
  // region (compacted memory is reused before fresh memory is touched; each
  // tail is offered once per cycle), else a FREE region: the highest one in
  // a heap with no small-object region; else the highest free region below
  // the highest small-object region (a hole in their area); else the
  // lowest free region above it. While a cycle compacts, a FREE region a GC
  // worker filled ahead (below) comes before any other FREE region.
  // Small-object regions fill the heap from the top and large objects from
  // the bottom (alloc_large, and the plan slides them down): the two kinds
  // do not interleave, so free regions stay contiguous in the middle and a
  // large object finds a run even in a small heap. Regions compact in place,
  // so a small-object region with one survivor left among large objects
  // would otherwise split the free space for good. Free regions above the
  // small-object area (a heap that grew, or whose top regions emptied) are
  // taken last and from below, so the end of the heap stays free for a
  // shrink (remap_heap_resize).
  // REMAP_ENOMEM when neither exists.
  Status acquire_region(uintptr_t* start, uintptr_t* end);
  // A concurrent cycle starts or stops compacting (the engine: at the flip,
  // at finish): what prefill_wanted counts.
  void set_compacting(bool on) {
    std::lock_guard<std::mutex> g(alloc_mutex_);
    if (!on && compacting_) free_taken_last_ = free_taken_compacting_;
    compacting_ = on;
    free_taken_compacting_ = 0;
  }

  // --- FREE regions filled ahead of allocation while a cycle compacts -------
  // Every page of to-space is empty after the flip, so a mutator allocating
  // in a FREE region faults on it every few pages (16 zero pages a fault).
  // A GC worker installs zero pages in the regions acquire_region will hand
  // out next, before it does (compact/compactor.cpp, Compactor::prefill).
  //
  // The tails acquire_region offers first are not filled: they are
  // installed with their regions' data (the workers start with them,
  // Compactor::prepare). Filled regions are what acquire_region would have
  // handed out next anyway; alloc_large may take a filled one too, but not
  // one being filled, so no more than a 32nd of the heap is set aside.
  //
  // How many more regions to fill now: enough to keep `cap` waiting if
  // mutators took FREE regions while the last cycle compacted; else as many
  // as they have taken in this one, up to `cap` (a heap whose mutators do
  // not allocate while compacting gets none filled).
  size_t prefill_wanted(size_t cap) const;
  // Sets aside the FREE region acquire_region would hand out next (nobody
  // else takes it); kNoFreeRegion if there is none.
  size_t take_region_to_prefill();
  // Region r, set aside above, has its pages installed: acquire_region
  // hands it out before any other FREE region.
  void offer_prefilled(size_t r);
  // The cycle ends: regions set aside and not handed out are plain FREE
  // regions again (their zero pages stay).
  void end_prefill();
  // No FREE region (pick_free_region_locked, take_region_to_prefill).
  static constexpr size_t kNoFreeRegion = ~size_t(0);
  // Hands back the region acquired at `start` with the runtime's bump cursor:
  // start must be exactly what acquire_region returned for an ALLOCATING
  // region, and start <= cursor <= region end, cursor 8-aligned. The region
  // becomes RETIRED with top = cursor - region base (or FREE if that is 0).
  Status retire_region(uintptr_t start, uintptr_t cursor);
  // A large object of `size` bytes (>= large_object_threshold; smaller sizes
  // are rejected with REMAP_EINVAL so that regions stay for small objects):
  // size rounded up to pages, the lowest run of N contiguous FREE regions,
  // object at the first region's base (LARGE_HEAD, then LARGE_TAILs).
  Status alloc_large(size_t size, uintptr_t* out);

  // --- marking (thread-safe, lock-free) --------------------------------------
  // Reports the object at `obj` live. REMAP_EINVAL: misaligned, outside the
  // heap, not below its region's top, not the start of a large object, or
  // overlapping another marked object. REMAP_EOBJMODEL: object_size returned
  // 0, a non-multiple of 8, or a size running past the region's top (or the
  // large object's pages). On failure nothing changes. Re-marking the same
  // object is a no-op (its begin bit is already set).
  Status mark(uintptr_t obj);
  // remap_try_mark: the begin bit only (1 newly marked, 0 marked before or
  // black); the rest of the mark is done by complete_deferred_marks.
  // REMAP_EINVAL as mark() for an address that cannot be an object start.
  Status try_mark(uintptr_t obj, int* newly);
  // Its lock-free path for the common case, with no message formatted:
  // 1 newly marked, 0 marked before; -1 when the address needs try_mark's
  // checked path (misaligned, outside allocated memory, black, interior,
  // marks of a finished cycle still to discard). Nothing changes on -1.
  int try_mark_fast(uintptr_t obj) noexcept {
    if ((obj & 7) || !contains(obj) || marks_stale()) return -1;
    const size_t r = region_index(obj);
    const Region& reg = regions_[r];
    const RegionState st = reg.get_state();
    if (reg.black.load(std::memory_order_acquire) ||
        (st != RegionState::RETIRED && st != RegionState::ALLOCATING) ||
        obj >= region_base(r) + reg.top.load(std::memory_order_acquire))
      return -1;
    if (begin_.test_and_set(obj)) return 0;
    if (!live_.test(obj)) {
      note_deferred_mark();
      return 1;
    }
    begin_.clear_bit(obj);  // inside an object remap_mark marked: try_mark says so
    return -1;
  }
  // At prepare (no marker running): every object marked by try_mark (a
  // begin bit whose live bit is clear) gets what mark() records — its size
  // checked, its live bits, its slots in the refs bitmap, its region's live
  // bytes — from one object_size and one visit_ref_offsets. Fails on the
  // first object whose size or offsets cannot be right, or that overlaps
  // another marked object.
  Status complete_deferred_marks();
  // Forgets every mark: the bitmaps and every region's live_bytes.
  void clear_marks();
  // Clears the marks of a completed cycle if they are still there (see the
  // invariants). mark() calls it first; prepare calls it before a plan is
  // built. Thread-safe: concurrent markers wait until it is done.
  void discard_stale_marks();
  bool marks_stale() const { return marks_stale_.load(std::memory_order_acquire); }
  const LiveBitmap& begin_bits() const { return begin_; }
  const LiveBitmap& live_bits() const { return live_; }
  // A bit at every reference slot of every marked object, recorded by mark()
  // from visit_ref_offsets; the concurrent engine forwards slots from it.
  const LiveBitmap& ref_bits() const { return refs_; }

  // --- the cycle ----------------------------------------------------------------
  // Puts the regions in the new layout of `plan`: FRAGMENTED top = new_top
  // and its free tail offered to acquire_region, EMPTY (incl. dead large
  // objects' regions) -> FREE; DENSE and staying LARGE unchanged; a sliding
  // large object's old regions -> FREE, then its new ones LARGE_HEAD/TAIL
  // (those were FREE or EMPTY in the old layout). Only regions that were
  // RETIRED/LARGE when the plan was built are touched, so regions acquired
  // during concurrent compaction are left alone. Idempotent per plan.
  void adopt_layout(const NewLayout& plan);
  // O(1), for the flip's pause: the new layout of `plan` is adopted by the
  // first allocation call that follows (acquire_region, retire_region,
  // alloc_large take the allocation mutex and adopt it first), or at
  // complete_cycle, so allocation during compaction only sees memory free in
  // the new layout and the pause does not walk the region table.
  // (regions_free/bytes_allocated may show the old layout until then;
  // adopt_published() applies it for callers that report occupancy.)
  void publish_layout(const NewLayout& plan);
  // A cycle that moves nothing (api: flip_trivial) keeps the last layout
  // until its finish while it releases the memory of the regions it frees
  // or shrinks: their free tails, offered since the last cycle, are
  // withdrawn at its flip so that no allocation lands in memory about to
  // be released (found by fuzzing: objects allocated there read zero).
  void withdraw_tails(const NewLayout& plan);
  // Adopts a layout published at the flip and not adopted yet (O(regions);
  // for remap_heap_get_info, which a runtime calls right after the flip to
  // decide when to collect next).
  void adopt_published();
  // The end of a cycle: adopt_layout(plan) if not done yet, the marks
  // flagged stale (kept for forward() until the next cycle), cycles() + 1. The STW backend calls it at the end of its pause, the
  // concurrent engine at finish.
  void complete_cycle(const NewLayout& plan);
  uint64_t cycles() const { return cycles_.load(std::memory_order_acquire); }

  // MADV_DONTNEED [addr, addr+len) (page aligned, inside the heap): the pages
  // read as zero afterwards. Used for free pages after compaction.
  Status release_pages(uintptr_t addr, size_t len);

  // --- sizing (remap_heap_resize, remap_heap_trim) --------------------------------
  // The callers serialize these and keep them out of cycles (the API holds
  // the heap's cycle_mutex and checks the phase is IDLE).
  // Moves the capacity (a multiple of region_size in (0, max_capacity]).
  // Growing: the new regions are FREE (they hold no memory). Shrinking:
  // every dropped region must be FREE and unreserved (REMAP_EBUSY naming the
  // first that is not) and no black window open (REMAP_EPHASE); their memory
  // goes back to the OS after the change, outside the allocation mutex.
  Status resize(size_t capacity);
  // The smallest capacity resize accepts now (the capacity while a black
  // window is open).
  size_t min_capacity() const;
  // Returns the pages of every FREE region and of every retired region's
  // free tail (whole pages above its top) to the OS, holding the allocation
  // mutex (allocation waits; one madvise per run of free regions and per
  // tail). *bytes: the free bytes covered.
  Status release_free_regions(size_t* bytes);
  // Bytes of [base, base + capacity) backed by memory now (mincore).
  size_t committed_bytes() const;
  // Gives [addr, addr+len) (page aligned, in the reservation) back to the
  // OS: MADV_DONTNEED, or MADV_REMOVE once the heap lives on a file.
  Status return_memory(uintptr_t addr, size_t len);
  // The shared layouts (minor, sigsegv) put the heap on a memfd, where
  // MADV_DONTNEED only unmaps pages and the file keeps them.
  void set_file_backed() { file_backed_ = true; }

  // --- info ---------------------------------------------------------------------
  size_t regions_free() const;
  // Sum of region tops (large heads count their page-rounded size).
  size_t bytes_allocated() const;
  // The allocation mutex, for api/fork_guard.cpp only: held across fork() so
  // that a child never inherits it locked by a thread it does not have.
  std::mutex& fork_lock() const { return alloc_mutex_; }

  // Non-OK if some region is still ALLOCATING (prepare requires every region
  // retired: objects above an ALLOCATING region's top are unknown to us),
  // black regions excepted (their objects are walked after the flip).
  Status check_all_retired() const;

  // Large objects that slide beside running mutators (a cycle begun with
  // remap_cycle_begin; prepare does not stop them): a region FREE when the
  // plan classified it may be acquired before the plan is published. Under
  // the allocation mutex, `choose(free_now)` picks the slide (free_now(r):
  // region r is still FREE and unreserved) and returns the target regions;
  // those still FREE are reserved until adopt_layout or
  // release_reservations. Cheap: O(regions), once per prepare.
  template <class Choose>
  void reserve_slide(Choose choose) {
    std::lock_guard<std::mutex> g(alloc_mutex_);
    adopt_pending_locked();
    auto free_now = [this](size_t r) { return regions_[r].takeable(); };
    for (uint32_t r : choose(free_now)) {
      if (!free_now(r)) continue;
      regions_[r].reserved = true;
      reserved_.push_back(r);
    }
  }
  // A prepared plan is dropped without being adopted (cancelled, or prepare
  // failed after building it): its target regions are free for anyone again.
  void release_reservations();

  // --- the black window (remap_cycle_begin; libremap.h) ------------------------------
  // Opens it: every region must be retired (REMAP_EPHASE). Until it closes,
  // acquire_region hands out whole FREE regions only and flags them black,
  // alloc_large flags its regions black, and mark() ignores black objects.
  Status begin_cycle();
  bool black_window() const { return black_window_.load(std::memory_order_acquire); }
  // At the flip: every black region must be retired (REMAP_EPHASE, nothing
  // changed); closes the window and returns the black regions, ascending.
  // They stay flagged until end_black (the end of the cycle).
  Status close_black_window(std::vector<uint32_t>* regions);
  // Clears the flags (the regions of `regions` and any still listed) and the
  // window: at the end of a cycle, or when it is cancelled.
  void end_black(const std::vector<uint32_t>& regions);

 private:
  Heap() = default;
  Status init(const remap_heap_config& config);
  // REMAP_ENOMEM if a cycle's tables at `capacity` (and the region table for
  // the maximum) would exceed a quarter of physical memory.
  Status check_tables(size_t capacity, const char* what) const;
  // "; remap_heap_resize can grow it ..." for out-of-memory messages of a
  // heap below its maximum, else "".
  std::string growth_hint() const;
  size_t min_capacity_locked() const;
  // Region holding `a`, for marking: state-checked; sets *limit to the end of
  // allocated memory that an object starting at `a` may reach.
  Status locate_for_mark(uintptr_t a, size_t* region, uintptr_t* limit) const;
  // Records the slots of the object [obj, obj + size) (its live bits set)
  // from a visit whose every offset is checked. On a bad offset: undoes its
  // refs and live bits, *bad_offset = the offset, false.
  bool record_slots_checked(uintptr_t obj, size_t size, size_t* bad_offset);

  remap_heap_config config_{};
  os::Mapping mapping_;
  uintptr_t base_ = 0;
  std::atomic<size_t> capacity_{0};
  size_t max_capacity_ = 0;
  size_t max_region_count_ = 0;
  bool file_backed_ = false;
  size_t region_size_ = 0;
  unsigned region_shift_ = 0;
  size_t page_size_ = 0;
  unsigned page_shift_ = 0;
  // The region table: address space for max_region_count_ entries (zero
  // until touched), of which the first regions_made_ are constructed — the
  // most regions the heap has had — so that a large max_capacity costs
  // only what the heap used. Never moves: marking reads it without a lock.
  os::Mapping region_storage_;
  Region* regions_ = nullptr;
  std::atomic<size_t> regions_made_{0};
  void make_regions(size_t n);  // constructs entries up to n (resize, under alloc_mutex_)
  std::atomic<size_t> region_count_{0};  // capacity_ / region_size_
  LiveBitmap begin_;
  LiveBitmap live_;
  LiveBitmap refs_;

  mutable std::mutex alloc_mutex_;
  size_t free_hint_ = 0;                 // no unreserved FREE region below this index
  size_t free_ceiling_ = 0;              // ... nor at or above this one (set by init)
  // No region at or above small_top_ holds small objects (ALLOCATING or
  // RETIRED); an upper bound, brought down when read. No unreserved FREE
  // region lies in [hole_ceiling_, small_top_).
  size_t small_top_ = 0;
  size_t hole_ceiling_ = 0;
  // acquire_region's choice among free regions (see its policy), or
  // kNoFreeRegion; keeps the hints.
  size_t pick_free_region_locked();
  std::vector<uint32_t> reserved_;       // regions with Region::reserved set
  void release_reservations_locked();
  void note_free_locked(size_t r) {  // r became FREE (or unreserved): widen the hints
    free_hint_ = std::min(free_hint_, r);
    free_ceiling_ = std::max(free_ceiling_, r + 1);
    hole_ceiling_ = std::max(hole_ceiling_, r + 1);
  }
  bool compacting_ = false;                // set_compacting
  size_t free_taken_compacting_ = 0;       // FREE regions acquired while compacting
  size_t free_taken_last_ = 0;             // ... while the last cycle compacted
  std::vector<uint32_t> prefilled_;        // offered, in the order filled
  size_t next_prefilled_ = 0;              // next index into prefilled_
  std::vector<uint32_t> prefilling_;       // set aside, being filled
  size_t take_prefilled_locked();          // kNoFreeRegion if none waits
  std::vector<uint32_t> offered_tails_;  // compacted regions with an open tail, ascending
  size_t next_tail_ = 0;                 // next index into offered_tails_
  const NewLayout* adopted_plan_ = nullptr;   // the plan adopt_layout last applied
  const NewLayout* pending_plan_ = nullptr;   // published at the flip, not adopted yet
  void adopt_layout_locked(const NewLayout& plan);
  void free_region_locked(size_t r);  // FREE, top 0, not part of a large object
  void adopt_pending_locked() {
    if (pending_plan_) adopt_layout_locked(*std::exchange(pending_plan_, nullptr));
  }
  std::atomic<uint64_t> cycles_{0};  // read without a lock (event records)
  std::atomic<bool> marks_stale_{false};
  // A remap_try_mark mark not completed yet (a begin bit with no live bytes
  // behind it): clear_marks finds marks by their regions' live bytes, so it
  // must clear the whole bitmap then (found by fuzzing: a prepare refused,
  // or marks cleared before prepare, left such marks for the next cycle).
  // Loaded before it is stored: concurrent markers share the line to read.
  std::atomic<bool> deferred_marks_{false};
  void note_deferred_mark() noexcept {
    if (!deferred_marks_.load(std::memory_order_relaxed))
      deferred_marks_.store(true, std::memory_order_relaxed);
  }
  // A black region's mark is accepted and ignored, but only at an address
  // that could be an object start there (locate_for_mark's checks; a black
  // region still being allocated has no top yet, so only the alignment).
  Status check_black_mark(uintptr_t obj) const;
  std::atomic<bool> black_window_{false};
  std::vector<uint32_t> black_regions_;  // flagged in this window (alloc_mutex_)
  void make_black_locked(size_t r);
  std::mutex stale_mutex_;  // discard_stale_marks only
};

}  // namespace remap

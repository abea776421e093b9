// plan.h — the compaction plan: region classes, forwarding, and the per-page
// tables the concurrent engine produces pages from (docs/ARCHITECTURE.md,
// "Forwarding" and "Large objects").
//
// Built once at prepare from the heap's marks; read-only afterwards, so every
// query is lock-free, and forward()/first_object()/page_kind()/LiveCursor are
// async-signal-safe (plain loads, no allocation). Valid until the heap's
// complete_cycle() clears the marks (the plan reads the heap's live and begin
// bitmaps; it never copies them).
//
// Addresses are heap (to-space) addresses: old = an object's address before
// the cycle, new = after. The engine reads an old object's bytes at
// old + its own from-space delta.
//
// New layout, per region class:
//   FRAGMENTED: live objects in address order, packed from the region base,
//               [base, new_top) all live bytes, [new_top, region end) free.
//   DENSE:      unchanged, [base, top) (dead objects keep their bytes).
//   LARGE:      a live large object slides down, whole regions at a time,
//               into the lowest run of regions at or after the previous
//               large object's new end that holds nothing staying (free,
//               empty, or large objects' old regions), keeping the large
//               objects' order (ARCHITECTURE.md, "Large objects"). Its pages are moved, not
//               rebuilt: page i of the new object is page i of the old one
//               with its reference slots forwarded. Regions of small objects
//               that stay (DENSE, FRAGMENTED) are never crossed into.
//               REMAP_HEAP_PIN_LARGE keeps every large object where it is.
//   EMPTY:      all free.
// Free bytes read as zero after the cycle.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/status.h"
#include "heap/heap.h"
#include "heap/region.h"
#include "heap/live_bitmap.h"
#include "heap/new_layout.h"

namespace remap {

// What a to-space page holds after compaction.
enum class PageKind : uint8_t {
  EMPTY = 0,       // no data: install a zero page (incl. pages at/after a region's new top)
  DENSE = 1,       // same bytes as before, references updated in place
  FRAGMENTED = 2,  // built from objects slid down from this page or later pages of its region
  LARGE = 3,       // a page of a live large object: the same page of the old object,
                   // slid to the object's new place, references updated
  BLACK = 4,       // a page of a black region: same bytes, slots found by walking
                   // its objects (plan/black_walk.h) from first_object
};
const char* page_kind_name(PageKind k);

// A live object in the old layout.
struct LiveObject {
  uintptr_t old_addr = 0;
  size_t size = 0;
};

class Plan;

// What forwarding needs of one 512-byte chunk of a FRAGMENTED region, in
// one place: the chunk's live and begin bitmap words and the
// live bytes before it in its region. A slot's value is checked (a marked
// start?) and forwarded with one cache line instead of three tables (the
// begin bitmap, the live bitmap, the prefix sums: three misses per slot on
// random references, measured as most of page production). As ART's
// concurrent mark-compact interleaves its live-words bitmap with its
// chunk offsets. 32 bytes: two chunks a line, never straddling one.
struct alignas(32) ChunkForward {
  uint64_t live;    // live bitmap word of the chunk (frozen from prepare to finish)
  uint64_t begin;   // begin bitmap word of the chunk
  uint32_t prefix;  // live bytes before the chunk within its region
};
static_assert(sizeof(ChunkForward) == 32, "two chunks per cache line");

// Walks live objects in address order from the bitmaps alone (no header
// reads): an object starts at a begin bit and ends at the next begin bit or
// the end of its run of live bits, whichever comes first.
// Async-signal-safe. Usage:  for (LiveCursor c(plan, from, to); c.next(&o);)
class LiveCursor {
 public:
  // Objects whose old start is in [from, limit). `from` need not be an object
  // start (the first begin bit at or after it is used); both in one region,
  // or, for a large object, from its start.
  LiveCursor(const Plan& plan, uintptr_t from, uintptr_t limit);
  bool next(LiveObject* out);

 private:
  const Plan* plan_;
  uintptr_t pos_;
  uintptr_t limit_;
  bool pos_is_start_ = false;  // pos_ is known to be the next object's begin bit
};

class Plan final : public NewLayout {
 public:
  // Classifies regions and computes forwarding and the page tables from the
  // heap's marks (O(heap) bitmap scans, no object reads). Slot offsets were
  // already checked by Heap::mark. With REMAP_HEAP_VERIFY_REFS it also reads
  // every recorded slot and checks that forward_value would count none as
  // stray (REMAP_EOBJMODEL naming the first one otherwise). Requires every
  // region retired (REMAP_EPHASE otherwise).
  static Status build(Heap& heap, std::unique_ptr<Plan>* out);

  const Heap& heap() const { return *heap_; }
  uintptr_t base() const { return base_; }
  size_t capacity() const { return capacity_; }
  bool in_heap(uintptr_t a) const { return a - base_ < capacity_; }

  // --- forwarding ---------------------------------------------------------------
  // New address of the live object that started at `old`. Unchecked: `old`
  // must be a live object start or outside the heap (returned unchanged);
  // anything else gives an unspecified in-region address. O(1), lock-free,
  // async-signal-safe.
  uintptr_t forward(uintptr_t old) const noexcept {
    uintptr_t off = old - base_;
    if (off >= capacity_) return old;
    size_t r = off >> region_shift_;
    const RegionClass c = region_class_[r];
    if (c != RegionClass::FRAGMENTED)
      return c == RegionClass::LARGE ? old + large_delta_[r] : old;  // the page table
    return forward_in_chunk(off, r, chunks_[off >> LiveBitmap::kChunkShift]);
  }
  // Checked variant for the C API: REMAP_EINVAL if `old` is inside the heap
  // but not the start of a live object. Outside the heap: *out = old.
  Status forward_checked(uintptr_t old, uintptr_t* out) const;

  // The new value of a reference slot holding `v` — the one rule every
  // producer (GC workers, faulting mutators, stw, large-object pages) and
  // remap_forward_value apply. `v` is decoded with the heap's reference
  // encoding (remap_heap_config.ref_*): a reference to a live object start
  // is forwarded and keeps its tag bits. Anything else comes back unchanged:
  // immediates, NULL and values outside the heap, and in-heap addresses
  // that are not a live object start; those last are counted in *stray
  // when they point into a region that is not DENSE (memory that moves or
  // is freed this cycle; a DENSE region keeps every byte where it is, so
  // the unchanged value still means what it meant). Async-signal-safe.
  uint64_t forward_value(uint64_t v, uint64_t* stray) const noexcept {
    if ((v & check_mask_) != check_value_) return v;  // an immediate
    const uintptr_t a = uintptr_t(v & ~tag_mask_);
    const uintptr_t off = a - base_;
    if (off >= capacity_) return v;
    const size_t r = off >> region_shift_;
    const RegionClass c = region_class_[r];
    if (c == RegionClass::DENSE || c == RegionClass::BLACK) return v;
    if (c == RegionClass::FRAGMENTED) {
      // The check and the forwarding from one chunk entry (one miss).
      const ChunkForward& cf = chunks_[off >> LiveBitmap::kChunkShift];
      const unsigned bit = unsigned(off >> LiveBitmap::kWordShift) & 63;
      if ((a & 7) || !((cf.begin >> bit) & 1)) {
        ++*stray;
        return v;
      }
      return uint64_t(forward_in_chunk(off, r, cf)) | (v & tag_mask_);
    }
    if ((a & 7) || !begin_->test(a)) {  // LARGE or EMPTY
      ++*stray;
      return v;
    }
    return uint64_t(forward(a)) | (v & tag_mask_);
  }
  // Starts loading what forward_value(v) will read (the chunk entry of v's
  // address), so that a batch of slots pays its cache misses in parallel.
  void prefetch_value(uint64_t v) const noexcept {
    const uintptr_t off = uintptr_t(v & ~tag_mask_) - base_;
    if (off < capacity_) __builtin_prefetch(&chunks_[off >> LiveBitmap::kChunkShift]);
  }
  // Whether `v` decodes as a reference (passes the encoding's check).
  bool is_reference(uint64_t v) const { return (v & check_mask_) == check_value_; }

  // --- regions --------------------------------------------------------------------
  RegionClass region_class(size_t r) const override { return region_class_[r]; }
  // End of the region's data in the new layout (absolute address): base +
  // live bytes for FRAGMENTED, base + top for DENSE, base for EMPTY; for a
  // LARGE head base + the object's page-rounded size (past the head region
  // when the object spans several), for a LARGE tail the end of the part of
  // the object in that region — for LARGE, in the object's OLD regions: its
  // new place is large_delta() bytes away.
  uintptr_t new_top(size_t r) const override { return new_top_[r]; }
  // One past the last live word of region r in the OLD layout (region base if
  // none): from-space bytes at or after it are never needed. For a LARGE head
  // the whole object's end (like new_top), for a tail the part in it.
  uintptr_t live_end(size_t r) const { return live_end_[r]; }
  // Live bytes marked in region r (for LARGE: in the head; 0 in tails).
  size_t live_bytes(size_t r) const { return live_bytes_[r]; }
  // Top of region r when the plan was built (old layout).
  size_t old_top(size_t r) const { return old_top_[r]; }
  // The region's RegionState when the plan was built.
  RegionState old_state(size_t r) const override { return old_state_[r]; }
  size_t region_count() const override { return region_class_.size(); }

  // --- large objects -----------------------------------------------------------------
  // The page forwarding table, one entry per region: for each region of a
  // live large object (head and tails, old layout) new - old in bytes (0 if
  // it stays, a negative multiple of region_size if it slides); 0 elsewhere.
  intptr_t large_delta(size_t r) const { return large_delta_[r]; }
  // The large objects that slide, in address order (old and new).
  const std::vector<LargeMove>& large_moves() const override { return large_moves_; }

  // --- packing (REMAP_HEAP_EVACUATE) -------------------------------------------------
  // A FRAGMENTED region's survivors form one block, in address order, that
  // starts at pack_dest(r): the region's own base unless it is evacuated.
  // A destination region d holds its own block first (at its base), then
  // the blocks of pack_next(d), pack_next(pack_next(d)), ... (kNoRegion
  // ends the chain), each right after the previous: new_top(d) is the end of
  // the last. An evacuated region's new_top is its base (free after the
  // cycle). Destinations precede their sources, so data only moves down.
  static constexpr uint32_t kNoRegion = UINT32_MAX;
  uintptr_t pack_dest(size_t r) const { return pack_dest_[r]; }
  uint32_t pack_next(size_t r) const { return pack_next_[r]; }
  bool evacuated(size_t r) const {
    return region_class_[r] == RegionClass::FRAGMENTED && pack_dest_[r] != heap_->region_base(r);
  }
  uint64_t regions_evacuated() const { return n_evacuated_; }
  // For a region that a sliding large object occupies in the NEW layout: the
  // end of the object's bytes in it (absolute); 0 for every other region.
  // Bytes of such a region past it are free after the cycle.
  uintptr_t large_new_end(size_t r) const { return large_new_end_[r]; }

  // --- pages (to-space, index = (addr - base) >> page_shift) ------------------------
  PageKind page_kind(size_t page) const { return page_kind_[page]; }
  // OLD address of the first live object overlapping to-space page `page` in
  // the NEW layout, 0 if none: FRAGMENTED — the object whose new range covers
  // the page start, else the first one starting in the page; DENSE — the first
  // live object overlapping the page (0 for a page holding only dead bytes);
  // LARGE — the large object's start; EMPTY — 0.
  uintptr_t first_object(size_t page) const { return first_object_[page]; }
  size_t page_count() const { return page_kind_.size(); }

  // --- objects --------------------------------------------------------------------
  // Size of the live object at `old` (a begin bit must be set there), from the
  // bitmaps (large objects: from the stored marked size). Async-signal-safe.
  size_t size_of_live(uintptr_t old) const;
  // Live objects of region r in address order (a LARGE head: its object; a
  // LARGE tail: none).
  LiveCursor objects(size_t r) const;
  bool is_live_start(uintptr_t old) const {
    return in_heap(old) && (old & 7) == 0 && begin_->test(old);
  }

  // --- totals -----------------------------------------------------------------------
  uint64_t live_bytes_total() const { return live_total_; }
  uint64_t regions_dense() const { return n_dense_; }
  uint64_t regions_fragmented() const { return n_fragmented_; }
  uint64_t regions_empty() const { return n_empty_; }  // regions RETIRED/LARGE at prepare only
  uint64_t regions_large() const { return n_large_; }  // large objects (heads), not regions
  uint64_t large_objects_moved() const { return large_moves_.size(); }

  // --- black regions (remap_cycle_begin) ---------------------------------------------
  // At the flip, with the heap's black window closed: every region of
  // `regions` (Heap::close_black_window) becomes BLACK — it stays where it
  // is, its pages [base, base + top) are BLACK pages whose first_object is
  // where their walk starts (the region base, or a large object's head),
  // the rest EMPTY. O(those regions' pages), in the pause; the plan is not
  // read by anyone else then (no fault delivery yet, forwarding of BLACK
  // regions is the identity either way).
  void patch_black(const std::vector<uint32_t>& regions);
  const std::vector<uint32_t>& black_regions() const override { return black_regions_; }
  uint64_t regions_black() const { return n_black_; }
  // No object changes address this cycle (no FRAGMENTED region, no large
  // object slides): every reference keeps its value, so no page needs
  // producing; only EMPTY regions' memory is freed.
  bool nothing_moves() const { return n_fragmented_ == 0 && large_moves_.empty(); }
  uint64_t build_ns() const { return build_ns_; }      // whole build, incl. validation
  uint64_t validate_ns() const { return validate_ns_; }  // the object-model validation pass
  uint64_t objects_live() const { return n_objects_; }

 private:
  friend class LiveCursor;
  // New address of the live object at heap offset `off` of FRAGMENTED
  // region r: the region base, the live bytes before its chunk, and the live
  // words before it in the chunk.
  uintptr_t forward_in_chunk(uintptr_t off, size_t r, const ChunkForward& cf) const noexcept {
    const unsigned bit = unsigned(off >> LiveBitmap::kWordShift) & 63;
    return pack_dest_[r] + cf.prefix +
           (size_t(popcount64(cf.live & ((uint64_t(1) << bit) - 1))) << LiveBitmap::kWordShift);
  }
  Plan() = default;
  Status classify();
  // `free_now(r)`: region r, FREE when classified, is still free to take.
  // Returns the regions the sliding objects land on.
  template <class FreeNow>
  std::vector<uint32_t> slide_large_objects(FreeNow free_now);
  void pack_regions();
  void build_forwarding();
  void build_page_tables();
  Status validate_object_model();
  // End of the object starting at `old` inside [old, limit).
  uintptr_t object_end(uintptr_t old, uintptr_t limit) const;

  const Heap* heap_ = nullptr;
  uint64_t tag_mask_ = 0, check_mask_ = 0, check_value_ = 0;  // the reference encoding
  const LiveBitmap* live_ = nullptr;
  const LiveBitmap* begin_ = nullptr;
  uintptr_t base_ = 0;
  size_t capacity_ = 0;
  unsigned region_shift_ = 0;
  unsigned page_shift_ = 0;

  std::vector<RegionClass> region_class_;
  std::vector<RegionState> old_state_;
  std::vector<uintptr_t> new_top_;
  std::vector<uintptr_t> live_end_;
  std::vector<size_t> live_bytes_;
  std::vector<size_t> old_top_;
  // Per 512-byte chunk (ChunkForward; filled for FRAGMENTED regions only,
  // and only those are read). Not value-initialized: the pages of chunks
  // of other regions are never touched. uint32 prefix: regions <= 1 GiB.
  std::unique_ptr<ChunkForward[]> chunks_;
  std::vector<intptr_t> large_delta_;
  std::vector<uintptr_t> large_new_end_;
  std::vector<LargeMove> large_moves_;
  std::vector<uintptr_t> pack_dest_;  // per region: where its survivors' block starts
  std::vector<uint32_t> pack_next_;   // per region: the next block in the same destination
  std::vector<uint32_t> black_regions_;
  std::vector<PageKind> page_kind_;
  std::vector<uintptr_t> first_object_;

  uint64_t live_total_ = 0;
  uint64_t n_dense_ = 0, n_fragmented_ = 0, n_empty_ = 0, n_large_ = 0, n_black_ = 0;
  uint64_t n_evacuated_ = 0;
  uint64_t build_ns_ = 0, validate_ns_ = 0, n_objects_ = 0;
};

}  // namespace remap

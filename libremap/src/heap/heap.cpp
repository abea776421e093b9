// heap.cpp — the heap's reservation, region hand-out, large objects, marking
// and the end-of-cycle region update (see heap.h for the invariants).
#include "heap/heap.h"

#include <algorithm>
#include <bit>
#include <new>
#include <type_traits>

#include "os/residency.h"

namespace remap {

const char* region_state_name(RegionState s) {
  switch (s) {
    case RegionState::FREE: return "FREE";
    case RegionState::ALLOCATING: return "ALLOCATING";
    case RegionState::RETIRED: return "RETIRED";
    case RegionState::LARGE_HEAD: return "LARGE_HEAD";
    case RegionState::LARGE_TAIL: return "LARGE_TAIL";
  }
  return "?";
}

Status Heap::create(const remap_heap_config& config, std::unique_ptr<Heap>* out) {
  std::unique_ptr<Heap> h(new Heap());
  Status s = h->init(config);
  if (!s) return s;
  *out = std::move(h);
  return Status::ok();
}

Heap::~Heap() = default;

Status Heap::init(const remap_heap_config& config) {
  page_size_ = os::page_size();
  page_shift_ = unsigned(std::countr_zero(page_size_));
  Status s = validate_config(config, page_size_, &config_);
  if (!s) return s;
  const size_t capacity = config_.capacity;
  max_capacity_ = config_.max_capacity;
  region_size_ = config_.region_size;
  region_shift_ = unsigned(std::countr_zero(region_size_));

  // Size-dependent tables are refused up front, before anything is
  // allocated: a capacity the machine cannot index must fail in
  // microseconds with a message, not take seconds and gigabytes to fail (or
  // get the process killed). A quarter of physical memory is the bound.
  if (Status t = check_tables(capacity, "capacity"); !t) return t;

  // A whole number of GiB, GiB aligned, so that the flip's mremap
  // (and from-space, mapped the same way) moves page tables at PUD level.
  // The whole maximum is reserved now: growing never moves the heap.
  size_t map_size = (max_capacity_ + kMapAlign - 1) & ~(kMapAlign - 1);
  s = os::reserve_aligned(map_size, kMapAlign, PROT_READ | PROT_WRITE, &mapping_);
  if (!s) return s;
  base_ = uintptr_t(mapping_.addr());

  max_region_count_ = max_capacity_ >> region_shift_;
  capacity_.store(capacity, std::memory_order_relaxed);
  region_count_.store(capacity >> region_shift_, std::memory_order_relaxed);
  free_ceiling_ = capacity >> region_shift_;
  static_assert(std::is_trivially_destructible_v<Region>, "the region table is never destructed");
  const size_t table = (max_region_count_ * sizeof(Region) + page_size_ - 1) & ~(page_size_ - 1);
  if (!(s = os::map_anonymous(table, &region_storage_))) return s;
  regions_ = reinterpret_cast<Region*>(region_storage_.data());
  make_regions(capacity >> region_shift_);
  // Address space for the maximum (zero until marked): marking threads read
  // the bitmaps without a lock, so they never move.
  if (!(s = begin_.init(base_, max_capacity_))) return s;
  if (!(s = live_.init(base_, max_capacity_))) return s;
  if (!(s = refs_.init(base_, max_capacity_))) return s;
  return Status::ok();
}

void Heap::make_regions(size_t n) {
  const size_t made = regions_made_.load(std::memory_order_relaxed);
  for (size_t r = made; r < n; ++r) new (&regions_[r]) Region();
  if (n > made) regions_made_.store(n, std::memory_order_release);
}

Status Heap::check_tables(size_t capacity, const char* what) const {
  const size_t tables = table_bytes(capacity, region_size_, page_size_);
  const size_t phys = os::physical_memory();
  if (phys && tables > phys / 4)
    return fail(REMAP_ENOMEM,
                "%s %zu bytes needs about %zu MiB of tables per cycle (region table, "
                "forwarding and page tables), more than a quarter of this machine's %zu MiB of "
                "memory: choose a smaller %s",
                what, capacity, tables >> 20, phys >> 20, what);
  return Status::ok();
}

// --- allocation ------------------------------------------------------------------

Status Heap::acquire_region(uintptr_t* start, uintptr_t* end) {
  std::lock_guard<std::mutex> g(alloc_mutex_);
  adopt_pending_locked();
  const bool black = black_window_.load(std::memory_order_relaxed);
  // In the black window only whole free regions: a tail would put black
  // objects in a region the plan may compact.
  while (!black && next_tail_ < offered_tails_.size()) {
    size_t r = offered_tails_[next_tail_++];
    Region& reg = regions_[r];
    if (!reg.tail_offered || reg.get_state() != RegionState::RETIRED) continue;
    reg.tail_offered = false;
    size_t top = reg.top.load(std::memory_order_relaxed);
    if (region_size_ - top < region_size_ / 4) continue;
    reg.set_state(RegionState::ALLOCATING);
    *start = region_base(r) + top;
    *end = region_base(r) + region_size_;
    return Status::ok();
  }
  size_t r = take_prefilled_locked();
  if (r == kNoFreeRegion) r = pick_free_region_locked();
  if (r != kNoFreeRegion && compacting_) free_taken_compacting_++;
  if (r == kNoFreeRegion)
    return fail(REMAP_ENOMEM, "no free region left (capacity %zu bytes, %zu regions of %zu%s)",
                capacity(), region_count(), region_size_, growth_hint().c_str());
  Region& reg = regions_[r];
  reg.top.store(0, std::memory_order_relaxed);
  reg.tail_offered = false;
  if (black) make_black_locked(r);
  reg.set_state(RegionState::ALLOCATING);
  small_top_ = std::max(small_top_, r + 1);
  *start = region_base(r);
  *end = region_base(r) + region_size_;
  return Status::ok();
}

size_t Heap::take_prefilled_locked() {
  while (next_prefilled_ < prefilled_.size()) {
    const size_t r = prefilled_[next_prefilled_++];
    Region& reg = regions_[r];
    if (reg.prefill != Region::Prefill::filled) continue;  // alloc_large took it
    reg.prefill = Region::Prefill::none;
    if (reg.get_state() == RegionState::FREE && !reg.reserved) return r;
    note_free_locked(r);
  }
  return kNoFreeRegion;
}

size_t Heap::prefill_wanted(size_t cap) const {
  std::lock_guard<std::mutex> g(alloc_mutex_);
  if (!compacting_) return 0;
  const size_t waiting = prefilled_.size() - next_prefilled_ + prefilling_.size();
  // No more than a 32nd of the heap set aside: alloc_large cannot use a
  // region being filled.
  cap = std::min(cap, std::max<size_t>(1, region_count() / 32));
  const size_t want = free_taken_last_ ? cap : std::min(cap, free_taken_compacting_);
  return want > waiting ? want - waiting : 0;
}

size_t Heap::take_region_to_prefill() {
  std::lock_guard<std::mutex> g(alloc_mutex_);
  if (!compacting_ || black_window_.load(std::memory_order_relaxed)) return kNoFreeRegion;
  const size_t r = pick_free_region_locked();
  if (r == kNoFreeRegion) return r;
  regions_[r].prefill = Region::Prefill::filling;
  prefilling_.push_back(uint32_t(r));
  return r;
}

void Heap::offer_prefilled(size_t r) {
  std::lock_guard<std::mutex> g(alloc_mutex_);
  prefilling_.erase(std::find(prefilling_.begin(), prefilling_.end(), uint32_t(r)));
  regions_[r].prefill = Region::Prefill::filled;
  prefilled_.push_back(uint32_t(r));
}

void Heap::end_prefill() {
  std::lock_guard<std::mutex> g(alloc_mutex_);
  for (auto* list : {&prefilling_, &prefilled_}) {
    for (size_t i = list == &prefilled_ ? next_prefilled_ : 0; i < list->size(); i++) {
      const size_t r = (*list)[i];
      if (regions_[r].prefill == Region::Prefill::none) continue;
      regions_[r].prefill = Region::Prefill::none;
      note_free_locked(r);
    }
    list->clear();
  }
  next_prefilled_ = 0;
}

size_t Heap::pick_free_region_locked() {
  const size_t n = region_count();
  const size_t ceiling = std::min(free_ceiling_, n);
  // small_top_ is an upper bound: bring it down to the highest region that
  // holds small objects (amortized O(1): it only rises by acquisition).
  while (small_top_ > 0) {
    const RegionState st = regions_[small_top_ - 1].get_state();
    if (st == RegionState::RETIRED || st == RegionState::ALLOCATING) break;
    --small_top_;
  }
  if (small_top_ == 0) {
    // No small-object region: the highest free region, the heap's top.
    for (size_t r = ceiling; r-- > free_hint_;) {
      if (!regions_[r].takeable()) continue;
      free_ceiling_ = r;  // none above r
      hole_ceiling_ = r;
      return r;
    }
    free_ceiling_ = free_hint_;
    return kNoFreeRegion;
  }
  // A hole in the small-object area: the highest free region below its top.
  for (size_t r = std::min({ceiling, hole_ceiling_, small_top_}); r-- > free_hint_;) {
    if (!regions_[r].takeable()) continue;
    hole_ceiling_ = r;
    return r;
  }
  // None below it: the area grows upward by its lowest free neighbour, so
  // that the free regions at the end of the heap stay free for as long as
  // possible (remap_heap_resize drops only those).
  free_hint_ = std::max(free_hint_, small_top_);
  hole_ceiling_ = free_hint_;
  for (size_t r = free_hint_; r < ceiling; ++r)
    if (regions_[r].takeable()) return r;
  free_ceiling_ = free_hint_;
  return kNoFreeRegion;
}

std::string Heap::growth_hint() const {
  const size_t cap = capacity();
  if (cap >= max_capacity_) return "";
  char buf[96];
  snprintf(buf, sizeof buf, "; remap_heap_resize can grow it to max_capacity %zu", max_capacity_);
  return buf;
}

Status Heap::retire_region(uintptr_t start, uintptr_t cursor) {
  if (!contains(start))
    return fail(REMAP_EINVAL, "start %#zx is not inside the heap [%#zx, %#zx)", size_t(start),
                size_t(base_), size_t(end()));
  std::lock_guard<std::mutex> g(alloc_mutex_);
  adopt_pending_locked();
  size_t r = region_index(start);
  Region& reg = regions_[r];
  uintptr_t rb = region_base(r);
  if (reg.get_state() != RegionState::ALLOCATING)
    return fail(REMAP_EINVAL, "region %zu at %#zx is %s, not acquired", r, size_t(rb),
                region_state_name(reg.get_state()));
  size_t top = reg.top.load(std::memory_order_relaxed);
  if (start != rb + top)
    return fail(REMAP_EINVAL, "start %#zx is not what remap_region_acquire returned (%#zx)",
                size_t(start), size_t(rb + top));
  if (cursor < start || cursor > rb + region_size_ || (cursor & 7))
    return fail(REMAP_EINVAL,
                "cursor %#zx must be 8-aligned and within [start %#zx, region end %#zx]",
                size_t(cursor), size_t(start), size_t(rb + region_size_));
  size_t new_top = cursor - rb;
  reg.top.store(new_top, std::memory_order_release);
  if (new_top == 0) {
    reg.set_state(RegionState::FREE);
    note_free_locked(r);
  } else {
    reg.set_state(RegionState::RETIRED);
  }
  return Status::ok();
}

Status Heap::alloc_large(size_t size, uintptr_t* out) {
  if (size < config_.large_object_threshold)
    return fail(REMAP_EINVAL,
                "size %zu is below large_object_threshold %zu: allocate it in a region",
                size, config_.large_object_threshold);
  if (size > capacity())
    return fail(REMAP_ENOMEM, "size %zu exceeds the heap capacity %zu%s", size, capacity(),
                growth_hint().c_str());
  size_t bytes = (size + page_size_ - 1) & ~(page_size_ - 1);
  size_t n = (bytes + region_size_ - 1) >> region_shift_;
  std::lock_guard<std::mutex> g(alloc_mutex_);
  adopt_pending_locked();
  size_t run = 0;
  const size_t nregions = region_count();
  for (size_t r = free_hint_; r < nregions; ++r) {
    if (!regions_[r].takeable_for_large()) {
      run = 0;
      continue;
    }
    if (++run < n) continue;
    size_t head = r + 1 - n;
    for (size_t t = head; t <= r; ++t) regions_[t].prefill = Region::Prefill::none;
    for (size_t t = head + 1; t <= r; ++t) {
      regions_[t].top.store(0, std::memory_order_relaxed);
      regions_[t].large_head = uint32_t(head);
      regions_[t].tail_offered = false;
      regions_[t].set_state(RegionState::LARGE_TAIL);
    }
    Region& h = regions_[head];
    if (black_window_.load(std::memory_order_relaxed)) {
      for (size_t t = head; t <= r; ++t) make_black_locked(t);
    }
    h.top.store(bytes, std::memory_order_relaxed);
    h.large_head = uint32_t(head);
    h.large_regions = uint32_t(n);
    h.tail_offered = false;
    h.set_state(RegionState::LARGE_HEAD);
    if (head == free_hint_) free_hint_ = r + 1;
    *out = region_base(head);
    return Status::ok();
  }
  // Say whether the heap is full or fragmented: the runtime's next step differs.
  size_t free = 0, longest = 0;
  for (size_t r = 0, cur = 0; r < nregions; ++r) {
    const bool f = regions_[r].takeable();
    cur = f ? cur + 1 : 0;
    free += f;
    longest = std::max(longest, cur);
  }
  return fail(REMAP_ENOMEM,
              "no run of %zu contiguous free regions for a large object of %zu bytes (%zu of %zu "
              "regions free, the longest run %zu%s)",
              n, size, free, nregions, longest, growth_hint().c_str());
}

// --- marking ----------------------------------------------------------------------

Status Heap::locate_for_mark(uintptr_t a, size_t* region, uintptr_t* limit) const {
  if (a & 7) return fail(REMAP_EINVAL, "object %#zx is not 8-byte aligned", size_t(a));
  if (!contains(a))
    return fail(REMAP_EINVAL, "object %#zx is not inside the heap [%#zx, %#zx)", size_t(a),
                size_t(base_), size_t(end()));
  size_t r = region_index(a);
  const Region& reg = regions_[r];
  uintptr_t rb = region_base(r);
  RegionState st = reg.get_state();
  size_t top = reg.top.load(std::memory_order_acquire);
  switch (st) {
    case RegionState::RETIRED:
    case RegionState::ALLOCATING:
      if (a >= rb + top)
        return fail(REMAP_EINVAL,
                    "object %#zx is above its region's allocated top %#zx (region %zu, %s): "
                    "not allocated memory",
                    size_t(a), size_t(rb + top), r, region_state_name(st));
      break;
    case RegionState::LARGE_HEAD:
      if (a != rb)
        return fail(REMAP_EINVAL, "object %#zx is inside the large object at %#zx, not its start",
                    size_t(a), size_t(rb));
      break;
    case RegionState::LARGE_TAIL:
      return fail(REMAP_EINVAL, "object %#zx is inside the large object at %#zx, not its start",
                  size_t(a), size_t(region_base(reg.large_head)));
    case RegionState::FREE:
      return fail(REMAP_EINVAL, "object %#zx is in free region %zu: not allocated memory",
                  size_t(a), r);
  }
  *region = r;
  *limit = rb + top;
  return Status::ok();
}

namespace {
// Checks each reported slot offset and keeps the first kKept of them, so
// that the slots of an accepted mark can be recorded without a second visit.
struct SlotOffsetCheck {
  static constexpr size_t kKept = 64;
  size_t size = 0;
  bool bad = false;
  size_t bad_offset = 0;
  size_t n = 0;
  uint32_t kept[kKept];
  static void visit(void* vctx, size_t off) {
    auto* c = static_cast<SlotOffsetCheck*>(vctx);
    if (!c->bad && (off >= c->size || c->size - off < 8 || (off & 7))) {
      c->bad = true;
      c->bad_offset = off;
    }
    if (c->n < kKept) c->kept[c->n] = uint32_t(off);
    c->n++;
  }
};

// The second visit, for objects with more slots than SlotOffsetCheck keeps.
// The runtime's answers are checked again: a callback that reported good
// offsets the first time may not the second (trusting it once wrote the
// refs bitmap out of bounds), so a bad offset is never recorded.
struct SlotRecorder {
  LiveBitmap* refs;
  uintptr_t obj;
  size_t size;
  bool bad = false;
  size_t bad_offset = 0;
  static void visit(void* vctx, size_t off) {
    auto* c = static_cast<SlotRecorder*>(vctx);
    if (c->bad) return;
    if (off >= c->size || c->size - off < 8 || (off & 7)) {
      c->bad = true;
      c->bad_offset = off;
      return;
    }
    c->refs->test_and_set(c->obj + off);
  }
};
}  // namespace

Status Heap::mark(uintptr_t obj) {
  if (marks_stale_.load(std::memory_order_acquire)) discard_stale_marks();
  // A black object is live by construction and never moves this cycle: its
  // mark is accepted and ignored (a tracer may reach new objects).
  if (contains(obj) && regions_[region_index(obj)].black.load(std::memory_order_acquire))
    return check_black_mark(obj);
  size_t r = 0;
  uintptr_t limit = 0;
  Status s = locate_for_mark(obj, &r, &limit);
  if (!s) return s;
  // Already marked, its size read and its slots recorded. A begin bit with
  // no live bit is remap_try_mark's, taken on faith until prepare: the
  // checks below run (the fuzzers found an interior address passing
  // remap_mark unchecked after a try_mark of it).
  if (begin_.test(obj) && live_.test(obj)) return Status::ok();
  size_t size = config_.model.object_size(config_.model.ctx, reinterpret_cast<const void*>(obj));
  if (size == 0 || (size & 7))
    return fail(REMAP_EOBJMODEL, "object_size(%#zx) returned %zu: must be a non-zero multiple of 8",
                size_t(obj), size);
  if (size > limit - obj)
    return fail(REMAP_EOBJMODEL,
                "object_size(%#zx) returned %zu: the object would run past allocated memory "
                "at %#zx",
                size_t(obj), size, size_t(limit));
  // The object's slots are visited here, where the runtime already pays for
  // reading the object: their offsets are checked (so compaction never meets
  // a slot outside its object) and recorded in the refs bitmap, so that
  // producing a page is a memmove plus a bit scan, with no callback per
  // object while mutators wait.
  SlotOffsetCheck chk;
  chk.size = size;
  if (config_.model.visit_ref_offsets) {
    config_.model.visit_ref_offsets(config_.model.ctx, reinterpret_cast<const void*>(obj),
                                    &SlotOffsetCheck::visit, &chk);
    if (chk.bad)
      return fail(REMAP_EOBJMODEL,
                  "visit_ref_offsets(%#zx) reported offset %zu: outside the object (%zu bytes) "
                  "or not 8-byte aligned",
                  size_t(obj), chk.bad_offset, size);
  }
  // Set already: a concurrent mark of the same object, or a try_mark's
  // (prepare completes it).
  if (begin_.test_and_set(obj)) return Status::ok();
  // A begin bit inside the object is another mark (remap_try_mark's, which
  // sets no live bits) at an interior address: both sides set their bit
  // first and look for the other's second (seq_cst RMWs), so one sees it.
  bool overlaps = !live_.set_range_exclusive(obj, obj + size);
  if (!overlaps && begin_.find_next_set(obj + 8, obj + size) < obj + size) {
    live_.clear_range_atomic(obj, obj + size);  // ours alone: set exclusively just above
    overlaps = true;
  }
  if (overlaps) {
    begin_.clear_bit(obj);
    return fail(REMAP_EINVAL,
                "object %#zx (%zu bytes) overlaps another marked object: only object starts "
                "may be marked",
                size_t(obj), size);
  }
  if (chk.n <= SlotOffsetCheck::kKept) {
    for (size_t i = 0; i < chk.n; i++) refs_.test_and_set(obj + chk.kept[i]);
  } else {
    size_t bad_offset = 0;
    if (!record_slots_checked(obj, size, &bad_offset)) {
      begin_.clear_bit(obj);
      return fail(REMAP_EOBJMODEL,
                  "visit_ref_offsets(%#zx) reported offset %zu on its second visit: outside the "
                  "object (%zu bytes) or not 8-byte aligned (the first visit reported other "
                  "offsets: callbacks must answer the same every time)",
                  size_t(obj), bad_offset, size);
    }
  }
  regions_[r].live_bytes.fetch_add(size, std::memory_order_relaxed);
  return Status::ok();
}

bool Heap::record_slots_checked(uintptr_t obj, size_t size, size_t* bad_offset) {
  if (!config_.model.visit_ref_offsets) return true;
  SlotRecorder rec{&refs_, obj, size};
  config_.model.visit_ref_offsets(config_.model.ctx, reinterpret_cast<const void*>(obj),
                                  &SlotRecorder::visit, &rec);
  if (!rec.bad) return true;
  // Undo: [obj, obj + size) is ours alone (its live bits were set
  // exclusively), so the refs bits in it are this mark's; words at its edges
  // are shared with neighbours being marked, hence the atomic clear.
  refs_.clear_range_atomic(obj, obj + size);
  live_.clear_range_atomic(obj, obj + size);
  *bad_offset = rec.bad_offset;
  return false;
}

Status Heap::try_mark(uintptr_t obj, int* newly) {
  if (marks_stale_.load(std::memory_order_acquire)) discard_stale_marks();
  if (contains(obj) && regions_[region_index(obj)].black.load(std::memory_order_acquire)) {
    *newly = 0;
    return check_black_mark(obj);
  }
  size_t r = 0;
  uintptr_t limit = 0;
  Status s = locate_for_mark(obj, &r, &limit);
  if (!s) return s;
  *newly = begin_.test_and_set(obj) ? 0 : 1;
  if (*newly && !live_.test(obj)) note_deferred_mark();
  if (*newly && live_.test(obj)) {
    // Inside an object marked by remap_mark (its own start was set before
    // its live bits, so this is not it): an interior address.
    begin_.clear_bit(obj);
    *newly = 0;
    return fail(REMAP_EINVAL,
                "object %#zx lies inside another marked object: only object starts may be marked",
                size_t(obj));
  }
  return Status::ok();
}

Status Heap::complete_deferred_marks() {
  const size_t nregions = region_count();
  // A region still acquired is not scanned (prepare then refuses it), but
  // try_mark marks below its top stay deferred: the flag stays set.
  bool skipped = false;
  for (size_t r = 0; r < nregions; ++r) {
    const Region& reg = regions_[r];
    const RegionState st = reg.get_state();
    if (reg.black.load(std::memory_order_acquire)) continue;
    if (st == RegionState::ALLOCATING) skipped = true;
    if (st != RegionState::RETIRED && st != RegionState::LARGE_HEAD) continue;
    const uintptr_t rb = region_base(r);
    const uintptr_t limit = rb + reg.top.load(std::memory_order_acquire);
    const uintptr_t scan_end = std::min(limit, rb + region_size_);
    // Words of the begin bitmap over [rb, scan_end): a begin bit whose live
    // bit is clear was set by try_mark and not completed yet.
    for (uintptr_t obj = begin_.find_next_set(rb, scan_end); obj < scan_end;
         obj = begin_.find_next_set(obj + 8, scan_end)) {
      if (live_.test(obj)) continue;  // completed by mark(), or inside another object
      const size_t size = config_.model.object_size(config_.model.ctx, reinterpret_cast<const void*>(obj));
      if (size == 0 || (size & 7) || size > limit - obj)
        return fail(REMAP_EOBJMODEL,
                    "object_size(%#zx) returned %zu at remap_prepare (marked by remap_try_mark): "
                    "must be a non-zero multiple of 8 within allocated memory (ends at %#zx)",
                    size_t(obj), size, size_t(limit));
      if (begin_.find_next_set(obj + 8, obj + size) < obj + size ||
          !live_.set_range_exclusive(obj, obj + size))
        return fail(REMAP_EINVAL,
                    "object %#zx (%zu bytes) overlaps another marked object: only object starts "
                    "may be marked",
                    size_t(obj), size);
      size_t bad_offset = 0;
      if (!record_slots_checked(obj, size, &bad_offset))
        return fail(REMAP_EOBJMODEL,
                    "visit_ref_offsets(%#zx) reported offset %zu at remap_prepare (marked by "
                    "remap_try_mark): outside the object (%zu bytes) or not 8-byte aligned",
                    size_t(obj), bad_offset, size);
      regions_[r].live_bytes.fetch_add(size, std::memory_order_relaxed);
      if (st == RegionState::LARGE_HEAD) break;  // one object
      obj += size - 8;  // the next object starts at or after its end
    }
  }
  if (!skipped) deferred_marks_.store(false, std::memory_order_relaxed);  // all have live bytes
  return Status::ok();
}

Status Heap::check_black_mark(uintptr_t obj) const {
  if (regions_[region_index(obj)].get_state() == RegionState::ALLOCATING) {
    if (obj & 7) return fail(REMAP_EINVAL, "object %#zx is not 8-byte aligned", size_t(obj));
    return Status::ok();
  }
  size_t r = 0;
  uintptr_t limit = 0;
  return locate_for_mark(obj, &r, &limit);
}

void Heap::discard_stale_marks() {
  std::lock_guard<std::mutex> g(stale_mutex_);
  if (marks_stale_.load(std::memory_order_acquire)) clear_marks();
}

void Heap::clear_marks() {
  // The whole table, not only the capacity: a shrink since the marks were
  // made may have dropped regions that hold some (a large object slid away
  // from them leaves its marks behind, see below), and a later grow must
  // not find them there.
  const size_t nregions = regions_made_.load(std::memory_order_acquire);
  size_t marked = 0;
  for (size_t r = 0; r < nregions; ++r)
    if (regions_[r].live_bytes.load(std::memory_order_relaxed)) ++marked;
  // Marks of remap_try_mark not completed by a prepare have no live bytes.
  const bool all = marked > region_count() / 8 || deferred_marks_.load(std::memory_order_relaxed);
  if (all) {
    begin_.clear_all();
    live_.clear_all();
    refs_.clear_all();
  }
  for (size_t r = 0; r < nregions; ++r) {
    Region& reg = regions_[r];
    if (!reg.live_bytes.load(std::memory_order_relaxed)) continue;
    if (!all) {
      // Marks follow the layout they were made in, which the region states
      // may no longer show (a large object that slid away left its marks
      // behind): a region's marks end at its end, or, for a large object
      // marked at this region's base, at the object's end.
      const uintptr_t rb = region_base(r);
      const size_t lb = reg.live_bytes.load(std::memory_order_relaxed);
      const uintptr_t e = rb + std::max(region_size_, (lb + 7) & ~size_t(7));
      begin_.clear_range(rb, e);
      live_.clear_range(rb, e);
      refs_.clear_range(rb, e);
    }
    reg.live_bytes.store(0, std::memory_order_relaxed);
  }
  if (all) deferred_marks_.store(false, std::memory_order_relaxed);
  marks_stale_.store(false, std::memory_order_release);
}

// --- the cycle ----------------------------------------------------------------------

void Heap::publish_layout(const NewLayout& plan) {
  std::lock_guard<std::mutex> g(alloc_mutex_);
  if (adopted_plan_ != &plan) pending_plan_ = &plan;
}

void Heap::withdraw_tails(const NewLayout& plan) {
  std::lock_guard<std::mutex> g(alloc_mutex_);
  for (size_t i = next_tail_; i < offered_tails_.size(); ++i) {
    const size_t r = offered_tails_[i];
    if (r >= plan.region_count()) continue;
    const RegionClass c = plan.region_class(r);
    if (c == RegionClass::EMPTY || c == RegionClass::FRAGMENTED) regions_[r].tail_offered = false;
  }
}

void Heap::adopt_published() {
  std::lock_guard<std::mutex> g(alloc_mutex_);
  adopt_pending_locked();
}

void Heap::adopt_layout(const NewLayout& plan) {
  std::lock_guard<std::mutex> g(alloc_mutex_);
  if (pending_plan_ == &plan) pending_plan_ = nullptr;
  adopt_layout_locked(plan);
}

void Heap::free_region_locked(size_t r) {
  Region& reg = regions_[r];
  reg.top.store(0, std::memory_order_relaxed);
  reg.large_head = 0;
  reg.large_regions = 0;
  reg.tail_offered = false;
  reg.set_state(RegionState::FREE);
  note_free_locked(r);
}

void Heap::release_reservations_locked() {
  for (uint32_t r : reserved_) {
    regions_[r].reserved = false;
    note_free_locked(r);
  }
  reserved_.clear();
}

void Heap::release_reservations() {
  std::lock_guard<std::mutex> g(alloc_mutex_);
  release_reservations_locked();
}

void Heap::adopt_layout_locked(const NewLayout& plan) {
  if (adopted_plan_ == &plan) return;
  adopted_plan_ = &plan;
  // The plan's slide targets are taken below (they were reserved for it).
  release_reservations_locked();
  offered_tails_.clear();
  next_tail_ = 0;
  // The plan's regions: the capacity cannot change between its prepare and
  // its adoption (resize is IDLE only), but its tables are what is indexed.
  const size_t nregions = std::min(region_count(), plan.region_count());
  for (size_t r = 0; r < nregions; ++r) {
    Region& reg = regions_[r];
    RegionState old = plan.old_state(r);
    if (old == RegionState::RETIRED || old == RegionState::LARGE_HEAD ||
        old == RegionState::LARGE_TAIL) {
      RegionClass c = plan.region_class(r);
      reg.last_class = c;
      if (c == RegionClass::EMPTY) {
        free_region_locked(r);
      } else if (c == RegionClass::FRAGMENTED && plan.new_top(r) == region_base(r)) {
        free_region_locked(r);  // evacuated (REMAP_HEAP_EVACUATE): its survivors left
      } else if (c == RegionClass::FRAGMENTED) {
        reg.top.store(plan.new_top(r) - region_base(r), std::memory_order_release);
        reg.tail_offered = true;
      }
    }
  }
  // Sliding large objects: every old region is vacated first, then the new
  // places are taken (an object may land partly on its own old regions, or
  // on an earlier one's).
  for (const LargeMove& m : plan.large_moves()) {
    for (size_t r = m.old_head; r < size_t(m.old_head) + m.regions; ++r) {
      free_region_locked(r);
      regions_[r].last_class = RegionClass::EMPTY;
    }
  }
  for (const LargeMove& m : plan.large_moves()) {
    for (size_t r = m.new_head; r < size_t(m.new_head) + m.regions; ++r) {
      Region& reg = regions_[r];
      const bool head = r == m.new_head;
      reg.top.store(head ? m.bytes : 0, std::memory_order_relaxed);
      reg.large_head = m.new_head;
      reg.large_regions = head ? m.regions : 0;
      reg.tail_offered = false;
      reg.last_class = RegionClass::LARGE;
      reg.set_state(head ? RegionState::LARGE_HEAD : RegionState::LARGE_TAIL);
    }
  }
  for (size_t r = 0; r < nregions; ++r) {
    Region& reg = regions_[r];
    if (reg.tail_offered && reg.get_state() == RegionState::RETIRED &&
        region_size_ - reg.top.load(std::memory_order_relaxed) >= region_size_ / 4)
      offered_tails_.push_back(uint32_t(r));
  }
}

// --- the black window ----------------------------------------------------------------

Status Heap::begin_cycle() {
  std::lock_guard<std::mutex> g(alloc_mutex_);
  if (black_window_.load(std::memory_order_relaxed))
    return fail(REMAP_EPHASE, "remap_cycle_begin: a cycle has begun already");
  const size_t nregions = region_count();
  for (size_t r = 0; r < nregions; ++r)
    if (regions_[r].get_state() == RegionState::ALLOCATING)
      return fail(REMAP_EPHASE,
                  "remap_cycle_begin: region %zu at %#zx is still acquired: retire every region "
                  "(every TLAB) in the initial-mark pause",
                  r, size_t(region_base(r)));
  black_regions_.clear();
  black_window_.store(true, std::memory_order_release);
  return Status::ok();
}

void Heap::make_black_locked(size_t r) {
  if (!regions_[r].black.exchange(true, std::memory_order_acq_rel))
    black_regions_.push_back(uint32_t(r));
}

Status Heap::close_black_window(std::vector<uint32_t>* regions) {
  std::lock_guard<std::mutex> g(alloc_mutex_);
  regions->clear();
  if (!black_window_.load(std::memory_order_relaxed)) return Status::ok();
  for (uint32_t r : black_regions_)
    if (regions_[r].black.load(std::memory_order_relaxed) &&
        regions_[r].get_state() == RegionState::ALLOCATING)
      return fail(REMAP_EPHASE,
                  "region %u at %#zx, acquired since remap_cycle_begin, is still acquired: "
                  "retire every region (every TLAB) in the flip's pause",
                  r, size_t(region_base(r)));
  for (uint32_t r : black_regions_)
    if (regions_[r].black.load(std::memory_order_relaxed)) regions->push_back(r);
  std::sort(regions->begin(), regions->end());
  black_window_.store(false, std::memory_order_release);
  return Status::ok();
}

void Heap::end_black(const std::vector<uint32_t>& regions) {
  std::lock_guard<std::mutex> g(alloc_mutex_);
  black_window_.store(false, std::memory_order_release);
  for (uint32_t r : black_regions_) regions_[r].black.store(false, std::memory_order_release);
  for (uint32_t r : regions) regions_[r].black.store(false, std::memory_order_release);
  black_regions_.clear();
}

void Heap::complete_cycle(const NewLayout& plan) {
  adopt_layout(plan);
  end_black(plan.black_regions());
  marks_stale_.store(true, std::memory_order_release);
  std::lock_guard<std::mutex> g(alloc_mutex_);
  adopted_plan_ = nullptr;
  pending_plan_ = nullptr;
  cycles_.fetch_add(1, std::memory_order_acq_rel);
}

Status Heap::release_pages(uintptr_t addr, size_t len) {
  if (len == 0) return Status::ok();
  return os::advise(reinterpret_cast<void*>(addr), len, os::Advice::dontneed);
}

// --- sizing -------------------------------------------------------------------------

Status Heap::return_memory(uintptr_t addr, size_t len) {
  if (len == 0) return Status::ok();
  // On a memfd MADV_DONTNEED would only unmap the pages: MADV_REMOVE punches
  // them out of the file (each VMA at its own file offset, so the slot a
  // region is mapped from), and the range reads zero afterwards.
  return os::advise(reinterpret_cast<void*>(addr), len,
                    file_backed_ ? os::Advice::remove : os::Advice::dontneed);
}

size_t Heap::min_capacity_locked() const {
  if (black_window_.load(std::memory_order_relaxed)) return capacity();
  size_t r = region_count();
  while (r > 1 && regions_[r - 1].takeable()) --r;
  return std::max<size_t>(r, 1) << region_shift_;
}

size_t Heap::min_capacity() const {
  std::lock_guard<std::mutex> g(alloc_mutex_);
  return min_capacity_locked();
}

Status Heap::resize(size_t capacity) {
  if (capacity == 0 || capacity % region_size_ || capacity > max_capacity_)
    return fail(REMAP_EINVAL,
                "capacity %zu must be a non-zero multiple of region_size %zu, at most "
                "max_capacity %zu (set at remap_heap_create)",
                capacity, region_size_, max_capacity_);
  const size_t old_cap = this->capacity();
  if (capacity > old_cap) {
    if (Status t = check_tables(capacity, "capacity"); !t) return t;
  }
  const size_t n = capacity >> region_shift_;
  {
    std::lock_guard<std::mutex> g(alloc_mutex_);
    adopt_pending_locked();
    const size_t old_n = region_count();
    if (n < old_n) {
      if (black_window_.load(std::memory_order_relaxed))
        return fail(REMAP_EPHASE,
                    "a cycle begun with remap_cycle_begin is running: its black regions are "
                    "being recorded, so the heap may grow but not shrink until it ends");
      for (size_t r = n; r < old_n; ++r) {
        const Region& reg = regions_[r];
        if (reg.takeable()) continue;
        return fail(REMAP_EBUSY,
                    "capacity %zu would drop region %zu at %#zx, which is %s%s: the smallest "
                    "capacity now is %zu (remap_heap_get_info's min_capacity)",
                    capacity, r, size_t(region_base(r)), region_state_name(reg.get_state()),
                    reg.reserved ? " (reserved for a sliding large object)"
                    : reg.prefill != Region::Prefill::none
                        ? " (filled ahead of allocation while a cycle compacts)"
                        : "",
                    min_capacity_locked());
      }
      free_ceiling_ = std::min(free_ceiling_, n);
      free_hint_ = std::min(free_hint_, n);
      small_top_ = std::min(small_top_, n);
      hole_ceiling_ = std::min(hole_ceiling_, n);
    } else {
      // Past the capacity every region is FREE with top 0 (resize dropped
      // only such regions, and nothing hands out a region past it), or was
      // never made.
      make_regions(n);
      for (size_t r = old_n; r < n; ++r) note_free_locked(r);
    }
    region_count_.store(n, std::memory_order_release);
    capacity_.store(capacity, std::memory_order_release);
  }
  if (capacity >= old_cap) return Status::ok();
  // Out of everybody's reach now: the memory goes without the mutex held.
  // A failure leaves pages the heap no longer counts, not a wrong heap: the
  // capacity has changed, and the caller hears why.
  Status s = return_memory(base_ + capacity, old_cap - capacity);
  if (!s)
    return fail(s.code, "the capacity is %zu now, but the memory of the regions dropped was "
                "not returned: %s", capacity, s.message.c_str());
  return Status::ok();
}

Status Heap::release_free_regions(size_t* bytes) {
  std::lock_guard<std::mutex> g(alloc_mutex_);
  adopt_pending_locked();
  const size_t nregions = region_count();
  Status first = Status::ok();
  size_t covered = 0;
  for (size_t r = 0; r < nregions;) {
    if (!regions_[r].takeable()) {
      // A retired region's free tail: whole pages above its top. The move
      // backend installs them with the region's data (zeroed, resident:
      // the allocator's next pages); free bytes read zero either way. An
      // acquired region's tail is the runtime's, and is left alone.
      const Region& reg = regions_[r];
      if (reg.get_state() == RegionState::RETIRED) {
        const uintptr_t from = (region_base(r) + reg.top.load(std::memory_order_relaxed) +
                                page_size_ - 1) & ~uintptr_t(page_size_ - 1);
        const uintptr_t to = region_base(r) + region_size_;
        if (from < to) {
          Status s = return_memory(from, to - from);
          if (!s && first) first = s;
          covered += to - from;
        }
      }
      ++r;
      continue;
    }
    size_t e = r + 1;
    while (e < nregions && regions_[e].takeable()) ++e;
    Status s = return_memory(region_base(r), (e - r) << region_shift_);
    if (!s && first) first = s;
    covered += (e - r) << region_shift_;
    r = e;
  }
  if (bytes) *bytes = covered;
  return first;
}

size_t Heap::committed_bytes() const {
  // In slices, so that the residency vector stays small at any capacity.
  constexpr size_t kSlice = size_t(256) << 20;
  const size_t cap = capacity();
  std::vector<uint8_t> resident;
  size_t pages = 0;
  for (size_t off = 0; off < cap; off += kSlice) {
    const size_t len = std::min(kSlice, cap - off);
    if (!os::resident_pages(reinterpret_cast<void*>(base_ + off), len, &resident)) return 0;
    for (uint8_t v : resident) pages += v & 1;
  }
  return pages << page_shift_;
}

// --- info ---------------------------------------------------------------------------

size_t Heap::regions_free() const {
  const size_t nregions = region_count();
  size_t n = 0;
  for (size_t r = 0; r < nregions; ++r)
    if (regions_[r].get_state() == RegionState::FREE) ++n;
  return n;
}

size_t Heap::bytes_allocated() const {
  const size_t nregions = region_count();
  size_t n = 0;
  for (size_t r = 0; r < nregions; ++r) n += regions_[r].top.load(std::memory_order_relaxed);
  return n;
}

Status Heap::check_all_retired() const {
  const size_t nregions = region_count();
  for (size_t r = 0; r < nregions; ++r)
    if (regions_[r].get_state() == RegionState::ALLOCATING &&
        !regions_[r].black.load(std::memory_order_acquire))
      return fail(REMAP_EPHASE,
                  "region %zu at %#zx is still acquired: retire every region "
                  "(remap_region_retire) before remap_prepare",
                  r, size_t(region_base(r)));
  return Status::ok();
}

}  // namespace remap

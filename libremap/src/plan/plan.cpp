// plan.cpp — building the compaction plan from the heap's marks, and the
// bitmap-only object walk (see plan.h for the layout rules).
//
// Cost: classify is O(regions); sliding large objects is O(regions) plus
// one jump per obstacle run passed per large object; forwarding is one
// popcount per 512-byte chunk of FRAGMENTED regions; page tables are O(pages) plus one bitmap walk per
// object of FRAGMENTED regions; the validation pass is one visit_ref_offsets
// call per live object plus one load and one bit test per reference slot (it
// touches every live object, which nothing else in prepare does).
#include "plan/plan.h"

#include "os/clock.h"

#include <bit>

#include <algorithm>

namespace remap {
namespace {

using os::now_ns;

}  // namespace

const char* page_kind_name(PageKind k) {
  switch (k) {
    case PageKind::EMPTY: return "EMPTY";
    case PageKind::DENSE: return "DENSE";
    case PageKind::FRAGMENTED: return "FRAGMENTED";
    case PageKind::LARGE: return "LARGE";
    case PageKind::BLACK: return "BLACK";
  }
  return "?";
}

// --- the object walk -------------------------------------------------------------------

LiveCursor::LiveCursor(const Plan& plan, uintptr_t from, uintptr_t limit)
    : plan_(&plan), pos_(from), limit_(limit) {}

bool LiveCursor::next(LiveObject* out) {
  if (pos_ >= limit_) return false;
  const Plan& pl = *plan_;
  uintptr_t p = pos_is_start_ ? pos_ : pl.begin_->find_next_set(pos_, limit_);
  if (p >= limit_) {
    pos_ = limit_;
    return false;
  }
  size_t r = (p - pl.base_) >> pl.region_shift_;
  out->old_addr = p;
  if (pl.region_class_[r] == RegionClass::LARGE) {
    out->size = pl.live_bytes_[r];
    pos_ = p + out->size;
    pos_is_start_ = false;
    return true;
  }
  // The next begin bit in the region is the next object's start whether or
  // not the live run continues up to it: remember it instead of rescanning.
  uintptr_t rlimit = pl.base_ + (r << pl.region_shift_) + pl.old_top_[r];
  uintptr_t nb = pl.begin_->find_next_set(p + 8, rlimit);
  uintptr_t end = pl.live_->find_next_clear(p + 8, nb);
  out->size = end - p;
  pos_is_start_ = nb < rlimit;
  pos_ = pos_is_start_ ? nb : end;
  return true;
}

uintptr_t Plan::object_end(uintptr_t old, uintptr_t limit) const {
  // The object ends at the next object's begin bit or where its run of live
  // words stops, whichever is first: adjacent marked objects share a run.
  uintptr_t next_begin = begin_->find_next_set(old + 8, limit);
  return live_->find_next_clear(old + 8, next_begin);
}

size_t Plan::size_of_live(uintptr_t old) const {
  size_t r = (old - base_) >> region_shift_;
  if (region_class_[r] == RegionClass::LARGE) return live_bytes_[r];
  uintptr_t rb = base_ + (r << region_shift_);
  return object_end(old, rb + old_top_[r]) - old;
}

LiveCursor Plan::objects(size_t r) const {
  uintptr_t rb = base_ + (r << region_shift_);
  if (region_class_[r] == RegionClass::LARGE)
    return LiveCursor(*this, rb, old_state_[r] == RegionState::LARGE_HEAD ? rb + 8 : rb);
  return LiveCursor(*this, rb, rb + old_top_[r]);
}

Status Plan::forward_checked(uintptr_t old, uintptr_t* out) const {
  // A misaligned in-heap address is no object start, in a black region too
  // (found by fuzzing: it came back unchanged with REMAP_OK there).
  if (in_heap(old) && (old & 7))
    return fail(REMAP_EINVAL, "%#zx is inside the heap but not 8-byte aligned: not an object start",
                size_t(old));
  if (!in_heap(old) || region_class_[(old - base_) >> region_shift_] == RegionClass::BLACK ||
      heap_->region(heap_->region_index(old)).black.load(std::memory_order_acquire)) {
    *out = old;  // outside the heap, or black: never moves this cycle
    return Status::ok();
  }
  if ((old & 7) || !begin_->test(old))
    return fail(REMAP_EINVAL, "%#zx is inside the heap but not the start of a marked object",
                size_t(old));
  *out = forward(old);
  return Status::ok();
}

// --- building -----------------------------------------------------------------------------

Status Plan::build(Heap& heap, std::unique_ptr<Plan>* out) {
  uint64_t t0 = now_ns();
  Status s = heap.check_all_retired();
  if (!s) return s;
  std::unique_ptr<Plan> p(new Plan());
  p->heap_ = &heap;
  p->tag_mask_ = heap.config().ref_tag_mask;
  p->check_mask_ = heap.config().ref_check_mask;
  p->check_value_ = heap.config().ref_check_value;
  p->live_ = &heap.live_bits();
  p->begin_ = &heap.begin_bits();
  p->base_ = heap.base();
  p->capacity_ = heap.capacity();
  p->region_shift_ = heap.region_shift();
  p->page_shift_ = heap.page_shift();
  if (!(s = p->classify())) return s;
  if (heap.config().flags & REMAP_HEAP_EVACUATE) p->pack_regions();
  // Mutators may be running (a cycle begun with remap_cycle_begin): the
  // slide is chosen under the allocation mutex among regions still free,
  // and its targets are reserved so that no mutator acquires one before
  // the new layout is adopted.
  if (!(heap.config().flags & REMAP_HEAP_PIN_LARGE))
    heap.reserve_slide([&](auto free_now) { return p->slide_large_objects(free_now); });
  p->build_forwarding();
  p->build_page_tables();
  // The bitmap covers the heap's maximum (Heap::resize): count the capacity's words only.
  const size_t words = std::min(p->begin_->word_count(), p->capacity_ >> LiveBitmap::kChunkShift);
  for (size_t w = 0; w < words; ++w)
    p->n_objects_ += uint64_t(std::popcount(p->begin_->word(w)));
  uint64_t t1 = now_ns();
  // Slot offsets were checked at mark time; the slot values only on request
  // (one visit per live object, in the runtime's pause).
  if (heap.config().flags & REMAP_HEAP_VERIFY_REFS)
    if (!(s = p->validate_object_model())) return s;
  uint64_t t2 = now_ns();
  p->validate_ns_ = t2 - t1;
  p->build_ns_ = t2 - t0;
  *out = std::move(p);
  return Status::ok();
}

Status Plan::classify() {
  const Heap& h = *heap_;
  size_t n = h.region_count();
  size_t rs = h.region_size();
  double dense = h.config().dense_threshold;
  region_class_.assign(n, RegionClass::EMPTY);
  old_state_.assign(n, RegionState::FREE);
  new_top_.assign(n, 0);
  live_end_.assign(n, 0);
  live_bytes_.assign(n, 0);
  old_top_.assign(n, 0);
  large_delta_.assign(n, 0);
  large_new_end_.assign(n, 0);
  large_moves_.clear();
  pack_dest_.resize(n);
  for (size_t r = 0; r < n; ++r) pack_dest_[r] = heap_->region_base(r);
  pack_next_.assign(n, kNoRegion);
  for (size_t r = 0; r < n; ++r) {
    const Region& reg = h.region(r);
    uintptr_t rb = h.region_base(r);
    RegionState st = reg.get_state();
    size_t top = reg.top.load(std::memory_order_acquire);
    size_t lb = reg.live_bytes.load(std::memory_order_acquire);
    old_state_[r] = st;
    old_top_[r] = top;
    live_bytes_[r] = lb;
    new_top_[r] = rb;
    live_end_[r] = rb;
    live_total_ += lb;
    if (reg.black.load(std::memory_order_acquire)) {
      // Black (remap_cycle_begin): stays; its tables are set at the flip
      // (patch_black), when it is retired and its extent is known.
      region_class_[r] = RegionClass::BLACK;
      continue;
    }
    switch (st) {
      case RegionState::FREE:
      case RegionState::ALLOCATING:  // excluded by check_all_retired
      case RegionState::LARGE_TAIL:  // set with its head
        break;
      case RegionState::LARGE_HEAD: {
        size_t nreg = reg.large_regions;
        if (nreg == 0 || r + nreg > n)
          return fail(REMAP_EINTERNAL, "large object at region %zu spans %zu regions", r, nreg);
        for (size_t t = r + 1; t < r + nreg; ++t) old_state_[t] = RegionState::LARGE_TAIL;
        if (lb == 0) {
          n_empty_ += nreg;  // a dead large object: all its regions become free
          r += nreg - 1;
          break;
        }
        ++n_large_;
        uintptr_t alloc_end = rb + top, obj_end = rb + lb;
        for (size_t t = r; t < r + nreg; ++t) {
          uintptr_t tb = h.region_base(t), te = tb + rs;
          region_class_[t] = RegionClass::LARGE;
          old_top_[t] = t == r ? top : 0;
          // The head's new top and live end are the whole object's (they may
          // lie past the head region: producers handle a large object from
          // its head); a tail's are the part of the object it holds.
          new_top_[t] = t == r ? alloc_end : std::clamp(alloc_end, tb, te);
          live_end_[t] = t == r ? obj_end : std::clamp(obj_end, tb, te);
        }
        r += nreg - 1;
        break;
      }
      case RegionState::RETIRED: {
        if (lb > top)
          return fail(REMAP_EINTERNAL, "region %zu: %zu live bytes above its top %zu", r, lb, top);
        if (lb == 0) {
          ++n_empty_;
          break;
        }
        uintptr_t last = live_->find_prev_set(rb + top - 8, rb);
        live_end_[r] = last ? last + 8 : rb;
        if (double(lb) >= dense * double(top)) {
          region_class_[r] = RegionClass::DENSE;
          new_top_[r] = rb + top;
          ++n_dense_;
        } else {
          region_class_[r] = RegionClass::FRAGMENTED;
          new_top_[r] = rb + lb;
          ++n_fragmented_;
        }
        break;
      }
    }
  }
  return Status::ok();
}

// Sliding compaction of the large-object space at region granularity: each
// live large object, in address order, goes to the lowest run of regions
// that starts at or after the previous object's new end and holds nothing
// that stays. Such a run [s, s + n) with s <= the object's old head h lies
// below h or inside the object's own regions, so every region in it is free,
// empty (dead data), or an old region of an object placed before — vacated,
// since the earlier objects' new places all end at or before `floor`. Hence
// "free" can be judged once, statically, and large objects never land on a
// later one's old bytes (the STW pass relies on that to memmove in order).
template <class FreeNow>
std::vector<uint32_t> Plan::slide_large_objects(FreeNow free_now) {
  const Heap& h = *heap_;
  const size_t n = region_class_.size();
  // A region FREE at classify but taken since (black now: patch_black makes
  // it stay) is an obstacle like any region that stays.
  auto holds_nothing_staying = [&](size_t r) {
    if (region_class_[r] == RegionClass::LARGE) return true;
    return region_class_[r] == RegionClass::EMPTY &&
           (old_state_[r] != RegionState::FREE || free_now(r));
  };
  std::vector<uint32_t> targets;
  // run[r]: how many regions from r on hold nothing staying.
  std::vector<uint32_t> run(n + 1, 0);
  for (size_t r = n; r-- > 0;) run[r] = holds_nothing_staying(r) ? run[r + 1] + 1 : 0;
  size_t floor = 0;
  for (size_t r = 0; r < n; ++r) {
    if (region_class_[r] != RegionClass::LARGE || old_state_[r] != RegionState::LARGE_HEAD)
      continue;
    const size_t nreg = h.region(r).large_regions;
    size_t s = floor;
    // A run too short ends at a region that stays: no start inside it fits.
    while (s < r && run[s] < nreg) s += run[s] + 1;
    if (s >= r) {
      floor = r + nreg;
      r += nreg - 1;
      continue;
    }
    const intptr_t delta = -intptr_t((r - s) << region_shift_);
    for (size_t t = r; t < r + nreg; ++t) large_delta_[t] = delta;
    const uintptr_t new_start = h.region_base(s), new_end = new_start + old_top_[r];
    for (size_t t = s; t < s + nreg; ++t)
      large_new_end_[t] = std::clamp(new_end, h.region_base(t), h.region_base(t) + h.region_size());
    large_moves_.push_back(LargeMove{uint32_t(r), uint32_t(s), uint32_t(nreg), old_top_[r]});
    for (size_t t = s; t < s + nreg; ++t) targets.push_back(uint32_t(t));
    floor = s + nreg;
    r += nreg - 1;
  }
  return targets;
}

// Packing (REMAP_HEAP_EVACUATE): FRAGMENTED regions in address order, each
// one's survivors as one block. A block goes after the current destination's
// last block if it fits in that region (no object may cross a region
// boundary), else its region becomes the next destination and keeps its
// block at its base. A destination is never after its sources, so every
// object moves down (the stw pass memmoves in address order on that) and a
// source is only read, never a build place: the concurrent producers'
// ordering rule (producer.h) holds over a destination's whole chain as over
// one region. O(regions).
void Plan::pack_regions() {
  const size_t rs = size_t(1) << region_shift_;
  size_t dest = 0, used = 0, last = 0;
  bool open = false;
  for (size_t r = 0; r < region_class_.size(); ++r) {
    if (region_class_[r] != RegionClass::FRAGMENTED) continue;
    const size_t lb = live_bytes_[r];
    if (open && used + lb <= rs) {
      pack_dest_[r] = heap_->region_base(dest) + used;
      pack_next_[last] = uint32_t(r);
      last = r;
      used += lb;
      new_top_[dest] = heap_->region_base(dest) + used;
      new_top_[r] = heap_->region_base(r);  // emptied
      ++n_evacuated_;
      continue;
    }
    dest = last = r;
    used = lb;
    open = true;
  }
}

void Plan::build_forwarding() {
  const Heap& h = *heap_;
  size_t chunks = capacity_ >> LiveBitmap::kChunkShift;
  size_t per_region = h.region_size() >> LiveBitmap::kChunkShift;
  chunks_ = std::make_unique_for_overwrite<ChunkForward[]>(chunks);
  for (size_t r = 0; r < region_class_.size(); ++r) {
    if (region_class_[r] != RegionClass::FRAGMENTED) continue;
    size_t c0 = r * per_region;
    // Chunks past the top hold no live bits; filling them too keeps forward()
    // defined (if meaningless) for every address of the region.
    uint32_t sum = 0;
    for (size_t c = c0; c < c0 + per_region; ++c) {
      const uint64_t live = live_->word(c);
      chunks_[c].live = live;
      chunks_[c].begin = begin_->word(c);
      chunks_[c].prefix = sum;
      sum += uint32_t(popcount64(live)) << LiveBitmap::kWordShift;
    }
  }
}

void Plan::build_page_tables() {
  const Heap& h = *heap_;
  size_t np = h.page_count();
  size_t ps = h.page_size();
  size_t pages_per_region = h.region_size() >> page_shift_;
  page_kind_.assign(np, PageKind::EMPTY);
  first_object_.assign(np, 0);
  auto page_up = [&](uintptr_t a) { return size_t((a - base_ + ps - 1) >> page_shift_); };
  for (size_t r = 0; r < region_class_.size(); ++r) {
    uintptr_t rb = h.region_base(r);
    size_t p0 = r * pages_per_region;
    switch (region_class_[r]) {
      case RegionClass::EMPTY:
      case RegionClass::BLACK:  // patch_black, at the flip
        break;
      case RegionClass::LARGE: {
        // From the head, at the object's new place: page i of the new object
        // is page i of the old one. (The regions it lands on are EMPTY or
        // large in the old layout, which write no page entries, or come
        // before it, whose entries are already written.)
        if (old_state_[r] != RegionState::LARGE_HEAD) break;
        const uintptr_t nb = rb + large_delta_[r];
        for (size_t p = h.page_index(nb); p < page_up(nb + old_top_[r]); ++p) {
          page_kind_[p] = PageKind::LARGE;
          first_object_[p] = rb;
        }
        break;
      }
      case RegionClass::DENSE: {
        uintptr_t top = rb + old_top_[r];
        for (size_t p = p0; p < page_up(top); ++p) {
          uintptr_t pa = h.page_addr(p), pe = std::min(pa + ps, top);
          page_kind_[p] = PageKind::DENSE;
          uintptr_t first = 0;
          if (live_->test(pa)) {
            first = begin_->find_prev_set(pa, rb);
          } else {
            uintptr_t b = begin_->find_next_set(pa, pe);
            first = b < pe ? b : 0;
          }
          first_object_[p] = first;
        }
        break;
      }
      case RegionClass::FRAGMENTED: {
        // Objects are packed from rb in the new layout with no gaps (the
        // region's own, then each block of its chain), so every page start
        // in [rb, new_top) falls inside exactly one object. An evacuated
        // region's pages stay EMPTY.
        if (evacuated(r)) break;
        size_t p = p0, pend = page_up(new_top_[r]);
        uintptr_t na = rb;
        LiveObject o;
        for (uint32_t src = uint32_t(r); src != kNoRegion && p < pend; src = pack_next_[src]) {
          const uintptr_t sb = h.region_base(src);
          for (LiveCursor c(*this, sb, sb + old_top_[src]); p < pend && c.next(&o);) {
            na += o.size;
            for (; p < pend && h.page_addr(p) < na; ++p) {
              page_kind_[p] = PageKind::FRAGMENTED;
              first_object_[p] = o.old_addr;
            }
          }
        }
        break;
      }
    }
  }
}

// Reads every slot Heap::mark recorded for a live object (offsets were
// checked there) and refuses the first whose value forward_value would
// leave alone as stray. No callback: the recorded slots are exactly what
// the producers will rewrite.
void Plan::patch_black(const std::vector<uint32_t>& regions) {
  const Heap& h = *heap_;
  const size_t ps = h.page_size();
  black_regions_ = regions;
  for (uint32_t r : regions) {
    const Region& reg = h.region(r);
    const RegionState st = reg.get_state();
    if (st != RegionState::RETIRED && st != RegionState::LARGE_HEAD) continue;  // FREE again, or a tail
    const uintptr_t rb = h.region_base(r);
    const size_t top = reg.top.load(std::memory_order_acquire);
    const size_t nreg = st == RegionState::LARGE_HEAD ? reg.large_regions : 1;
    for (size_t t = r; t < r + nreg; ++t) {
      region_class_[t] = RegionClass::BLACK;
      old_state_[t] = t == r ? st : RegionState::LARGE_TAIL;
      old_top_[t] = t == r ? top : 0;
      live_bytes_[t] = 0;
      const uintptr_t tb = h.region_base(t), te = tb + h.region_size();
      new_top_[t] = t == r ? rb + top : std::clamp(rb + top, tb, te);
      live_end_[t] = new_top_[t];
      ++n_black_;
    }
    for (size_t p = h.page_index(rb); p < h.page_index(rb + ((top + ps - 1) & ~(ps - 1))); ++p) {
      page_kind_[p] = PageKind::BLACK;
      first_object_[p] = rb;
    }
  }
}

Status Plan::validate_object_model() {
  for (size_t r = 0; r < region_class_.size(); ++r) {
    if (region_class_[r] == RegionClass::EMPTY) continue;
    if (old_state_[r] == RegionState::LARGE_TAIL) continue;  // its head's object covers it
    LiveObject o;
    for (LiveCursor c = objects(r); c.next(&o);) {
      uintptr_t bad = 0;
      heap_->ref_bits().for_each_set(o.old_addr, o.old_addr + o.size, [&](uintptr_t a) {
        if (bad) return;
        const uint64_t v = *reinterpret_cast<const uint64_t*>(a);
        const uintptr_t addr = uintptr_t(v & ~tag_mask_);
        if (is_reference(v) && in_heap(addr) && !is_live_start(addr) &&
            !heap_->region(heap_->region_index(addr)).black.load(std::memory_order_acquire))
          bad = a;
      });
      if (bad)
        return fail(REMAP_EOBJMODEL,
                    "the slot at offset %zu of object %#zx holds %#zx, which decodes to %#zx: "
                    "inside the heap but not a marked object start (a missed mark, an "
                    "interior pointer, or an immediate the ref_* encoding does not describe)",
                    size_t(bad - o.old_addr), size_t(o.old_addr),
                    size_t(*reinterpret_cast<const uint64_t*>(bad)),
                    size_t(*reinterpret_cast<const uint64_t*>(bad) & ~tag_mask_));
    }
  }
  return Status::ok();
}

}  // namespace remap

// producer.cpp — the GC worker's in-place pass and the mutator's page build.
// producer.h states the safety rule both follow.
#include "compact/producer.h"

#include <stdlib.h>
#include <string.h>

#include <algorithm>

#include "plan/black_walk.h"

namespace remap {
namespace {



inline uint64_t load64(const char* p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}
inline void store64(char* p, uint64_t v) { memcpy(p, &v, sizeof v); }

}  // namespace

struct Producer::Pass {
  intptr_t run_delta = 0;     // write delta of the pages in the run (one per run)
  size_t run_start = 0;
  size_t run_len = 0;
  bool run_large = false;     // the run holds a large object's pages: always MOVEd
  std::vector<uint8_t> mine;  // per page of the current region: 1 = claimed by this worker
  size_t first_page = 0;
  size_t claimed_end = 0;     // pages [first_page, claimed_end) are claimed or foreign
  size_t completed_end = 0;   // pages [first_page, completed_end) are complete
  uint64_t install_ns = 0;
  uint64_t wait_ns = 0;
  uint64_t gc_pages = 0;
  uint64_t tail_pages = 0;    // free pages installed zeroed with a run (gc_tail)
  bool failed = false;
  InstallOutcome bad;
};

Producer::Producer(const Heap& heap, const Plan& plan, PageStates& states, Backend& backend,
                   CycleCounters& counters, const RegionSpaces& spaces, bool clip,
                   const BackendKind& kind, bool free_tails, size_t tail_budget_pages,
                   bool copy_short_runs)
    : heap_(heap),
      plan_(plan),
      states_(states),
      backend_(backend),
      c_(counters),
      spaces_(spaces),
      page_(heap.page_size()),
      clip_(clip),
      release_regions_(kind.from_space == FromSpace::released),
      recycle_after_mutators_(kind.from_space == FromSpace::recycled),
      kernel_copies_(kind.install == Install::copy),
      free_tails_(free_tails),
      tail_budget_pages_(tail_budget_pages),
      copy_short_runs_(copy_short_runs) {}

void Producer::flush(Pass& pass) {
  if (!pass.run_len) return;
  uint64_t t0 = now_ns();
  uintptr_t dst = heap_.page_addr(pass.run_start);
  InstallOutcome o;
  // (Never a large object's run: its pages are moved, swap entries and
  // holes included, never read — ARCHITECTURE.md, "Large objects".)
  if (copy_short_runs_ && !pass.run_large && pass.run_len < kCopyBelowPages) {
    // (A source hole, a from-space page never touched, reads as zero: that
    // range is not registered.)
    for (size_t i = 0; i < pass.run_len && o.ok; i++) {
      const uintptr_t at = dst + i * page_;
      o = backend_.install_copy(at, reinterpret_cast<const void*>(at + pass.run_delta));
    }
  } else {
    o = backend_.install_run(dst, dst + pass.run_delta, pass.run_len);
  }
  pass.install_ns += now_ns() - t0;
  if (!o.ok && !pass.failed) {
    pass.failed = true;
    pass.bad = o;
  }
  for (size_t p = pass.run_start; p < pass.run_start + pass.run_len; p++)
    states_.set(p, kPageMapped);
  pass.gc_pages += pass.run_len;
  pass.run_len = 0;
  pass.run_large = false;
}

void Producer::append(Pass& pass, size_t page, intptr_t delta, bool large) {
  if (pass.run_len && (pass.run_start + pass.run_len != page || pass.run_delta != delta))
    flush(pass);
  if (!pass.run_len) {
    pass.run_start = page;
    pass.run_delta = delta;
  }
  pass.run_large |= large;
  states_.set(page, kPageProcessed);
  if (++pass.run_len == kMaxRunPages || (pass.run_len >= kWaitedRunPages && states_.has_waiters()))
    flush(pass);
}

bool Producer::gc_regions(size_t r0, size_t r1, InstallOutcome* bad) {
  Pass pass;
  // A worker's run may continue from one region into the next: consecutive
  // regions' pages are contiguous in both from-space and to-space.
  for (size_t r = r0; r < r1 && !pass.failed; r++) gc_region(pass, r);
  flush(pass);
  c_.wait_ns.add(pass.wait_ns);
  // Free tail pages count as the GC's and as zero pages, as a zero page a
  // mutator installs counts as the mutator's and as a zero page.
  c_.pages_by_gc.add(pass.gc_pages);
  c_.pages_zero.add(pass.tail_pages);
  if (pass.failed) *bad = pass.bad;
  return !pass.failed;
}

void Producer::gc_region(Pass& pass, size_t r) {
  if (plan_.old_state(r) == RegionState::LARGE_TAIL) return;  // its head covers it
  const RegionClass cls = plan_.region_class(r);
  if (cls == RegionClass::EMPTY) return;
  if (cls == RegionClass::LARGE) return gc_large(pass, r);
  if (cls == RegionClass::BLACK) return gc_black(pass, r);
  if (plan_.evacuated(r)) return;  // its destination's pass reads it (Plan::pack_next)

  const uint64_t t_start = now_ns();
  const uint64_t install_before = pass.install_ns;
  const uint64_t wait_before = pass.wait_ns;
  const uintptr_t rb = heap_.region_base(r);
  const intptr_t wd = spaces_.write[r];
  const uintptr_t top = plan_.new_top(r);
  const uintptr_t content_end = (top + page_ - 1) & ~uintptr_t(page_ - 1);
  const size_t first = heap_.page_index(rb);
  const size_t end = heap_.page_index(content_end);
  if (end <= first) return;

  pass.first_page = first;
  pass.mine.assign(end - first, 0);
  pass.claimed_end = first;
  pass.completed_end = first;
  uint64_t in_place = 0;

  auto claim_to = [&](size_t pe) {
    for (; pass.claimed_end < pe; pass.claimed_end++)
      pass.mine[pass.claimed_end - first] = states_.claim_for_gc(pass.claimed_end);
  };
  auto complete_to = [&](size_t pe) {
    claim_to(pe);
    for (; pass.completed_end < pe; pass.completed_end++) {
      size_t p = pass.completed_end;
      if (!pass.mine[p - first]) continue;
      append(pass, p, wd);
      if (cls != RegionClass::FRAGMENTED) in_place++;
    }
  };
  auto wait_foreign = [&](size_t a, size_t b) {
    for (size_t p = a; p < b; p++) {
      if (pass.mine[p - first] || states_.load(p) == kPageMapped) continue;
      uint64_t t0 = now_ns();
      states_.wait_mapped(p);
      pass.wait_ns += now_ns() - t0;
    }
  };

  // Reference slots, old addresses: Heap::mark recorded each live object's
  // slots from the runtime's visit_ref_offsets, so producing a page needs
  // no callback.
  const LiveBitmap& refs = heap_.ref_bits();
  uintptr_t next_new = rb;
  uint64_t copied = 0, stray = 0;

  // Unclipped, objects go in batches: each object of a batch is
  // moved and its slots gathered, with the forwarding entries their values
  // need prefetched; then every gathered slot is forwarded. The misses on
  // random references overlap instead of following one another. A batch's
  // pages are claimed and waited for before any of it is written, and no
  // page at or after the batch's first page is completed until the batch is
  // done (complete_to runs only at a batch's start): a page is never
  // installed with a slot not forwarded yet.
  constexpr size_t kBatchObjects = 16, kBatchSlots = 128;
  char* gathered[kBatchSlots];
  size_t nslots = 0, nobjects = 0;
  auto forward_gathered = [&] {
    for (size_t i = 0; i < nslots; i++)
      store64(gathered[i], plan_.forward_value(load64(gathered[i]), &stray));
    nslots = 0;
  };

  // One piece of live bytes [old, old + size) from-space offset rd: moved
  // to its new place (next_new in a FRAGMENTED region, where it is in a
  // DENSE one) with its recorded slots forwarded.
  auto piece = [&](uintptr_t old, size_t size, intptr_t rd) {
    const uintptr_t nw = cls == RegionClass::FRAGMENTED ? next_new : old;
    const size_t pa = heap_.page_index(nw);
    const size_t pb = heap_.page_index(nw + size - 1) + 1;
    if (clip_ || nobjects == 0) complete_to(pa);
    claim_to(pb);
    wait_foreign(pa, pb);  // a mutator building one of them reads this object's old bytes
    const char* src = reinterpret_cast<const char*>(old + rd);
    char* dst = reinterpret_cast<char*>(nw + wd);
    if (!clip_) {
      // In place: dst and src may overlap (memmove); slots are forwarded in
      // the moved copy. (Objects slide down in address order, so a later
      // object's source never lies under an earlier one's copy.)
      if (dst != src) {
        memmove(dst, src, size);
        copied += size;
      }
      refs.for_each_set(old, old + size, [&](uintptr_t a) {
        if (nslots == kBatchSlots) forward_gathered();
        char* slot = dst + (a - old);
        plan_.prefetch_value(load64(slot));
        gathered[nslots++] = slot;
      });
      if (++nobjects == kBatchObjects) {
        forward_gathered();
        nobjects = 0;
      }
    } else {
      // Clipped: only the parts in pages this worker owns; values are read
      // from the object's intact old copy (src).
      if (dst != src) {
        for (size_t p = pa; p < pb; p++) {
          if (!pass.mine[p - first]) continue;
          const uintptr_t lo = std::max(nw, heap_.page_addr(p));
          const uintptr_t hi = std::min(nw + size, heap_.page_addr(p) + page_);
          memmove(dst + (lo - nw), src + (lo - nw), hi - lo);
          copied += hi - lo;
        }
      }
      refs.for_each_set(old, old + size, [&](uintptr_t a) {
        const size_t off = a - old;
        if (!pass.mine[heap_.page_index(nw + off) - first]) return;
        store64(dst + off, plan_.forward_value(load64(src + off), &stray));
      });
    }
    next_new = nw + size;
  };

  // The region's own live bytes, then (packing) each block its chain
  // appends: one sequence in to-space order, so the ordering rule is the
  // one above. By runs of adjacent live objects: object
  // boundaries matter neither to the copy nor to the slots (the ref bitmap
  // says where they are), so a run is moved with one memmove, in pieces that
  // end at new-space page boundaries so that pages still complete (and
  // mutators waiting on them are served) every few pages.
  // REMAP_PRODUCE_BY_OBJECT=1 keeps the object-by-object walk (measurement).
  static const bool by_object = [] {
    const char* e = getenv("REMAP_PRODUCE_BY_OBJECT");
    return e && *e == '1';
  }();
  const LiveBitmap& live = heap_.live_bits();
  const size_t piece_bytes = 4 * page_;
  for (uint32_t from = uint32_t(r); from != Plan::kNoRegion; from = plan_.pack_next(from)) {
    const intptr_t rd = spaces_.read[from];
    if (by_object) {
      LiveObject o;
      for (LiveCursor cur = plan_.objects(from); cur.next(&o);) piece(o.old_addr, o.size, rd);
      continue;
    }
    const uintptr_t fb = heap_.region_base(from);
    live.for_each_run(fb, plan_.live_end(from), [&](uintptr_t a, uintptr_t e) {
      while (a < e) {
        const uintptr_t nw = cls == RegionClass::FRAGMENTED ? next_new : a;
        const uintptr_t cut = ((nw + piece_bytes) & ~uintptr_t(page_ - 1)) - nw;
        const size_t len = std::min<size_t>(e - a, cut);
        piece(a, len, rd);
        a += len;
      }
    });
  }
  forward_gathered();
  // The slid region's last page: what lies past the new top is old bytes of
  // this page and must read as zero, like every free byte after a cycle.
  if (cls == RegionClass::FRAGMENTED && top < content_end) {
    claim_to(end);
    if (pass.mine[end - 1 - first])
      memset(reinterpret_cast<char*>(top + wd), 0, content_end - top);
  }
  complete_to(end);
  // Tails keep a region's garbage pages (below its old top) resident, as
  // its free pages. That costs no memory by itself, but dropping from-space
  // garbage is what offsets the fresh pages mutators build into once the
  // pool is dry (one per faulted page, resident until the region they came
  // from is done): with two reading threads, tails made the cycle's RSS rise
  // 13-19 MiB over the flip instead of 1-4. Past the budget (half the pool's
  // cap), tails stop: the region's run ends at its data, and its from-space,
  // garbage included, is dropped now (`leaves` below).
  const bool tails = free_tails_ && c_.buffers_new.get() < tail_budget_pages_;
  if (tails && (cls == RegionClass::FRAGMENTED || cls == RegionClass::DENSE)) {
    // Mutators building this region's pages read from-space up to its old
    // top, which gc_tail clears: wait for them first.
    wait_foreign(first, end);
    gc_tail(pass, r, content_end, wd);
  }

  // With move, a page a mutator built (in a buffer) leaves its sources
  // resident in from-space; so does an evacuated region appended here (only
  // read, by this pass and by mutators building this region's pages). While
  // the pool has buffers, mutators take recycled pages and RSS does not
  // grow: those ranges are held for finish, which recycles them into the
  // pool in one go. Once a buffer had to be a fresh page, RSS grows with
  // every mutator-built page: from then on they are dropped as soon as this
  // region's pages are mapped, the held ones with them. Copy releases every
  // region.
  const bool mutators_built = std::find(pass.mine.begin(), pass.mine.end(), 0) != pass.mine.end();
  const bool leaves = recycle_after_mutators_ && (mutators_built || (free_tails_ && !tails) ||
                                                  plan_.pack_next(r) != Plan::kNoRegion);
  const bool pool_dry = c_.buffers_new.get() > 0;
  std::vector<std::pair<uintptr_t, size_t>> drop;
  uint64_t release_ns = 0;  // the backend counts it as madvise time
  if (release_regions_ || leaves) {
    // Mutators still building this region's pages read these ranges: wait
    // for them first, so that a held range may be dropped by any worker.
    flush(pass);
    wait_foreign(first, end);
    drop.push_back({rb + spaces_.read[r], std::max(heap_.region_size(), content_end - rb)});
    for (uint32_t s = plan_.pack_next(r); s != Plan::kNoRegion; s = plan_.pack_next(s))
      drop.push_back({heap_.region_base(s) + spaces_.read[s], heap_.region_size()});
    if (!release_regions_) {
      std::lock_guard<std::mutex> g(held_mutex_);
      if (!pool_dry) {
        held_.insert(held_.end(), drop.begin(), drop.end());
        drop.clear();
      } else {
        drop.insert(drop.end(), held_.begin(), held_.end());
        held_.clear();
      }
    }
  }
  if (!drop.empty()) {
    const uint64_t t0 = now_ns();
    for (const auto& [from, len] : drop) backend_.from_space_done(from, len);
    release_ns = now_ns() - t0;
  }

  c_.bytes_copied.add(copied);
  c_.slots_stray.add(stray);
  c_.pages_in_place.add(in_place);
  c_.produce_ns.add((now_ns() - t_start) - (pass.install_ns - install_before) -
                    (pass.wait_ns - wait_before) - release_ns);
}

// Move: a region's free pages, [its data's end, the region's end), go in
// the same run as its data, zeroed in from-space, and the next region's run
// goes on from them. Left out, they cut every run at each region's data end
// (half a region at 50 % live): one MOVE per region, each one TLB shootdown,
// an IPI to every other CPU running the process — with two GC workers or
// with mutators running, the largest cost of the cycle. Installed, they are
// also pages the allocator fills next without a page fault each; they stay
// resident (the RSS after a cycle is the heap's used regions, whole).
// Pages below the old top held objects (slid down, or dead): cleared, as
// every free byte must read zero, while still in cache from the slide.
// Pages past it have not been written since they were last free: a zero
// page, or a hole that the MOVE skips and leaves unmapped.
void Producer::gc_tail(Pass& pass, size_t r, uintptr_t from, intptr_t wd) {
  const uintptr_t rb = heap_.region_base(r);
  const uintptr_t re = rb + heap_.region_size();
  const uintptr_t written = (rb + plan_.old_top(r) + page_ - 1) & ~uintptr_t(page_ - 1);
  for (uintptr_t a = from; a < re; a += page_) {
    const size_t p = heap_.page_index(a);
    if (!states_.claim_empty_for_gc(p)) continue;  // a mutator installed it: the run breaks
    if (a < written) memset(reinterpret_cast<char*>(a + wd), 0, page_);
    append(pass, p, wd);
    pass.tail_pages++;
  }
}

// A black region (or a black large object, from its head): its bytes stay,
// and the slots found by walking its objects are forwarded where they lie
// (the build place). Every page is claimed first and foreign pages waited
// for, so no page this worker rewrites can be built by a mutator after it.
void Producer::gc_black(Pass& pass, size_t r) {
  const uint64_t t_start = now_ns();
  const uint64_t install_before = pass.install_ns;
  const uint64_t wait_before = pass.wait_ns;
  const uintptr_t rb = heap_.region_base(r);
  const uintptr_t top = plan_.new_top(r);
  const uintptr_t content_end = (top + page_ - 1) & ~uintptr_t(page_ - 1);
  const size_t first = heap_.page_index(rb);
  const size_t end = heap_.page_index(content_end);
  if (end <= first) return;
  const intptr_t rd = spaces_.read[r], wd = spaces_.write[r];
  pass.first_page = first;
  pass.mine.assign(end - first, 0);
  for (size_t p = first; p < end; p++) pass.mine[p - first] = states_.claim_for_gc(p);
  for (size_t p = first; p < end; p++) {
    if (pass.mine[p - first] || states_.load(p) == kPageMapped) continue;
    const uint64_t t0 = now_ns();
    states_.wait_mapped(p);
    pass.wait_ns += now_ns() - t0;
  }
  uint64_t stray = 0, copied = 0;
  if (rd != wd) {  // a layout that builds elsewhere: bring the bytes of our pages there
    for (size_t p = first; p < end; p++) {
      if (!pass.mine[p - first]) continue;
      memcpy(reinterpret_cast<char*>(heap_.page_addr(p) + wd),
             reinterpret_cast<const char*>(heap_.page_addr(p) + rd), page_);
      copied += page_;
    }
  }
  const bool large = plan_.old_state(r) == RegionState::LARGE_HEAD;
  const bool ok = walk_black(heap_.model(), rb, top, rd, rb, top, large, [&](uintptr_t a) {
    if (!pass.mine[heap_.page_index(a) - first]) return;
    char* slot = reinterpret_cast<char*>(a + wd);
    store64(slot, plan_.forward_value(load64(slot), &stray));
  });
  if (!ok) c_.black_walk_errors.add(1);
  for (size_t p = first; p < end; p++)
    if (pass.mine[p - first]) append(pass, p, wd);
  uint64_t release_ns = 0;
  if (release_regions_) {
    flush(pass);
    const size_t len = std::max(heap_.region_size(), content_end - rb);
    const uint64_t t0 = now_ns();
    backend_.from_space_done(rb + rd, len);
    release_ns = now_ns() - t0;
  }
  c_.bytes_copied.add(copied);
  c_.slots_stray.add(stray);
  c_.produce_ns.add((now_ns() - t_start) - (pass.install_ns - install_before) -
                    (pass.wait_ns - wait_before) - release_ns);
}

// A live large object, page by page at its new place (ARCHITECTURE.md, "Large objects"): page i
// of the new object is page i of the old one, so no page depends on another
// and nothing waits. Unclipped (anon), the old page itself is the build
// place: its slots, if it has any, are forwarded where it lies in from-space
// and the run is installed straight from there — with move, a page without
// slots is never read or written, and a swapped-out page is moved as a swap
// entry. Clipped (shmem), a page that slides is copied into its new slot.
void Producer::gc_large(Pass& pass, size_t head) {
  const uint64_t t_start = now_ns();
  const uint64_t install_before = pass.install_ns;
  const uintptr_t old = heap_.region_base(head);
  const intptr_t shift = -plan_.large_delta(head);  // old - new, >= 0
  const uintptr_t nw = old - shift;
  const size_t first = heap_.page_index(nw);
  const size_t end = first + plan_.old_top(head) / page_;
  uint64_t mine = 0, copied = 0, updated = 0, stray = 0;
  for (size_t p = first; p < end; p++) {
    if (!states_.claim_for_gc(p)) continue;  // a faulting mutator has it
    // Clipped, the page is built at its own build address; else in place.
    const uintptr_t np = heap_.page_addr(p);
    char* into = clip_ ? reinterpret_cast<char*>(np + spaces_.write[heap_.region_index(np)]) : nullptr;
    const LargePage lp = large_page(p, into);
    mine++;
    copied += lp.copied;
    updated += lp.updated;
    stray += lp.stray;
    append(pass, p, intptr_t(lp.build) - intptr_t(np), /*large=*/true);
  }
  uint64_t release_ns = 0;
  if (release_regions_) {
    // Mutators building pages of this object read its old pages: wait for
    // them before from-space goes.
    flush(pass);
    uint64_t w0 = now_ns();
    for (size_t p = first; p < end; p++)
      if (states_.load(p) != kPageMapped) states_.wait_mapped(p);
    pass.wait_ns += now_ns() - w0;
    const size_t rs = heap_.region_size();
    const size_t len = (plan_.old_top(head) + rs - 1) & ~(rs - 1);
    uint64_t t0 = now_ns();
    backend_.from_space_done(old + spaces_.read[head], len);
    release_ns = now_ns() - t0;
  }
  c_.bytes_copied.add(copied * page_);
  (shift ? c_.large_pages_moved : c_.pages_in_place).add(mine);
  c_.large_pages_updated.add(updated);
  c_.slots_stray.add(stray);
  c_.large_pages_copied.add(kernel_copies_ ? mine : copied);
  c_.produce_ns.add((now_ns() - t_start) - (pass.install_ns - install_before) - release_ns);
}

Producer::LargePage Producer::large_page(size_t page, char* into) const noexcept {
  const uintptr_t np = heap_.page_addr(page);
  const uintptr_t first = plan_.first_object(page);
  const uintptr_t op = np + (first - plan_.forward(first));  // the same page of the old object
  char* const src = reinterpret_cast<char*>(op + spaces_.read[heap_.region_index(op)]);
  LargePage lp;
  lp.build = into ? into : src;
  lp.moved = op != np;
  if (lp.build != src) {
    memcpy(lp.build, src, page_);
    lp.copied = true;
  }
  heap_.ref_bits().for_each_set(op, op + page_, [&](uintptr_t a) {
    char* slot = lp.build + (a - op);
    store64(slot, plan_.forward_value(load64(slot), &lp.stray));
    lp.updated = true;
  });
  return lp;
}

void Producer::count_mutator_large(const LargePage& lp, bool kernel_copies) const noexcept {
  c_.large_pages_by_mutator.add(1);
  c_.large_pages_updated.add(lp.updated);
  c_.slots_stray.add(lp.stray);
  c_.large_pages_moved.add(lp.moved);
  if (lp.copied) c_.bytes_copied.add(page_);
  c_.large_pages_copied.add(lp.copied || kernel_copies_ || kernel_copies);
}

uintptr_t Producer::large_in_place(size_t page, bool will_copy) const noexcept {
  const uint64_t t0 = now_ns();
  const LargePage lp = large_page(page, nullptr);
  count_mutator_large(lp, will_copy);
  c_.produce_ns.add(now_ns() - t0);
  return reinterpret_cast<uintptr_t>(lp.build);
}

void Producer::build_page(size_t page, char* buf) const noexcept {
  const uintptr_t ps = heap_.page_addr(page);
  const uintptr_t pe = ps + page_;
  const PageKind kind = plan_.page_kind(page);
  const uintptr_t first = plan_.first_object(page);
  const LiveBitmap& refs = heap_.ref_bits();
  const size_t r = heap_.region_index(ps);
  const intptr_t rd = spaces_.read[r];
  uint64_t t0 = now_ns();

  if (kind == PageKind::LARGE) {
    count_mutator_large(large_page(page, buf));
    c_.produce_ns.add(now_ns() - t0);
    return;
  }

  if (kind == PageKind::BLACK) {
    // Same bytes; the slots in this page, found by walking the black
    // objects from where the page's walk starts (its region, or its large
    // object's head), are forwarded in the copy.
    const char* src = reinterpret_cast<const char*>(ps + rd);
    if (buf != src) {
      memcpy(buf, src, page_);
      c_.bytes_copied.add(page_);
    }
    const size_t wr = heap_.region_index(first);
    uint64_t stray = 0;
    const bool ok = walk_black(heap_.model(), first, plan_.new_top(wr), spaces_.read[wr], ps, pe,
                               plan_.old_state(wr) == RegionState::LARGE_HEAD, [&](uintptr_t a) {
                                 char* slot = buf + (a - ps);
                                 store64(slot, plan_.forward_value(load64(slot), &stray));
                               });
    if (!ok) c_.black_walk_errors.add(1);
    c_.slots_stray.add(stray);
    c_.produce_ns.add(now_ns() - t0);
    return;
  }

  if (kind != PageKind::FRAGMENTED) {
    // DENSE: the page keeps its bytes and only its recorded slots are
    // forwarded. With a shared layout buf may be the page itself (updated
    // in place).
    const char* src = reinterpret_cast<const char*>(ps + rd);
    if (buf != src) {
      memcpy(buf, src, page_);
      c_.bytes_copied.add(page_);
    }
    uint64_t stray = 0;
    refs.for_each_set(ps, pe, [&](uintptr_t a) {
      char* slot = buf + (a - ps);
      store64(slot, plan_.forward_value(load64(slot), &stray));
    });
    c_.slots_stray.add(stray);
    c_.produce_ns.add(now_ns() - t0);
    return;
  }

  const uintptr_t data_end = std::min(plan_.new_top(r), pe);
  uintptr_t nw = plan_.forward(first);
  uint64_t copied = 0, stray = 0;
  LiveObject o;
  // From the first object's region on, through the blocks packed after it
  // (Plan::pack_next), until the page is full.
  uintptr_t from_obj = first;
  for (size_t from = heap_.region_index(first); from != Plan::kNoRegion && nw < pe;) {
    const intptr_t from_rd = spaces_.read[from];
    for (LiveCursor cur(plan_, from_obj, plan_.live_end(from)); cur.next(&o); nw += o.size) {
      if (nw >= pe) break;
      const uintptr_t lo = std::max(nw, ps);
      const uintptr_t hi = std::min(nw + o.size, pe);
      const char* old_obj = reinterpret_cast<const char*>(o.old_addr + from_rd);
      memcpy(buf + (lo - ps), old_obj + (lo - nw), hi - lo);
      copied += hi - lo;
      // The slots of the part in this page, at their old addresses.
      const uintptr_t old = o.old_addr;
      refs.for_each_set(old + (lo - nw), old + (hi - nw), [&](uintptr_t a) {
        const size_t off = a - old;
        store64(buf + (nw + off - ps), plan_.forward_value(load64(old_obj + off), &stray));
      });
    }
    from = plan_.pack_next(from);
    if (from != Plan::kNoRegion) from_obj = heap_.region_base(from);
  }
  if (data_end < pe) memset(buf + (data_end - ps), 0, pe - data_end);
  c_.bytes_copied.add(copied);
  c_.slots_stray.add(stray);
  c_.produce_ns.add(now_ns() - t0);
}

}  // namespace remap

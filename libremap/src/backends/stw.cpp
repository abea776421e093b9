// stw.cpp — the stop-the-world reference compactor (see stw.h).
//
// Why this order is safe: live objects of FRAGMENTED regions are visited
// in address order (region by region) and each moves to new <= old, after
// the objects before it (packed regions only move down, plan.h); an
// object's bytes are therefore never overwritten before it is moved
// (memmove handles the overlap with itself). Reference slots are
// rewritten before the move, with Plan::forward_value of the slot's value:
// it only reads the plan and the bitmaps, never object bytes, so rewriting
// in any order gives the same result. The slots are the ones Heap::mark
// recorded (offsets checked there), as the concurrent producers use: no
// object-model callback runs here, so nothing the runtime answers now can
// differ from what was checked.
#include "backends/stw.h"

#include "os/clock.h"
#include "plan/black_walk.h"

#include <algorithm>
#include <cstring>

namespace remap {
namespace {

using os::now_ns;


class StwPass {
 public:
  StwPass(Heap& heap, const Plan& plan, remap_cycle_stats* stats)
      : heap_(heap), plan_(plan), stats_(stats) {}

  // Only the release of free memory (a cycle that moves nothing, after the
  // pause): see stw_release.
  Status release_only() {
    const uint64_t t0 = now_ns();
    Status s = release_free_pages();
    if (stats_) {
      stats_->madvise_ns += now_ns() - t0;
      stats_->madvise_calls += madvise_calls_;
    }
    return s;
  }

  Status run() {
    uint64_t t0 = now_ns();
    // Nothing moves: every slot would be rewritten to its own value, and
    // free memory is all that changes.
    for (size_t r = 0; r < plan_.region_count() && !plan_.nothing_moves(); ++r) {
      switch (plan_.region_class(r)) {
        case RegionClass::FRAGMENTED: slide(r); break;
        case RegionClass::DENSE: update_in_place(r); break;
        case RegionClass::LARGE: slide_large(r); break;
        case RegionClass::BLACK: update_black(r); break;
        case RegionClass::EMPTY: break;
      }
    }
    if (black_errors_)
      return fail(REMAP_EOBJMODEL,
                  "the object model gave a size or slot offset that cannot be right while "
                  "walking %llu black region(s) (objects allocated since remap_cycle_begin); "
                  "their later slots were not forwarded",
                  (unsigned long long)black_errors_);
    uint64_t t1 = now_ns();
    Status s = release_free_pages();
    uint64_t t2 = now_ns();
    if (stats_) {
      stats_->produce_ns += t1 - t0;
      stats_->madvise_ns += t2 - t1;
      stats_->bytes_copied += bytes_copied_;
      stats_->madvise_calls += madvise_calls_;
      stats_->large_pages_moved += large_pages_moved_;
      stats_->large_pages_copied += large_pages_copied_;
      stats_->large_pages_updated += large_pages_updated_;
      stats_->slots_stray += stray_;
      stats_->black_walk_errors += black_errors_;
    }
    return s;
  }

 private:
  // Into its block (Plan::pack_dest: the region's base, or a lower region's
  // room when packed; regions run in address order, so that room's old
  // objects were moved already).
  // By runs of adjacent live objects, as the GC workers do (producer.cpp):
  // neither the move nor the slots need object boundaries.
  void slide(size_t r) {
    uintptr_t to = plan_.pack_dest(r);
    const LiveBitmap& live = heap_.live_bits();
    live.for_each_run(heap_.region_base(r), plan_.live_end(r), [&](uintptr_t a, uintptr_t e) {
      rewrite_recorded(a, e - a);
      if (to != a) {
        std::memmove(reinterpret_cast<void*>(to), reinterpret_cast<const void*>(a), e - a);
        bytes_copied_ += e - a;
      }
      to += e - a;
    });
  }

  // A large object (at its head): slots rewritten, then the whole object
  // memmoved to its new place if it slides. The plan puts it only on
  // regions that are free, hold dead data, or were vacated by large objects
  // before it (all processed already), never on a later object's bytes.
  void slide_large(size_t r) {
    if (plan_.old_state(r) != RegionState::LARGE_HEAD) return;
    const uintptr_t old = heap_.region_base(r);
    const size_t bytes = plan_.old_top(r), pages = bytes / heap_.page_size();
    // From the slots recorded at mark, not the object model: visiting
    // would read the object's header page, and a large object that stays
    // must not be read at all (a swapped-out array stays swapped out).
    large_pages_updated_ += rewrite_recorded(old, bytes);
    if (plan_.large_delta(r) == 0) return;
    std::memmove(reinterpret_cast<void*>(old + plan_.large_delta(r)),
                 reinterpret_cast<const void*>(old), bytes);
    bytes_copied_ += bytes;
    large_pages_moved_ += pages;
    large_pages_copied_ += pages;
  }

  // Forwards the slots Heap::mark recorded in [obj, obj + bytes); returns
  // how many pages held one.
  size_t rewrite_recorded(uintptr_t obj, size_t bytes) {
    size_t pages = 0;
    uintptr_t last_page = 0;
    heap_.ref_bits().for_each_set(obj, obj + bytes, [&](uintptr_t a) {
      auto* slot = reinterpret_cast<uint64_t*>(a);
      *slot = plan_.forward_value(*slot, &stray_);
      const uintptr_t page = a & ~uintptr_t(heap_.page_size() - 1);
      pages += page != last_page;
      last_page = page;
    });
    return pages;
  }

  // A black region (or large object, at its head): its objects stay; their
  // slots, found by walking them with the object model, are forwarded.
  void update_black(size_t r) {
    if (plan_.old_state(r) == RegionState::LARGE_TAIL) return;
    const uintptr_t rb = heap_.region_base(r), end = plan_.new_top(r);
    const bool large = plan_.old_state(r) == RegionState::LARGE_HEAD;
    bool ok = walk_black(heap_.model(), rb, end, 0, rb, end, large, [&](uintptr_t a) {
      auto* slot = reinterpret_cast<uint64_t*>(a);
      *slot = plan_.forward_value(*slot, &stray_);
    });
    black_errors_ += !ok;
  }

  void update_in_place(size_t r) {
    rewrite_recorded(heap_.region_base(r), plan_.live_end(r) - heap_.region_base(r));
  }

  // Free memory must read as zero after the cycle: zero the partial page at
  // a FRAGMENTED region's new top, drop whole pages (MADV_DONTNEED on private
  // anonymous memory: they read zero again) up to the old top.
  Status release_free_pages() {
    const size_t ps = heap_.page_size();
    auto page_up = [ps](uintptr_t a) { return (a + ps - 1) & ~uintptr_t(ps - 1); };
    for (size_t r = 0; r < plan_.region_count(); ++r) {
      uintptr_t rb = heap_.region_base(r);
      uintptr_t from = 0, to = 0;
      switch (plan_.region_class(r)) {
        case RegionClass::FRAGMENTED: {
          uintptr_t nt = plan_.new_top(r), up = page_up(nt);
          std::memset(reinterpret_cast<void*>(nt), 0, up - nt);
          from = up;
          to = page_up(rb + plan_.old_top(r));
          break;
        }
        case RegionClass::EMPTY:
          if (plan_.old_state(r) == RegionState::FREE) continue;
          // A dead large object: each region on its own (a sliding object
          // may have landed on some of them).
          from = rb;
          to = plan_.old_state(r) == RegionState::RETIRED ? page_up(rb + plan_.old_top(r))
                                                          : rb + heap_.region_size();
          break;
        case RegionClass::LARGE:
          if (plan_.large_delta(r) == 0) continue;
          from = rb;  // a slid object's old region
          to = rb + heap_.region_size();
          break;
        default:
          continue;
      }
      // What a sliding large object now occupies stays.
      from = std::max(from, plan_.large_new_end(r));
      if (to <= from) continue;
      // Adjacent free ranges (runs of empty regions) go in one madvise.
      if (from != pending_to_) flush();
      if (pending_from_ == 0) pending_from_ = from;
      pending_to_ = to;
    }
    flush();
    return Status::ok();
  }

  void flush() {
    if (pending_to_ > pending_from_ && pending_from_ != 0) {
      Status s = heap_.release_pages(pending_from_, pending_to_ - pending_from_);
      ++madvise_calls_;
      // Correctness does not depend on the madvise: if it fails, write zeros.
      if (!s)
        std::memset(reinterpret_cast<void*>(pending_from_), 0, pending_to_ - pending_from_);
    }
    pending_from_ = pending_to_ = 0;
  }

  Heap& heap_;
  const Plan& plan_;
  remap_cycle_stats* stats_;
  uint64_t stray_ = 0;
  uint64_t black_errors_ = 0;
  uint64_t bytes_copied_ = 0;
  uint64_t madvise_calls_ = 0;
  uint64_t large_pages_moved_ = 0, large_pages_copied_ = 0, large_pages_updated_ = 0;
  uintptr_t pending_from_ = 0, pending_to_ = 0;
};

}  // namespace

Status stw_compact(Heap& heap, const Plan& plan, remap_cycle_stats* stats) {
  return StwPass(heap, plan, stats).run();
}

Status stw_release(Heap& heap, const Plan& plan, remap_cycle_stats* stats) {
  return StwPass(heap, plan, stats).release_only();
}

}  // namespace remap

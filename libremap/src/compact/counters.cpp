// counters.cpp — resetting and publishing a cycle's counters.
#include "compact/counters.h"

namespace remap {

void CycleCounters::reset() {
  for (Counter* c : {&produce_ns, &install_ns, &wait_ns, &fault_alloc_ns, &madvise_ns,
                     &pages_installed, &pages_by_gc, &pages_by_mutator, &pages_zero,
                     &pages_in_place, &ioctl_move, &ioctl_copy, &ioctl_zeropage,
                     &ioctl_continue, &ioctl_wake, &pages_moved, &pages_copied,
                     &mprotect_calls, &madvise_calls, &bytes_copied, &buffers_recycled,
                     &buffers_new, &fallback_ebusy, &fallback_other, &large_pages_moved,
                     &large_pages_copied, &large_pages_updated, &large_pages_by_mutator,
                     &slots_stray, &black_walk_errors})
    c->reset();
  latency.reset();
}

void CycleCounters::fill(remap_cycle_stats* s) const {
  s->produce_ns = produce_ns.get();
  s->install_ns = install_ns.get();
  s->wait_ns = wait_ns.get();
  s->fault_alloc_ns = fault_alloc_ns.get();
  s->madvise_ns = madvise_ns.get();
  s->pages_installed = pages_installed.get();
  s->pages_by_gc = pages_by_gc.get();
  s->pages_by_mutator = pages_by_mutator.get();
  s->pages_zero = pages_zero.get();
  s->pages_in_place = pages_in_place.get();
  s->ioctl_move = ioctl_move.get();
  s->ioctl_copy = ioctl_copy.get();
  s->ioctl_zeropage = ioctl_zeropage.get();
  s->ioctl_continue = ioctl_continue.get();
  s->ioctl_wake = ioctl_wake.get();
  s->pages_moved = pages_moved.get();
  s->pages_copied = pages_copied.get();
  s->mprotect_calls = mprotect_calls.get();
  s->madvise_calls = madvise_calls.get();
  s->bytes_copied = bytes_copied.get();
  s->buffers_recycled = buffers_recycled.get();
  s->buffers_new = buffers_new.get();
  s->fallback_ebusy = fallback_ebusy.get();
  s->fallback_other = fallback_other.get();
  s->large_pages_moved = large_pages_moved.get();
  s->large_pages_copied = large_pages_copied.get();
  s->large_pages_updated = large_pages_updated.get();
  s->large_pages_by_mutator = large_pages_by_mutator.get();
  s->slots_stray = slots_stray.get();
  s->black_walk_errors = black_walk_errors.get();
  s->helper_wait_ns = helper_wait_ns.get();
  latency.fill(s);
}

}  // namespace remap

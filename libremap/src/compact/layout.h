// layout.h — where a cycle's old and new bytes live, and how the heap range
// is made to fault while pages are produced.
//
// AnonLayout (move, copy): the heap is private anonymous memory. The flip
// mremaps it (MREMAP_DONTUNMAP) onto a from-space of the same size and
// alignment and registers the empty heap range for MISSING faults; pages are
// built in from-space at the same offset, so old and new bytes of a region
// share one delta.
//
// A shared layout (minor, sigsegv: heap on a memfd) keeps each
// region's pages in one of two file slots and builds pages through a second
// mapping of the whole file: a fragmented region reads its old slot and
// writes its new one, a dense region updates its one slot in place. There
// the page being built is already the page the heap will map, so a producer
// must only ever write the to-space pages it owns (clip()).
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "plan/plan.h"

namespace remap {

struct RegionSpaces {
  // Per region: old bytes of address a are at a + read[r]; its new bytes are
  // built at a + write[r].
  std::vector<intptr_t> read;
  std::vector<intptr_t> write;
};

class Layout {
 public:
  virtual ~Layout() = default;
  // Outside the pause: the cycle's spaces.
  virtual Status prepare(const Plan& plan, RegionSpaces* spaces) = 0;
  // The pause: from now on a touch of an unproduced page faults. On failure
  // the heap must be as it was; if the kernel refused even the undo, *lost
  // is set and the Status says where the heap's bytes are (the engine then
  // breaks the heap: mutators would not read them where they were).
  virtual Status flip(const Plan& plan, bool* lost) = 0;
  // Every page with data is installed: stop faulting (a thread parked on an
  // EMPTY page is woken and faults normally).
  virtual Status stop_faults() = 0;
  // After stop_faults: release or recycle what the old layout left.
  virtual Status release_old(const Plan& plan) = 0;
  // True if building a page writes memory the heap will map (see above).
  virtual bool clip() const = 0;

  // fork() (api/fork_guard.cpp drives these from pthread_atfork handlers).
  // fork_prepare: the parent, before the fork, with every page of a cycle in
  // progress installed and no cycle transition running; other threads still
  // run. fork_parent: the parent, after the fork. fork_child: the child,
  // single-threaded: the heap range must become this process's own memory
  // holding the heap as it was at the fork. Returns false if it could not;
  // the range is then made inaccessible (a fault in the child, never a
  // store into the parent's heap). Anonymous layouts need nothing: fork
  // copies private memory.
  virtual void fork_prepare() noexcept {}
  virtual void fork_parent() noexcept {}
  virtual bool fork_child() noexcept { return true; }
  // The child gives this layout up (it belonged to the parent's engine):
  // close what it owns that is safe to close; unmap nothing (ranges marked
  // MADV_DONTFORK are not ours here, and their addresses may be reused).
  virtual void abandon_in_child() noexcept {}
};

}  // namespace remap

// fork_guard.h — a heap across fork().
//
// A zygote-style runtime forks with live heaps, between cycles or in the
// middle of one. What the kernel does to a heap at fork, and so what this
// guard must do:
//   - Private anonymous memory (move, copy, stw heaps) is copied on write:
//     the child has its own heap bytes. MAP_SHARED memory (the minor and
//     sigsegv heaps live on a memfd) is shared: a child's store would land in
//     the parent's heap.
//   - Without UFFD_FEATURE_EVENT_FORK (which needs CAP_SYS_PTRACE) the kernel
//     drops every uffd registration from the child's VMAs: a page the cycle
//     has not installed yet simply reads zero (or stale file bytes) there.
//   - A userfaultfd belongs to the mm that opened it. An inherited fd still
//     works in the child, on the parent's mm: UFFDIO_MOVE refuses (EINVAL,
//     cross-mm), UFFDIO_COPY/ZEROPAGE/CONTINUE/REGISTER would act on the
//     parent's address space. A child must never issue them.
//   - Only the forking thread exists in the child: the engine's handler
//     threads and GC workers do not, and a mutex another thread held at the
//     fork stays locked forever.
//
// So, with pthread_atfork handlers installed at the first heap create:
//   prepare (parent): takes the registry lock and, per heap, its
//     cycle_mutex (unless this thread already holds it: a fork from an
//     object-model callback inside remap_prepare or the stw flip, which the
//     child then simply finishes), stats_mutex and allocation mutex; a cycle
//     in progress gets every remaining page installed (Compactor::
//     fork_prepare), and a shared layout takes the child's private snapshot.
//   parent: releases everything.
//   child: a new fork generation (every heap is now "inherited"); a shared
//     heap range is replaced by its private snapshot (no store of the child
//     reaches the parent, none of the parent's after the fork reaches the
//     child); the engine is told it is inherited (it will never make a
//     kernel call again); the locks are released.
// An inherited heap then works in the child: allocation, marking,
// forwarding and info are memory-only; a cycle that was COMPACTING at the
// fork is complete (compact/work/touch have nothing left to do, finish is
// bookkeeping); the next prepare (or a flip of a heap inherited PREPARED)
// gives the heap a new engine of this process — a new userfaultfd, pool,
// from-space or memfd, fault delivery — and the old one is abandoned and
// leaked (its threads are the parent's: never joined). remap_heap_destroy
// in the child leaks the old engine the same way. An stw heap needs nothing.
//
// The check is one relaxed atomic load on the cycle calls; remap_forward
// does not check at all (it is pure computation, correct in the child).
// The registry is the library's second piece of global state, forced by
// pthread_atfork's process-wide handlers.
#pragma once

#include "api/handle.h"

namespace remap::api {

// Runs attach(h) (which may open a uffd, start threads, install signal
// handlers) with forks excluded, then records the heap as this process's and
// registers it (once). Installs the atfork handlers on first use.
Status fork_guard_attach(remap_heap& h, Status (*attach)(remap_heap&));
// remap_heap_destroy, before the heap is deleted: unregisters it; in a child,
// abandons and leaks an inherited engine.
void fork_guard_detach(remap_heap& h);
// True if `h` was inherited across fork() and has no engine of this process.
bool fork_inherited(const remap_heap& h);
// A failure to give an inherited heap a new engine: why's status, with a
// message naming the fork and the parent.
Status fork_refusal(const remap_heap& h, const Status& why);

}  // namespace remap::api

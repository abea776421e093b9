// shmem_layout.h — the layout of the minor and sigsegv backends (see
// layout.h for the interface).
//
// The heap's reservation [base, base+max_capacity) is MAP_SHARED of a memfd
// of 2 x max_capacity (a resize only changes how many regions are the heap).
// Each region's pages live in one of two slots of the file: region r of slot
// s is at file offset s*max_capacity + r*region_size. A second read-write
// mapping of the whole file (the alias) is from-space and the place pages
// are built. Per cycle:
//   prepare   FRAGMENTED regions and EMPTY regions that held data switch to
//             the other slot (which is a hole: it reads zero); DENSE and
//             LARGE regions keep theirs (updated in place); FREE regions keep
//             theirs. read = old slot, write = new slot, through the alias.
//   flip      the heap range is re-mapped MAP_FIXED onto the new slots, one
//             mmap per run of regions whose file offsets are contiguous (this
//             also drops every heap PTE, so every page faults once), then
//             minor: registered MISSING|MINOR — a dense page is in the page
//               cache and faults MINOR, a fragmented page's new-slot page does
//               not exist yet and faults MISSING;
//             sigsegv: the runs are mapped PROT_NONE; SIGSEGV (SEGV_ACCERR)
//               resolves faults. Before anything changes, the worst-case VMA
//               count of the cycle is checked against vm.max_map_count.
//   stop      minor: unregister; sigsegv: mprotect the whole range RW (opens
//             the EMPTY pages nobody touched; a run's pages merge back into
//             one VMA).
//   release   the old slots of the regions that switched are punched
//             (fallocate PUNCH_HOLE, one call per contiguous run; counted as
//             madvise calls): the slot a region is not in is always a hole.
//
// Unlike the anonymous heap, a MAP_SHARED heap is shared, not copied, with a
// fork()ed child: a child that wrote the heap would write the parent's. So
// the alias is MADV_DONTFORK, and at a fork the layout snapshots the heap
// into private memory (fork_prepare, in the parent) which the child moves
// over its heap range (fork_child); see api/fork_guard.h.
//
// Invariant between cycles: for every region, the slot it is not in reads
// zero (or is marked dirty and punched before use), and the free bytes of the
// slot it is in read zero.
#pragma once

#include <memory>

#include "compact/counters.h"
#include "compact/layout.h"
#include "heap/heap.h"

namespace remap {

// protect false: faults come through `uffd`, a handshaken userfaultfd with
// UFFD_FEATURE_MINOR_SHMEM (minor); true: the heap is mapped PROT_NONE and
// faults arrive as SIGSEGV (sigsegv; uffd unused). Replaces the heap's
// anonymous range with the memfd, carrying over any bytes already allocated.
// `counters` must outlive the layout.
Status make_shmem_layout(Heap& heap, bool protect, int uffd, CycleCounters& counters,
                         std::unique_ptr<Layout>* out);

// The worst case the sigsegv layout checks at flip: opened ranges can split
// the heap range into at most one VMA per page.
inline size_t sigsegv_worst_vmas(const Heap& heap) { return heap.page_count(); }

}  // namespace remap

"""The cold-pages workload (use case B, DESIGN.md §8, issue 7).

Large primitive arrays (``remap_alloc_large``: page-aligned, whole regions;
no reference slots: ``large_max_refs=0``), half of them dead, and a few
small-object regions. After prepare, the live arrays are paged out with
MADV_PAGEOUT to a swap file the harness creates for the run; the run waits
until every one of their pages is a swap entry and the writeback is over (a
page under writeback is not exclusive: MOVE would answer EBUSY and the
library would fall back), then drops them from the swap cache (``page_out``
says how), so that they are cold for real: touching one reads it from the
swap file. Then the measured cycle slides the live arrays down over the dead
ones.

What a run reports beyond the common fields:

- ``large_live_pages``: pages of live large objects (page-rounded);
  ``large_pages_paged_out``: those of them that were swap entries at the flip
  (``/proc/self/pagemap`` bit 62 at their old address);
  ``large_pages_in_swap_cache``: of those, the ones the swap cache still held
  (mincore), normally 0.
- ``large_pages_swapped_in``: of those, the ones not a swap entry any more at
  the object's NEW address (``remap_forward`` at prepare) after the cycle:
  the pages the cycle read back from swap. Per page and per process.
- ``swap_ins``: the larger of ``large_pages_swapped_in`` and the fall of this
  process's ``VmSwap`` in pages (it also sees a swap-in served from the swap
  cache, which ``/proc/vmstat`` pswpin does not count). ``major_faults``
  (this process) says how many of them waited for the swap file. ``pswpin``
  (and ``zswpin``) are reported too but are system-wide: other processes add
  to them.
- ``large_objects_moved``, ``large_pages_moved``, ``large_pages_copied``,
  ``large_pages_updated``: the library's own counts (remap_cycle_stats).
- ``large_pages_per_s``: ``large_live_pages`` / compaction time: how fast the
  backend puts the live large pages in place.

The goal (issue 7): no swap-in with ``move``; ``copy`` reads every live
page back in, and is at least 10x slower.

The runner activates the swap file (root only; ``swapfile.py``) around the
point; the page-out and the page-table reads are ``pageout.py``. Without
root or swap support the workload is skipped with the reason.
"""

from __future__ import annotations

from typing import Any

from ..pageout import PM_SWAPPED, count_pages, page_out, pages_of, read_zswpin
from ..procfs import PAGE_SIZE, vm_swap_bytes
from .base import REGION, MiB, Point
from .synthetic import Synthetic

#: Size of one large array: 4 regions (1 MiB, 256 pages).
LARGE_OBJECT_BYTES = 4 * REGION
#: Share of the heap's regions holding small objects; the rest is large arrays.
SMALL_FRACTION = 1 / 16


class ColdPages(Synthetic):
    name = "cold-pages"

    def __init__(self, point: Point) -> None:
        super().__init__(point)
        self._heap: Any = None
        self._new: list[tuple[int, int]] = []
        self._zswpin0: int | None = None

    def regions(self) -> int:
        return max(8, self.point.heap_mib * MiB // REGION)

    def large_count(self) -> int:
        per = LARGE_OBJECT_BYTES // REGION
        small = max(1, round(self.regions() * SMALL_FRACTION))
        return max(4, (self.regions() - small) // per)

    def describe(self) -> str:
        p = self.point
        n = self.large_count()
        return (
            f"cold-pages: heap {p.heap_mib} MiB, {n} large primitive arrays of"
            f" {LARGE_OBJECT_BYTES // 1024} KiB ({n * LARGE_OBJECT_BYTES // MiB} MiB),"
            f" half dead, the live ones paged out (MADV_PAGEOUT) to a swap file;"
            f" small objects in {SMALL_FRACTION:.0%} of the regions"
        )

    def heap_params(self) -> dict[str, Any]:
        params = super().heap_params()
        params.update(
            {
                "capacity": self.regions() * REGION,
                "fill_fraction": SMALL_FRACTION,
                "large_objects": self.large_count(),
                "large_object_size": LARGE_OBJECT_BYTES,
                "large_live_fraction": 0.5,
                "large_max_refs": 0,  # primitive arrays: nothing to update, nothing to read
            }
        )
        return params

    def swap_bytes_needed(self) -> int:
        # Half the large bytes are live; the swap devices must stay less than
        # half full for page_out() to drop the swap cache: three times that.
        return self.large_count() * LARGE_OBJECT_BYTES * 3 // 2

    def run(self, backend: str) -> dict[str, Any]:
        try:
            rec = super().run(backend)
            if not rec["verified"]:
                rec["large_pages_per_s"] = None  # a wrong result gets no time
            return rec
        finally:
            self._heap = None
            self._new = []

    def before_flip(self, heap: Any, rec: dict[str, Any]) -> None:
        # objects() reads every header: before the page-out, not after.
        live = [
            (a, pages_of(size))
            for a, size, _id, is_live, large in heap.objects()
            if large and is_live
        ]
        self._heap = heap
        self._new = [(heap.forward(a), n) for a, n in live]
        before = vm_swap_bytes() or 0
        po = page_out(live)
        swapped, total, errors = po.swapped, po.pages, po.errors
        rec["large_live_pages"] = total
        rec["large_pages_paged_out"] = swapped
        rec["large_pages_in_swap_cache"] = po.in_swap_cache if swapped else None
        rec["paged_out_bytes"] = (vm_swap_bytes() or 0) - before
        if swapped == 0:
            rec["note"] = (
                "no live large page became a swap entry: this backend's heap is a shared"
                " memfd mapping (minor, sigsegv), whose paged-out pages neither the page"
                " table nor VmSwap show; its swap-ins are not measured"
            )
        elif swapped < total:
            rec["note"] = f"only {swapped} of {total} live large pages were paged out"
        if errors:
            rec["pageout_errors"] = sorted(errors)
        self._zswpin0 = read_zswpin()

    def after_cycle(self, rec: dict[str, Any], delta: dict[str, int]) -> None:
        # Before verification reads the heap (and swaps everything in).
        still = count_pages(self._new, PM_SWAPPED)
        paged = int(rec.get("large_pages_paged_out") or 0)
        rec["large_pages_swapped_after"] = still
        rec["large_pages_swapped_in"] = max(0, paged - still) if paged else None
        st = self._heap.stats() if self._heap is not None else {}
        for k in (
            "large_objects_moved",
            "large_pages_moved",
            "large_pages_copied",
            "large_pages_updated",
        ):
            v = st.get(k)
            rec[k] = None if v is None else int(v)
        comp = rec.get("compaction_ns")
        live = rec.get("large_live_pages")
        rec["large_pages_per_s"] = live / (comp / 1e9) if comp and live else None
        rec["pswpin"] = delta["pswpin"]
        z0, z1 = self._zswpin0, read_zswpin()
        rec["zswpin"] = None if z0 is None or z1 is None else z1 - z0
        before, after = rec.get("vm_swap_before"), rec.get("vm_swap_after")
        fell = None if before is None or after is None else max(0, before - after) // PAGE_SIZE
        rec["vm_swap_fell_pages"] = fell
        # Nothing paged out: nothing to swap in, so nothing measured.
        if paged and fell is not None:
            rec["swap_ins"] = max(fell, rec["large_pages_swapped_in"])
        else:
            rec["swap_ins"] = None


def point_needs_swap(point: Point) -> int:
    """Bytes of swap the cold-pages run at ``point`` needs."""
    return ColdPages(point).swap_bytes_needed()

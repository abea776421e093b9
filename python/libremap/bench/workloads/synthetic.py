"""``synthetic``: ``SyntheticHeap`` from a fixed seed (deterministic, so
every run starts from the same bytes at the same offsets), one measured cycle.

``threads`` here are concurrent *reader* threads: after the flip each one
traverses the whole object graph (``checksum()``) while the library
compacts, faulting on pages not produced yet, so fault latency is measured;
0 = compaction alone. GC threads are ``--gc-threads``. A run is verified
when the image hash and the graph checksum after the cycle, and every
reader's checksum during it, equal the stw reference. ``before_flip`` and
``after_cycle`` are the hooks ``cold-pages`` (``coldpages.py``) builds on.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ...synthetic import PHASE_COMPACTING, RemapError, SyntheticHeap
from .. import record
from ..procfs import Counters, peak_rss_bytes, reset_peak_rss, vma_count
from .base import REGION, UNAVAILABLE_STATUSES, MiB, Point, Unavailable, Workload


class Synthetic(Workload):
    name = "synthetic"

    def __init__(self, point: Point) -> None:
        super().__init__(point)
        self.ref: tuple[int, int] | None = None

    def describe(self) -> str:
        p = self.point
        return (
            f"synthetic: heap {p.heap_mib} MiB, live {p.live:.2f}, dense {p.dense:.2f},"
            f" objects {p.min_object}-{p.max_object} B, seed {p.seed},"
            f" {p.threads} reader thread(s), {p.gc_threads} GC thread(s)"
        )

    def heap_params(self) -> dict[str, Any]:
        p = self.point
        return {
            "capacity": max(4 * REGION, p.heap_mib * MiB // REGION * REGION),
            "region_size": REGION,
            "seed": p.seed,
            "live_ratio": p.live,
            "dense_fraction": p.dense,
            "min_object_size": p.min_object,
            "max_object_size": p.max_object,
            "gc_threads": p.gc_threads,
        }

    def _build(self, backend: str) -> Any:
        try:
            return SyntheticHeap(
                backend=backend,  # type: ignore[arg-type]  # a name the options checked
                fault_mode=self.point.fault_mode,  # type: ignore[arg-type]
                **self.heap_params(),
            )
        except RemapError as e:
            if e.status_name in UNAVAILABLE_STATUSES:
                raise Unavailable(e.message) from None
            raise

    def reference(self) -> None:
        h = self._build("stw")
        before = h.checksum()
        h.collect()
        after = h.checksum()
        if before != after:
            raise RuntimeError("the stw reference changed the object graph: cannot verify")
        self.ref = (after, h.image_hash())
        del h

    def before_flip(self, heap: Any, rec: dict[str, Any]) -> None:
        """Hook between prepare and flip (cold-pages pages out here)."""

    def run(self, backend: str) -> dict[str, Any]:
        assert self.ref is not None
        rec = self._record(backend)
        heap = self._build(backend)
        try:
            heap.mark()
            heap.prepare()
            self.before_flip(heap, rec)
            vmas0 = vma_count()
            c0 = Counters.take()
            peak_known = reset_peak_rss()
            t0 = time.perf_counter_ns()
            heap.flip()
            seen: list[int] = []
            failures: list[BaseException] = []
            if heap.phase == PHASE_COMPACTING:

                def reader() -> None:
                    try:
                        seen.append(heap.checksum())
                    except BaseException as e:  # noqa: BLE001 - reported in the record
                        failures.append(e)

                readers = [
                    threading.Thread(target=reader, name=f"bench-reader-{i}")
                    for i in range(self.point.threads)
                ]
                for t in readers:
                    t.start()
                heap.compact()
                for t in readers:
                    t.join()
                heap.finish()
            t1 = time.perf_counter_ns()
            c1 = Counters.take()
            rec["rss_peak"] = peak_rss_bytes() if peak_known else None
            vmas1 = vma_count()
        except RemapError as e:
            if e.status_name in UNAVAILABLE_STATUSES:
                raise Unavailable(e.message) from None
            rec["error"] = f"{e.status_name}: {e.message}"
            rec["verify_detail"] = "the cycle failed"
            return rec
        rec["gc_cycle_ns"] = t1 - t0
        rec["rss_before"], rec["rss_after"] = c0.rss, c1.rss
        rec["vm_swap_before"], rec["vm_swap_after"] = c0.vm_swap, c1.vm_swap
        d = c0.delta(c1)
        record.fill_counters(rec, d)
        record.fill_from_cycles(rec, [heap.stats()])
        # stw does not count VMAs (nothing maps during its cycle): read them here.
        rec["vmas_proc_before"], rec["vmas_proc_after"] = vmas0, vmas1
        if not rec["vmas_before"] and not rec["vmas_after"]:
            rec["vmas_before"], rec["vmas_after"] = vmas0, vmas1
        self.after_cycle(rec, d)
        checksum, image = heap.checksum(), heap.image_hash()
        problems = []
        if checksum != self.ref[0]:
            problems.append("object graph checksum differs from stw")
        if image != self.ref[1]:
            problems.append("heap image differs from stw")
        if failures:
            problems.append(f"a reader failed: {failures[0]}")
        if any(s != self.ref[0] for s in seen):
            problems.append("a reader saw a different object graph during compaction")
        rec["verified"] = not problems
        rec["verify_detail"] = "; ".join(problems) or (
            f"image hash and checksum equal stw's; {len(seen)} reader(s) agreed"
        )
        return rec

    def after_cycle(self, rec: dict[str, Any], delta: dict[str, int]) -> None:
        """Hook after the cycle, before verification touches the heap."""

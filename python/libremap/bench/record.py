"""One run's record: the JSON fields of issue 6, from the library's
``remap_cycle_stats`` (one cycle) or the toy VM's per-collection stats.

Times of a run whose result was wrong are not reported: ``redact`` nulls
them and the record keeps ``verified: false`` (the summaries skip it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._names import BACKEND_NAMES, FAULT_MODE_NAMES

SPLIT_KEYS = ("produce", "install", "wait", "fault_alloc", "madvise")
IOCTL_KEYS = ("move", "copy", "zeropage", "continue", "wake")
# Fields holding a time; nulled for unverified runs.
TIME_FIELDS = (
    "compaction_ns",
    "flip_pause_ns",
    "gc_cycle_ns",
    "pause_max_ns",
    "pause_p50_ns",
    "pause_p99_ns",
    "pause_total_ns",
    "ttsp_max_ns",
    "pause_resume_p50_ns",
    "pause_resume_p99_ns",
    "pause_resume_max_ns",
    "mutator_wall_ns",
    "process_wall_ns",
    "cpu_ns",
    "mark_phase_ns_per_object",
    "mark_ns_per_object",
    "mark_floor_ns_per_object",
    "mark_floor_atomic_ns_per_object",
    "try_mark_ns_per_object",
    "try_mark_prepare_ns_per_object",
)


def _name(table: dict[int, str], v: Any) -> str:
    return table.get(v, str(v)) if isinstance(v, int) else str(v)


def empty(workload: str, backend: str, fault_mode: str) -> dict[str, Any]:
    """A record with every contract field present (null = not measured)."""
    return {
        "workload": workload,
        "backend": backend,
        "fault_mode": fault_mode,
        "run": 0,
        "warmup": False,
        "verified": False,
        "verify_detail": "",
        "error": None,
        "point": {},
        "compaction_ns": None,
        "flip_pause_ns": None,
        "gc_cycle_ns": None,
        # Stop-the-world pauses of a runtime (toy VM: its pause log; JVM:
        # its safepoints), request to resume; null for a bare heap.
        "pause_count": None,
        "pause_p50_ns": None,
        "pause_p99_ns": None,
        "pause_max_ns": None,
        "pause_total_ns": None,
        "pauses_by_kind": None,
        "mutator_wall_ns": None,
        "gc_count": None,
        # Marking per object (toy VM workloads): the VM's marking phase, and
        # remap_mark vs a plain bitmap set on the same objects (mark bench).
        "mark_phase_ns_per_object": None,
        "mark_ns_per_object": None,
        "mark_floor_ns_per_object": None,
        "try_mark_ns_per_object": None,
        "try_mark_prepare_ns_per_object": None,
        "split_ns": {k: None for k in SPLIT_KEYS},
        "fault_latency_ns": {"p50": None, "p99": None, "max": None, "count": None},
        "pages_installed": None,
        "pages_by_gc": None,
        "pages_by_mutator": None,
        "pages_zero": None,
        "pages_in_place": None,
        "pages_moved": None,
        "pages_copied": None,
        "pages_per_ioctl": None,
        "ioctls": {k: None for k in IOCTL_KEYS},
        "mprotect_calls": None,
        "bytes_copied": None,
        "live_bytes": None,
        "buffers_recycled": None,
        "buffers_new": None,
        "minor_faults": None,
        "major_faults": None,
        "pgalloc": None,
        "madvise_calls": None,
        # GC helpers waiting for a free CPU (remap_cycle_stats).
        "helper_wait_ns": None,
        "vmas_before": None,
        "vmas_after": None,
        "rss_before": None,
        "rss_after": None,
        "rss_peak": None,
        "fallbacks": {"ebusy": None, "other": None, "total": None},
        "swap_ins": None,
        "vm_swap_before": None,
        "vm_swap_after": None,
        "floor_ns": None,
        "vs_floor": None,
    }


def _sum(stats: Iterable[dict[str, Any]], key: str) -> int:
    return int(sum(int(s.get(key, 0)) for s in stats))


def fill_from_cycles(rec: dict[str, Any], cycles: list[dict[str, Any]]) -> None:
    """Fill the library's numbers from one or more remap_cycle_stats dicts
    (summed over cycles; pauses and latency maxima are maxima)."""
    if not cycles:
        return
    last = cycles[-1]
    rec["backend"] = _name(BACKEND_NAMES, last.get("backend", rec["backend"]))
    if rec["backend"] == "stw":
        rec["fault_mode"] = "none"  # nothing faults: the whole cycle is in the pause
    else:
        rec["fault_mode"] = _name(FAULT_MODE_NAMES, last.get("fault_mode", rec["fault_mode"]))
    # stw compacts inside the flip: its compaction is the pause.
    comp = [
        int(s["compaction_ns"]) if int(s["compaction_ns"]) else int(s["flip_pause_ns"])
        for s in cycles
    ]
    rec["compaction_ns"] = sum(comp)
    rec["flip_pause_ns"] = max(int(s["flip_pause_ns"]) for s in cycles)
    rec["flip_pause_total_ns"] = _sum(cycles, "flip_pause_ns")
    rec["prepare_ns"] = _sum(cycles, "prepare_ns")
    rec["finish_ns"] = _sum(cycles, "finish_ns")
    rec["split_ns"] = {k: _sum(cycles, f"{k}_ns") for k in SPLIT_KEYS}
    faults = _sum(cycles, "faults")
    if len(cycles) == 1:
        p50, p99 = int(last["fault_p50_ns"]), int(last["fault_p99_ns"])
    else:
        from ..toyvm import _percentile_from_hist

        hist = [0] * 64
        for s in cycles:
            for i, n in enumerate(s.get("fault_hist", [])):
                hist[i] += int(n)
        p50 = int(_percentile_from_hist(hist, 0.5)) if faults else 0
        p99 = int(_percentile_from_hist(hist, 0.99)) if faults else 0
    rec["fault_latency_ns"] = {
        "p50": p50,
        "p99": p99,
        "max": max(int(s["fault_max_ns"]) for s in cycles),
        "count": faults,
    }
    for k in (
        "pages_installed",
        "pages_by_gc",
        "pages_by_mutator",
        "pages_zero",
        "pages_in_place",
        "pages_moved",
        "pages_copied",
        "mprotect_calls",
        "bytes_copied",
        "live_bytes",
        "buffers_recycled",
        "buffers_new",
        "madvise_calls",
        "helper_wait_ns",
    ):
        rec[k] = _sum(cycles, k)
    rec["ioctls"] = {k: _sum(cycles, f"ioctl_{k}") for k in IOCTL_KEYS}
    fills = sum(rec["ioctls"][k] for k in ("move", "copy", "zeropage", "continue"))
    rec["pages_per_ioctl"] = rec["pages_installed"] / fills if fills else None
    rec["vmas_before"] = int(cycles[0]["vmas_before"])
    rec["vmas_after"] = max(int(s["vmas_after"]) for s in cycles)
    eb, ot = _sum(cycles, "fallback_ebusy"), _sum(cycles, "fallback_other")
    rec["fallbacks"] = {"ebusy": eb, "other": ot, "total": eb + ot}
    rec["regions"] = {
        k: int(last[f"regions_{k}"]) for k in ("dense", "fragmented", "empty", "large")
    }


def fill_counters(rec: dict[str, Any], delta: dict[str, int]) -> None:
    rec["minor_faults"] = delta["minor_faults"]
    rec["major_faults"] = delta["major_faults"]
    rec["pgalloc"] = delta["pgalloc"]


def add_floor(rec: dict[str, Any], floor: dict[str, Any]) -> None:
    """floor_ns: memcpy of the bytes the run copied plus one batched MOVE per
    page it installed; vs_floor: the run's compaction time over that."""
    memcpy = floor.get("memcpy_ns_per_page")
    move = floor.get("move_batched_ns_per_page")
    page = floor.get("page_size", 4096)
    if memcpy is None or move is None or rec.get("bytes_copied") is None:
        return
    f = rec["bytes_copied"] / page * memcpy + (rec["pages_installed"] or 0) * move
    rec["floor_ns"] = f
    if rec.get("compaction_ns") and f > 0:
        rec["vs_floor"] = rec["compaction_ns"] / f


def redact(rec: dict[str, Any]) -> None:
    """A wrong result gets no time."""
    for k in TIME_FIELDS:
        rec[k] = None
    rec["split_ns"] = {k: None for k in SPLIT_KEYS}
    rec["fault_latency_ns"] = {k: None for k in ("p50", "p99", "max", "count")}
    rec["vs_floor"] = None
    for k in ("pauses_by_kind", "pause_log"):
        if rec.get(k) is not None:
            rec[k] = None

"""Medians, min-max and ratios to ``move`` over the counted, verified runs.

Ratios are taken pair by pair: counted run i of a backend over counted run i
of the baseline (the runs of one round ran back to back, A B A B ...), then
the median and min-max of those ratios. The baseline is ``move``; a group
without ``move`` (cpython-arenas: ``default`` vs ``libremap`` allocators)
uses its first backend. Each entry names it in ``ratio_baseline``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

Getter = Callable[[dict[str, Any]], float | None]


def _get(path: str) -> Getter:
    keys = path.split(".")

    def f(rec: dict[str, Any]) -> float | None:
        v: Any = rec
        for k in keys:
            if not isinstance(v, dict):
                return None
            v = v.get(k)
        return None if v is None or isinstance(v, bool) else float(v)

    return f


# (key in the summary, path in the record)
METRICS: tuple[str, ...] = (
    "compaction_ns",
    "gc_cycle_ns",
    "flip_pause_ns",
    "pause_count",
    "pause_p50_ns",
    "pause_p99_ns",
    "pause_max_ns",
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
    "split_ns.produce",
    "split_ns.install",
    "split_ns.wait",
    "split_ns.fault_alloc",
    "split_ns.madvise",
    "fault_latency_ns.p50",
    "fault_latency_ns.p99",
    "fault_latency_ns.max",
    "fault_latency_ns.count",
    "pages_installed",
    "pages_by_mutator",
    "pages_per_ioctl",
    "ioctls.move",
    "ioctls.copy",
    "ioctls.zeropage",
    "ioctls.continue",
    "ioctls.wake",
    "mprotect_calls",
    "bytes_copied",
    "buffers_recycled",
    "buffers_new",
    "minor_faults",
    "pgalloc",
    "madvise_calls",
    "vmas_before",
    "vmas_after",
    "rss_before",
    "rss_after",
    "rss_peak",
    "fallbacks.total",
    "swap_ins",
    "major_faults",
    # cold-pages (workloads/coldpages.py)
    "large_live_pages",
    "large_pages_paged_out",
    "large_pages_in_swap_cache",
    "large_pages_swapped_in",
    "large_objects_moved",
    "large_pages_moved",
    "large_pages_copied",
    "large_pages_updated",
    "large_pages_per_s",
    "gc_count",
    "vs_floor",
)
RATIO_METRICS = (
    "compaction_ns",
    "gc_cycle_ns",
    "flip_pause_ns",
    "fault_latency_ns.p99",
    "pause_p99_ns",
    "pause_max_ns",
    "mutator_wall_ns",
    "cpu_ns",
    "minor_faults",
    "pgalloc",
)


def _mmm(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    return {"median": float(statistics.median(xs)), "min": min(xs), "max": max(xs), "n": len(xs)}


def _pauses_by_kind(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per pause kind, the median over runs of its count, p50, p99 and max
    (a run without that kind counts 0 pauses of it)."""
    kinds: list[str] = []
    for r in runs:
        for k in r.get("pauses_by_kind") or {}:
            if k not in kinds:
                kinds.append(k)
    out = {}
    for k in kinds:
        per = [(r.get("pauses_by_kind") or {}).get(k) for r in runs]
        have = [p for p in per if p]
        out[k] = {
            "count": float(statistics.median([p["count"] if p else 0 for p in per])),
            "p50_ns": float(statistics.median([p["p50_ns"] for p in have])),
            "p99_ns": float(statistics.median([p["p99_ns"] for p in have])),
            "max_ns": float(statistics.median([p["max_ns"] for p in have])),
        }
    return out


def group_key(rec: dict[str, Any]) -> tuple[str, str]:
    sw = rec.get("point", {}).get("sweep")
    return rec["workload"], "" if sw is None else f"{sw['key']}={sw['value']}"


def column(rec: dict[str, Any]) -> str:
    """The summary column of a record: its backend, or ``<backend>/stw-mark``
    for a toy VM run asked to mark stop-the-world (``--marking stw``) — so
    that ``ratio_to_move`` of ``move/stw-mark`` compares the two markings."""
    if rec.get("marking_requested") == "stw":
        return f"{rec['backend']}/stw-mark"
    return str(rec["backend"])


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (workload, sweep point, column): column is the backend,
    with ``/stw-mark`` for toy VM runs that marked stop-the-world on request."""
    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for r in runs:
        if r.get("warmup"):
            continue
        groups.setdefault(group_key(r), {}).setdefault(column(r), []).append(r)
    out = []
    for (workload, point), by_backend in groups.items():
        baseline = "move" if "move" in by_backend else next(iter(by_backend))
        move = {r["run"]: r for r in by_backend[baseline] if r["verified"]}
        for backend, recs in by_backend.items():
            ok = [r for r in recs if r["verified"]]
            entry: dict[str, Any] = {
                "workload": workload,
                "point": recs[0].get("point", {}),
                "sweep": point or None,
                "backend": backend,
                "fault_mode": recs[0].get("fault_mode"),
                "marking": recs[0].get("marking"),
                "runs": len(recs),
                "verified": len(ok),
                "metrics": {},
                "ratio_baseline": baseline,
                "ratio_to_move": {},
            }
            for m in METRICS:
                g = _get(m)
                s = _mmm([v for v in (g(r) for r in ok) if v is not None])
                if s is not None:
                    entry["metrics"][m] = s
            kinds = _pauses_by_kind(ok)
            if kinds:
                entry["pauses_by_kind"] = kinds
            if ok and ok[0].get("runtime"):
                entry["runtime"] = ok[0]["runtime"]
            if move and backend != baseline:
                for m in RATIO_METRICS:
                    g = _get(m)
                    ratios = []
                    for r in ok:
                        pair = move.get(r["run"])
                        a, b = g(r), None if pair is None else g(pair)
                        if m.startswith("fault_latency") and not a:
                            continue  # nothing faulted (stw): no latency to compare
                        if a is not None and b:
                            ratios.append(a / b)
                    s = _mmm(ratios)
                    if s is not None:
                        entry["ratio_to_move"][m] = s
            out.append(entry)
    return out

"""``python -m libremap demo``: GCBench on the toy VM, ``move`` vs ``copy``.

Two mutator threads run GCBench on the toy VM (libremap/toyvm/, a small
JVM/ART-like runtime over libremap's C ABI) while libremap compacts the heap
concurrently, alternating backends run by run (move, copy, move, copy...) so
that both see the same machine noise. Then one table: collections, pauses
(count, p50, p99, max, by kind: the VM's pause log), marking per object,
concurrent compaction, mutator fault latency, pages recycled vs allocated,
and move/copy ratios. A backend the kernel (or this build) cannot run is
reported and left out; if neither can run, the stop-the-world backend runs
instead so that the demo still shows the VM at work.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

from .. import console

HELP = "run GCBench on the toy VM with move and copy side by side (about half a minute)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=3, help="counted runs per backend (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="mutator threads (default 2)")
    parser.add_argument("--heap-mib", type=int, default=64, help="heap size (default 64)")
    parser.add_argument("--depth", type=int, default=16, help="long-lived tree depth (default 16)")
    parser.add_argument(
        "--scale", type=float, default=0.25, help="fraction of GCBench's tree count (default 0.25)"
    )
    # GCBench's own: 500000 doubles (4 MB, a large object over 16 regions).
    parser.add_argument(
        "--array-size",
        type=int,
        default=500_000,
        help="long-lived double[] length (default 500000)",
    )
    parser.add_argument(
        "--fault-mode", default="auto", choices=("auto", "sigbus", "thread"), help="fault delivery"
    )
    parser.add_argument(
        "--backends", default="move,copy", help="comma-separated backends (default move,copy)"
    )
    parser.add_argument(
        "--marking",
        default="concurrent",
        choices=("concurrent", "stw"),
        help="how the toy VM marks: beside the mutators with a SATB barrier (initial-mark,"
        " remark and flip pauses; default) or in one stop-the-world pause per collection",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every run's stats to FILE")


def _kernel_line() -> tuple[str, Any]:
    from ..probe import probe

    info = probe()
    feats = info.features
    line = (
        f"kernel {info.kernel}: userfaultfd {info.uffd_status}"
        f" (via {info.uffd_path}), UFFDIO_MOVE {'yes' if feats.get('move') else 'no'},"
        f" SIGBUS delivery {'yes' if feats.get('sigbus') else 'no'};"
        f" auto picks {info.auto_backend} ({info.auto_reason.rstrip('.')})"
    )
    return line, info


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else 0.0


def _summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Per-backend medians over runs of per-run numbers."""

    def per_run(f) -> float:
        return _median([float(f(r)) for r in runs])

    def gc_median(r: dict[str, Any], key: str) -> float:
        return _median([g[key] for g in r["gcs"]])

    return {
        "gcs": per_run(lambda r: r["totals"]["gc_count"]),
        "pauses": per_run(lambda r: r["totals"]["pause_count"]),
        "pause_p50": per_run(lambda r: r["totals"]["pause_p50_ns"]),
        "pause_p99": per_run(lambda r: r["totals"]["pause_p99_ns"]),
        "pause_max": per_run(lambda r: r["totals"]["pause_max_ns"]),
        "ttsp_max": per_run(lambda r: r["totals"]["ttsp_max_ns"]),
        "mark_med": per_run(lambda r: gc_median(r, "mark_ns")),
        "mark_obj": per_run(lambda r: r["totals"]["mark_phase_ns_per_object"] or 0.0),
        "flip_med": per_run(lambda r: gc_median(r, "flip_ns")),
        "conc_med": per_run(lambda r: gc_median(r, "concurrent_ns")),
        "conc_total": per_run(lambda r: r["totals"]["concurrent_total_ns"]),
        "pages_gc": per_run(lambda r: r["totals"]["pages_by_gc"]),
        "pages_mut": per_run(lambda r: r["totals"]["pages_by_mutator"]),
        "faults": per_run(lambda r: r["totals"]["faults"]),
        "p50": per_run(lambda r: r["totals"]["fault_p50_ns"]),
        "p99": per_run(lambda r: r["totals"]["fault_p99_ns"]),
        "recycled": per_run(lambda r: r["totals"]["pages_recycled"]),
        "allocated": per_run(lambda r: r["totals"]["pages_allocated"]),
        "wall": per_run(lambda r: r["wall_s"] * 1e9),
        "occ_before": per_run(lambda r: gc_median(r, "occupancy_before")),
        "occ_after": per_run(lambda r: gc_median(r, "occupancy_after")),
    }


ROWS: list[tuple[str, str, str]] = [
    # label, key, kind (ns / count / pct)
    ("collections per run", "gcs", "count"),
    ("heap occupancy before GC (median)", "occ_before", "pct"),
    ("heap occupancy after GC (median)", "occ_after", "pct"),
    ("stop-the-world pauses per run", "pauses", "count"),
    ("pause p50", "pause_p50", "ns"),
    ("pause p99", "pause_p99", "ns"),
    ("pause max", "pause_max", "ns"),
    ("  time to safepoint, max", "ttsp_max", "ns"),
    ("  marking phase per GC (median)", "mark_med", "ns"),
    ("  marking per object marked", "mark_obj", "nsf"),
    ("  flip + roots per GC (median)", "flip_med", "ns"),
    ("concurrent compaction per GC", "conc_med", "ns"),
    ("concurrent compaction per run", "conc_total", "ns"),
    ("pages produced by GC thread", "pages_gc", "count"),
    ("pages produced by mutators", "pages_mut", "count"),
    ("mutator faults", "faults", "count"),
    ("fault latency p50", "p50", "ns"),
    ("fault latency p99", "p99", "ns"),
    ("pages recycled", "recycled", "count"),
    ("pages newly allocated", "allocated", "count"),
    ("mutator wall time", "wall", "ns"),
]


def _fmt(v: float, kind: str) -> str:
    units = {"ns": console.ns, "nsf": console.ns_fine, "pct": console.pct}
    return units.get(kind, console.count)(v)


def _kinds(runs: list[dict[str, Any]]) -> str:
    """count x p50 / p99 / max per pause kind, over every pause of the runs."""
    from ..toyvm import pause_stats

    kinds: dict[str, list[int]] = {}
    for r in runs:
        for p in r["pauses"]:
            kinds.setdefault(p["kind"], []).append(p["duration_ns"])
    parts = []
    for k, v in kinds.items():
        s = pause_stats(v)
        parts.append(
            f"{k} {s['count']}x {console.ns(s['p50_ns'])} / {console.ns(s['p99_ns'])}"
            f" / {console.ns(s['max_ns'])}"
        )
    return "; ".join(parts) or "none"


def _mark_line(toyvm: Any) -> str:
    """remap_try_mark (what the VM's tracer calls) and remap_mark per object
    against a plain bitmap set, in this process."""
    try:
        m = toyvm.mark_bench(objects=1 << 19, reps=3)
    except RuntimeError as e:
        return f"mark bench: {e}"
    return (
        f"marking {m['objects']:,} GCBench nodes: remap_try_mark"
        f" {m['try_mark_ns_per_object']:.1f} ns/object (remap_mark"
        f" {m['mark_ns_per_object']:.1f}), a plain bitmap set"
        f" {m['mark_floor_ns_per_object']:.1f} ns/object (atomic"
        f" {m['mark_floor_atomic_ns_per_object']:.1f}); issue 13's goal: <= 15 ns"
    )


def _table(summaries: dict[str, dict[str, float]]) -> console.Table:
    names = list(summaries)
    ratio = len(names) == 2 and names == ["move", "copy"]
    t = console.Table(["", *names] + (["move/copy"] if ratio else []))
    for label, key, kind in ROWS:
        row = [label] + [_fmt(summaries[n][key], kind) for n in names]
        if ratio:
            a, b = summaries["move"][key], summaries["copy"][key]
            row.append(console.ratio(a / b) if b else "-")
        t.add(*row)
    return t


def run(args: argparse.Namespace) -> int:
    from .. import toyvm

    t_start = time.monotonic()
    out = console.Out()
    kernel, info = _kernel_line()
    out.line(kernel)
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "move" in wanted and not info.has_move:
        out.line("this kernel has no UFFDIO_MOVE (Linux 6.8+): move cannot run here")
    params = {
        "heap_mib": args.heap_mib,
        "threads": args.threads,
        "depth": args.depth,
        "iteration_scale": args.scale,
        "array_size": args.array_size,
        "fault_mode": args.fault_mode,
        "marking": args.marking,
    }
    out.line(
        f"GCBench on the toy VM: {args.threads} mutator threads, {args.heap_mib} MiB heap,"
        f" long-lived tree depth {args.depth}, {args.marking} marking,"
        f" {args.runs} run(s) per backend, alternating"
    )

    runs: dict[str, list[dict[str, Any]]] = {}
    with out.progress(len(wanted) * (1 + args.runs), "demo") as progress:
        # Which backends can run: a small warm-up run each, which also touches
        # the memory the counted runs will use (first touches cost more here).
        usable: list[str] = []
        for b in wanted:
            progress.update(what=f"warm-up {b}")
            try:
                r = toyvm.run("gcbench", backend=b, **params)
                progress.say(
                    f"  warm-up {b}: {r['wall_s']:.1f} s, {r['totals']['gc_count']} GCs, ok"
                )
                if r["marking_note"]:
                    progress.say(f"    {b}: {r['marking_note']}")
                usable.append(b)
            except toyvm.ToyVmError as e:
                progress.say(f"  warm-up {b}: not available: {e.message}")
            progress.advance()
        if not usable:
            progress.say(
                f"none of {', '.join(wanted)} can run here;"
                " running the stop-the-world backend (stw) instead"
            )
            usable = ["stw"]
        total = args.runs * len(usable)
        progress.update(total=len(wanted) + total)

        runs = {b: [] for b in usable}
        k = 0
        for i in range(args.runs):
            for b in usable:
                k += 1
                progress.update(what=f"{b} run {i + 1}")
                try:
                    r = toyvm.run("gcbench", backend=b, **params)
                except toyvm.ToyVmError as e:
                    progress.say(f"  [{k}/{total}] {b} run {i + 1}: FAILED: {e.message}")
                    return 1
                runs[b].append(r)
                t = r["totals"]
                progress.say(
                    f"  [{k}/{total}] {b} run {i + 1}: {r['wall_s']:.1f} s, {t['gc_count']} GCs,"
                    f" {'verified' if r['verified'] else 'NOT VERIFIED'}"
                )
                progress.advance()
        progress.update(what="marking per object")
        mark = _mark_line(toyvm)

    fm = next(iter(runs.values()))[0]["fault_mode"]
    ok = all(r["verified"] for rs in runs.values() for r in rs)
    blocks: list[console.Block] = [
        "",
        f"medians over {args.runs} run(s) (fault delivery: {fm}):",
        _table({b: _summary(rs) for b, rs in runs.items()}),
        (
            "pause: each stop-the-world, from the safepoint request to the last stopped mutator"
            " running again (p50/p99 nearest rank over a run's pauses);"
        ),
    ]
    if args.marking == "concurrent":
        blocks += [
            (
                "concurrent marking: an initial-mark pause (TLABs retired, remap_cycle_begin,"
                " roots snapshot), tracing beside the mutators"
            ),
            (
                "(SATB write barrier, one remap_try_mark per live object, new objects black), a"
                " remark pause (the barrier's logs), remap_prepare"
            ),
            "beside the mutators, and a flip pause (remap_flip + root rewrite);",
        ]
    else:
        blocks.append(
            "stw marking: one per GC: the VM's own tracer, one remap_try_mark per live object,"
            " then remap_prepare and remap_flip + root rewrite;"
        )
    blocks.append(
        "compaction then runs on the collector thread while the mutators keep allocating;"
        " a mutator touching a page not yet compacted produces it itself (a fault)."
    )
    blocks += [f"pauses by kind, {b}: {_kinds(rs)}" for b, rs in runs.items()]
    if mark:
        blocks.append(mark)
    blocks += [
        "",
        (
            f"every run verified its trees and arrays: {'yes' if ok else 'NO'}"
            f"  ({time.monotonic() - t_start:.0f} s)"
        ),
    ]
    out.show(blocks)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"kernel": info.to_json(), "params": params, "runs": runs}, f, indent=1)
    sys.stdout.flush()
    return 0 if ok else 1

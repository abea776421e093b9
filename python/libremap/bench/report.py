"""The terminal table: per workload and point, one column per backend
(median, and min-max for times, over the counted verified runs), then the
ratios to ``move`` pair by pair, and ``move`` against the floor."""

from __future__ import annotations

import statistics
from typing import Any

from ..toyvm import fmt_ns
from .summary import group_key

# label, metric, kind: ns (with min-max) | count | bytes | float | rate (per second)
ROWS: tuple[tuple[str, str, str], ...] = (
    ("compaction wall", "compaction_ns", "ns"),
    ("  produce (summed)", "split_ns.produce", "ns"),
    ("  install ioctls", "split_ns.install", "ns"),
    ("  wait", "split_ns.wait", "ns"),
    ("  faults + allocation", "split_ns.fault_alloc", "ns"),
    ("  madvise", "split_ns.madvise", "ns"),
    ("flip .. finish wall", "gc_cycle_ns", "ns"),
    ("flip pause", "flip_pause_ns", "ns"),
    ("pauses (VM / JVM safepoints)", "pause_count", "count"),
    ("  pause p50", "pause_p50_ns", "ns"),
    ("  pause p99", "pause_p99_ns", "ns"),
    ("  pause max", "pause_max_ns", "ns"),
    ("  time to safepoint max", "ttsp_max_ns", "ns"),
    ("mutator wall", "mutator_wall_ns", "ns"),
    ("JVM process wall", "process_wall_ns", "ns"),
    ("CPU time (user+sys)", "cpu_ns", "ns"),
    ("collections", "gc_count", "count"),
    ("mark phase per object (VM)", "mark_phase_ns_per_object", "nsf"),
    ("remap_mark per object", "mark_ns_per_object", "nsf"),
    ("remap_try_mark per object", "try_mark_ns_per_object", "nsf"),
    ("  + its prepare, per object", "try_mark_prepare_ns_per_object", "nsf"),
    ("  floor: bitmap set", "mark_floor_ns_per_object", "nsf"),
    ("  floor: atomic bitmap set", "mark_floor_atomic_ns_per_object", "nsf"),
    ("fault latency p50", "fault_latency_ns.p50", "ns"),
    ("fault latency p99", "fault_latency_ns.p99", "ns"),
    ("fault latency max", "fault_latency_ns.max", "ns"),
    ("mutator faults", "fault_latency_ns.count", "count"),
    ("pages installed", "pages_installed", "count"),
    ("  by mutators", "pages_by_mutator", "count"),
    ("pages per ioctl", "pages_per_ioctl", "float"),
    ("ioctls MOVE", "ioctls.move", "count"),
    ("ioctls COPY", "ioctls.copy", "count"),
    ("ioctls ZEROPAGE", "ioctls.zeropage", "count"),
    ("ioctls CONTINUE", "ioctls.continue", "count"),
    ("ioctls WAKE", "ioctls.wake", "count"),
    ("mprotect calls", "mprotect_calls", "count"),
    ("bytes memcpy'd", "bytes_copied", "bytes"),
    ("buffers recycled", "buffers_recycled", "count"),
    ("buffers new", "buffers_new", "count"),
    ("minor faults (rusage)", "minor_faults", "count"),
    ("pages allocated (vmstat)", "pgalloc", "count"),
    ("madvise calls", "madvise_calls", "count"),
    ("VMAs before", "vmas_before", "count"),
    ("VMAs after", "vmas_after", "count"),
    ("RSS before", "rss_before", "bytes"),
    ("RSS after", "rss_after", "bytes"),
    ("RSS peak", "rss_peak", "bytes"),
    ("MOVE fallbacks", "fallbacks.total", "count"),
    ("swap-ins", "swap_ins", "count"),
    ("major faults (rusage)", "major_faults", "count"),
    ("large live pages", "large_live_pages", "count"),
    ("  paged out at the flip", "large_pages_paged_out", "count"),
    ("  still in the swap cache", "large_pages_in_swap_cache", "count"),
    ("  swapped in (pagemap)", "large_pages_swapped_in", "count"),
    ("  put in place per second", "large_pages_per_s", "rate"),
    ("large objects moved", "large_objects_moved", "count"),
    ("large pages moved", "large_pages_moved", "count"),
    ("large pages copied", "large_pages_copied", "count"),
    ("large pages updated", "large_pages_updated", "count"),
    ("x floor", "vs_floor", "float"),
)

# Shown for cold-pages only (elsewhere they are 0 and say nothing).
COLD_PAGES_ONLY = frozenset({"major_faults"})

RATIO_ROWS = (
    ("compaction wall", "compaction_ns"),
    ("flip .. finish wall", "gc_cycle_ns"),
    ("flip pause", "flip_pause_ns"),
    ("fault latency p99", "fault_latency_ns.p99"),
    ("pause p99", "pause_p99_ns"),
    ("pause max", "pause_max_ns"),
    ("mutator wall", "mutator_wall_ns"),
    ("CPU time (user+sys)", "cpu_ns"),
    ("minor faults (rusage)", "minor_faults"),
    ("pages allocated (vmstat)", "pgalloc"),
)


def _bytes(v: float) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(v) >= div:
            return f"{v / div:.1f} {unit}"
    return f"{v:.0f} B"


def _fmt(v: float, kind: str) -> str:
    if kind == "ns":
        return fmt_ns(v) if v else "0"
    if kind == "nsf":
        return f"{v:.1f} ns"
    if kind == "bytes":
        return _bytes(v)
    if kind == "float":
        return f"{v:.2f}"
    if kind == "rate":
        for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if abs(v) >= div:
                return f"{v / div:.2f}{unit}/s"
        return f"{v:.0f}/s"
    return f"{v:,.0f}"


def _cell(m: dict[str, float] | None, kind: str) -> str:
    if m is None:
        return "-"
    s = _fmt(m["median"], kind)
    if kind in ("ns", "nsf") and m["n"] > 1 and m["max"] > 0:
        s += f" ({_fmt(m['min'], kind)}..{_fmt(m['max'], kind)})"
    return s


def _grid(lines: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in lines) for i in range(len(lines[0]))]
    out = []
    for j, r in enumerate(lines):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        out.append("  ".join(cells).rstrip())
        if j == 0:
            out.append("-" * len(out[0]))
    return out


# Issue 7's goals for the cold-pages workload.
COLD_PAGES_MIN_SPEEDUP = 10.0
COLD_PAGES_MAX_MOVE_SWAP_INS = 0


def cold_pages_headline(entries: list[dict[str, Any]]) -> list[str]:
    """The cold-pages verdict: copy/move compaction time (pair by pair) and
    swap-ins of move vs copy, against issue 7's goals."""
    by = {e["backend"]: e for e in entries}
    move, copy = by.get("move"), by.get("copy")
    if move is None or copy is None:
        return ["cold-pages: needs both move and copy runs for the headline"]

    def med(e: dict[str, Any], k: str) -> float | None:
        m = e["metrics"].get(k)
        return None if m is None else m["median"]

    out = []
    r = copy["ratio_to_move"].get("compaction_ns")
    if r is not None:
        verdict = "met" if r["median"] >= COLD_PAGES_MIN_SPEEDUP else "NOT met"
        out.append(
            f"cold-pages: copy/move compaction {r['median']:.1f}x ({r['min']:.1f}..{r['max']:.1f})"
            f" (goal >= {COLD_PAGES_MIN_SPEEDUP:g}x: {verdict})"
        )
    ms, cs = med(move, "swap_ins"), med(copy, "swap_ins")
    if ms is not None and cs is not None:
        worst = move["metrics"]["swap_ins"]["max"]
        verdict = "met" if worst <= COLD_PAGES_MAX_MOVE_SWAP_INS else "NOT met"
        out.append(
            f"cold-pages: swap-ins move {ms:,.0f} (max {worst:,.0f}) vs copy {cs:,.0f}"
            f" (goal {COLD_PAGES_MAX_MOVE_SWAP_INS} for move: {verdict})"
        )
    mr, cr = med(move, "large_pages_per_s"), med(copy, "large_pages_per_s")
    if mr is not None and cr is not None:
        out.append(
            f"cold-pages: live large pages put in place per second: move {_fmt(mr, 'rate')}"
            f" vs copy {_fmt(cr, 'rate')}"
        )
    return out


# Issue 13's goal for the library's part of marking.
MARK_GOAL_NS_PER_OBJECT = 15.0


def rss_line(entries: list[dict[str, Any]]) -> list[str]:
    """How far RSS rose above its level at the flip during the cycle (the
    worst run). The budget a runtime can plan with is the page pool's cap:
    to-space pages come from the pool or are from-space pages moved."""
    cells = []
    for e in entries:
        m = e["metrics"]
        if "rss_peak" in m and "rss_before" in m:
            rise = (m["rss_peak"]["max"] - m["rss_before"]["median"]) / 2**20
            cells.append(f"{e['backend']} {rise:+.1f} MiB")
    if not cells:
        return []
    return [
        "peak RSS during the cycle over RSS at the flip (worst run): " + ", ".join(cells)
        + " (budget: the page pool's cap, 16 MiB by default)"
    ]


def pause_lines(entries: list[dict[str, Any]]) -> list[str]:
    """Pauses per kind, per column: count x p50 / p99 / max (medians over runs)."""
    out = []
    for e in entries:
        kinds = e.get("pauses_by_kind")
        if not kinds:
            continue
        parts = [
            f"{k} {v['count']:.0f}x {fmt_ns(v['p50_ns'])} / {fmt_ns(v['p99_ns'])}"
            f" / {fmt_ns(v['max_ns'])}"
            for k, v in kinds.items()
        ]
        out.append(f"  {e['backend']}: {'; '.join(parts)}")
    if out:
        out.insert(0, "pauses by kind (count x p50 / p99 / max, medians over runs):")
    return out


def mark_headline(runs: list[dict[str, Any]]) -> list[str]:
    """remap_try_mark (the toy VM tracer's call) and remap_mark per object
    against the floor, over a group's counted and verified toy VM runs (each
    measured side by side), and issue 13's goal. Ratios run by run."""
    out = []
    for name, key in (("remap_try_mark", "try_mark_ns_per_object"), ("remap_mark", "mark_ns_per_object")):
        pairs = [
            (r[key], r["mark_floor_ns_per_object"])
            for r in runs
            if r.get(key) and r.get("mark_floor_ns_per_object")
        ]
        if not pairs:
            continue
        m = statistics.median(a for a, _ in pairs)
        f = statistics.median(b for _, b in pairs)
        ratios = [a / b for a, b in pairs]
        verdict = "met" if m <= MARK_GOAL_NS_PER_OBJECT else "NOT met"
        out.append(
            f"{name} {m:.1f} ns/object vs a plain bitmap set {f:.1f} ns/object over"
            f" {len(pairs)} runs: {statistics.median(ratios):.1f}x the floor"
            f" ({min(ratios):.1f}..{max(ratios):.1f}); issue 13's goal <= {MARK_GOAL_NS_PER_OBJECT:g}"
            f" ns: {verdict}"
        )
    return out


def table(result: dict[str, Any]) -> str:
    summary = result["summary"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in summary:
        groups.setdefault((e["workload"], e["sweep"] or ""), []).append(e)
    order = result["params"]["backends"]
    out: list[str] = []
    for (workload, sweep), entries in groups.items():
        jvm = [f"jvm-{c}" for c in result["params"].get("jvm_collectors", [])]
        order = list(order) + jvm
        entries.sort(key=lambda e: order.index(e["backend"]) if e["backend"] in order else 99)
        names = [e["backend"] for e in entries]
        p = entries[0]["point"]
        runs = "/".join(f"{e['verified']}" for e in entries)
        out.append("")
        if workload.startswith("cpython-arenas"):
            shape = "pymalloc arenas, default allocator vs libremap's pool"
        else:
            shape = (
                f"heap {p.get('heap_mib')} MiB, live {p.get('live')}, threads {p.get('threads')},"
                f" fault mode {entries[0]['fault_mode']}"
            )
        out.append(
            f"== {workload}{' ' + sweep if sweep else ''}: {shape};"
            f" median (min..max) of {runs} verified runs"
        )
        lines = [["", *names]]
        for label, key, kind in ROWS:
            if key in COLD_PAGES_ONLY and workload != "cold-pages":
                continue
            cells = [_cell(e["metrics"].get(key), kind) for e in entries]
            if all(c == "-" for c in cells):
                continue
            lines.append([label, *cells])
        out.extend(_grid(lines))
        base = entries[0].get("ratio_baseline", "move")
        others = [e for e in entries if e["backend"] != base and e["ratio_to_move"]]
        if others:
            out.append("")
            out.append(f"ratio to {base}, run by run: median (min..max)")
            rl = [["", *(f"{e['backend']}/{base}" for e in others)]]
            for label, key in RATIO_ROWS:
                cells = []
                for e in others:
                    r = e["ratio_to_move"].get(key)
                    cells.append(
                        "-" if r is None else f"{r['median']:.2f}x ({r['min']:.2f}..{r['max']:.2f})"
                    )
                if any(c != "-" for c in cells):
                    rl.append([label, *cells])
            out.extend(_grid(rl))
        move = next((e for e in entries if e["backend"] == "move"), None)
        if workload == "cold-pages":
            out.extend(cold_pages_headline(entries))
        out.extend(pause_lines(entries))
        out.extend(
            mark_headline(
                [
                    r
                    for r in result["runs"]
                    if not r["warmup"] and r["verified"] and group_key(r) == (workload, sweep)
                ]
            )
        )
        if workload == "synthetic":
            out.extend(rss_line(entries))
        if move and "vs_floor" in move["metrics"]:
            vf = move["metrics"]["vs_floor"]
            out.append(
                f"move vs the floor (memcpy of its copied bytes + one batched MOVE per page):"
                f" {vf['median']:.2f}x ({vf['min']:.2f}..{vf['max']:.2f})"
            )
    f = result.get("floor") or {}

    def us(k: str) -> str:
        v = f.get(k)
        return "-" if v is None else f"{v / 1000:.3f} us"

    out.append("")
    out.append(
        f"floor per 4 KiB page: MOVE batched ({f.get('batch_pages')} pages)"
        f" {us('move_batched_ns_per_page')}, MOVE single {us('move_single_ns_per_page')},"
        f" COPY batched {us('copy_ns_per_page')}, COPY single {us('copy_single_ns_per_page')},"
        f" memcpy {us('memcpy_ns_per_page')}, fresh-page fault {us('fault_zero_ns_per_page')}"
    )
    for u in result["unavailable"]:
        who = u["workload"] if u["backend"] is None else f"{u['workload']}/{u['backend']}"
        out.append(f"unavailable: {who}: {u['reason']}")
    for fl in result.get("failures", []):
        out.append(f"FAILED: {fl['workload']}: {fl['error']}")
    counted = [r for r in result["runs"] if not r["warmup"]]
    bad = [r for r in counted if not r["verified"]]
    out.append(
        f"{len(counted) - len(bad)}/{len(counted)} counted runs verified"
        " (heaps against stw; cpython-arenas against the default allocator)"
        f" ({result['elapsed_s']:.0f} s)"
    )
    return "\n".join(out)

"""What the bench shows after its runs, as blocks for ``libremap.console``:
per workload and point a table with one column per backend (median, and
min..max for times, over the counted verified runs), the ratios to ``move``
pair by pair, the headlines against the issues' goals, and ``move`` against
the floor. The terminal and ``--report``'s page draw the same blocks.
"""

from __future__ import annotations

import statistics
from typing import Any

from .. import console
from ..console import Block, Cell, Heading, Table
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
    ("GC helpers waiting for a CPU", "helper_wait_ns", "ns"),
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


_UNITS = {
    "ns": lambda v: console.ns(v) if v else "0",
    "nsf": console.ns_fine,
    "bytes": console.size,
    "float": lambda v: f"{v:.2f}",
    "rate": console.rate,
    "count": console.count,
}


def _fmt(v: float, kind: str) -> str:
    return _UNITS[kind](v)


def _cell(m: dict[str, float] | None, kind: str) -> str | Cell:
    if m is None:
        return "-"
    s = _fmt(m["median"], kind)
    if kind in ("ns", "nsf") and m["n"] > 1 and m["max"] > 0:
        return Cell(s, f"{_fmt(m['min'], kind)}..{_fmt(m['max'], kind)}")
    return s


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


# remap_heap_config_init's pool_max_pages (4096 pages of 4 KiB): the bench's
# heaps keep the default.
POOL_CAP_MIB = 16


def rss_line(entries: list[dict[str, Any]]) -> list[str]:
    """How far RSS rose above its level at the flip during the cycle (the
    worst run). The budget a runtime can plan with is the page pool's cap:
    to-space pages come from the pool or are from-space pages moved."""
    cells = []
    for e in entries:
        m = e["metrics"]
        if "rss_peak" in m and "rss_before" in m:
            rise = (m["rss_peak"]["max"] - m["rss_before"]["median"]) / 2**20
            over = " OVER BUDGET" if rise > POOL_CAP_MIB else ""
            cells.append(f"{e['backend']} {rise:+.1f} MiB{over}")
    if not cells:
        return []
    return [
        "peak RSS during the cycle over RSS at the flip (worst run): "
        + ", ".join(cells)
        + f" (budget: the page pool's cap, {POOL_CAP_MIB} MiB by default)"
    ]


def pause_lines(entries: list[dict[str, Any]]) -> list[str]:
    """Pauses per kind, per column: count x p50 / p99 / max (medians over runs)."""
    out = []
    for e in entries:
        kinds = e.get("pauses_by_kind")
        if not kinds:
            continue
        parts = [
            f"{k} {v['count']:.0f}x {console.ns(v['p50_ns'])} / {console.ns(v['p99_ns'])}"
            f" / {console.ns(v['max_ns'])}"
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
    for name, key in (
        ("remap_try_mark", "try_mark_ns_per_object"),
        ("remap_mark", "mark_ns_per_object"),
    ):
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


def _workload_blocks(
    result: dict[str, Any], workload: str, sweep: str, entries: list[dict[str, Any]]
) -> list[Block]:
    """One workload at one point: its heading, the table of medians, the
    ratios, and its headlines."""
    names = [e["backend"] for e in entries]
    p = entries[0]["point"]
    runs = "/".join(f"{e['verified']}" for e in entries)
    if workload.startswith("cpython-arenas"):
        shape = "pymalloc arenas, default allocator vs libremap's pool"
    else:
        shape = (
            f"heap {p.get('heap_mib')} MiB, live {p.get('live')}, threads {p.get('threads')},"
            f" fault mode {entries[0]['fault_mode']}"
        )
    out: list[Block] = [
        "",
        Heading(
            f"{workload}{' ' + sweep if sweep else ''}: {shape};"
            f" median (min..max) of {runs} verified runs"
        ),
    ]
    grid = Table(["", *names])
    for label, key, kind in ROWS:
        if key in COLD_PAGES_ONLY and workload != "cold-pages":
            continue
        cells = [_cell(e["metrics"].get(key), kind) for e in entries]
        if all(c == "-" for c in cells):
            continue
        grid.add(label, *cells)
    out.append(grid)
    base = entries[0].get("ratio_baseline", "move")
    others = [e for e in entries if e["backend"] != base and e["ratio_to_move"]]
    if others:
        ratios = Table(
            ["", *(f"{e['backend']}/{base}" for e in others)],
            title=f"ratio to {base}, run by run: median (min..max)",
        )
        for label, key in RATIO_ROWS:
            rcells: list[str | Cell] = []
            for e in others:
                r = e["ratio_to_move"].get(key)
                rcells.append(
                    "-"
                    if r is None
                    else Cell(console.ratio(r["median"]), f"{r['min']:.2f}..{r['max']:.2f}")
                )
            if any(c != "-" for c in rcells):
                ratios.add(label, *rcells)
        out += ["", ratios]
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
    move = next((e for e in entries if e["backend"] == "move"), None)
    if move and "vs_floor" in move["metrics"]:
        vf = move["metrics"]["vs_floor"]
        out.append(
            f"move vs the floor (memcpy of its copied bytes + one batched MOVE per page):"
            f" {vf['median']:.2f}x ({vf['min']:.2f}..{vf['max']:.2f})"
        )
    return out


def floor_line(result: dict[str, Any]) -> str:
    f = result.get("floor") or {}

    def us(k: str) -> str:
        v = f.get(k)
        return "-" if v is None else f"{v / 1000:.3f} us"

    return (
        f"floor per 4 KiB page: MOVE batched ({f.get('batch_pages')} pages)"
        f" {us('move_batched_ns_per_page')}, MOVE single {us('move_single_ns_per_page')},"
        f" COPY batched {us('copy_ns_per_page')}, COPY single {us('copy_single_ns_per_page')},"
        f" memcpy {us('memcpy_ns_per_page')}, fresh-page fault {us('fault_zero_ns_per_page')}"
    )


def verdict_line(result: dict[str, Any]) -> str:
    counted = [r for r in result["runs"] if not r["warmup"]]
    bad = [r for r in counted if not r["verified"]]
    return (
        f"{len(counted) - len(bad)}/{len(counted)} counted runs verified"
        " (heaps against stw; cpython-arenas against the default allocator)"
        f" ({result['elapsed_s']:.0f} s)"
    )


def blocks(result: dict[str, Any]) -> list[Block]:
    """Everything after the runs: each workload and point, the floor, what
    could not run or failed, and how many runs were verified."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in result["summary"]:
        groups.setdefault((e["workload"], e["sweep"] or ""), []).append(e)
    jvm = [f"jvm-{c}" for c in result["params"].get("jvm_collectors", [])]
    order = [*result["params"]["backends"], *jvm]
    out: list[Block] = []
    for (workload, sweep), entries in groups.items():
        entries.sort(key=lambda e: order.index(e["backend"]) if e["backend"] in order else 99)
        out += _workload_blocks(result, workload, sweep, entries)
    out += ["", floor_line(result)]
    for u in result["unavailable"]:
        who = u["workload"] if u["backend"] is None else f"{u['workload']}/{u['backend']}"
        out.append(f"unavailable: {who}: {u['reason']}")
    for fl in result.get("failures", []):
        out.append(f"FAILED: {fl['workload']}: {fl['error']}")
    out.append(verdict_line(result))
    return out


def table(result: dict[str, Any]) -> str:
    """``blocks`` as plain text."""
    return console.render_text(blocks(result))

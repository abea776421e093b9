"""The toy VM: a small JVM/ART-like runtime built on libremap's C ABI.

``run(workload, ...)`` starts a fresh VM (its own libremap heap, a collector
thread, ``threads`` mutator threads with thread-local allocation and handle
tables), plays one workload to the end, collects once more, runs the
workload's own checks, and returns what happened::

    >>> from libremap import toyvm
    >>> r = toyvm.run("gcbench", heap_mib=32, threads=2, backend="stw")
    >>> r["verified"], r["totals"]["gc_count"]

Workloads (each checks its own results):

- ``gcbench``: GCBench's shape: a long-lived tree of ``depth`` and a large
  double[] stay live while trees of 4..depth are built top-down and
  bottom-up and dropped (``iteration_scale`` scales the classic counts).
- ``binary_trees``: the benchmarks game's binary-trees; checksum of node counts.
- ``lru_cache``: a cache per thread with sampled-LRU eviction and values of
  mixed sizes (some large objects); every hit is checked.
- ``random_graph``: ``size`` nodes shared by all threads, mutated (payload
  rewrites, edge writes, replacements) while libremap compacts; a shadow
  model outside the heap is checked after every collection.
- ``large_arrays``: ``size`` slots per thread of large long[], double[] and
  Object[] (whose elements point to small boxes and to large arrays),
  about half replaced between collections so that live large objects slide
  over dead ones; every word and element is checked after every collection.

The C++ VM runs without the GIL. A failed run raises :class:`ToyVmError`
(:class:`HeapExhausted` when the heap is too small, :class:`BackendUnsupported`
when libremap answers REMAP_EUNSUPPORTED), unless ``check=False``: then the
dict carries ``error`` and ``verified`` is False.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from . import _core
from ._names import BACKENDS, FAULT_MODES, enum_value

WORKLOADS: tuple[str, ...] = tuple(_core.TOYVM_WORKLOADS)
MARKINGS: tuple[str, ...] = ("concurrent", "stw")

MiB = 1 << 20

# Per-workload defaults: a run of about a second on a small shared machine
# with a collection every few MiB allocated. The heap is 64 MiB unless a
# workload says otherwise: large_arrays' heap is about twice its live set,
# so that about half of its large objects die between two collections.
DEFAULTS: dict[str, dict[str, Any]] = {
    "gcbench": {"depth": 16, "iteration_scale": 0.25, "array_size": 500_000},
    "binary_trees": {"depth": 16},
    "lru_cache": {"size": 4096, "ops": 100_000, "max_value_bytes": 8192},
    "random_graph": {"size": 2048, "ops": 100_000},
    "large_arrays": {"heap_mib": 28, "size": 10, "ops": 400},
}


class ToyVmError(RuntimeError):
    """A toy-VM run failed. ``kind`` is out_of_memory, library, corrupt_heap or
    workload; ``status``/``status_name`` the libremap status (0 if none);
    ``stats`` the run's dict as far as it got."""

    def __init__(self, stats: dict[str, Any]) -> None:
        err = stats["error"]
        super().__init__(err["message"])
        self.kind: str = err["kind"]
        self.status: int = err["status"]
        self.status_name: str = err["status_name"]
        self.message: str = err["message"]
        self.stats = stats


class HeapExhausted(ToyVmError, MemoryError):
    """The live data did not fit the heap, even after collecting."""


class BackendUnsupported(ToyVmError):
    """libremap answered REMAP_EUNSUPPORTED for this backend / fault mode."""


def _percentile_from_hist(hist: list[int], q: float) -> float:
    """Estimate of the q-quantile from log2 buckets ([2^i, 2^(i+1)) ns),
    interpolated geometrically inside the bucket."""
    total = sum(hist)
    if total == 0:
        return 0.0
    rank = q * total
    seen = 0
    for i, n in enumerate(hist):
        if n and seen + n >= rank:
            frac = (rank - seen) / n
            return float(2.0 ** (i + frac))
        seen += n
    return float(2.0 ** len(hist))


# Pause kinds that are the harness's, not the VM's: the workloads' after-GC
# checks. They are in the pause log and in ``pauses_by_kind`` but not in the
# VM's pause statistics (a production runtime would not make them).
HARNESS_PAUSE_KINDS = frozenset({"check"})


def percentile(sorted_values: list[int] | list[float], q: float) -> float:
    """Nearest-rank q-quantile of an ascending list (0 if empty): a value that
    occurred, so with fewer than 100 pauses p99 is the largest."""
    if not sorted_values:
        return 0
    k = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(k, len(sorted_values)) - 1]


def pause_stats(durations_ns: list[int]) -> dict[str, int]:
    """count, p50, p99, max and total of a list of pause durations (ns)."""
    xs = sorted(int(d) for d in durations_ns)
    return {
        "count": len(xs),
        "p50_ns": int(percentile(xs, 0.50)),
        "p99_ns": int(percentile(xs, 0.99)),
        "max_ns": xs[-1] if xs else 0,
        "total_ns": sum(xs),
    }


def _pause_totals(pauses: list[dict[str, Any]]) -> dict[str, Any]:
    """The VM's pause statistics from its pause log: every pause but the
    harness's checks, and each kind on its own."""
    vm = pause_stats([p["duration_ns"] for p in pauses if p["kind"] not in HARNESS_PAUSE_KINDS])
    # The collector's view: safepoint request to its resume (time to
    # safepoint included, the stopped mutators' wake-up not: on a loaded
    # machine that wake-up is a scheduler delay of up to a few ms).
    coll = pause_stats([p["resume_ns"] for p in pauses if p["kind"] not in HARNESS_PAUSE_KINDS])
    kinds: dict[str, list[int]] = {}
    for p in pauses:
        kinds.setdefault(p["kind"], []).append(p["duration_ns"])
    return {
        "pause_count": vm["count"],
        "pause_p50_ns": vm["p50_ns"],
        "pause_p99_ns": vm["p99_ns"],
        "pause_max_ns": vm["max_ns"],
        "pause_total_ns": vm["total_ns"],
        "pause_median_ns": vm["p50_ns"],
        "pause_resume_p50_ns": coll["p50_ns"],
        "pause_resume_p99_ns": coll["p99_ns"],
        "pause_resume_max_ns": coll["max_ns"],
        "ttsp_max_ns": max(
            (p["ttsp_ns"] for p in pauses if p["kind"] not in HARNESS_PAUSE_KINDS), default=0
        ),
        "pauses_by_kind": {k: pause_stats(v) for k, v in kinds.items()},
    }


def _gc_row(g: dict[str, Any]) -> dict[str, Any]:
    lib = g["lib"]
    cap = g["capacity"] or 1
    row = {k: v for k, v in g.items() if k != "lib"}
    row.update(
        {
            "flip_lib_ns": lib["flip_pause_ns"],
            "compaction_ns": lib["compaction_ns"],
            "live_bytes": lib["live_bytes"],
            "pages_installed": lib["pages_installed"],
            "pages_by_gc": lib["pages_by_gc"],
            "pages_by_mutator": lib["pages_by_mutator"],
            "pages_zero": lib["pages_zero"],
            "pages_in_place": lib["pages_in_place"],
            "pages_moved": lib["pages_moved"],
            "pages_copied": lib["pages_copied"],
            "pages_recycled": lib["buffers_recycled"],
            # Pages that needed fresh memory: buffer pages populated for the
            # first time and the pages the kernel allocated (one per page
            # UFFDIO_COPY installs); the library counts both in buffers_new.
            "pages_allocated": lib["buffers_new"],
            # Live large objects slid to a new address (DESIGN §8), and
            # their pages: installed there, copied to install them, and with
            # reference slots rewritten.
            "large_objects_moved": lib["large_objects_moved"],
            "large_pages_moved": lib["large_pages_moved"],
            "large_pages_copied": lib["large_pages_copied"],
            "large_pages_updated": lib["large_pages_updated"],
            "large_pages_by_mutator": lib["large_pages_by_mutator"],
            "faults": lib["faults"],
            "fault_p50_ns": lib["fault_p50_ns"],
            "fault_p99_ns": lib["fault_p99_ns"],
            "fault_max_ns": lib["fault_max_ns"],
            "occupancy_before": g["heap_before"] / cap,
            "occupancy_after": g["heap_after"] / cap,
            "lib": lib,
        }
    )
    return row


def _totals(gcs: list[dict[str, Any]], pauses: list[dict[str, Any]]) -> dict[str, Any]:
    def col(k: str) -> list[int]:
        return [g[k] for g in gcs]

    hist = [0] * 64
    for g in gcs:
        for i, n in enumerate(g["lib"]["fault_hist"]):
            hist[i] += n
    faults = sum(col("faults"))
    marked = sum(col("objects_marked"))
    return {
        "gc_count": len(gcs),
        # From the pause log: request to the last mutator running again.
        **_pause_totals(pauses),
        "mark_pause_total_ns": sum(col("mark_ns")),
        # The marking phase (the VM's trace: header checks, its side bitmap,
        # one remap_mark per object) per object marked.
        "mark_phase_ns_per_object": sum(col("mark_ns")) / marked if marked else None,
        "mark_pause_max_ns": max(col("mark_ns"), default=0),
        "flip_pause_total_ns": sum(col("flip_ns")),
        "flip_pause_max_ns": max(col("flip_ns"), default=0),
        "concurrent_total_ns": sum(col("concurrent_ns")),
        "concurrent_max_ns": max(col("concurrent_ns"), default=0),
        "pages_installed": sum(col("pages_installed")),
        "pages_by_gc": sum(col("pages_by_gc")),
        "pages_by_mutator": sum(col("pages_by_mutator")),
        "pages_recycled": sum(col("pages_recycled")),
        "pages_allocated": sum(col("pages_allocated")),
        "large_objects_moved": sum(col("large_objects_moved")),
        "large_pages_moved": sum(col("large_pages_moved")),
        "large_pages_copied": sum(col("large_pages_copied")),
        "large_pages_updated": sum(col("large_pages_updated")),
        "large_pages_by_mutator": sum(col("large_pages_by_mutator")),
        "faults": faults,
        # Over all collections, from the merged log2 histograms (approximate).
        "fault_p50_ns": int(_percentile_from_hist(hist, 0.50)) if faults else 0,
        "fault_p99_ns": int(_percentile_from_hist(hist, 0.99)) if faults else 0,
        "fault_max_ns": max(col("fault_max_ns"), default=0),
        # A growable heap (max_heap_mib): the largest and the last capacity.
        "capacity_max": max(col("capacity_after"), default=0),
        "capacity_last": gcs[-1]["capacity_after"] if gcs else 0,
        "occupancy_before_max": max(col("occupancy_before"), default=0.0),
        "occupancy_after_max": max(col("occupancy_after"), default=0.0),
    }


def run(
    workload: str = "gcbench",
    *,
    heap_mib: float | None = None,
    max_heap_mib: float | None = None,
    min_free_ratio: float = 0.3,
    max_free_ratio: float = 0.6,
    threads: int = 2,
    backend: str | int = "auto",
    fault_mode: str | int = "auto",
    rounds: int = 1,
    seed: int = 1,
    region_kib: int = 256,
    gc_threads: int = 1,
    handler_threads: int = 1,
    dense_threshold: float = 0.90,
    trigger_fraction: float = 0.5,
    depth: int | None = None,
    min_depth: int = 4,
    iteration_scale: float | None = None,
    array_size: int | None = None,
    size: int | None = None,
    ops: int | None = None,
    max_value_bytes: int | None = None,
    large_fraction: float = 0.002,
    marking: str = "concurrent",
    verify_refs: bool = False,
    evacuate: bool = True,
    satb_barrier: bool = True,
    mark_delay_us: int = 0,
    events: bool = False,
    check: bool = True,
) -> dict[str, Any]:
    """Run one workload on a fresh toy VM; returns its stats.

    ``heap_mib`` defaults to the workload's ``DEFAULTS`` entry, else 64.

    ``events``: the VM keeps libremap's events (remap_heap_set_event_callback),
    as a runtime forwards them to its own tracing; the dict's ``events`` then
    lists them (``kind``, ``phase``, ``time_ns`` since the VM's birth like
    the pause log's ``start_ns``, ``cycle``, ``value``, ``status``, ``call``).

    ``max_heap_mib`` makes the heap growable (remap_heap_resize): it
    reserves that much and, after each collection, grows when less than
    ``min_free_ratio`` of it is in free regions and shrinks (not below
    ``heap_mib``) when more than ``max_free_ratio`` is. Each ``gcs`` entry
    then says the ``capacity`` it ran at and the ``capacity_after`` chosen
    (and ``committed_after``, the heap's resident bytes then).

    ``marking``: ``concurrent`` (default: initial-mark, remark and flip
    pauses, tracing beside the mutators with a SATB write barrier) or
    ``stw`` (one pause per collection). Backends that cannot take a
    concurrent cycle (minor, sigsegv) mark stop-the-world: the result's
    ``marking`` says how the VM marked and ``marking_note`` why, when that is
    not what was asked. ``verify_refs`` makes libremap refuse a cycle that
    would leave a stray slot (REMAP_HEAP_VERIFY_REFS). ``evacuate``
    (REMAP_HEAP_EVACUATE, on by default) packs the survivors of sparse
    regions into fewer regions; off, each region compacts in place. Test switches:
    ``satb_barrier=False`` turns the barrier's log off (marking then misses
    objects), ``mark_delay_us`` holds the concurrent trace back after the
    initial mark.

    The dict: ``workload``, ``backend``/``fault_mode`` (as the library
    resolved them), ``params``, ``gcs`` (one dict per collection: pause and
    its parts in ns, concurrent compaction, pages by GC vs mutators, fault
    latency, pages recycled/allocated, occupancy before/after, and ``lib``:
    the library's remap_cycle_stats), ``pauses`` (the pause log: one dict per
    stop-the-world pause with ``kind``, ``gc_index``, ``start_ns``,
    ``ttsp_ns``, ``resume_ns``, ``duration_ns`` from the safepoint request to
    the last stopped mutator running again, ``mutators_stopped``),
    ``marking``/``marking_note`` (see above), ``totals`` (sums and maxima;
    ``pause_count``/``pause_p50_ns``/``pause_p99_ns``/``pause_max_ns`` over the VM's pauses, the harness's
    after-GC checks left out, and ``pauses_by_kind``), ``result`` (the
    workload's check), ``verified``, ``wall_s``, ``error`` (None or a dict).
    """
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; expected one of {list(WORKLOADS)}")
    if threads < 1 or rounds < 1:
        raise ValueError("threads and rounds must be >= 1")
    if marking not in MARKINGS:
        raise ValueError(f"unknown marking {marking!r}; expected one of {list(MARKINGS)}")
    if not 0 < min_free_ratio < max_free_ratio < 1:
        raise ValueError("expected 0 < min_free_ratio < max_free_ratio < 1")
    d = DEFAULTS[workload]
    region = region_kib * 1024
    heap = (
        int((heap_mib if heap_mib is not None else d.get("heap_mib", 64)) * MiB) // region * region
    )
    params = {
        "threads": threads,
        "rounds": rounds,
        "seed": seed,
        "depth": depth if depth is not None else d.get("depth", 16),
        "min_depth": min_depth,
        "iteration_scale": iteration_scale
        if iteration_scale is not None
        else d.get("iteration_scale", 1.0),
        "array_size": array_size if array_size is not None else d.get("array_size", 500_000),
        "size": size if size is not None else d.get("size", 4096),
        "ops": ops if ops is not None else d.get("ops", 100_000),
        "max_value_bytes": max_value_bytes
        if max_value_bytes is not None
        else d.get("max_value_bytes", 8192),
        "large_fraction": large_fraction,
    }
    max_heap = 0 if max_heap_mib is None else int(max_heap_mib * MiB) // region * region
    if max_heap and max_heap < heap:
        raise ValueError(f"max_heap_mib {max_heap_mib} is below the heap's {heap / MiB:g} MiB")
    options = dict(
        params,
        heap_bytes=heap,
        max_heap_bytes=max_heap,
        min_free_ratio=min_free_ratio,
        max_free_ratio=max_free_ratio,
        region_size=region,
        backend=enum_value(backend, BACKENDS, "backend"),
        fault_mode=enum_value(fault_mode, FAULT_MODES, "fault mode"),
        gc_threads=gc_threads,
        handler_threads=handler_threads,
        dense_threshold=dense_threshold,
        trigger_fraction=trigger_fraction,
        marking=marking,
        verify_refs=verify_refs,
        evacuate=evacuate,
        satb_barrier=satb_barrier,
        mark_delay_us=mark_delay_us,
        record_events=events,
    )
    raw = _core.toyvm_run(workload, options)
    gcs = [_gc_row(g) for g in raw["gcs"]]
    out: dict[str, Any] = {
        "workload": workload,
        "backend": raw["backend"],
        "fault_mode": raw["fault_mode"],
        "marking": raw["marking"],
        "marking_note": raw["marking_note"],
        "heap_mib": raw["capacity"] / MiB,
        "max_heap_mib": raw["max_capacity"] / MiB,
        "region_kib": raw["region_size"] // 1024,
        "params": params,
        "gcs": gcs,
        "pauses": raw["pauses"],
        "events": raw["events"],
        "totals": _totals(gcs, raw["pauses"]),
        "result": raw["result"],
        "verified": bool(raw["result"]["verified"]) and raw["error"] is None,
        "wall_s": raw["wall_ns"] / 1e9,
        "bytes_allocated": raw["bytes_allocated"],
        "error": raw["error"],
    }
    if check and out["error"] is not None:
        err = out["error"]
        if err["kind"] == "out_of_memory":
            raise HeapExhausted(out)
        if err["status_name"] == "REMAP_EUNSUPPORTED":
            raise BackendUnsupported(out)
        raise ToyVmError(out)
    return out


def mark_bench(objects: int = 1 << 20, reps: int = 3, backend: str | int = "stw") -> dict[str, Any]:
    """remap_mark per object against the floor, side by side in this process.

    ``objects`` GCBench nodes (40 B) of one built heap, in a tracer's order,
    are marked with ``remap_mark`` and, in alternating passes, by setting a
    bit in a plain bitmap (and with an atomic fetch_or, as a thread-safe
    marker must); each pass reads every object's header. Returns
    ``objects``, the per-pass times, and the medians per object:
    ``mark_ns_per_object`` (remap_mark), ``try_mark_ns_per_object``
    (remap_try_mark: the mark bit only) and ``try_mark_prepare_ns_per_object``
    (the remap_prepare that reads those objects' sizes and slots),
    ``mark_floor_ns_per_object``
    (plain bitmap), ``mark_floor_atomic_ns_per_object``. Raises RuntimeError
    when the library refuses (the message says why).
    """
    if objects < 3 or reps < 1:
        raise ValueError("objects must be >= 3 and reps >= 1")
    r = _core.toyvm_mark_bench(objects, reps, enum_value(backend, BACKENDS, "backend"))
    if r["error"] is not None:
        raise RuntimeError(r["error"])
    n = r["objects"]

    def per_object(ns: list[int]) -> float:
        return float(statistics.median(ns)) / n

    return dict(
        r,
        mark_ns_per_object=per_object(r["remap_mark_ns"]),
        try_mark_ns_per_object=per_object(r["try_mark_ns"]),
        try_mark_prepare_ns_per_object=per_object(r["try_complete_ns"]),
        mark_floor_ns_per_object=per_object(r["bitmap_ns"]),
        mark_floor_atomic_ns_per_object=per_object(r["bitmap_atomic_ns"]),
    )


def fmt_ns(ns: float) -> str:
    """``1.2 ms``, ``35 us``, ``640 ns`` (the console's one formatter)."""
    from .console import ns as console_ns

    return console_ns(ns)


__all__ = [
    "BACKENDS",
    "DEFAULTS",
    "FAULT_MODES",
    "HARNESS_PAUSE_KINDS",
    "MARKINGS",
    "WORKLOADS",
    "BackendUnsupported",
    "HeapExhausted",
    "ToyVmError",
    "fmt_ns",
    "mark_bench",
    "pause_stats",
    "percentile",
    "run",
]

"""Workload adapters: each builds the same heap image for every backend,
runs one measured cycle (or one toy-VM run), and checks the result against
the ``stw`` reference computed once per point.

- ``synthetic``: ``SyntheticHeap`` from a fixed seed (deterministic, so every
  run starts from the same bytes at the same offsets). ``threads`` here are
  concurrent *reader* threads: after the flip each one traverses the whole
  object graph (``checksum()``) while the library compacts, faulting on
  pages not produced yet, so fault latency is measured; 0 = compaction
  alone. GC threads are ``--gc-threads``. A run is verified when the image
  hash and the graph checksum after the cycle, and every reader's checksum
  during it, equal the stw reference.
- ``gcbench``, ``binary-trees``, ``lru``: the toy VM (``libremap.toyvm``);
  ``threads`` are its mutator threads (>= 1). A run is verified when the
  VM's own checks pass and its result checksum equals the stw run's. Each
  record carries the VM's pause log statistics and, measured right after
  the run, remap_mark per object against a plain bitmap set per object.
  With ``--jvm``, gcbench also runs on the JDK (``jvm.py``).
- ``cold-pages``: see ``coldpages.py``.
- ``cpython-arenas``: ``libremap.workloads.cpython_arenas.run(params)``
  when that module exists; its records are taken as they come.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import record
from .procfs import Counters, peak_rss_bytes, reset_peak_rss, vma_count

MiB = 1 << 20
REGION = 256 * 1024

# GCBench nodes of the mark microbenchmark's heap (40 B each: 40 / 5 MiB).
MARK_OBJECTS = 1 << 20
MARK_OBJECTS_QUICK = 1 << 17

TOYVM_WORKLOADS = {"gcbench": "gcbench", "binary-trees": "binary_trees", "lru": "lru_cache"}
ALL_WORKLOADS = ("synthetic", *TOYVM_WORKLOADS, "cold-pages", "cpython-arenas")


class Unavailable(Exception):
    """This workload or backend cannot run here; the message says why."""


# The library says this backend cannot run this cycle here: not a wrong result.
# REMAP_ELIMIT is sigsegv's documented limit (one VMA per page in the worst
# case against vm.max_map_count), refused at flip with the heap intact.
UNAVAILABLE_STATUSES = ("REMAP_EUNSUPPORTED", "REMAP_EPERM", "REMAP_ELIMIT")


@dataclass(frozen=True)
class Point:
    """The parameters of one comparison (one sweep value, or the only one)."""

    heap_mib: int
    live: float
    dense: float
    threads: int
    gc_threads: int
    seed: int
    fault_mode: str
    min_object: int
    max_object: int
    quick: bool = False
    sweep: tuple[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "heap_mib": self.heap_mib,
            "live": self.live,
            "dense": self.dense,
            "threads": self.threads,
            "gc_threads": self.gc_threads,
            "seed": self.seed,
            "fault_mode": self.fault_mode,
            "min_object": self.min_object,
            "max_object": self.max_object,
            "sweep": None if self.sweep is None else {"key": self.sweep[0], "value": self.sweep[1]},
        }


class Workload:
    name = "?"

    def __init__(self, point: Point) -> None:
        self.point = point

    def describe(self) -> str:
        return self.name

    def reference(self) -> None:
        """Compute the stw reference; Unavailable if it cannot run."""

    def run(self, backend: str) -> dict[str, Any]:
        raise NotImplementedError

    def _record(self, backend: str) -> dict[str, Any]:
        rec = record.empty(self.name, backend, self.point.fault_mode)
        rec["point"] = self.point.to_json()
        return rec


# ---------------------------------------------------------------- synthetic


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
        from ..synthetic import RemapError, SyntheticHeap

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
        from ..synthetic import PHASE_COMPACTING, RemapError

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


# ---------------------------------------------------------------- toy VM


class ToyVm(Workload):
    def __init__(self, name: str, point: Point) -> None:
        super().__init__(point)
        self.name = name
        self.vm_name = TOYVM_WORKLOADS[name]
        self.ref: Any = None

    def options(self) -> dict[str, Any]:
        p = self.point
        opts: dict[str, Any] = {
            "heap_mib": p.heap_mib,
            "threads": p.threads,
            "seed": p.seed,
            "gc_threads": p.gc_threads,
            "fault_mode": p.fault_mode,
        }
        if p.quick:
            quick: dict[str, dict[str, Any]] = {
                "gcbench": {"depth": 14, "iteration_scale": 0.2, "array_size": 100_000},
                "binary_trees": {"depth": 14},
                "lru_cache": {"ops": 20_000, "size": 2048},
            }
            opts.update(quick[self.vm_name])
        return opts

    def describe(self) -> str:
        from .. import toyvm

        p = self.point
        d = dict(toyvm.DEFAULTS.get(self.vm_name, {}))
        d.update({k: v for k, v in self.options().items() if k in d})
        shape = ", ".join(f"{k} {v}" for k, v in d.items())
        return (
            f"{self.name} (toy VM): heap {p.heap_mib} MiB, {p.threads} mutator thread(s),"
            f" {p.gc_threads} GC thread(s), {shape}"
        )

    def _run(self, backend: str, marking: str) -> dict[str, Any]:
        from .. import toyvm

        if self.point.threads < 1:
            raise Unavailable("the toy VM needs at least one mutator thread")
        r = toyvm.run(self.vm_name, backend=backend, marking=marking, check=False, **self.options())
        err = r.get("error")
        if err is not None and err.get("status_name") in UNAVAILABLE_STATUSES:
            raise Unavailable(err["message"])
        return r

    def mark_bench(self, rec: dict[str, Any]) -> None:
        """remap_mark per object vs a plain bitmap set per object, right after
        the run, in this process (toyvm.mark_bench): issue 13's <= 15 ns goal."""
        from .. import toyvm

        try:
            m = toyvm.mark_bench(objects=MARK_OBJECTS_QUICK if self.point.quick else MARK_OBJECTS)
        except RuntimeError as e:
            rec["note"] = f"mark bench: {e}"
            return
        rec["mark_objects"] = m["objects"]
        for k in (
            "mark_ns_per_object",
            "mark_floor_ns_per_object",
            "mark_floor_atomic_ns_per_object",
            "try_mark_ns_per_object",
            "try_mark_prepare_ns_per_object",
        ):
            rec[k] = m[k]

    def gcbench_params(self) -> dict[str, Any]:
        """The shape of this gcbench run (for the JVM's GCBench.java)."""
        from .. import toyvm

        d = dict(toyvm.DEFAULTS["gcbench"])
        d.update({k: v for k, v in self.options().items() if k in d})
        return {
            "threads": self.point.threads,
            "rounds": 1,
            "depth": int(d["depth"]),
            "min_depth": 4,
            "iteration_scale": float(d["iteration_scale"]),
            "array_size": int(d["array_size"]),
        }

    def reference(self) -> None:
        # The classic reference: stw backend, stw marking. Every workload's
        # result is a function of its seed, however the VM marks.
        r = self._run("stw", "stw")
        if not r["verified"]:
            raise Unavailable(f"the stw reference run failed its checks: {r.get('error')}")
        self.ref = r["result"].get("checksum")

    def run(self, backend: str, marking: str = "concurrent") -> dict[str, Any]:
        rec = self._record(backend)
        c0 = Counters.take()
        peak_known = reset_peak_rss()
        r = self._run(backend, marking)
        c1 = Counters.take()
        rec["rss_peak"] = peak_rss_bytes() if peak_known else None
        # What the run was asked for (the bench's column) and what the VM did
        # (minor and sigsegv mark stop-the-world: marking_note says so).
        rec["marking_requested"] = marking
        rec["marking"] = r["marking"]
        rec["marking_note"] = r["marking_note"]
        record.fill_counters(rec, c0.delta(c1))
        rec["rss_before"], rec["rss_after"] = c0.rss, c1.rss
        gcs = r["gcs"]
        record.fill_from_cycles(rec, [g["lib"] for g in gcs])
        t = r["totals"]
        rec["gc_count"] = t["gc_count"]
        # The VM's pause log (request to the last stopped mutator running),
        # its after-GC checks left out; every kind in pauses_by_kind.
        for k in ("pause_count", "pause_p50_ns", "pause_p99_ns", "pause_max_ns", "pause_total_ns"):
            rec[k] = t[k]
        rec["ttsp_max_ns"] = t["ttsp_max_ns"]
        # The same pauses as the collector sees them (request to resume,
        # the stopped mutators' wake-up left out).
        for k in ("pause_resume_p50_ns", "pause_resume_p99_ns", "pause_resume_max_ns"):
            rec[k] = t[k]
        rec["pauses_by_kind"] = t["pauses_by_kind"]
        rec["pause_log"] = [
            {k: p[k] for k in ("kind", "start_ns", "ttsp_ns", "duration_ns")} for p in r["pauses"]
        ]
        rec["mark_phase_ns_per_object"] = t["mark_phase_ns_per_object"]
        rec["runtime"] = "toyvm"
        rec["gc_cycle_ns"] = sum(int(g["pause_ns"]) + int(g["concurrent_ns"]) for g in gcs)
        rec["mutator_wall_ns"] = int(r["wall_s"] * 1e9)
        rec["bytes_allocated"] = r.get("bytes_allocated")
        if r.get("error"):
            e = r["error"]
            rec["error"] = f"{e.get('kind')}: {e.get('status_name')}: {e.get('message')}"
        self.mark_bench(rec)
        ok = bool(r["verified"]) and r["result"].get("checksum") == self.ref
        rec["verified"] = ok
        rec["verify_detail"] = (
            f"VM checks passed, result checksum {self.ref} as stw"
            if ok
            else f"result {r['result']} vs stw checksum {self.ref}; error {r.get('error')}"
        )
        return rec


# ---------------------------------------------------------------- cpython arenas


def cpython_arenas_module() -> Any:
    """The other engineer's workload module, or Unavailable."""
    try:
        from ..workloads import cpython_arenas
    except ImportError as e:
        raise Unavailable(f"libremap.workloads.cpython_arenas is not importable ({e})") from None
    return cpython_arenas


def cpython_arenas_records(
    point: Point, runs: int, warmup: int, say: Any = None
) -> list[dict[str, Any]]:
    """Runs the cpython-arenas workload (its own alternation: default /
    libremap allocator, in fresh interpreters) and normalises its records:
    every contract field present, ``workload`` named ``cpython-arenas/<case>``,
    ``verified`` false unless the workload says so."""
    mod = cpython_arenas_module()
    params = {"runs": runs, "warmup": warmup, "quick": point.quick}
    out = []
    for raw in mod.run(params, say=say):
        rec = record.empty("cpython-arenas", str(raw.get("backend", "arenas")), "none")
        rec["point"] = point.to_json()
        for k, v in raw.items():
            if k in rec and isinstance(rec[k], dict) and not isinstance(v, dict):
                continue
            rec[k] = v
        case = raw.get("case")
        rec["workload"] = f"cpython-arenas/{case}" if case else "cpython-arenas"
        rec["fault_mode"] = "none"
        rec["warmup"] = bool(raw.get("warmup", False))
        rnd = int(raw.get("round", 0))
        rec["run"] = rnd if rec["warmup"] else rnd - warmup
        rec["verified"] = bool(raw.get("verified", False))
        if "verified" not in raw:
            rec["verify_detail"] = "the workload did not report verification"
        if not rec["verified"]:
            record.redact(rec)
        out.append(rec)
    return out


def make(name: str, point: Point) -> Workload:
    if name == "synthetic":
        return Synthetic(point)
    if name in TOYVM_WORKLOADS:
        return ToyVm(name, point)
    if name == "cold-pages":
        from .coldpages import ColdPages

        return ColdPages(point)
    raise ValueError(f"unknown workload {name!r}; expected one of {', '.join(ALL_WORKLOADS)}")

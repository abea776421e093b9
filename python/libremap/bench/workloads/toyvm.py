"""``gcbench``, ``binary-trees``, ``lru``: the toy VM (``libremap.toyvm``).

``threads`` are its mutator threads (>= 1). A run is verified when the VM's
own checks pass and its result checksum equals the stw run's. Each record
carries the VM's pause log statistics and, measured right after the run,
remap_mark per object against a plain bitmap set per object. With
``--jvm``, gcbench also runs on the JDK (``bench/jvm.py``).
"""

from __future__ import annotations

from typing import Any

from ... import toyvm
from .. import record
from ..procfs import Counters, peak_rss_bytes, reset_peak_rss
from .base import UNAVAILABLE_STATUSES, Point, Unavailable, Workload

# The bench's name -> the toy VM's.
TOYVM_WORKLOADS = {"gcbench": "gcbench", "binary-trees": "binary_trees", "lru": "lru_cache"}

# GCBench nodes of the mark microbenchmark's heap (40 B each: 40 / 5 MiB).
MARK_OBJECTS = 1 << 20
MARK_OBJECTS_QUICK = 1 << 17


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
        p = self.point
        d = dict(toyvm.DEFAULTS.get(self.vm_name, {}))
        d.update({k: v for k, v in self.options().items() if k in d})
        shape = ", ".join(f"{k} {v}" for k, v in d.items())
        return (
            f"{self.name} (toy VM): heap {p.heap_mib} MiB, {p.threads} mutator thread(s),"
            f" {p.gc_threads} GC thread(s), {shape}"
        )

    def _run(self, backend: str, marking: str) -> dict[str, Any]:
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

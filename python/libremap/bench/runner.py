"""The measurement loop (BENCHMARKS.md, "The comparison").

Per point (one sweep value) and workload: the stw reference first, then
``warmup`` rounds over every backend (they touch as much memory as a counted
run: the first touch of memory the VM never backed costs 5-20x more), then
``runs`` counted rounds, alternating backends within each round
(A B C A B C ...). A backend the library answers REMAP_EUNSUPPORTED for is
listed as unavailable with the reason and dropped; the others go on. The
floor is measured once, after the first warm-up, in the same process.
With ``--jvm`` the JDK's collectors (``jvm-zgc``, ``jvm-g1``, ...) join
gcbench's rounds as more columns, alternating with the backends.

Progress goes through a ``console.Progress``: one line per run, and on a
terminal a bar whose total is every run planned (references, warm-ups,
counted runs), shrunk when a backend or workload drops out.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from .. import console
from . import floor as floor_mod
from . import jvm as jvm_mod
from . import procfs, record
from .options import Options
from .summary import summarize
from .swapfile import SwapFile
from .unavailable import Unavailable
from .workloads import TOYVM_WORKLOADS, Point, make
from .workloads import cpython_arenas as cpython_arenas_mod
from .workloads.coldpages import point_needs_swap


def _fmt_ms(ns: float | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:.2f} ms"


class Bench:
    def __init__(self, opts: Options, progress: console.Progress | None = None) -> None:
        self.opts = opts
        self.progress = progress or console.Progress(console.Out(), None, None)
        self.say = self.progress.say
        self.steps = 0  # runs done, references included: the progress bar's unit
        self.total = 0  # runs planned, less those that dropped out
        self.runs: list[dict[str, Any]] = []
        self.unavailable: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.floor: dict[str, Any] | None = None
        self._swap: Any = None
        self._swap_error: str | None = None

    # ------------------------------------------------------------ helpers
    def _unavailable(self, workload: str, backend: str | None, reason: str, point: Point) -> None:
        key = (workload, backend, reason)
        for u in self.unavailable:
            if (u["workload"], u["backend"], u["reason"]) == key:
                return
        self.unavailable.append(
            {"workload": workload, "backend": backend, "reason": reason, "point": point.to_json()}
        )
        who = workload if backend is None else f"{workload}/{backend}"
        self.say(f"  unavailable: {who}: {reason}")

    def _measure_floor(self, heap_mib: int | None = None) -> None:
        if self.floor is not None:
            return
        from ..probe import probe

        self.say(f"floor: batched/single MOVE, COPY, memcpy x {self.opts.floor_reps} ...")
        self.floor = floor_mod.measure(self.opts.floor_reps, move_available=probe().has_move)
        f = self.floor

        def us(k: str) -> str:
            v = f.get(k)
            return "-" if v is None else f"{v / 1000:.3f} us"

        self.say(
            f"  per 4 KiB page: MOVE batched {us('move_batched_ns_per_page')},"
            f" MOVE single {us('move_single_ns_per_page')}, COPY {us('copy_ns_per_page')},"
            f" memcpy {us('memcpy_ns_per_page')}, fresh-page fault {us('fault_zero_ns_per_page')}"
        )
        for e in f.get("errors", []):
            self.say(f"  floor: {e}")
        # The kernel's part of a flip of this heap: mremap(DONTUNMAP) of the
        # 1 GiB-aligned mapping + UFFDIO_REGISTER, to judge the flip pause by.
        if heap_mib is None:
            return
        bare = floor_mod.measure_bare_flip(int(heap_mib) << 20)
        f["flip_bare_ns"] = bare["ns"]
        f["flip_bare_heap_mib"] = int(heap_mib)
        for e in bare["errors"]:
            self.say(f"  floor: bare flip: {e}")
        if bare["ns"] is not None:
            self.say(
                f"  bare flip of a {int(heap_mib)} MiB heap (mremap DONTUNMAP +"
                f" register): {bare['ns'] / 1000:.1f} us"
            )

    @contextlib.contextmanager
    def _swap_for(self, point: Point) -> Iterator[None]:
        need = int(point_needs_swap(point) * 1.25)
        with SwapFile(need) as swap:
            self.say(f"  swap file {swap.path} ({swap.size >> 20} MiB) active")
            yield
        self.say("  swap file removed")

    def _said_one_run(self, msg: str) -> None:
        self.say(msg)
        self._step()

    def _step(self, what: str | None = None) -> None:
        self.steps += 1
        self.progress.advance()
        if what is not None:
            self.progress.update(what=what)

    def planned(self, name: str) -> int:
        """Runs a workload takes at one point if nothing drops out."""
        o = self.opts
        if name == "cpython-arenas":
            return (
                (o.warmup + o.runs)
                * len(cpython_arenas_mod.VARIANTS)
                * len(cpython_arenas_mod.WORKLOADS)
            )
        units = len(o.backends) * (len(o.markings) if name in TOYVM_WORKLOADS else 1)
        if name == "gcbench":
            units += len(o.jvm_collectors)
        return 1 + (o.warmup + o.runs) * units  # 1: the stw reference

    def _plan(self) -> list[tuple[Point, str]]:
        out = []
        for point in self.opts.points():
            for name in self.opts.workloads:
                if point.sweep and point.sweep[0] in ("live", "dense") and name in TOYVM_WORKLOADS:
                    continue  # the toy VM's liveness is its workload's, not a parameter
                out.append((replace(point, threads=self.opts.threads_for(name, point)), name))
        return out

    # ------------------------------------------------------------ one point
    def _run_point(self, name: str, point: Point) -> None:
        if name == "cpython-arenas":
            try:
                recs = cpython_arenas_mod.records(
                    point, self.opts.runs, self.opts.warmup, self._said_one_run
                )
            except Unavailable as e:
                self._unavailable(name, None, str(e), point)
                return
            for r in recs:
                if not r["warmup"]:
                    record.add_floor(r, self.floor or {})
            self.runs.extend(recs)
            self.say(f"  cpython-arenas: {len(recs)} record(s)")
            return
        if name == "cold-pages":
            try:
                with self._swap_for(point):
                    self._compare(name, point)
            except Unavailable as e:
                self._unavailable(name, None, str(e), point)
            return
        self._compare(name, point)

    def _compare(self, name: str, point: Point) -> None:
        wl = make(name, point)
        self.say(wl.describe())
        self.progress.update(what=f"{name}: stw reference")
        try:
            wl.reference()
            self._step()
        except Unavailable as e:
            self._unavailable(name, None, str(e), point)
            return
        # A unit of the alternation: (backend, marking); marking is the toy
        # VM's (--marking), None for every other workload and the JVM.
        markings: list[str | None] = list(self.opts.markings) if name in TOYVM_WORKLOADS else [None]
        units: list[tuple[str, str | None]] = [(b, m) for b in self.opts.backends for m in markings]
        jvm_run = self._jvm_for(wl, point) if name == "gcbench" else None
        if jvm_run is not None:
            units += [(b, None) for b in jvm_run[1]]

        def one(unit: tuple[str, str | None], run: int, warmup: bool, label: str) -> None:
            backend, marking = unit
            self.progress.update(what=f"{name}: {backend}{'' if warmup else f' run {run + 1}'}")
            try:
                if jvm_mod.is_jvm_backend(backend):
                    assert jvm_run is not None
                    rec = jvm_run[0](backend)
                elif marking is not None:
                    rec = wl.run(backend, marking)  # type: ignore[call-arg]  # a toy VM workload
                else:
                    rec = wl.run(backend)
            except Unavailable as e:
                self._unavailable(name, backend, str(e), point)
                units[:] = [u for u in units if u[0] != backend]
                return
            self._step()
            rec["run"] = run
            rec["warmup"] = warmup
            if not warmup and self.floor is not None:
                record.add_floor(rec, self.floor)
            if not rec["verified"]:
                record.redact(rec)
            self.runs.append(rec)
            status = "verified"
            if not rec["verified"]:
                status = f"NOT VERIFIED ({rec['verify_detail']}{': ' if rec['error'] else ''}"
                status += f"{rec['error'] or ''})"
            if rec.get("note"):
                status += f"; {rec['note']}"
            if marking is not None:
                status += f"; {rec.get('marking')} marking"
                if rec.get("marking_note"):
                    status += f" ({rec['marking_note']})"
            faults = rec["fault_latency_ns"]["count"]
            pauses = ""
            if rec.get("pause_count") is not None:
                pauses = (
                    f" {rec['pause_count']} pauses p50 {_fmt_ms(rec.get('pause_p50_ns'))}"
                    f" max {_fmt_ms(rec.get('pause_max_ns'))},"
                )
            if rec.get("runtime") == "jvm":
                self.say(
                    f"  {label} {backend:<7}{pauses}"
                    f" mutator wall {_fmt_ms(rec['mutator_wall_ns'])}, {status}"
                )
                return
            self.say(
                f"  {label} {backend:<7} compaction {_fmt_ms(rec['compaction_ns']):>10},"
                f" flip {_fmt_ms(rec['flip_pause_ns']):>9},{pauses}"
                f" {rec['pages_installed'] or 0} pages, {faults or 0} faults, {status}"
            )

        for w in range(self.opts.warmup):
            for u in list(units):
                one(u, w, True, f"[warm-up {w + 1}/{self.opts.warmup}]")
        self._measure_floor(point.heap_mib)
        total = self.opts.runs * len(units)
        k = 0
        for i in range(self.opts.runs):
            for u in list(units):
                k += 1
                one(u, i, False, f"[{k}/{total}]")
            total = k + (self.opts.runs - i - 1) * len(units)

    def _jvm_for(
        self, wl: Any, point: Point
    ) -> tuple[Callable[[str], dict[str, Any]], list[str]] | None:
        """With --jvm: the JDK found, GCBench.java compiled, the collectors
        this JDK runs at this heap; (run one, their backend names). None (and
        a one-line message) when there is no JDK or nothing to run."""
        if not self.opts.jvm_collectors:
            return None
        try:
            jdk = jvm_mod.Jdk.find()
            classes = jdk.compile()
        except jvm_mod.JvmUnavailable as e:
            self._unavailable(wl.name, "jvm", str(e), point)
            return None
        runnable = []
        for c in self.opts.jvm_collectors:
            why = jdk.has_collector(c, point.heap_mib)
            if why is None:
                runnable.append(c)
            else:
                self._unavailable(wl.name, jvm_mod.backend_name(c), why, point)
        if not runnable:
            return None
        bench = jvm_mod.JvmGcBench(jdk, classes, point.heap_mib, wl.gcbench_params())
        shape = ", ".join(f"{k} {v}" for k, v in bench.params.items())
        self.say(
            f"  JVM: {jdk.version}; GCBench.java ({shape}), -Xms/-Xmx {point.heap_mib}m,"
            f" under {', '.join(jvm_mod.COLLECTORS[c][1] for c in runnable)}"
        )

        def run(backend: str) -> dict[str, Any]:
            c = backend[len(jvm_mod.BACKEND_PREFIX) :]
            return bench.run(c, point.to_json(), wl.ref)

        return run, [jvm_mod.backend_name(c) for c in runnable]

    # ------------------------------------------------------------ all
    def run(self) -> dict[str, Any]:
        t0 = time.monotonic()
        machine = procfs.machine()
        p = machine["probe"]
        self.say(
            f"libremap {machine['libremap']} bench on Linux {machine['kernel']}, {machine['cpu']}"
            f" x{machine['cpus']}, THP {machine['thp']}, load {machine['loadavg']};"
            f" UFFDIO_MOVE {'yes' if p['features'].get('move') else 'no'}"
        )
        plan = self._plan()
        self.total = sum(self.planned(name) for _, name in plan)
        self.progress.update(total=self.total)
        last_point = None
        for wp, name in plan:
            if wp.sweep and wp.sweep != last_point:
                self.say(f"sweep {wp.sweep[0]} = {wp.sweep[1]:g}")
            last_point = wp.sweep
            before = self.steps
            try:
                self._run_point(name, wp)
            except Exception as e:  # noqa: BLE001 - one workload's crash must not lose the rest
                msg = f"{type(e).__name__}: {e}"
                self.failures.append({"workload": name, "point": wp.to_json(), "error": msg})
                self.say(f"  FAILED: {name}: {msg}")
            # Runs that did not happen (a backend dropped out, a crash) leave the plan.
            missed = self.planned(name) - (self.steps - before)
            if missed > 0:
                self.total -= missed
                self.progress.update(total=self.total)
        if self.floor is None:
            self._measure_floor()
        elapsed = time.monotonic() - t0
        return {
            "schema_version": 1,
            "machine": machine,
            "params": self.opts.params(),
            "floor": self.floor,
            "runs": self.runs,
            "summary": summarize(self.runs),
            "unavailable": self.unavailable,
            "failures": self.failures,
            "elapsed_s": elapsed,
        }


def run(opts: Options, progress: console.Progress | None = None) -> dict[str, Any]:
    return Bench(opts, progress).run()


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: python -m libremap bench")

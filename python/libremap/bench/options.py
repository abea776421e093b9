"""Command-line options of ``python -m libremap bench`` (a contract: other
tools script against these flags; issue 6) and their resolution into the
points to measure."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from typing import Any

from .._names import ALL_BACKENDS
from .workloads import ALL_WORKLOADS, TOYVM_WORKLOADS, Point

MARKINGS = ("concurrent", "stw")
SWEEP_KEYS = {
    "heap": "heap_mib",
    "live": "live",
    "dense": "dense",
    "threads": "threads",
    "gc-threads": "gc_threads",
}

QUICK = {"heap_mib": 32, "runs": 5, "warmup": 1, "floor_reps": 20}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workload",
        metavar="NAME",
        help=f"workload(s), comma-separated, or 'all': {', '.join(ALL_WORKLOADS)}"
        " (default synthetic; with --quick synthetic,gcbench)",
    )
    p.add_argument("--heap-mib", type=int, metavar="N", help="heap size in MiB (default 256)")
    p.add_argument(
        "--live",
        type=float,
        default=0.5,
        metavar="R",
        help="live ratio of fragmented regions (synthetic; default 0.5)",
    )
    p.add_argument(
        "--dense",
        type=float,
        default=0.25,
        metavar="R",
        help="fraction of regions made dense (synthetic; default 0.25)",
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="mutator threads: toy VM mutators (default 2); for synthetic, reader threads"
        " traversing the heap during compaction (default 0)",
    )
    p.add_argument(
        "--gc-threads", type=int, default=1, metavar="N", help="library GC threads (default 1)"
    )
    p.add_argument(
        "--backends",
        default=",".join(ALL_BACKENDS),
        metavar="LIST",
        help=f"comma-separated backends (default all available: {','.join(ALL_BACKENDS)})",
    )
    p.add_argument(
        "--marking",
        default="concurrent",
        metavar="LIST",
        help="toy VM marking, comma-separated: concurrent (initial-mark, remark and flip pauses;"
        " default), stw (one pause per collection), or both (concurrent,stw: alternated run by"
        " run like backends; stw marking shows as columns '<backend>/stw-mark')",
    )
    p.add_argument(
        "--fault-mode",
        default="sigbus",
        choices=("sigbus", "thread", "auto"),
        help="fault delivery of the concurrent backends (default sigbus)",
    )
    p.add_argument("--runs", type=int, metavar="N", help="counted runs per backend (default 5)")
    p.add_argument(
        "--warmup",
        type=int,
        metavar="N",
        help="warm-up rounds per backend, not counted (default 1)",
    )
    p.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="vary one parameter: heap=64,256,1024,4096 (MiB), live=0.1,0.5,0.9,"
        " threads=0,1,2,4,8, gc-threads=1,2, dense=...; repeatable (each sweep on its own)",
    )
    p.add_argument("--json", metavar="FILE", help="write every run, the floor and the machine")
    p.add_argument("--plot", metavar="FILE", help="write a PNG (needs matplotlib: extra 'plot')")
    p.add_argument(
        "--trace",
        metavar="FILE",
        help="also write a Chrome/Perfetto trace (JSON trace event format) of one more run,"
        " not counted: the first workload and backend at the base point, with libremap's events"
        " (cycles, the flip's pause, phases, calls) and the toy VM's pauses (bench/trace.py)",
    )
    p.add_argument(
        "--report",
        metavar="DIR",
        help="write DIR/bench.json, DIR/bench.png and DIR/report.md, a one-page summary"
        " (created if missing; the PNG needs matplotlib)",
    )
    p.add_argument("--quick", action="store_true", help="small and short (CI: well under 60 s)")
    p.add_argument("--seed", type=int, default=1, help="heap image seed (default 1)")
    p.add_argument(
        "--object-size",
        default="16-2048",
        metavar="MIN-MAX",
        help="synthetic object sizes in bytes (default 16-2048)",
    )
    p.add_argument(
        "--jvm",
        action="store_true",
        help="with gcbench: also run GCBench (same shape, threads and heap) on this machine's JDK"
        " under ZGC, Shenandoah, G1 and Parallel, alternating with the backends (skipped with a"
        " message when java/javac are missing)",
    )
    p.add_argument(
        "--jvm-collectors",
        default="zgc,shenandoah,g1,parallel",
        metavar="LIST",
        help="collectors for --jvm (default zgc,shenandoah,g1,parallel)",
    )
    p.add_argument(
        "--floor-reps",
        type=int,
        metavar="N",
        help="repetitions of each floor measurement (default 100)",
    )


@dataclass(frozen=True)
class Options:
    workloads: tuple[str, ...]
    backends: tuple[str, ...]
    runs: int
    warmup: int
    base: Point
    threads_given: bool
    sweeps: tuple[tuple[str, tuple[float, ...]], ...]
    json_path: str | None
    plot_path: str | None
    floor_reps: int
    quick: bool
    jvm_collectors: tuple[str, ...] = ()  # empty: no --jvm
    markings: tuple[str, ...] = ("concurrent",)  # toy VM workloads only
    trace_path: str | None = None  # --trace (bench/trace.py)
    report_dir: str | None = None  # --report: JSON, PNG and report.md in one folder

    def params(self) -> dict[str, Any]:
        return {
            "workloads": list(self.workloads),
            "backends": list(self.backends),
            "runs": self.runs,
            "warmup": self.warmup,
            "base": self.base.to_json(),
            "threads_default": "per workload" if not self.threads_given else self.base.threads,
            "sweeps": [{"key": k, "values": list(v)} for k, v in self.sweeps],
            "floor_reps": self.floor_reps,
            "quick": self.quick,
            "jvm_collectors": list(self.jvm_collectors),
            "markings": list(self.markings),
        }

    def points(self) -> list[Point]:
        if not self.sweeps:
            return [self.base]
        out = []
        for key, values in self.sweeps:
            for v in values:
                field = SWEEP_KEYS[key]
                val: float | int = int(v) if field in ("heap_mib", "threads", "gc_threads") else v
                out.append(replace(self.base, sweep=(key, v), **{field: val}))  # type: ignore[arg-type]
        return out

    def threads_for(self, workload: str, point: Point) -> int:
        """--threads / a threads sweep win; otherwise the workload's default."""
        if self.threads_given or (point.sweep and point.sweep[0] == "threads"):
            return point.threads
        return 2 if workload in TOYVM_WORKLOADS else 0


class UsageError(ValueError):
    pass


def _split(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def resolve(args: argparse.Namespace) -> Options:
    quick = bool(args.quick)
    if args.workload is None:
        workloads = ["synthetic", "gcbench"] if quick else ["synthetic"]
    elif args.workload == "all":
        workloads = list(ALL_WORKLOADS)
    else:
        workloads = _split(args.workload)
    for w in workloads:
        if w not in ALL_WORKLOADS:
            raise UsageError(f"unknown workload {w!r}; expected one of {', '.join(ALL_WORKLOADS)}")
    markings = _split(getattr(args, "marking", None) or "concurrent")
    for m in markings:
        if m not in MARKINGS:
            raise UsageError(f"unknown marking {m!r}; expected some of {','.join(MARKINGS)}")
    if not markings or len(set(markings)) != len(markings):
        raise UsageError("--marking: expected concurrent, stw or concurrent,stw")
    backends = _split(args.backends)
    for b in backends:
        if b not in ALL_BACKENDS:
            raise UsageError(f"unknown backend {b!r}; expected some of {','.join(ALL_BACKENDS)}")
    sweeps = []
    for s in args.sweep:
        key, eq, vals = s.partition("=")
        if not eq or key not in SWEEP_KEYS:
            raise UsageError(
                f"--sweep {s!r}: expected KEY=V1,V2,... with KEY in {sorted(SWEEP_KEYS)}"
            )
        try:
            values = tuple(float(v) for v in _split(vals))
        except ValueError:
            raise UsageError(f"--sweep {s!r}: values must be numbers") from None
        if not values:
            raise UsageError(f"--sweep {s!r}: no values")
        sweeps.append((key, values))
    try:
        lo, hi = (int(x) for x in args.object_size.split("-"))
    except ValueError:
        raise UsageError("--object-size: expected MIN-MAX in bytes, e.g. 16-2048") from None

    def pick(given: int | None, key: str, default: int) -> int:
        if given is not None:
            return given
        return QUICK[key] if quick else default

    jvm: tuple[str, ...] = ()
    if getattr(args, "jvm", False):
        from .jvm import COLLECTORS

        jvm = tuple(_split(args.jvm_collectors))
        for c in jvm:
            if c not in COLLECTORS:
                raise UsageError(
                    f"unknown JVM collector {c!r}; expected some of {','.join(COLLECTORS)}"
                )
        if "gcbench" not in workloads:
            raise UsageError(
                "--jvm runs GCBench on the JVM beside the toy VM: add gcbench to --workload"
            )
    runs = pick(args.runs, "runs", 5)
    warmup = pick(args.warmup, "warmup", 1)
    if runs < 1 or warmup < 0:
        raise UsageError("--runs must be >= 1 and --warmup >= 0")
    base = Point(
        heap_mib=pick(args.heap_mib, "heap_mib", 256),
        live=args.live,
        dense=args.dense,
        threads=args.threads if args.threads is not None else 0,
        gc_threads=args.gc_threads,
        seed=args.seed,
        fault_mode=args.fault_mode,
        min_object=lo,
        max_object=hi,
        quick=quick,
    )
    return Options(
        workloads=tuple(workloads),
        backends=tuple(backends),
        runs=runs,
        warmup=warmup,
        base=base,
        threads_given=args.threads is not None,
        sweeps=tuple(sweeps),
        json_path=args.json,
        plot_path=args.plot,
        floor_reps=pick(args.floor_reps, "floor_reps", 100),
        quick=quick,
        jvm_collectors=jvm,
        markings=tuple(markings),
        trace_path=getattr(args, "trace", None),
        report_dir=getattr(args, "report", None),
    )

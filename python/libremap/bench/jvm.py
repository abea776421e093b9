"""``--jvm``: GCBench on a real JVM beside the toy VM (issue 13, item 5).

``java/GCBench.java`` (shipped in this package) has the toy VM's gcbench
shape: the same tree depths, long-lived tree and double[], number of mutator
threads and trees per depth; it counts the nodes it checks, which must equal
the toy VM's stw checksum for the same parameters (that verifies a run). It
is compiled once with ``javac`` into a cache folder keyed by the source and
the JDK, then run under each collector this JDK has (ZGC, Shenandoah, G1,
Parallel) with ``-Xms`` = ``-Xmx`` = the toy VM's heap.

Pauses come from ``-Xlog:safepoint``: one line per safepoint with the time
to reach it and the total, i.e. from "every Java thread asked to stop" to
"released", the JVM's version of the toy VM's pause log (which also counts
the last mutator's wake-up after the release). Every safepoint is a pause,
GC or not; the kind is the VM operation's name (``G1CollectForAllocation``,
``ZMarkStart``, ...). Older JDKs' ``Total time for which application threads
were stopped`` lines and, failing both, ``-Xlog:gc`` ``Pause ... 1.234ms``
lines are read too.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from . import record

MAIN_CLASS = "GCBench"
# Name in the bench (backend column), the -XX flag, the name in reports.
COLLECTORS: dict[str, tuple[str, str]] = {
    "zgc": ("-XX:+UseZGC", "ZGC"),
    "shenandoah": ("-XX:+UseShenandoahGC", "Shenandoah"),
    "g1": ("-XX:+UseG1GC", "G1"),
    "parallel": ("-XX:+UseParallelGC", "Parallel"),
}
BACKEND_PREFIX = "jvm-"
RUN_TIMEOUT_S = 600.0


class JvmUnavailable(Exception):
    """No JDK here, or this collector is not in it: the message says why."""


def backend_name(collector: str) -> str:
    return BACKEND_PREFIX + collector


def is_jvm_backend(backend: str) -> bool:
    return backend.startswith(BACKEND_PREFIX)


# ---------------------------------------------------------------- log parsing

_SAFEPOINT = re.compile(
    r'Safepoint "(?P<op>[^"]+)", Time since last: \d+ ns, Reaching safepoint: (?P<reach>\d+) ns,'
    r".*?Total: (?P<total>\d+) ns"
)
_STOPPED_OLD = re.compile(
    r"Total time for which application threads were stopped: (?P<total>[\d.]+) seconds,"
    r" Stopping threads took: (?P<reach>[\d.]+) seconds"
)
_GC_PAUSE = re.compile(r"GC\(\d+\) (?P<op>Pause .*?)(?: \S+->\S+)? (?P<ms>\d+(?:\.\d+)?)ms$")
_GC_ID = re.compile(r"\bGC\((\d+)\)")
_UPTIME_NS = re.compile(r"^\[(\d+)ns\]")


def parse_log(text: str) -> dict[str, Any]:
    """The pauses in a ``-Xlog:gc,safepoint`` file: ``pauses`` (kind,
    start_ns when the line has an ``uptimenanos`` decorator, ttsp_ns,
    duration_ns), ``source`` (which lines they came from) and ``gc_count``
    (distinct ``GC(n)`` ids)."""
    safepoints: list[dict[str, Any]] = []
    old: list[dict[str, Any]] = []
    gc_pauses: list[dict[str, Any]] = []
    gc_ids: set[int] = set()
    for line in text.splitlines():
        up = _UPTIME_NS.match(line)
        end = int(up.group(1)) if up else None
        for g in _GC_ID.findall(line):
            gc_ids.add(int(g))
        m = _SAFEPOINT.search(line)
        if m:
            total = int(m.group("total"))
            safepoints.append(
                {
                    "kind": m.group("op"),
                    "start_ns": None if end is None else end - total,
                    "ttsp_ns": int(m.group("reach")),
                    "duration_ns": total,
                }
            )
            continue
        m = _STOPPED_OLD.search(line)
        if m:
            total = round(float(m.group("total")) * 1e9)
            old.append(
                {
                    "kind": "safepoint",
                    "start_ns": None if end is None else end - total,
                    "ttsp_ns": round(float(m.group("reach")) * 1e9),
                    "duration_ns": total,
                }
            )
            continue
        m = _GC_PAUSE.search(line.rstrip())
        if m:
            total = round(float(m.group("ms")) * 1e6)
            gc_pauses.append(
                {
                    "kind": " ".join(m.group("op").split()),
                    "start_ns": None if end is None else end - total,
                    "ttsp_ns": None,
                    "duration_ns": total,
                }
            )
    if safepoints:
        pauses, source = safepoints, "safepoint"
    elif old:
        pauses, source = old, "safepoint (stopped time)"
    else:
        pauses, source = gc_pauses, "gc pause lines"
    return {"pauses": pauses, "source": source, "gc_count": len(gc_ids)}


def pause_fields(pauses: list[dict[str, Any]]) -> dict[str, Any]:
    """The record's pause fields from a list of pauses (``kind``, ``duration_ns``)."""
    from ..toyvm import pause_stats

    s = pause_stats([p["duration_ns"] for p in pauses])
    kinds: dict[str, list[int]] = {}
    for p in pauses:
        kinds.setdefault(p["kind"], []).append(p["duration_ns"])
    ttsp = [p["ttsp_ns"] for p in pauses if p.get("ttsp_ns") is not None]
    return {
        "pause_count": s["count"],
        "pause_p50_ns": s["p50_ns"],
        "pause_p99_ns": s["p99_ns"],
        "pause_max_ns": s["max_ns"],
        "pause_total_ns": s["total_ns"],
        "ttsp_max_ns": max(ttsp) if ttsp else None,
        "pauses_by_kind": {k: pause_stats(v) for k, v in kinds.items()},
    }


# ---------------------------------------------------------------- the JDK


def java_source() -> Path:
    """GCBench.java inside the installed package."""
    p = resources.files("libremap.bench").joinpath("java").joinpath(f"{MAIN_CLASS}.java")
    return Path(str(p))


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "libremap" / "jvm"


@dataclass
class Jdk:
    java: str
    javac: str
    version: str

    @staticmethod
    def find() -> Jdk:
        java, javac = shutil.which("java"), shutil.which("javac")
        if not java or not javac:
            missing = " and ".join(n for n, p in (("java", java), ("javac", javac)) if not p)
            raise JvmUnavailable(f"no JDK here ({missing} not on PATH): JVM runs skipped")
        r = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
        lines = (r.stderr or r.stdout).strip().splitlines()
        return Jdk(java, javac, lines[0] if lines else "java (version unknown)")

    def compile(self) -> Path:
        """Compiles GCBench.java (once per source and JDK); the class folder."""
        src = java_source()
        text = src.read_bytes()
        key = hashlib.sha256(text + self.version.encode() + self.javac.encode()).hexdigest()[:16]
        for root in (_cache_root(), Path(tempfile.gettempdir()) / f"libremap-jvm-{os.getuid()}"):
            out = root / key
            if (out / f"{MAIN_CLASS}.class").exists():
                return out
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError:
                continue
            r = subprocess.run(
                [self.javac, "-d", str(out), str(src)], capture_output=True, text=True, timeout=300
            )
            if r.returncode != 0:
                raise JvmUnavailable(f"javac failed on {src}: {(r.stderr or r.stdout).strip()}")
            return out
        raise JvmUnavailable("no writable folder for the compiled GCBench (cache or temp)")

    def has_collector(self, collector: str, heap_mib: int) -> str | None:
        """None if this JDK runs the collector at this heap, else why not."""
        flag = COLLECTORS[collector][0]
        r = subprocess.run(
            [self.java, flag, f"-Xms{heap_mib}m", f"-Xmx{heap_mib}m", "-version"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r.returncode == 0:
            return None
        lines = (r.stderr or r.stdout).strip().splitlines()
        return f"{self.version}: {flag} refused: {lines[0] if lines else r.returncode}"


_RESULT = re.compile(
    r"GCBENCH nodes=(\d+) expected=(\d+) wall_ns=(\d+) ok=(true|false)(?: error=(\S+))?"
)


class JvmGcBench:
    """One JVM run per call of ``run(collector)``: a record like the toy VM's."""

    def __init__(self, jdk: Jdk, classes: Path, heap_mib: int, params: dict[str, Any]) -> None:
        self.jdk = jdk
        self.classes = classes
        self.heap_mib = heap_mib
        self.params = params  # threads, rounds, depth, min_depth, iteration_scale, array_size

    def args(self) -> list[str]:
        p = self.params
        return [
            f"threads={p['threads']}",
            f"rounds={p['rounds']}",
            f"depth={p['depth']}",
            f"min_depth={p['min_depth']}",
            f"scale={p['iteration_scale']}",
            f"array={p['array_size']}",
        ]

    def command(self, collector: str, log: Path) -> list[str]:
        flag = COLLECTORS[collector][0]
        return [
            self.jdk.java,
            flag,
            f"-Xms{self.heap_mib}m",
            f"-Xmx{self.heap_mib}m",
            f"-Xlog:gc,safepoint:file={log}:uptimenanos,level,tags",
            "-cp",
            str(self.classes),
            MAIN_CLASS,
            *self.args(),
        ]

    def run(self, collector: str, point: dict[str, Any], expected: int | None) -> dict[str, Any]:
        rec = record.empty("gcbench", backend_name(collector), "none")
        rec["point"] = point
        rec["runtime"] = "jvm"
        rec["collector"] = COLLECTORS[collector][1]
        rec["java_version"] = self.jdk.version
        with tempfile.TemporaryDirectory(prefix="libremap-jvm-") as tmp:
            log = Path(tmp) / "gc.log"
            cmd = self.command(collector, log)
            # The log file is a temporary one: record the command without it.
            rec["jvm_command"] = " ".join(cmd).replace(str(log), "gc.log")
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter_ns()
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                rec["error"] = f"timed out after {RUN_TIMEOUT_S:.0f} s"
                rec["verify_detail"] = "the JVM run did not finish"
                return rec
            t1 = time.perf_counter_ns()
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            text = log.read_text() if log.exists() else ""
        m = _RESULT.search(r.stdout)
        parsed = parse_log(text)
        rec["pause_source"] = parsed["source"]
        rec["gc_count"] = parsed["gc_count"]
        rec.update(pause_fields(parsed["pauses"]))
        rec["pause_log"] = parsed["pauses"]
        rec["process_wall_ns"] = t1 - t0
        cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        rec["cpu_ns"] = int(cpu * 1e9)
        rec["minor_faults"] = ru1.ru_minflt - ru0.ru_minflt
        rec["major_faults"] = ru1.ru_majflt - ru0.ru_majflt
        problems = []
        if r.returncode != 0 or m is None:
            tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
            rec["error"] = f"exit {r.returncode}: {' | '.join(tail)}"
            problems.append("the JVM run failed")
        if m is not None:
            nodes, exp = int(m.group(1)), int(m.group(2))
            rec["mutator_wall_ns"] = int(m.group(3))
            if m.group(4) != "true":
                problems.append(f"GCBench's own checks failed ({m.group(5) or 'wrong node count'})")
            if expected is not None and nodes != expected:
                problems.append(f"{nodes} nodes checked, the toy VM's stw run checked {expected}")
            if exp != nodes:
                problems.append(f"{nodes} nodes checked, {exp} expected")
        if not parsed["pauses"]:
            problems.append("no pause found in the -Xlog output")
        rec["verified"] = not problems
        rec["verify_detail"] = "; ".join(problems) or (
            f"every tree and the array intact; {m.group(1) if m else '?'} nodes checked,"
            " as the toy VM's stw run"
        )
        if not rec["verified"]:
            record.redact(rec)
        return rec

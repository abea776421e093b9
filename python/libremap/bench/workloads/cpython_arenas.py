"""The ``cpython-arenas`` workload: pymalloc's default arena allocator against
libremap's arena pool (``libremap.cpython``), side by side in one run.

Two workloads, each run in a fresh interpreter per measurement, alternating
default / libremap (A B A B ...) after warm-up pairs:

- ``churn``: waves that allocate millions of small objects (tuples, lists,
  dicts, strings, floats), hold them, and drop them. With the default
  allocator every wave maps fresh arenas (page faults and zeroing) and
  unmaps them again; with libremap up to ``cap_mib`` of freed arenas are
  reused as they are.
- ``mixed``: a JSON round trip (``dumps`` + ``loads``) of a large document,
  repeated; the parsed copy is dropped each time.

Per run: the measured section's wall time, CPU time (user + system, from
getrusage inside the child) and minor page faults, startup excluded; the child's whole-life minor faults and
peak RSS (``ru_maxrss`` from ``wait4``), and the adapter's counters. The
libremap child imports ``libremap.cpython`` and calls ``install()`` before
the workload; the default child imports it too (without installing), so
both start from the same resident baseline.

``run(params) -> list[dict]`` runs them; ``records`` is what ``python -m
libremap bench`` calls (the same runs as contract records);
``python -m libremap.bench.workloads.cpython_arenas`` prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

from ... import console
from .. import record
from .base import Point

VARIANTS = ("default", "libremap")
WORKLOADS = ("churn", "mixed")

DEFAULTS: dict[str, Any] = {
    "runs": 5,
    "warmup": 1,
    "cap_mib": 256.0,
    "churn_waves": 8,
    "churn_objects": 1_000_000,
    "mixed_records": 60_000,
    "mixed_repeats": 6,
    "workloads": list(WORKLOADS),
}
QUICK: dict[str, Any] = {
    "runs": 3,
    "churn_waves": 4,
    "churn_objects": 400_000,
    "mixed_records": 20_000,
    "mixed_repeats": 3,
}

# The child: one workload, one allocator; prints one JSON line.
CHILD = r"""
import gc, json, resource, sys, time
p = json.loads(sys.argv[1])
from libremap import cpython
if p["variant"] == "libremap":
    cpython.install(cap_mib=p["cap_mib"])

def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def churn(waves, n):
    check = 0
    for w in range(waves):
        held = []
        for i in range(n // 5):
            held.append((i, w))
            held.append([i, i + 1])
            held.append({"k": i})
            held.append(str(i + w))
            held.append(float(i) * 0.5)
        check = (check + len(held) + len(held[-2]) + int(held[-1])) % 1_000_000_007
        del held
    return check

def make_doc(n):
    return {"items": [{"id": i, "name": f"item-{i}", "tags": ["a", "b", str(i % 7)],
                       "price": i * 0.25, "stock": {"here": i % 11, "there": [i, -i]}}
                      for i in range(n)], "meta": {"n": n}}

def mixed(n, repeats):
    doc = make_doc(n)
    check = 0
    for _ in range(repeats):
        text = json.dumps(doc)
        back = json.loads(text)
        if back != doc:
            raise SystemExit("round trip differs")
        check = (check + len(text) + len(back["items"])) % 1_000_000_007
        del text, back
    return check

gc.collect()
rss0 = rss_kib()
ru0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter_ns()
if p["workload"] == "churn":
    check = churn(p["churn_waves"], p["churn_objects"])
else:
    check = mixed(p["mixed_records"], p["mixed_repeats"])
t1 = time.perf_counter_ns()
ru1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
print(json.dumps({"ns": t1 - t0, "cpu_ns": int(cpu * 1e9),
                  "sys_ns": int((ru1.ru_stime - ru0.ru_stime) * 1e9),
                  "minflt": ru1.ru_minflt - ru0.ru_minflt, "check": check,
                  "rss_before": rss0 * 1024, "rss_after": rss_kib() * 1024,
                  "arenas": cpython.stats()}))
"""


def _child(workload: str, variant: str, p: dict[str, Any]) -> dict[str, Any]:
    args = {**p, "workload": workload, "variant": variant}
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIBREMAP_ARENAS")}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{workload}/{variant} child exited {proc.returncode}: {err[-2000:]}")
    r = json.loads(out.strip().splitlines()[-1])
    r["minflt_total"] = ru.ru_minflt
    r["maxrss"] = ru.ru_maxrss * 1024  # Linux reports KiB
    return r


def _record(
    workload: str,
    variant: str,
    rnd: int,
    warm: bool,
    r: dict[str, Any],
    p: dict[str, Any],
    ref: int | None,
) -> dict[str, Any]:
    a = r["arenas"]
    ok = ref is None or r["check"] == ref
    return {
        "backend": variant,  # the harness's column: which allocator
        "case": workload,
        "round": rnd,
        "warmup": warm,
        "verified": ok,
        "verify_detail": f"checksum {r['check']} ({'same' if ok else 'differs from'} default's)",
        "mutator_wall_ns": r["ns"],
        "cpu_ns": r["cpu_ns"],
        "sys_ns": r["sys_ns"],
        "minor_faults": r["minflt"],
        "minor_faults_process": r["minflt_total"],
        "peak_rss": r["maxrss"],
        "rss_before": r["rss_before"],
        "rss_after": r["rss_after"],
        "madvise_calls": a["madvise_calls"] if variant == "libremap" else None,
        "buffers_recycled": a["arenas_recycled"] if variant == "libremap" else None,
        "arenas": a if variant == "libremap" else None,
        "cap_mib": p["cap_mib"],
        "params": {k: p[k] for k in DEFAULTS if k in p},
    }


def params_from(given: dict[str, Any] | None) -> dict[str, Any]:
    given = dict(given or {})
    p = dict(DEFAULTS)
    if given.get("quick"):
        p.update(QUICK)
    p.update({k: v for k, v in given.items() if k in DEFAULTS and v is not None})
    return p


def run(params: dict[str, Any] | None = None, say: Any = None) -> list[dict[str, Any]]:
    """All runs of both workloads: warm-up pairs, then ``runs`` counted pairs
    per workload, default then libremap in each pair."""
    p = params_from(params)
    out: list[dict[str, Any]] = []
    for workload in p["workloads"]:
        ref: int | None = None
        for rnd in range(int(p["warmup"]) + int(p["runs"])):
            warm = rnd < int(p["warmup"])
            for variant in VARIANTS:
                r = _child(workload, variant, p)
                if variant == "default" and ref is None:
                    ref = r["check"]
                rec = _record(workload, variant, rnd, warm, r, p, ref)
                out.append(rec)
                if say:
                    say(
                        f"  {workload:5} {variant:8} {'warm-up' if warm else 'run'} {rnd}: "
                        f"{r['cpu_ns'] / 1e6:8.1f} ms CPU, {r['ns'] / 1e6:8.1f} ms wall, "
                        f"{r['minflt']} faults"
                    )
    return out


def records(point: Point, runs: int, warmup: int, say: Any = None) -> list[dict[str, Any]]:
    """The bench's view of ``run``: its own alternation (default / libremap
    allocator, in fresh interpreters), each record normalised to the
    contract: every field present, ``workload`` named
    ``cpython-arenas/<case>``, ``verified`` false unless the run says so."""
    params = {"runs": runs, "warmup": warmup, "quick": point.quick}
    out = []
    for raw in run(params, say=say):
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


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per workload: median (min-max) of each allocator and the ratio
    default/libremap pair by pair (> 1: libremap faster), of CPU time (the
    headline: on a shared machine wall time mostly measures the scheduler)
    and of wall time."""
    rows = []
    for workload in dict.fromkeys(r["case"] for r in records):
        counted = [r for r in records if r["case"] == workload and not r["warmup"]]
        by = {v: [r for r in counted if r["backend"] == v] for v in VARIANTS}
        pairs = list(zip(by["default"], by["libremap"]))
        ratios = [a["cpu_ns"] / max(b["cpu_ns"], 1) for a, b in pairs]
        wall = [a["mutator_wall_ns"] / b["mutator_wall_ns"] for a, b in pairs]
        row: dict[str, Any] = {
            "workload": workload,
            "pairs": len(pairs),
            "speedup_median": statistics.median(ratios) if ratios else None,
            "speedup_min": min(ratios, default=None),
            "speedup_max": max(ratios, default=None),
            "wall_speedup_median": statistics.median(wall) if wall else None,
            "verified": all(r["verified"] for r in counted),
        }
        for v, rs in by.items():
            if not rs:
                continue
            ms = [r["cpu_ns"] / 1e6 for r in rs]
            row[v] = {
                "ms_median": statistics.median(ms),
                "ms_min": min(ms),
                "ms_max": max(ms),
                "wall_ms_median": statistics.median(r["mutator_wall_ns"] / 1e6 for r in rs),
                "sys_ms_median": statistics.median(r["sys_ns"] / 1e6 for r in rs),
                "faults_median": statistics.median(r["minor_faults"] for r in rs),
                "peak_rss_mib_median": statistics.median(r["peak_rss"] for r in rs) / 2**20,
                "peak_rss_mib_max": max(r["peak_rss"] for r in rs) / 2**20,
            }
        rows.append(row)
    return rows


def blocks(rows: list[dict[str, Any]], cap_mib: float) -> list[console.Block]:
    """A table of both allocators per workload, then each workload's speedup."""
    t = console.Table(
        ["workload", "allocator", "CPU ms (median, min..max)", "sys ms", "wall ms",
         "minor faults", "peak RSS MiB"]
    )  # fmt: skip
    lines: list[console.Block] = []
    for row in rows:
        for v in VARIANTS:
            s = row.get(v)
            if not s:
                continue
            t.add(
                row["workload"],
                v,
                console.Cell(f"{s['ms_median']:.1f}", f"{s['ms_min']:.1f}..{s['ms_max']:.1f}"),
                f"{s['sys_ms_median']:.1f}",
                f"{s['wall_ms_median']:.1f}",
                console.count(s["faults_median"]),
                f"{s['peak_rss_mib_median']:.1f}",
            )
        if row["speedup_median"] is not None:
            d, lr = row["default"], row["libremap"]
            budget = d["peak_rss_mib_max"] + cap_mib
            lines.append(
                f"{row['workload']} speedup {row['speedup_median']:.2f}x CPU"
                f" ({row['speedup_min']:.2f}..{row['speedup_max']:.2f}, {row['pairs']} pairs),"
                f" wall {row['wall_speedup_median']:.2f}x;"
                f" peak RSS {lr['peak_rss_mib_max']:.1f} MiB vs default+cap {budget:.1f} MiB"
                f"{'' if row['verified'] else '  UNVERIFIED'}"
            )
    return [t, *lines]


def table(rows: list[dict[str, Any]], cap_mib: float) -> str:
    """``blocks`` as plain text."""
    return console.render_text(blocks(rows, cap_mib))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m libremap.bench.workloads.cpython_arenas",
        description=__doc__.splitlines()[0],
    )
    ap.add_argument("--runs", type=int, default=DEFAULTS["runs"])
    ap.add_argument("--warmup", type=int, default=DEFAULTS["warmup"])
    ap.add_argument("--cap-mib", type=float, default=DEFAULTS["cap_mib"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workload", choices=WORKLOADS, action="append")
    ap.add_argument("--churn-objects", type=int)
    ap.add_argument("--churn-waves", type=int)
    ap.add_argument("--json", metavar="FILE", help="write every run's record")
    a = ap.parse_args(argv)
    p = params_from(
        {
            "runs": a.runs,
            "warmup": a.warmup,
            "cap_mib": a.cap_mib,
            "quick": a.quick,
            "workloads": a.workload,
            "churn_objects": a.churn_objects,
            "churn_waves": a.churn_waves,
        }
    )
    if a.quick and a.runs == DEFAULTS["runs"]:
        p["runs"] = QUICK["runs"]
    recs = run(p, say=lambda m: print(m, file=sys.stderr, flush=True))
    rows = summarize(recs)
    console.Out().show(blocks(rows, p["cap_mib"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"params": p, "summary": rows, "runs": recs}, f, indent=1)
    return 0 if all(r["verified"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

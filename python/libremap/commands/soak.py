"""``python -m libremap soak --minutes N``: hours of the toy VM and the
stress driver, rotating backends, fault modes, options and seeds.

Each job runs in a child process with a deadline, so that a hang is a
failure with its seed, not a stuck soak. Jobs alternate between

- a toy VM workload (gcbench, binary_trees, lru_cache, random_graph,
  large_arrays) with ``--threads`` mutators, whose shadow model is checked
  after every collection, on small heaps so that collections are many;
- the C++ stress driver (mutator threads reading, writing and allocating
  through every phase, each access checked against a log), with large
  objects, and in turn tagged references, concurrent prepare and packing.

The summary gives jobs, collections and objects verified per kind, and
every failure with the command that repeats it. Exit status 1 if any job
failed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from typing import Any

from .. import console
from .._names import ALL_BACKENDS, CAP_CONCURRENT, CAP_CYCLE_BEGIN, CAP_UFFD, backend_caps

HELP = "run the toy VM and the stress driver for N minutes, rotating backends and seeds"

# Small heaps, many collections (the same shapes as the test suite's).
TOYVM: dict[str, dict[str, Any]] = {
    "gcbench": {"heap_mib": 8, "depth": 12, "iteration_scale": 0.5, "array_size": 20_000},
    "binary_trees": {"heap_mib": 6, "depth": 12},
    "lru_cache": {
        "heap_mib": 12,
        "size": 1024,
        "ops": 40_000,
        "max_value_bytes": 4096,
        "large_fraction": 0.004,
    },
    "random_graph": {"heap_mib": 8, "size": 1024, "ops": 40_000},
    "large_arrays": {"heap_mib": 24, "size": 7, "ops": 400},
}
STRESS_OPTIONS: tuple[dict[str, bool], ...] = (
    {},
    {"tagged": True},
    {"concurrent_prepare": True},
    {"evacuate": True},
    {"evacuate": True, "concurrent_prepare": True, "tagged": True},
)
# Refused by a backend without REMAP_BACKEND_CAP_CYCLE_BEGIN (minor, sigsegv).
CONCURRENT_ONLY = ("concurrent_prepare",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=60.0, help="how long (default 60)")
    parser.add_argument(
        "--jobs", type=int, default=0, help="stop after this many jobs (0: no limit)"
    )
    parser.add_argument(
        "--threads", type=int, default=8, help="mutator threads per job (default 8)"
    )
    parser.add_argument("--seed", type=int, default=1, help="first seed (default 1)")
    parser.add_argument(
        "--backends",
        default="",
        help="comma-separated backends (default: every one the probe allows)",
    )
    parser.add_argument(
        "--job-timeout", type=float, default=180.0, help="seconds per job (default 180)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write every job's result to FILE")


def _combos(wanted: str) -> list[tuple[str, str]]:
    """(backend, fault mode) pairs: those asked for, else every one this
    kernel offers (the conformance kit's rule, probe.unoffered_reason)."""
    from ..probe import probe, unoffered_reason

    backends = [b for b in wanted.split(",") if b] or list(ALL_BACKENDS)
    combos = [
        (b, m)
        for b in backends
        for m in (("sigbus", "thread") if backend_caps(b) & CAP_CONCURRENT else ("sigbus",))
    ]
    if wanted:
        return combos
    info = probe().to_json()
    # A backend that takes no userfaultfd faults needs no feature for its mode.
    return [
        (b, m)
        for b, m in combos
        if unoffered_reason(info, b, m if backend_caps(b) & CAP_UFFD else "auto") is None
    ]


def _jobs(combos: list[tuple[str, str]], threads: int, seed: int):
    """The endless rotation: (kind, backend, fault_mode, seed, options)."""
    toy = itertools.cycle(TOYVM)
    stress = itertools.cycle(STRESS_OPTIONS)
    for n in itertools.count():
        # Each kind walks every backend x mode on its own, so neither is
        # tied to a subset of them.
        backend, mode = combos[(n // 2) % len(combos)]
        s = seed + n
        if n % 2 == 0:
            w = next(toy)
            cfg = dict(TOYVM[w], workload=w, threads=threads)
            # The shapes are sized for 2 mutators, each keeping a working
            # set: more mutators get a larger heap, large_arrays' most (its
            # live set is all per thread). Even so, with 8 mutators a thread
            # can lose 16 collections in a row to the other seven, which take
            # what each collection frees before it retries (7 runs in 80 at
            # 48 MiB, 4 in 80 at 96 MiB, the heap full at every refusal): the
            # toy VM has no allocation-stall queue. Reported as a failure.
            per_thread = 2 if w == "large_arrays" else 4
            cfg["heap_mib"] = int(cfg["heap_mib"] * max(1.0, threads / per_thread))
            yield ("toyvm", backend, mode, s, cfg)
        else:
            opts: dict[str, Any] = dict(next(stress))
            if not backend_caps(backend) & CAP_CYCLE_BEGIN:
                for k in CONCURRENT_ONLY:
                    opts.pop(k, None)
            opts.update(gc_threads=1 + (n // 2) % 2, mutators=threads, cycles=20, heap_mib=8)
            yield ("stress", backend, mode, s, opts)


def _child_code(kind: str, backend: str, mode: str, seed: int, opts: dict[str, Any]) -> str:
    if kind == "toyvm":
        o = dict(opts)
        w = o.pop("workload")
        return (
            "import json, sys\nfrom libremap import toyvm\n"
            f"r = toyvm.run({w!r}, backend={backend!r}, fault_mode={mode!r}, seed={seed},"
            f" check=False, **{o!r})\n"
            "out = {'ok': bool(r['verified']) and r['error'] is None, 'error': r['error'],"
            " 'collections': len(r['gcs']), 'verified': sum(1 for g in r['gcs'] if g.get('verify_ns'))}\n"
            "sys.stdout.write('\\n' + json.dumps(out) + '\\n')\n"
        )
    o = dict(opts)
    pos = (o.pop("gc_threads"), o.pop("mutators"), o.pop("cycles"), o.pop("heap_mib"))
    return (
        "import json, sys\nimport libremap._testing as testing\n"
        f"r = testing.run_stress({backend!r}, {mode!r}, {pos[0]}, {pos[1]}, {pos[2]}, {pos[3]},"
        f" {seed}, **{o!r})\n"
        "out = {'ok': bool(r['verified']), 'error': r['error'] or None, 'collections': r['cycles'],"
        " 'verified': r['objects_verified']}\n"
        "sys.stdout.write('\\n' + json.dumps(out) + '\\n')\n"
    )


def run_job(job: tuple, timeout: float) -> dict[str, Any]:
    kind, backend, mode, seed, opts = job
    code = _child_code(kind, backend, mode, seed, opts)
    t0 = time.monotonic()
    rec: dict[str, Any] = {
        "kind": kind,
        "backend": backend,
        "fault_mode": mode,
        "seed": seed,
        "options": opts,
        "repeat": [sys.executable, "-c", code],
    }
    try:
        p = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        rec.update(
            ok=False, error=f"timed out after {timeout:.0f} s (a hang)", collections=0, verified=0
        )
        return rec
    rec["seconds"] = time.monotonic() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-5:]
        rec.update(
            ok=False, error=f"exit {p.returncode}: " + " | ".join(tail), collections=0, verified=0
        )
        return rec
    rec.update(json.loads(lines[-1]))
    if rec.get("error") and "REMAP_EUNSUPPORTED" in str(rec["error"]):
        rec.update(ok=True, skipped=str(rec["error"]))
    return rec


def run(args: argparse.Namespace) -> int:
    combos = _combos(args.backends)
    backends = list(dict.fromkeys(b for b, _m in combos))
    start = time.monotonic()
    deadline = start + args.minutes * 60
    results: list[dict[str, Any]] = []
    out = console.Out()
    out.line(
        f"soak: {args.minutes:g} min, backends {','.join(backends)}, {args.threads} mutators per job"
    )
    # The bar counts jobs when --jobs bounds the soak, else seconds to the deadline.
    by_jobs = bool(args.jobs)
    with out.progress(args.jobs if by_jobs else args.minutes * 60, "soak") as progress:
        for job in _jobs(combos, args.threads, args.seed):
            if time.monotonic() >= deadline or (args.jobs and len(results) >= args.jobs):
                break
            progress.update(what=f"soak: {job[0]} {job[1]}/{job[2]} seed {job[3]}")
            r = run_job(job, args.job_timeout)
            results.append(r)
            status = "ok" if r["ok"] else "FAILED"
            progress.say(
                f"  {len(results):5d} {r['kind']:6s} {r['backend']:8s} {r['fault_mode']:7s}"
                f" seed {r['seed']:<6d} {status}: {r['collections']} collections,"
                f" {r['verified']} verified"
            )
            if not r["ok"]:
                progress.say(f"        {r['error']}")
            if by_jobs:
                progress.advance()
            else:
                progress.update(completed=min(time.monotonic() - start, args.minutes * 60))
    failed = [r for r in results if not r["ok"]]
    lines: list[console.Block] = [""]
    for kind in ("toyvm", "stress"):
        rs = [r for r in results if r["kind"] == kind]
        lines.append(
            f"{kind}: {len(rs)} jobs, {sum(r['collections'] for r in rs)} collections,"
            f" {sum(r['verified'] for r in rs)} verified, {sum(not r['ok'] for r in rs)} failed"
        )
    for r in failed:
        lines.append(
            f"FAILED {r['kind']} {r['backend']}/{r['fault_mode']} seed {r['seed']}"
            f" {r['options']}: {r['error']}"
        )
        lines.append(f"  repeat: {r['repeat'][0]} -c {json.dumps(r['repeat'][2])}")
    out.show(lines)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backends": backends, "jobs": results}, f, indent=1)
    return 1 if failed else 0

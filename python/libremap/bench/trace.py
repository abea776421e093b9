"""``python -m libremap bench --trace FILE``: one run as a Chrome / Perfetto
trace (the JSON trace event format; open it in ui.perfetto.dev or
chrome://tracing).

After the benchmark, one more run, not counted: the first workload that can
be traced (synthetic or a toy-VM one), on the first backend that runs here,
at the base point. libremap's event callback (remap_heap_set_event_callback)
records it as a runtime would forward the events to its own tracing: the
toy VM keeps them in its log (``toyvm.run(events=True)``), the synthetic
heap in the bindings' (``SyntheticHeap.record_events``). Tracks, one thread
id each in process 1:

- ``libremap cycles``: each cycle from CYCLE_BEGIN to CYCLE_END;
- ``libremap pause``: remap_flip, the library's part of the runtime's pause;
- ``libremap calls``: remap_prepare, remap_compact, remap_finish, ...;
- ``libremap phase``: the PREPARED and COMPACTING spans;
- ``toy VM pauses`` (toy VM): every stop-the-world pause as the mutators
  saw it (request to the last mutator running), by kind;
- counters ``heap`` (toy VM): occupancy, capacity and committed bytes after
  each collection.

Times are microseconds from the run's start (the toy VM's birth, or the
synthetic heap's first event).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from .options import Options

PID = 1
TRACKS = {
    "cycles": (1, "libremap cycles"),
    "pause": (2, "libremap pause"),
    "calls": (3, "libremap calls"),
    "phase": (4, "libremap phase"),
    "vm": (5, "toy VM pauses"),
}
TRACEABLE = ("synthetic", "gcbench", "binary-trees", "lru")


def _us(ns: int) -> float:
    return ns / 1000.0


def _span(track: str, name: str, t0: int, t1: int, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "cat": "libremap" if track != "vm" else "toyvm",
        "ph": "X",
        "ts": _us(t0),
        "dur": _us(max(0, t1 - t0)),
        "pid": PID,
        "tid": TRACKS[track][0],
        "args": args,
    }


def chrome_events(
    events: list[dict[str, Any]],
    pauses: list[dict[str, Any]] | None = None,
    gcs: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The trace's events from libremap's (as ``toyvm.run(events=True)`` and
    ``SyntheticHeap.events()`` give them: ``kind``, ``time_ns``, ``cycle``,
    ``value``, ``status_name``, ``call``, ``phase``), a toy VM's pause log
    and its collections (``gcs``, for the counters). Spans left open at the
    end close at the last event."""
    out: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": PID, "args": {"name": "libremap"}}
    ]
    for tid, name in TRACKS.values():
        if tid == TRACKS["vm"][0] and not pauses:
            continue
        out.append(
            {"name": "thread_name", "ph": "M", "pid": PID, "tid": tid, "args": {"name": name}}
        )
        out.append(
            {
                "name": "thread_sort_index",
                "ph": "M",
                "pid": PID,
                "tid": tid,
                "args": {"sort_index": tid},
            }
        )
    end = max((e["time_ns"] for e in events), default=0)
    cycle_open: dict[str, Any] | None = None
    calls: dict[str, dict[str, Any]] = {}
    pause: dict[str, Any] | None = None
    phase: dict[str, Any] | None = None
    ended: list[int] = []  # CYCLE_END times of completed cycles, in order
    for e in events:
        k, t = e["kind"], e["time_ns"]
        if k == "cycle_begin":
            cycle_open = e
        elif k == "cycle_end" and cycle_open is not None:
            args = {"completed": bool(e["value"]), "status": e["status_name"]}
            out.append(_span("cycles", f"cycle {e['cycle']}", cycle_open["time_ns"], t, args))
            cycle_open = None
            if e["value"]:
                ended.append(t)
        elif k == "pause_begin":
            pause = e
        elif k == "pause_end" and pause is not None:
            args = {"cycle": e["cycle"], "status": e["status_name"]}
            out.append(_span("pause", e["call"], pause["time_ns"], t, args))
            pause = None
        elif k == "call_begin":
            calls[e["call"]] = e
        elif k == "call_end" and e["call"] in calls:
            b = calls.pop(e["call"])
            args = {"cycle": e["cycle"], "status": e["status_name"]}
            out.append(_span("calls", e["call"], b["time_ns"], t, args))
        elif k == "phase":
            if phase is not None and phase["phase"] != "IDLE":
                out.append(
                    _span("phase", phase["phase"], phase["time_ns"], t, {"cycle": phase["cycle"]})
                )
            phase = e
        elif k == "resize":
            out.append(
                {"name": "resize", "cat": "libremap", "ph": "i", "s": "p", "ts": _us(t), "pid": PID,
                 "tid": TRACKS["calls"][0], "args": {"capacity": e["value"]}}
            )  # fmt: skip
    if cycle_open is not None:
        out.append(_span("cycles", f"cycle {cycle_open['cycle']}", cycle_open["time_ns"], end, {}))
    if phase is not None and phase["phase"] != "IDLE":
        out.append(_span("phase", phase["phase"], phase["time_ns"], end, {"cycle": phase["cycle"]}))
    for p in pauses or []:
        args = {k: p[k] for k in ("gc_index", "ttsp_ns", "resume_ns", "mutators_stopped") if k in p}
        out.append(_span("vm", p["kind"], p["start_ns"], p["start_ns"] + p["duration_ns"], args))
    # The toy VM's collections end with a libremap cycle each, in order.
    for g, t in zip(gcs or [], ended):
        mib = 1 << 20
        values = {"occupancy": g["heap_after"] / mib, "capacity": g["capacity"] / mib}
        if "capacity_after" in g:
            values["capacity"] = g["capacity_after"] / mib
            values["committed"] = g["committed_after"] / mib
        out.append({"name": "heap MiB", "ph": "C", "ts": _us(t), "pid": PID, "args": values})
    return out


def run_traced(opts: Options) -> dict[str, Any]:
    """The traced run: workload, backend, marking, and its events (and, for
    the toy VM, its pause log and collections)."""
    from .unavailable import UNAVAILABLE_STATUSES
    from .workloads import TOYVM_WORKLOADS, Synthetic, ToyVm, Unavailable

    workload = next((w for w in opts.workloads if w in TRACEABLE), "synthetic")
    point = replace(opts.base, threads=opts.threads_for(workload, opts.base))
    why: list[str] = []
    for backend in opts.backends:
        if workload in TOYVM_WORKLOADS:
            from .. import toyvm

            marking = opts.markings[0]
            vm = ToyVm(workload, point)
            r = toyvm.run(
                vm.vm_name,
                backend=backend,
                marking=marking,
                check=False,
                events=True,
                **vm.options(),
            )
            err = r.get("error")
            if err is not None and err.get("status_name") in UNAVAILABLE_STATUSES:
                why.append(f"{backend}: {err['message']}")
                continue
            return {
                "workload": workload, "backend": r["backend"], "marking": r["marking"],
                "verified": r["verified"], "events": r["events"], "pauses": r["pauses"],
                "gcs": r["gcs"], "point": point.to_json(),
            }  # fmt: skip
        syn = Synthetic(point)
        try:
            h = syn._build(backend)
        except Unavailable as e:
            why.append(f"{backend}: {e}")
            continue
        h.record_events()
        for i in range(3):
            if i:
                h.mutate(kill_fraction=0.3)
            h.collect()
        return {
            "workload": workload, "backend": backend, "marking": None, "verified": True,
            "events": h.events()["events"], "pauses": None, "gcs": None,
            "point": point.to_json(),
        }  # fmt: skip
    raise Unavailable(f"no backend could run {workload} for the trace: {'; '.join(why)}")


def write(opts: Options, path: str) -> str:
    """Runs the traced run, writes the trace to ``path``; returns a line
    saying what it holds."""
    from .. import __version__

    r = run_traced(opts)
    doc = {
        "traceEvents": chrome_events(r["events"], r["pauses"], r["gcs"]),
        "displayTimeUnit": "ms",
        "otherData": {
            "libremap": __version__,
            "workload": r["workload"],
            "backend": r["backend"],
            "marking": r["marking"],
            "point": r["point"],
            "verified": r["verified"],
        },
    }
    with open(path, "w") as f:
        json.dump(doc, f)
        f.write("\n")
    cycles = sum(1 for e in r["events"] if e["kind"] == "cycle_end")
    return (
        f"wrote {path}: {r['workload']} on {r['backend']}, {cycles} cycle(s),"
        f" {len(r['events'])} libremap events (open in ui.perfetto.dev)"
    )

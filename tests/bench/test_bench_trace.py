"""``python -m libremap bench --trace FILE`` (issue 16): one more run, traced
with libremap's event callback, as a Chrome/Perfetto trace (JSON trace
event format). The conversion is checked on its own; end to end, the trace
of a toy-VM run must put the library's flip inside the VM's flip pause (the
runtime's pause holds the library's part), and a synthetic one must hold
its three cycles with their pauses inside them."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from libremap.bench.trace import TRACKS, chrome_events

from support.processes import run_with_timeout


def ev(kind: str, t: int, call: str = "", cycle: int = 1, value: int = 0, phase: str = "IDLE"):
    return {"kind": kind, "time_ns": t, "call": call, "cycle": cycle, "value": value,
            "phase": phase, "status_name": "REMAP_OK"}  # fmt: skip


def spans(doc: list[dict[str, Any]], track: str) -> list[tuple[str, float, float]]:
    tid = TRACKS[track][0]
    return [
        (e["name"], e["ts"], e["ts"] + e["dur"]) for e in doc if e["ph"] == "X" and e["tid"] == tid
    ]


def test_events_become_spans_per_track():
    events = [
        ev("call_begin", 1000, "remap_prepare", cycle=0),
        ev("cycle_begin", 1100, "remap_prepare"),
        ev("phase", 1500, "remap_prepare", phase="PREPARED"),
        ev("call_end", 1600, "remap_prepare"),
        ev("pause_begin", 2000, "remap_flip", phase="PREPARED"),
        ev("phase", 2100, "remap_flip", phase="COMPACTING"),
        ev("pause_end", 2500, "remap_flip", phase="COMPACTING"),
        ev("resize", 2600, "remap_heap_resize", value=1 << 20, phase="COMPACTING"),
        ev("phase", 4000, "remap_finish", phase="IDLE"),
        ev("cycle_end", 4100, "remap_finish", value=1),
        ev("cycle_begin", 5000, "remap_cycle_begin", cycle=2),  # still open at the end
        ev("phase", 6000, "remap_prepare", cycle=2, phase="PREPARED"),
    ]
    pauses = [{"kind": "flip", "start_ns": 1900, "duration_ns": 800, "ttsp_ns": 50, "gc_index": 1}]
    gcs = [
        {
            "heap_after": 1 << 20,
            "capacity": 4 << 20,
            "capacity_after": 8 << 20,
            "committed_after": 2 << 20,
        }
    ]
    doc = chrome_events(events, pauses, gcs)
    assert spans(doc, "cycles") == [("cycle 1", 1.1, 4.1), ("cycle 2", 5.0, 6.0)]
    assert spans(doc, "pause") == [("remap_flip", 2.0, 2.5)]
    assert spans(doc, "calls") == [("remap_prepare", 1.0, 1.6)]
    assert spans(doc, "phase") == [
        ("PREPARED", 1.5, 2.1),
        ("COMPACTING", 2.1, 4.0),
        ("PREPARED", 6.0, 6.0),
    ]
    assert spans(doc, "vm") == [("flip", 1.9, 2.7)]
    [resize] = [e for e in doc if e["ph"] == "i"]
    assert resize["args"] == {"capacity": 1 << 20} and resize["ts"] == 2.6
    [counter] = [e for e in doc if e["ph"] == "C"]
    assert counter["ts"] == 4.1 and counter["args"] == {
        "occupancy": 1.0,
        "capacity": 8.0,
        "committed": 2.0,
    }
    names = {e["args"]["name"] for e in doc if e["name"] == "thread_name"}
    assert names == {name for _tid, name in TRACKS.values()}
    json.dumps(doc)  # plain JSON


def bench_trace(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "trace.json"
    env = dict(os.environ)
    env.pop("LIBREMAP_ARENAS", None)
    p = run_with_timeout(
        [sys.executable, "-m", "libremap", "bench", "--quick", "--runs", "1", "--warmup", "0",
         "--floor-reps", "2", *args, "--trace", str(out)],
        timeout=240, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 0, f"bench failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    assert f"wrote {out}" in p.stdout
    doc = json.loads(out.read_text())
    for e in doc["traceEvents"]:
        assert e["pid"] == 1 and e["ph"] in ("M", "X", "i", "C")
        if e["ph"] == "X":
            assert e["ts"] >= 0 and e["dur"] >= 0 and e["tid"] in {t for t, _ in TRACKS.values()}
    return doc


def inside(inner: tuple[str, float, float], outer: list[tuple[str, float, float]]) -> bool:
    return any(o[1] <= inner[1] and inner[2] <= o[2] for o in outer)


def test_a_toy_vm_run_puts_the_library_flip_inside_the_runtime_pause(tmp_path: Path):
    doc = bench_trace(tmp_path, "--workload", "gcbench", "--backends", "move,stw")
    other = doc["otherData"]
    assert (other["workload"], other["backend"], other["verified"]) == ("gcbench", "move", True)
    ev = doc["traceEvents"]
    cycles, flips, vm = spans(ev, "cycles"), spans(ev, "pause"), spans(ev, "vm")
    assert cycles and len(flips) == len(cycles)
    vm_flips = [p for p in vm if p[0] == "flip"]  # concurrent marking's flip pauses
    assert all(inside(f, vm_flips) for f in flips), (flips, vm_flips)
    assert all(inside(f, cycles) for f in flips)
    assert {"initial_mark", "remark", "flip"} <= {p[0] for p in vm}
    assert len([e for e in ev if e["ph"] == "C"]) == len(cycles)


def test_a_synthetic_run_holds_its_cycles(tmp_path: Path):
    doc = bench_trace(tmp_path, "--workload", "synthetic", "--backends", "copy")
    ev = doc["traceEvents"]
    cycles = spans(ev, "cycles")
    assert [c[0] for c in cycles] == ["cycle 1", "cycle 2", "cycle 3"]
    assert all(inside(f, cycles) for f in spans(ev, "pause"))
    assert {c[0] for c in spans(ev, "calls")} >= {"remap_prepare", "remap_compact", "remap_finish"}
    assert "COMPACTING" in {p[0] for p in spans(ev, "phase")}

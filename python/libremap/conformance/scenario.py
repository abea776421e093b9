"""Running the driver in a child process with a deadline.

A runtime that deadlocks in a fault handler, or a mutator parked forever in
a userfaultfd fault, must fail its test, not hang the pytest run: the child
gets its own session (process group) and the whole group is killed with
SIGKILL at the deadline (a thread stuck in a uffd fault ignores everything
else). A child that dies (SIGSEGV in the runtime's callbacks, abort) is
reported with its signal and the tail of its stderr.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field

from .._names import BACKENDS, FAULT_MODES
from .runtime import RuntimeSpec

# Small enough that a cycle takes milliseconds, big enough for many regions.
DEFAULT_CAPACITY = 4 << 20
DEFAULT_REGION = 64 << 10


@dataclass
class Scenario:
    runtime: RuntimeSpec
    backend: str
    fault_mode: str = "auto"
    gc_threads: int = 1
    seed: int = 1
    steps: list[dict] = field(default_factory=list)
    capacity: int = DEFAULT_CAPACITY
    region_size: int = DEFAULT_REGION
    verify_refs: bool = True
    graph_checks: bool = True  # False: measure only (no checksum, no verify)

    def to_json(self) -> dict:
        return {
            "runtime": self.runtime.__dict__,
            "backend_id": BACKENDS[self.backend],
            "fault_mode_id": FAULT_MODES[self.fault_mode],
            "gc_threads": self.gc_threads,
            "seed": self.seed,
            "steps": self.steps,
            "capacity": self.capacity,
            "region_size": self.region_size,
            "verify_refs": self.verify_refs,
            "graph_checks": self.graph_checks,
        }

    def label(self) -> str:
        return f"{self.backend}/{self.fault_mode}, {self.gc_threads} GC thread(s), seed {self.seed}"


class ChildFailed(Exception):
    """The child did not produce an outcome: it died or missed its deadline."""


def run_child(args: list[str], timeout: float) -> tuple[int, str, str]:
    with subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise ChildFailed(
                f"did not finish in {timeout:g}s (killed): a runtime callback or a mutator "
                f"is stuck, e.g. in a page fault nobody serves\nstderr:\n{err[-3000:]}"
            ) from None
    return proc.returncode, out, err


def last_json(code: int, out: str, err: str) -> dict:
    if code != 0:
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited {code}"
        raise ChildFailed(f"{how}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-3000:]}")
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise ChildFailed(f"printed no outcome\nstdout:\n{out[-2000:]}\nstderr:\n{err[-3000:]}")


def play(scenario: Scenario, timeout: float) -> dict:
    """The driver's outcome for scenario (see driver.py); ChildFailed if none."""
    args = [sys.executable, "-m", "libremap.conformance.driver", json.dumps(scenario.to_json())]
    try:
        return last_json(*run_child(args, timeout))
    except ChildFailed as e:
        raise ChildFailed(f"the driver on {scenario.label()} {e}") from None


def describe(spec: RuntimeSpec, timeout: float) -> dict:
    """The runtime's name and capabilities, read in a child (a runtime whose
    table is broken must not take the pytest process down)."""
    args = [
        sys.executable,
        "-m",
        "libremap.conformance.driver",
        "--describe",
        json.dumps(spec.__dict__),
    ]
    try:
        return last_json(*run_child(args, timeout))
    except ChildFailed as e:
        raise ChildFailed(f"loading the runtime {spec.library} {e}") from None

"""What the kit's tests share: the backend x fault-mode matrix, what this
kernel offers of it, and Conformance, the object behind every test's
``libremap_kit`` fixture.

The matrix is fixed, not probed at collection: a column the kernel lacks is
a skip with the probe's reason, so every report has the same shape and says
why a cell is empty.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from ..probe import unoffered_reason as probe_rule
from .runtime import RuntimeSpec
from .scenario import ChildFailed, Scenario, play


@dataclass(frozen=True)
class HeapConfig:
    backend: str
    fault_mode: str  # "auto" where the backend has no choice (sigsegv, stw)

    @property
    def id(self) -> str:
        return self.backend if self.fault_mode == "auto" else f"{self.backend}-{self.fault_mode}"


# sigsegv takes its faults as SIGSEGV and stw takes none: the fault mode is
# recorded, not used (compactor.cpp), so one column each.
MATRIX = [
    HeapConfig("move", "sigbus"),
    HeapConfig("move", "thread"),
    HeapConfig("copy", "sigbus"),
    HeapConfig("copy", "thread"),
    HeapConfig("minor", "sigbus"),
    HeapConfig("minor", "thread"),
    HeapConfig("sigsegv", "auto"),
    HeapConfig("stw", "auto"),
]
CONCURRENT = [c for c in MATRIX if c.backend != "stw"]
REFERENCE = HeapConfig("stw", "auto")


def unoffered_reason(probe: dict, cfg: HeapConfig) -> str | None:
    """Why this kernel cannot run cfg, from the probe; None if it can."""
    return probe_rule(probe, cfg.backend, cfg.fault_mode)


class Conformance:
    """The runtime under test and the way to run scenarios on it."""

    def __init__(self, spec: RuntimeSpec, description: dict, probe: dict, timeout: float):
        self.spec = spec
        self.description = description
        self.probe = probe
        self.timeout = timeout
        self._reference: dict[tuple, dict] = {}

    @property
    def name(self) -> str:
        return self.description["name"]

    def has(self, capability: str) -> bool:
        return capability in self.description["capabilities"]

    def require(self, capability: str, why: str) -> None:
        if not self.has(capability):
            pytest.skip(f"runtime {self.name} does not declare {capability}: {why}")

    def scenario(self, cfg: HeapConfig, steps: list[dict], **kw) -> Scenario:
        return Scenario(self.spec, cfg.backend, cfg.fault_mode, steps=steps, **kw)

    def play(self, scenario: Scenario) -> dict:
        """The driver's outcome; fails the test if the child died or hung."""
        cfg = HeapConfig(scenario.backend, scenario.fault_mode)
        reason = unoffered_reason(self.probe, cfg)
        if reason:
            pytest.skip(reason)
        try:
            out = play(scenario, self.timeout)
        except ChildFailed as e:
            pytest.fail(str(e), pytrace=False)
        failure = out.get("failure")
        if failure and failure["status"] == "REMAP_EUNSUPPORTED" and failure["do"] == "create":
            pytest.skip(f"{cfg.id}: {failure['message']}")
        return out

    def passing(self, scenario: Scenario) -> dict:
        """play(), failing the test with the driver's diagnosis if a rule broke."""
        return self.require_ok(scenario, self.play(scenario))

    def require_ok(self, scenario: Scenario, out: dict) -> dict:
        """out, or the test fails with the driver's diagnosis."""
        if not out["ok"]:
            f = out["failure"]
            where = "create" if f["step"] is None else f"step {f['step']} ({f['do']})"
            # First line: the diagnosis (the report's note); then the context.
            pytest.fail(
                f"{where} broke the rule '{f['rule']}': {f['message']}\n"
                f"runtime {self.name} on {scenario.label()}, steps {scenario.steps}",
                pytrace=False,
            )
        return out

    def reference(self, scenario: Scenario) -> dict:
        """The same steps on stw with one GC thread, played once per session."""
        key = (scenario.seed, repr(scenario.steps), scenario.capacity, scenario.region_size)
        if key not in self._reference:
            ref = dataclasses.replace(
                scenario, backend=REFERENCE.backend, fault_mode=REFERENCE.fault_mode, gc_threads=1
            )
            self._reference[key] = self.passing(ref)
        return self._reference[key]


def checksums(out: dict) -> list:
    return [out["initial_checksum"], *(s.get("checksum") for s in out["steps"])]

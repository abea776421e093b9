"""What every workload adapter is: a ``Point`` (the parameters of one
comparison) and a ``Workload``, which builds the same heap image for every
backend, computes the ``stw`` reference once per point (``reference``) and
runs one measured, verified run per call (``run``), returning a record with
every field of the contract (``record.empty``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import record
from ..unavailable import UNAVAILABLE_STATUSES, Unavailable

MiB = 1 << 20
REGION = 256 * 1024


@dataclass(frozen=True)
class Point:
    """The parameters of one comparison (one sweep value, or the only one)."""

    heap_mib: int
    live: float
    dense: float
    threads: int
    gc_threads: int
    seed: int
    fault_mode: str
    min_object: int
    max_object: int
    quick: bool = False
    sweep: tuple[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "heap_mib": self.heap_mib,
            "live": self.live,
            "dense": self.dense,
            "threads": self.threads,
            "gc_threads": self.gc_threads,
            "seed": self.seed,
            "fault_mode": self.fault_mode,
            "min_object": self.min_object,
            "max_object": self.max_object,
            "sweep": None if self.sweep is None else {"key": self.sweep[0], "value": self.sweep[1]},
        }


class Workload:
    name = "?"

    def __init__(self, point: Point) -> None:
        self.point = point

    def describe(self) -> str:
        return self.name

    def reference(self) -> None:
        """Compute the stw reference; Unavailable if it cannot run."""

    def run(self, backend: str) -> dict[str, Any]:
        raise NotImplementedError

    def _record(self, backend: str) -> dict[str, Any]:
        rec = record.empty(self.name, backend, self.point.fault_mode)
        rec["point"] = self.point.to_json()
        return rec


__all__ = ["REGION", "UNAVAILABLE_STATUSES", "MiB", "Point", "Unavailable", "Workload"]

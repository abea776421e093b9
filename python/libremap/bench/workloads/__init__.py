"""The bench's workloads: each builds the same heap image for every backend,
runs one measured cycle (or one runtime run), and checks the result against
the ``stw`` reference computed once per point (``base.Workload``).

- ``synthetic`` (``synthetic.py``): a seeded ``SyntheticHeap``, optionally
  with reader threads faulting through the cycle;
- ``gcbench``, ``binary-trees``, ``lru`` (``toyvm.py``): the toy VM;
- ``cold-pages`` (``coldpages.py``): large arrays paged out to swap, slid
  by the cycle (use case B);
- ``cpython-arenas`` (``cpython_arenas.py``): pymalloc's arenas, default
  allocator against libremap's pool; it runs its own alternation
  (``records``), so it has no ``Workload`` class.

Adding a workload: a module here with a ``Workload`` subclass, its name in
``ALL_WORKLOADS`` and a line in ``make``.
"""

from __future__ import annotations

from .base import REGION, MiB, Point, Unavailable, Workload
from .coldpages import ColdPages
from .synthetic import Synthetic
from .toyvm import TOYVM_WORKLOADS, ToyVm

ALL_WORKLOADS = ("synthetic", *TOYVM_WORKLOADS, "cold-pages", "cpython-arenas")


def make(name: str, point: Point) -> Workload:
    if name == "synthetic":
        return Synthetic(point)
    if name in TOYVM_WORKLOADS:
        return ToyVm(name, point)
    if name == "cold-pages":
        return ColdPages(point)
    raise ValueError(f"unknown workload {name!r}; expected one of {', '.join(ALL_WORKLOADS)}")


__all__ = [
    "ALL_WORKLOADS",
    "REGION",
    "TOYVM_WORKLOADS",
    "ColdPages",
    "MiB",
    "Point",
    "Synthetic",
    "ToyVm",
    "Unavailable",
    "Workload",
    "make",
]

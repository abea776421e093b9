"""fork() in the middle of a cycle, as a zygote-style runtime does: the
child inherits the runtime's graph intact and can go on collecting; the
parent's cycle is not disturbed (libremap.h, fork_guard.h)."""

from __future__ import annotations

import pytest

from .kit import CONCURRENT, checksums

SEED = 50


@pytest.mark.parametrize("when", ["prepared", "compacting"])
@pytest.mark.parametrize("cfg", CONCURRENT, ids=lambda c: c.id)
def test_fork_during_a_cycle(libremap_kit, cfg, when):
    """prepared: fork after remap_prepare; the child flips, forwards its
    roots, compacts on an engine of its own and checks the graph.
    compacting: fork after forward_roots; the child checks the graph it
    inherited. Either way the parent then finishes its cycle, checks it, and
    collects once more; the checksums must match stw's."""
    steps = [{"do": "cycle", "fork": when}, {"do": "cycle"}]
    sc = libremap_kit.scenario(cfg, steps, seed=SEED)
    out = libremap_kit.passing(sc)
    ref = libremap_kit.reference(sc)
    assert checksums(out) == checksums(ref), (
        f"after a fork while {when} the checksums are {checksums(out)}; stw leaves "
        f"{checksums(ref)}\non {sc.label()}"
    )

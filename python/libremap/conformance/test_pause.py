"""The runtime's part of the pause stays O(1) in heap size.

The pause the kit measures is remap_flip plus the runtime's forward_roots.
The library's part (remap_cycle_stats.flip_pause_ns) is subtracted: on
minor and sigsegv it grows with the heap by design (the heap range is
re-mapped region run by region run, DESIGN §7), and that is libremap's
business, not the runtime's. What is left is the runtime's work in the
pause: rewriting its roots must not grow with the heap (a runtime that
walks its heap, or a table with one entry per object, in the pause fails).
"""

from __future__ import annotations

import pytest

from .kit import CONCURRENT

SMALL, LARGE = 4 << 20, 16 << 20
CYCLES = 4
# Noise allowance on a loaded machine: twice the small heap's pause, plus
# 100 us. An O(heap) runtime part grows ~4x from SMALL to LARGE.
FACTOR, SLACK_NS = 2.0, 100_000


def runtime_pause_ns(libremap_kit, cfg, capacity: int) -> int:
    # Correctness is the other tests' business: no graph walks here, they
    # would cost more than everything else on the larger heap.
    sc = libremap_kit.scenario(
        cfg, [{"do": "cycle"}] * CYCLES, seed=60, capacity=capacity, graph_checks=False
    )
    out = libremap_kit.passing(sc)
    # The minimum over cycles: the least disturbed measurement of the same work.
    return min(s["pause_ns"] - s["flip_pause_ns"] for s in out["steps"])


@pytest.mark.parametrize("cfg", CONCURRENT, ids=lambda c: c.id)
def test_pause_independent_of_heap_size(libremap_kit, cfg):
    small = runtime_pause_ns(libremap_kit, cfg, SMALL)
    large = runtime_pause_ns(libremap_kit, cfg, LARGE)
    assert large <= FACTOR * small + SLACK_NS, (
        f"the runtime's part of the flip pause (forward_roots) took {small / 1e3:.0f} us "
        f"on a {SMALL >> 20} MiB heap and {large / 1e3:.0f} us on a {LARGE >> 20} MiB heap: it "
        "grows with the heap; rewrite roots only in the pause, not per-object tables"
    )

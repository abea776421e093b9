"""The kit's cycle tests: a runtime's graph survives libremap's cycles on
every backend exactly as it survives the stw reference.

Each scenario is played in a child process (driver.py), which already fails
a cycle that changes the graph, leaves a root unforwarded, leaves a stray
slot, or fails the runtime's verify. These tests add the differential part:
the same seed and steps must leave the same checksums as on stw.
"""

from __future__ import annotations

import pytest

from .kit import CONCURRENT, MATRIX, REFERENCE, checksums

SEED = 15


def assert_same_as_stw(libremap_kit, scenario, out: dict) -> None:
    ref = libremap_kit.reference(scenario)
    assert out["initial_checksum"] == ref["initial_checksum"], (
        f"runtime {libremap_kit.name}: the graph create() built from seed {scenario.seed} "
        "checksums differently on two heaps: it depends on something besides the seed "
        "(addresses?), so no differential test can hold"
    )
    got, want = checksums(out), checksums(ref)
    for i, (g, w) in enumerate(zip(got[1:], want[1:])):
        assert g == w, (
            f"after step {i} ({scenario.steps[i]['do']}) the checksum is {g:#x}; stw leaves "
            f"{w:#x}: this backend left a different graph\non {scenario.label()}"
        )


@pytest.mark.parametrize("gc_threads", [1, 2])
@pytest.mark.parametrize("cfg", CONCURRENT, ids=lambda c: c.id)
def test_differential_vs_stw(libremap_kit, cfg, gc_threads):
    """The same seed leaves the same graph after 1 and after 3 cycles."""
    sc = libremap_kit.scenario(cfg, [{"do": "cycle"}] * 3, gc_threads=gc_threads, seed=SEED)
    out = libremap_kit.passing(sc)
    assert_same_as_stw(libremap_kit, sc, out)


@pytest.mark.parametrize("cfg", CONCURRENT, ids=lambda c: c.id)
def test_multi_cycle_with_mutation(libremap_kit, cfg):
    """Cycles with the mutator changing the graph between them (heap IDLE)."""
    steps = [
        {"do": "cycle"},
        {"do": "mutate", "seed": 11},
        {"do": "cycle"},
        {"do": "mutate", "seed": 12},
        {"do": "cycle"},
        {"do": "cycle"},
    ]
    sc = libremap_kit.scenario(cfg, steps, seed=SEED + 1)
    out = libremap_kit.passing(sc)
    assert_same_as_stw(libremap_kit, sc, out)


@pytest.mark.parametrize("cfg", CONCURRENT, ids=lambda c: c.id)
def test_mutator_through_compaction(libremap_kit, cfg):
    """The mutator runs on its own thread from the end of the pause until
    remap_compact returns: it allocates, reads and writes while pages are
    produced. It must leave what it leaves when it runs after an stw cycle."""
    libremap_kit.require("concurrent_mutators", "its mutator never runs while compacting")
    steps = [
        {"do": "cycle", "mutate_seed": 21},
        {"do": "cycle", "mutate_seed": 22},
        {"do": "cycle"},
    ]
    sc = libremap_kit.scenario(cfg, steps, seed=SEED + 2)
    out = libremap_kit.passing(sc)
    assert any(s["concurrent"] for s in out["steps"][:2]), (
        "every flip finished its cycle: the mutator never ran beside compaction, so this "
        f"test proved nothing (is the graph without garbage?)\non {sc.label()}"
    )
    assert_same_as_stw(libremap_kit, sc, out)


@pytest.mark.parametrize("cfg", CONCURRENT, ids=lambda c: c.id)
def test_large_objects(libremap_kit, cfg):
    """The runtime's large objects (remap_alloc_large) survive cycles."""
    libremap_kit.require("large_objects", "it allocates no large objects")
    steps = [{"do": "cycle"}, {"do": "mutate", "seed": 31}, {"do": "cycle"}]
    sc = libremap_kit.scenario(cfg, steps, seed=SEED + 3)
    out = libremap_kit.passing(sc)
    cycles = [s for s in out["steps"] if "regions_large" in s]
    assert any(s["regions_large"] for s in cycles), (
        f"runtime {libremap_kit.name} declares large_objects, but no cycle saw a live "
        f"large-object region\non {sc.label()}"
    )
    assert_same_as_stw(libremap_kit, sc, out)


@pytest.mark.parametrize("cfg", MATRIX, ids=lambda c: c.id)
def test_cycle_is_invisible_to_the_mutator(libremap_kit, cfg):
    """mutate, cycle, mutate leaves the graph that mutate, mutate leaves
    without any cycle: a runtime that keeps a heap address across a cycle
    without forwarding it (a cached object, a stale from-space pointer in
    its own state) writes through it and breaks this."""
    with_cycle = libremap_kit.scenario(
        cfg,
        [{"do": "mutate", "seed": 71}, {"do": "cycle"}, {"do": "mutate", "seed": 72}],
        seed=SEED + 4,
    )
    without = libremap_kit.scenario(
        REFERENCE, [{"do": "mutate", "seed": 71}, {"do": "mutate", "seed": 72}], seed=SEED + 4
    )
    got = libremap_kit.passing(with_cycle)["steps"][-1]["checksum"]
    want = libremap_kit.reference(without)["steps"][-1]["checksum"]
    assert got == want, (
        f"a cycle between two mutations changed what the second one left (checksum "
        f"{got:#x}; {want:#x} without the cycle): the runtime kept a heap address across "
        "the cycle without forwarding it (or its mutator depends on addresses or on the "
        f"heap's layout)\non {with_cycle.label()}"
    )

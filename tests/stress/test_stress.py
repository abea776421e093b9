"""Concurrency: C++ mutator threads (bindings/testing/stress.cpp) read objects, follow
references, write payloads and references and allocate while compaction
cycles run; they stop only at a safepoint for mark / prepare / flip.

What a pass proves (stress.h has the details): no mutator ever saw an
object that was stale (payload of an older version than committed), torn
(words of different versions) or misplaced (not at the address its
references name), and at every safepoint the heap's reachable graph equals
the replay of every thread's write log (no write lost) with equal graph
checksums. `pages_by_mutator > 0` shows the mutators really raced the GC
(they produced pages themselves by faulting).

Large objects are part of every run (large_fraction, default 0.05: a few
die and a few slide in most cycles); test_stress_large.py runs more of them
and checks that they slid.

Each run is a child process with a deadline: a mutator parked forever in a
userfaultfd fault fails the test instead of hanging it."""

from __future__ import annotations

import pytest

from support.differential import CONCURRENT_BACKENDS, FAULT_MODES
from support.stress import check, stress

# (gc_threads, mutators, cycles, helpers_always): 70 cycles per backend x mode,
# on 4 MiB heaps. Two workers race each other with the helper's CPU check off;
# the last shape keeps it (the library's default: the helper mostly waits).
SHAPES = [(1, 2, 30, True), (2, 3, 30, True), (2, 3, 10, False)]
COMBOS = [(b, m) for b in CONCURRENT_BACKENDS for m in FAULT_MODES]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend,fault_mode", COMBOS)
def test_mutators_race_compaction(backend, fault_mode):
    produced = 0
    for i, (gc_threads, mutators, cycles, always) in enumerate(SHAPES):
        r = stress(
            backend, fault_mode, gc_threads, mutators, cycles, seed=100 + i, helpers_always=always
        )
        check(r, cycles)
        produced += r["pages_by_mutator"]
        assert r["pages_by_mutator"] == 0 or r["faults"] > 0
    # Over 60 cycles the mutators faulted on pages the GC had not produced.
    assert produced > 0, "mutators never produced a page: they did not race the GC"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend,fault_mode", COMBOS + [("stw", "sigbus")])
def test_tagged_references_under_mutators(backend, fault_mode):
    # Issue 12: every tracked slot holds address | a 3-bit tag (ref_tag_mask
    # 7); readers during compaction and every safepoint expect the target's
    # current address with the same tag, in every backend and fault mode.
    r = stress(backend, fault_mode, 2, 2, 12, seed=41, tagged=True)
    check(r, 12)


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "backend,fault_mode",
    [(b, m) for b in ("move", "copy") for m in FAULT_MODES] + [("stw", "sigbus")],
)
def test_prepare_beside_running_mutators(backend, fault_mode):
    # Issue 13: remap_cycle_begin at the first safepoint, marking there, then
    # the mutators walk, write and allocate (black objects, large ones too)
    # while remap_prepare runs; a second safepoint flips. Every write, before
    # and after the flip, is checked against the log at the next safepoint.
    r = stress(backend, fault_mode, 2, 2, 12, seed=61, concurrent_prepare=True, tagged=True)
    check(r, 12)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend,fault_mode", COMBOS + [("stw", "sigbus")])
def test_evacuation_under_mutators(backend, fault_mode):
    # REMAP_HEAP_EVACUATE: objects leave their region for a lower one while
    # mutators read, write and allocate through the cycle (large objects
    # too; concurrent prepare where the backend takes it). Every access is
    # checked against the log, and regions were emptied.
    concurrent = backend in ("move", "copy", "stw")
    r = stress(backend, fault_mode, 2, 2, 12, seed=83, evacuate=True, keep_stats=True,
               concurrent_prepare=concurrent)
    check(r, 12)
    assert sum(s["regions_evacuated"] for s in r["cycle_stats"]) > 0


@pytest.mark.timeout(120)
def test_stw_under_the_same_mutators():
    # The harness itself against the reference: every cycle in the pause,
    # nothing for the mutators to produce.
    r = stress("stw", "sigbus", 1, 2, 20, seed=7)
    check(r, 20)
    assert r["pages_by_mutator"] == 0


@pytest.mark.timeout(120)
def test_bigger_heap_fewer_cycles():
    # 16 MiB with 256 KiB regions: longer compactions, more overlap.
    r = stress("move", "sigbus", 2, 2, 10, heap_mib=16, seed=11, region_kib=256)
    check(r, 10)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["move", "stw"])
def test_the_checker_catches_a_stale_page(backend):
    # The proof is only as good as its checker: a root object rolled back
    # one version behind the log's back (what a stale page would show) must
    # fail the run, caught by a mutator or at the next safepoint.
    r = stress(backend, "sigbus", 1, 2, 10, seed=3, inject_stale_cycle=3)
    assert not r["verified"]
    assert "stale" in r["error"] or "lost write" in r["error"], r["error"]
    assert r["cycles"] <= 3

"""Large objects under the concurrency stress (issue 7, "Correctness:
large-object contents and every reference to them are right after
compaction, across backends, with mutators running").

The C++ mutators of bindings/testing/stress.cpp allocate a fraction of their objects
with remap_alloc_large (just over the threshold to three regions; most
primitive, some with four slots, some with more than a page of slots so
that one tracked slot lies on the object's second page) and unlink each 1
to 4 cycles later, so that in most cycles some large objects die and live
ones slide down over them while the mutators read, write and fault on their
pages. A reader checks a large object's header, its tracked slots (each
must hold its target's current address) and the first and last payload
word of every page plus a random one against the page versions committed
under the seqlock: a page that was left behind, moved to the wrong place or
installed stale fails. At each safepoint every payload word and every
untracked slot of every reachable large object is compared with the replay
of the write logs. stress.h has the details."""

from __future__ import annotations

import pytest

from support.differential import CONCURRENT_BACKENDS, FAULT_MODES
from support.stress import check, stress

CYCLES = 40
LARGE = {"large_fraction": 0.1}
COMBOS = [(b, m) for b in CONCURRENT_BACKENDS for m in FAULT_MODES]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend,fault_mode", COMBOS)
def test_large_objects_slide_under_mutators(backend, fault_mode):
    # Two shapes across the modes: SIGBUS with one GC thread and two
    # mutators, handler threads with two GC threads and three mutators.
    gc_threads, mutators = (1, 2) if fault_mode == "sigbus" else (2, 3)
    r = stress(
        backend, fault_mode, gc_threads, mutators, CYCLES, seed=200, keep_stats=True, **LARGE
    )
    check(r, CYCLES)
    per_cycle = r["cycle_stats"]
    assert [c["cycle"] for c in per_cycle] == list(range(1, CYCLES + 1))
    moved = sum(c["large_objects_moved"] for c in per_cycle)
    assert moved > 0, "no large object slid"
    assert moved == r["large_objects_moved"]
    # Not once by luck: large objects died and live ones slid in many
    # cycles (10 seeds x 8 combos: 14 to 40 of 40 cycles).
    assert r["large_cycles_moved"] >= CYCLES // 5, r
    assert r["large_died"] >= CYCLES // 2, r
    assert r["large_allocs"] > r["large_died"] > 0
    # Their pages went to the new places, slot pages were rewritten, and
    # every safepoint compared the reachable ones word by word.
    assert r["large_pages_moved"] > 0 and r["large_pages_updated"] > 0
    assert r["large_verified"] >= r["large_live"]
    assert r["large_verified"] > CYCLES
    assert r["large_writes"] > 0
    # The mutators read large objects while the heap compacted, and
    # produced pages by faulting.
    assert r["large_reads_compacting"] > 0
    assert r["pages_by_mutator"] > 0 and r["faults"] > 0
    if backend in ("move", "copy"):
        # Pages of large objects that were not installed yet when a mutator
        # read them (mincore): it faulted on them unless the GC came first.
        assert r["large_pages_missing"] > 0
        assert sum(c["large_pages_by_mutator"] for c in per_cycle) > 0
    if backend == "copy":
        assert r["large_pages_copied"] >= r["large_pages_moved"]


@pytest.mark.timeout(120)
def test_large_objects_stw_reference():
    # The same mutators against the reference: large objects slide in the pause.
    r = stress("stw", "sigbus", 1, 2, 20, seed=201, keep_stats=True, **LARGE)
    check(r, 20)
    assert r["large_objects_moved"] > 0
    assert r["pages_by_mutator"] == 0


@pytest.mark.timeout(120)
def test_large_objects_bigger_regions():
    # 16 MiB with 256 KiB regions: large objects of up to 768 KiB.
    r = stress("move", "sigbus", 2, 2, 10, heap_mib=16, seed=202, region_kib=256, **LARGE)
    check(r, 10)
    assert r["large_objects_moved"] > 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["move", "stw"])
def test_the_checker_catches_a_stale_large_page(backend):
    # One page of a reachable large object rolled back a version behind the
    # log's back (what a page left behind by the slide would show) fails
    # the run, caught by a mutator's sample or at the next safepoint.
    r = stress(
        backend, "sigbus", 1, 2, 10, seed=3, inject_stale_cycle=3, inject_stale_large=True, **LARGE
    )
    assert not r["verified"]
    assert "large" in r["error"], r["error"]
    assert "stale" in r["error"] or "lost write" in r["error"], r["error"]
    assert r["cycles"] <= 3


@pytest.mark.timeout(120)
def test_no_large_objects():
    # large_fraction=0: the stress as it was before large objects.
    r = stress("move", "sigbus", 1, 2, 10, seed=204, large_fraction=0.0)
    check(r, 10)
    assert r["large_allocs"] == 0 and r["large_objects_moved"] == 0 and r["large_verified"] == 0

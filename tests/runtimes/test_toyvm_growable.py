"""A growable heap in the toy VM (issue 16): ``toyvm.run(...,
max_heap_mib=...)`` reserves the maximum and, after each collection (heap
IDLE, mutators running), grows the capacity with remap_heap_resize when
less than ``min_free_ratio`` of it is free, and shrinks it back (not below
``heap_mib``) when more than ``max_free_ratio`` is — the policy a runtime
with -Xms/-Xmx and free ratios implements on libremap.

The proof: a workload whose live data does not fit the starting heap fails
with a fixed heap and passes with a growable one on every backend; the
capacity grows, never past the maximum, and comes back down once the data
dies (the last collection runs after every mutator ended). A collection
that did not make room for the allocation that asked for it grows the heap
by at least that allocation, at its end, where the run of free regions a
large object needs is whole."""

from __future__ import annotations

import pytest

from support.toyvm import MODES, run_child

MiB = 1 << 20
# gcbench's long-lived double[] alone (3.2 MB, one large object) nearly fills
# a 4 MiB heap: the trees built beside it cannot fit.
SMALL = (("heap_mib", 4), ("array_size", 400_000))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend,fault_mode", MODES, ids=[f"{b}-{m}" for b, m in MODES])
def test_a_heap_too_small_grows_and_shrinks_back(backend, fault_mode):
    fixed = run_child("gcbench", backend, fault_mode, SMALL)
    if fixed["error"] and fixed["error"]["status_name"] == "REMAP_EUNSUPPORTED":
        pytest.skip(fixed["error"]["message"])
    assert not fixed["verified"] and fixed["error"]["kind"] == "out_of_memory", fixed["error"]

    r = run_child("gcbench", backend, fault_mode, (*SMALL, ("max_heap_mib", 32)))
    assert r["verified"], r["error"]
    assert (r["heap_mib"], r["max_heap_mib"]) == (4, 32)
    caps = [(g["capacity"], g["capacity_after"]) for g in r["gcs"]]
    assert all(4 * MiB <= a <= 32 * MiB and 4 * MiB <= b <= 32 * MiB for a, b in caps)
    # Each collection ran at the capacity the one before chose.
    assert all(caps[i][1] == caps[i + 1][0] for i in range(len(caps) - 1))
    t = r["totals"]
    assert t["capacity_max"] > 4 * MiB, "the heap never grew"
    # The last collection finds the workload's data dead: back to the start.
    assert t["capacity_last"] < t["capacity_max"], caps
    # Resident heap memory never exceeds the capacity (what a shrink drops
    # goes back to the OS); the last collection leaves nothing live.
    assert all(0 <= g["committed_after"] <= g["capacity_after"] for g in r["gcs"])
    assert max(g["committed_after"] for g in r["gcs"]) > 4 * MiB


def test_the_policy_is_checked():
    from libremap import toyvm

    with pytest.raises(ValueError, match="max_heap_mib"):
        toyvm.run("gcbench", heap_mib=8, max_heap_mib=4)
    with pytest.raises(ValueError, match="free_ratio"):
        toyvm.run("gcbench", heap_mib=8, max_heap_mib=16, min_free_ratio=0.7, max_free_ratio=0.6)

"""The helper GC threads of remap_compact (gc_threads > 1) claim regions only
while a CPU is free (Compactor::helper_may_claim): beside running mutators a
helper takes a mutator's CPU instead of adding one. Each case runs in a child,
with as many spinning processes as the machine has CPUs: every CPU is busy,
so the helper waits out the cycle (stats.helper_wait_ns > 0), the caller does
every region, and the heap is the one a single GC thread leaves.
REMAP_HELPERS_ALWAYS=1 (the measurement switch) makes it claim anyway. The
stress suite races two workers with that switch set and runs one shape
without it (tests/stress/test_stress.py)."""

from __future__ import annotations

import pytest

from support.differential import run_child

CHILD = """
import json, multiprocessing as mp, os, time
from libremap.synthetic import SyntheticHeap, MiB

def spin(stop_at):
    while time.monotonic() < stop_at:
        pass

def run(gc_threads):
    h = SyntheticHeap(capacity=32 * MiB, seed=7, backend={backend!r}, gc_threads=gc_threads)
    out = []
    for _ in range(3):
        h.collect()
        h.verify()
        out.append((h.image_hash(), h.checksum(), h.stats()["helper_wait_ns"]))
        h.mutate(grow_bytes=2 * MiB)
    return out

one = run(1)
ctx = mp.get_context("fork")
spinners = [ctx.Process(target=spin, args=(time.monotonic() + 60,)) for _ in range(os.cpu_count())]
for p in spinners:
    p.start()
try:
    time.sleep(0.2)  # every spinner running
    two = run(2)
finally:
    for p in spinners:
        p.kill()
        p.join()
print(json.dumps({{"one": one, "two": two}}))
"""


def cycles(backend: str, always: bool) -> dict:
    env = {"REMAP_HELPERS_ALWAYS": "1" if always else "0"}
    return run_child(CHILD.format(backend=backend), timeout=120, env=env)


@pytest.mark.parametrize("backend", ["move", "copy"])
def test_a_helper_on_a_busy_machine_waits_and_the_heap_is_the_same(backend):
    r = cycles(backend, always=False)
    for (h1, c1, w1), (h2, c2, _) in zip(r["one"], r["two"]):
        assert (h2, c2) == (h1, c1), "two GC threads left other bytes than one"
        assert w1 == 0, "gc_threads 1 has no helper to wait"
    # (A helper the scheduler starts after the caller took the last claim
    # has nothing to wait for: one cycle of three is enough.)
    assert any(w > 0 for _, _, w in r["two"]), "every CPU busy, yet the helper never waited"


@pytest.mark.parametrize("backend", ["move", "copy"])
def test_the_switch_makes_the_helper_claim_anyway(backend):
    r = cycles(backend, always=True)
    for (h1, c1, _), (h2, c2, w2) in zip(r["one"], r["two"]):
        assert (h2, c2) == (h1, c1)
        assert w2 == 0

"""VMA count unchanged after 100 cycles with move and copy (issue 4); no
mapping left behind by any backend once the heap is destroyed.

Each cycle mremaps the heap to from-space and back, registers and
unregisters it, moves pages into and out of the buffer pool: none of that
may leave a mapping behind or split one for good. The first cycle may
create what the heap keeps for its life; from then on both the library's
count (stats vmas_after) and /proc/self/maps must stay flat. Half of the
cycles have a mutator fault every reachable page first (pool buffers), the
other half leave the pages to GC workers. Runs in a child interpreter whose
allocators never mmap (PYTHONMALLOC=malloc, glibc's mmap threshold raised,
one malloc arena): the synthetic heap's object table grows every cycle, and
its reallocations must not be mistaken for the library's mappings."""

from __future__ import annotations

import pytest

from support.differential import CHILD_PRELUDE, CONCURRENT_BACKENDS, FAULT_MODES, run_child

QUIET_MALLOC = {
    "PYTHONMALLOC": "malloc",
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
    "MALLOC_ARENA_MAX": "1",
}

CODE = """
from libremap.synthetic import SyntheticHeap
def maps():
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)
before = maps()
try:
    h = SyntheticHeap(capacity=4 << 20, region_size=64 << 10, seed=4, live_ratio=0.4,
                      backend={backend!r}, fault_mode={mode!r}, gc_threads=2)
except RemapError as e:
    unsupported(e)
after, proc, ebusy = [], [], 0
for c in range({cycles}):
    if c:
        h.mutate(kill_fraction=0.3, grow_bytes=256 << 10, live_ratio=0.4, dense_fraction=0.2)
    want = h.checksum()
    h.mark(); h.prepare(); h.flip()
    if c % 2:
        h.checksum()  # every reachable page built by a faulting mutator
    h.compact(); h.finish()
    assert h.checksum() == want, c
    st = h.stats()
    after.append(st["vmas_after"])
    proc.append(maps())
del h
print(json.dumps(dict(after=after, proc=proc, before=before, destroyed=maps())))
"""


@pytest.mark.timeout(150)
@pytest.mark.parametrize("fault_mode", FAULT_MODES)
@pytest.mark.parametrize("backend", CONCURRENT_BACKENDS)
def test_vma_count_over_100_cycles(backend, fault_mode):
    r = run_child(
        CHILD_PRELUDE + CODE.format(backend=backend, mode=fault_mode, cycles=100),
        timeout=120,
        env=QUIET_MALLOC,
    )
    after, proc = r["after"], r["proc"]
    assert len(after) == 100
    # Every backend: destroying the heap after 100 cycles gives back every
    # mapping it made (a few thread stacks stay in glibc's cache).
    assert r["destroyed"] - r["before"] <= 4, r
    if backend not in ("move", "copy"):
        # minor's run-by-run flip and sigsegv's opened pages make the count
        # follow the heap's layout (DESIGN.md section 7: that count is the
        # point); flat is promised for move and copy only.
        return
    # From the second cycle on: flat.
    assert set(after[1:]) == {after[1]}, f"stats vmas_after drifts: {after}"
    assert set(proc[1:]) == {proc[1]}, f"/proc/self/maps drifts: {proc}"
    # The first cycle adds at most a handful (pool, thread stacks).
    assert after[1] - after[0] <= 4, after[:3]

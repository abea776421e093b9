"""Where regions go, so that a small heap keeps room for large objects.

Regions compact in place, so a small-object region with one survivor stays
where it is. If such regions sit between large objects, the free space is
cut into runs too short for the next large object although plenty is free
(a 12 MiB heap refused a 192 KiB object with 5.7 MiB free; the toy VM's
large_arrays failed the same way in CI, 20 MiB heap, 7.4 MiB free). So:

- small-object regions are handed out from the top of the heap, large
  objects from the bottom, and the plan slides large objects down at every
  cycle: the two kinds meet only when the heap is nearly full;
- large objects slide in a cycle begun beside running mutators too: the
  plan reserves the free regions it slides onto, so that no region acquired
  in the black window (after prepare) is one of them, and a cancelled cycle
  gives them back;
- an allocation that finds no run says how much is free and the longest run.
"""

from __future__ import annotations

import random

import pytest

from libremap.cabi import ffi, lib

from support.cabi_heap import Heap, alloc_large, err, finish_cycle, put, try_acquire

KiB = 1024
MiB = 1024 * KiB
RS = 64 * KiB
PHASE_COMPACTING = 2
BACKENDS = {"move": 1, "copy": 2, "stw": 5}


def fill(addr: int, size: int, seed: int) -> None:
    """An object without slots whose payload is a pattern of `seed`."""
    put(addr, size)
    words = ffi.cast("uint64_t *", addr)
    for i in range(1, size // 8, 97):
        words[i] = (seed << 32) | i


def holds(addr: int, size: int, seed: int) -> bool:
    words = ffi.cast("uint64_t *", addr)
    return int(words[0]) == size and all(
        int(words[i]) == (seed << 32) | i for i in range(1, size // 8, 97)
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_small_regions_from_the_top_large_objects_from_the_bottom(backend):
    h = Heap(capacity=2 * MiB, backend=BACKENDS[backend])
    try:
        top = h.base + 2 * MiB
        assert try_acquire(h) == (top - RS, top)
        assert alloc_large(h, 100 * KiB) == (0, h.base)
        assert try_acquire(h) == (top - 2 * RS, top - RS)
        assert alloc_large(h, 40 * KiB) == (0, h.base + 2 * RS)
    finally:
        h.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_full_heap_refuses_a_large_object_saying_free_and_longest_run(backend):
    h = Heap(capacity=1 * MiB, backend=BACKENDS[backend])
    try:
        # Every other region holds a small object: half the heap is free, in
        # runs of one region.
        spans = [try_acquire(h) for _ in range(16)]
        for i, (s, _e) in enumerate(spans):
            put(s, 64)
            assert h.retire(s, s + (64 if i % 2 else 0)) == 0
        st, _ = alloc_large(h, 100 * KiB)
        assert st == lib.REMAP_ENOMEM
        assert "(8 of 16 regions free, the longest run 1)" in err(), err()
    finally:
        h.close()


def churn(backend: str, seed: int, rounds: int, concurrent: bool) -> dict:
    """Small objects with a few long-lived survivors per region and large
    objects of 1-3 regions with short lives, a cycle per round (begun before
    marking when `concurrent`, with a black region allocated after prepare).
    After every cycle: every live large object lies below every small-object
    region, and no allocation was ever refused."""
    rng = random.Random(seed)
    h = Heap(capacity=2 * MiB, backend=BACKENDS[backend])
    small: dict[int, tuple[int, int]] = {}  # addr -> (size, death round)
    large: dict[int, tuple[int, int, int]] = {}  # addr -> (size, death round, seed)
    slid = 0
    try:
        for rnd in range(rounds):
            s, e = try_acquire(h)
            cur = s
            while cur + 512 <= e:
                put(cur, 512)
                if rng.random() < 0.02:
                    small[cur] = (512, rnd + rng.randint(3, 12))
                cur += 512
            assert h.retire(s, cur) == 0
            for _ in range(rng.randint(1, 2)):
                size = rng.choice([40 * KiB, 100 * KiB, 150 * KiB, 190 * KiB])
                st, a = alloc_large(h, size)
                assert st == 0, f"round {rnd}: {err()}"
                large[a] = (size, rnd + rng.randint(1, 4), rng.randrange(1 << 20))
                fill(a, size, large[a][2])
            small = {a: v for a, v in small.items() if v[1] > rnd}
            large = {a: v for a, v in large.items() if v[1] > rnd}
            if concurrent:
                assert lib.remap_cycle_begin(h.h) == 0, err()
            for a in (*small, *large):
                assert h.mark(a) == 0, err()
            assert lib.remap_prepare(h.h) == 0, err()
            if concurrent:
                b, _ = try_acquire(h)  # black: stays where it is
                put(b, 64)
                assert h.retire(b, b + 64) == 0
            finish_cycle(h)
            small = {h.forward(a)[1]: v for a, v in small.items()}
            moved = {h.forward(a)[1]: v for a, v in large.items()}
            slid += sum(1 for a in large if h.forward(a)[1] != a)
            large = moved
            for a, (size, _d, sd) in large.items():
                assert holds(a, size, sd), f"round {rnd}: large object at {a:#x} corrupted"
            if large and small:
                large_end = max(a + size for a, (size, _d, _s) in large.items())
                small_low = min(small) // RS * RS
                assert large_end <= small_low, (
                    f"round {rnd}: a small-object region at {small_low - h.base:#x} lies "
                    f"below a large object ending at {large_end - h.base:#x}"
                )
        return {"slid": slid}
    finally:
        h.close()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("concurrent", [False, True], ids=["paused", "begun"])
def test_churn_keeps_small_and_large_apart(backend, concurrent):
    r = churn(backend, seed=5, rounds=40, concurrent=concurrent)
    assert r["slid"] > 0, "no large object slid: the churn does not exercise the slide"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cancel", [False, True], ids=["completed", "cancelled"])
def test_regions_a_slide_lands_on_are_reserved_from_black_allocation(backend, cancel):
    h = Heap(capacity=2 * MiB, backend=BACKENDS[backend])
    try:
        # r0 free, r1 dead small objects, B at r2-r3, everything above free.
        spans = sorted(try_acquire(h) for _ in range(32))
        assert [s for s, _ in spans] == [h.base + i * RS for i in range(32)]
        assert h.retire(spans[0][0], spans[0][0]) == 0
        put(spans[1][0], 64)
        assert h.retire(spans[1][0], spans[1][0] + 64) == 0
        for s, _e in spans[2:4]:
            assert h.retire(s, s) == 0
        b_size = 2 * RS
        assert alloc_large(h, b_size) == (0, spans[2][0])
        b = spans[2][0]
        fill(b, b_size, 77)
        for s, _e in spans[4:]:
            assert h.retire(s, s) == 0

        assert lib.remap_cycle_begin(h.h) == 0, err()
        assert h.mark(b) == 0, err()
        assert lib.remap_prepare(h.h) == 0, err()
        assert h.forward(b) == (0, h.base), "B must slide onto r0 (free) and r1 (dead)"
        black = []
        while (span := try_acquire(h)) is not None:
            black.append(span)
        got = sorted(s for s, _ in black)
        assert h.base not in got, "a black region was handed out on B's new place"
        assert got == [h.base + i * RS for i in range(4, 32)], [hex(g - h.base) for g in got]
        for s, _e in black:
            put(s, 64)
            assert h.retire(s, s + 64) == 0
        if cancel:
            assert lib.remap_clear_marks(h.h) == 0, err()
            # The reservation went with the plan: r0 is for anyone again.
            assert try_acquire(h) == (h.base, h.base + RS)
            assert holds(b, b_size, 77)
        else:
            finish_cycle(h)
            assert holds(h.base, b_size, 77)
            st, s = h.stats()
            assert st == 0 and s.large_objects_moved == 1 and s.regions_black == 28
            # B's old regions r2, r3 are free now, the only ones.
            assert h.get_info().regions_free == 2
            assert alloc_large(h, b_size) == (0, h.base + 2 * RS)
    finally:
        h.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_refused_prepare_gives_its_reserved_regions_back(backend):
    # REMAP_HEAP_VERIFY_REFS refuses the plan after its slide was chosen (a
    # live slot points inside B): the region reserved for B is free again.
    h = Heap(capacity=2 * MiB, backend=BACKENDS[backend], flags=1)
    try:
        spans = sorted(try_acquire(h) for _ in range(32))
        assert h.retire(spans[0][0], spans[0][0]) == 0
        put(spans[1][0], 64)
        assert h.retire(spans[1][0], spans[1][0] + 64) == 0
        for s, _e in spans[2:4]:
            assert h.retire(s, s) == 0
        b = spans[2][0]
        assert alloc_large(h, 2 * RS) == (0, b)
        fill(b, 2 * RS, 77)
        for s, _e in spans[4:31]:
            assert h.retire(s, s) == 0
        holder = spans[31][0]
        put(holder, 64, 1)
        ffi.cast("uint64_t *", holder)[1] = b + 8  # an interior pointer: stray
        assert h.retire(holder, holder + 64) == 0
        assert lib.remap_cycle_begin(h.h) == 0, err()
        assert h.mark(b) == 0 and h.mark(holder) == 0, err()
        assert lib.remap_prepare(h.h) == lib.REMAP_EOBJMODEL
        got = []
        while (span := try_acquire(h)) is not None:
            got.append(span[0])
        assert h.base in got, "r0 stayed reserved for a plan that was refused"
    finally:
        h.close()

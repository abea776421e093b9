"""A cycle in which nothing is worth moving (issue 14): every region dense or
empty and no large object sliding. It costs no flip and no page production
on the private-memory backends (move, copy): the empty regions are freed in
the pause and the cycle ends there, as stw's does, leaving the same bytes."""

from __future__ import annotations

import pytest
from differential import build

from libremap.synthetic import KiB, MiB

PARAMS = {"capacity": 8 * MiB, "region_size": 64 * KiB, "dense_fraction": 1.0, "seed": 4}


@pytest.mark.parametrize("backend", ["move", "copy"])
def test_an_all_dense_heap_needs_no_flip(backend):
    ref = build(PARAMS, backend="stw")
    h = build(PARAMS, backend=backend)
    for c in range(2):
        want = h.checksum()
        ref.collect()
        h.mark()
        h.prepare()
        h.flip()
        assert h.info()["phase"] == 0, "the cycle did not end at the flip"
        st = h.stats()
        assert st["cycle"] == c + 1
        assert st["regions_fragmented"] == 0 and st["regions_dense"] > 0
        assert st["pages_installed"] == 0 and st["compaction_ns"] == 0
        assert st["ioctl_move"] == 0 and st["ioctl_copy"] == 0
        assert h.checksum() == want == ref.checksum()
        assert h.image_hash() == ref.image_hash()
        # A new graph over the same objects: every region stays dense.
        h.mutate(kill_fraction=0.0, grow_bytes=0)
        ref.mutate(kill_fraction=0.0, grow_bytes=0)


def test_empty_regions_are_freed_without_a_flip():
    from test_slot_values import acquire, cycle, info, make_heap, obj, retire, stats, u64

    from libremap.cabi import lib

    st, h = make_heap("move", capacity=1 * MiB)
    assert st == 0
    try:
        live = []
        for r in range(4):
            s, e = acquire(h)
            a = s
            while e - a >= 256:
                obj(a, 256)
                u64(a)[5] = 0xFEED
                if r % 2 == 0:
                    live.append(a)
                a += 256
            retire(h, s, a)
        free_before = info(h).regions_free
        cycle(h, live)
        s_ = stats(h)
        assert s_.regions_empty == 2 and s_.regions_fragmented == 0
        assert s_.pages_installed == 0 and s_.compaction_ns == 0
        assert info(h).regions_free == free_before + 2
        assert all(int(u64(a)[5]) == 0xFEED for a in live)
        assert lib.remap_clear_marks(h) == 0
    finally:
        lib.remap_heap_destroy(h)

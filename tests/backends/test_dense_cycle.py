"""A cycle in which nothing is worth moving (issue 14): every region dense or
empty and no large object sliding. It costs no flip and no page production
on the private-memory backends (move, copy): with no dead region the cycle
ends at the flip; with dead regions their memory is released after the
pause (remap_compact / remap_finish), leaving the same bytes as stw."""

from __future__ import annotations

import pytest

from libremap.synthetic import KiB, MiB

from support.differential import build

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


def test_empty_regions_are_freed_without_a_flip_and_after_the_pause():
    # Dead regions' memory must read zero before anyone allocates there:
    # releasing it (MADV_DONTNEED) took 4 ms of the toy VM's last flip at
    # 256 MiB. The flip now only leaves the heap COMPACTING; remap_compact
    # releases, remap_finish frees the regions. No page is produced.
    from libremap.cabi import ffi, lib

    from support.handbuilt import (
        PHASE_COMPACTING,
        PHASE_IDLE,
        acquire,
        err,
        info,
        make_heap,
        obj,
        retire,
        stats,
        u64,
    )

    st, h = make_heap("move", capacity=1 * MiB)
    assert st == 0
    try:
        live, dead = [], []
        for r in range(4):
            s, e = acquire(h)
            a = s
            while e - a >= 256:
                obj(a, 256)
                u64(a)[5] = 0xFEED
                (live if r % 2 == 0 else dead).append(a)
                a += 256
            retire(h, s, a)
        free_before = info(h).regions_free
        for a in live:
            assert lib.remap_mark(h, ffi.cast("void *", a)) == 0, err()
        assert lib.remap_prepare(h) == 0, err()
        assert lib.remap_flip(h) == 0, err()
        assert info(h).phase == PHASE_COMPACTING
        assert info(h).regions_free == free_before, "dead regions free before their release"
        assert int(u64(dead[0])[5]) == 0xFEED  # not released in the pause
        assert lib.remap_compact(h) == 0, err()
        assert int(u64(dead[0])[5]) == 0  # released: reads zero
        assert lib.remap_finish(h) == 0, err()
        assert info(h).phase == PHASE_IDLE
        s_ = stats(h)
        assert s_.regions_empty == 2 and s_.regions_fragmented == 0
        assert s_.pages_installed == 0 and s_.ioctl_move == 0 and s_.ioctl_copy == 0
        assert s_.madvise_calls >= 1 and s_.compaction_ns > 0
        assert info(h).regions_free == free_before + 2
        assert all(int(u64(a)[5]) == 0xFEED for a in live)
        assert lib.remap_clear_marks(h) == 0
    finally:
        lib.remap_heap_destroy(h)


def test_a_trivial_cycle_finished_without_compact_still_releases():
    from libremap.cabi import ffi, lib

    from support.handbuilt import PHASE_COMPACTING, acquire, err, info, make_heap, obj, retire, u64

    st, h = make_heap("copy", capacity=1 * MiB)
    assert st == 0
    try:
        s, e = acquire(h)
        obj(s, 256)
        u64(s)[5] = 0xFEED
        retire(h, s, s + 256)
        t, _ = acquire(h)
        obj(t, 256)
        retire(h, t, t + 256)
        assert lib.remap_mark(h, ffi.cast("void *", t)) == 0, err()
        assert lib.remap_prepare(h) == 0, err()
        assert lib.remap_flip(h) == 0, err()
        assert info(h).phase == PHASE_COMPACTING
        assert lib.remap_touch(h, ffi.cast("void *", t), 256) == 0, err()  # nothing to produce
        assert lib.remap_finish(h) == 0, err()
        assert int(u64(s)[5]) == 0
    finally:
        lib.remap_heap_destroy(h)

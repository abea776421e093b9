"""A cycle begun beside the mutators (remap_cycle_begin; issue 13): objects
allocated after the cycle began — before and after remap_prepare — are
black: they stay, and their reference slots, found by walking them with the
object model, are forwarded like any other; writes into old objects after
their marking are honoured. Every backend that takes it (move, copy, stw)
must leave the same heap bytes and object graph as stw for the same calls,
whichever thread produces the pages (GC workers, faulting mutators first,
or both at once), in both fault modes; minor and sigsegv refuse it."""

from __future__ import annotations

import pytest

from libremap._core import RemapError
from libremap.synthetic import KiB, MiB

from support.differential import build, concurrent_cycle

PARAMS = {"capacity": 8 * MiB, "region_size": 64 * KiB, "live_ratio": 0.3, "fill_fraction": 0.5}
PHASE_COMPACTING = 2
CASES = [("move", "sigbus"), ("move", "thread"), ("copy", "sigbus"), ("copy", "thread")]


def reference(seed: int, tagging: str, cycles: int) -> list[tuple[int, int]]:
    h = build(dict(PARAMS, seed=seed, tagging=tagging), backend="stw")
    out = []
    for _ in range(cycles):
        concurrent_cycle(h, "collect", 160 * KiB, 96 * KiB)
        out.append((h.image_hash(), h.checksum()))
    return out


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend,fault_mode", CASES, ids=[f"{b}-{m}" for b, m in CASES])
@pytest.mark.parametrize("tagging", ["none", "v8"])
def test_black_allocation_matches_stw(backend, fault_mode, tagging):
    for seed, how in ((11, "collect"), (12, "mutator"), (13, "concurrent")):
        ref = reference(seed, tagging, 3)
        h = build(dict(PARAMS, seed=seed, tagging=tagging), backend=backend, fault_mode=fault_mode)
        black = by_mutator = 0
        for c in range(3):
            st = concurrent_cycle(h, how, 160 * KiB, 96 * KiB)
            assert (h.image_hash(), h.checksum()) == ref[c], f"{how} cycle {c + 1} differs from stw"
            assert st["black_walk_errors"] == 0 and st["slots_stray"] == 0
            black += st["regions_black"]
            by_mutator += st["pages_by_mutator"]
        assert black >= 3 * 4, "black regions were not made"
        if how == "mutator":
            assert by_mutator > 0


@pytest.mark.parametrize("backend", ["minor", "sigsegv"])
def test_shared_layouts_refuse_a_concurrent_cycle(backend):
    h = build(dict(PARAMS, seed=1), backend=backend)
    with pytest.raises(RemapError) as e:
        h.begin_cycle()
    assert "REMAP_EUNSUPPORTED" in str(e.value) or e.value.status == -2


def test_a_region_still_acquired_at_the_flip_is_refused():
    from libremap.cabi import ffi, lib

    from support.handbuilt import cycle, info, make_heap, obj, retire, u64

    st, h = make_heap("move")
    assert st == 0
    try:
        s_, e_ = ffi.new("void **"), ffi.new("void **")
        assert lib.remap_region_acquire(h, s_, e_) == 0
        s = int(ffi.cast("uintptr_t", s_[0]))
        obj(s, 64)
        retire(h, s, s + 64)
        # The initial mark needs every region retired.
        assert lib.remap_region_acquire(h, s_, e_) == 0
        t = int(ffi.cast("uintptr_t", s_[0]))
        assert lib.remap_cycle_begin(h) == lib.REMAP_EPHASE
        obj(t, 64, nrefs=1)
        u64(t)[1] = s  # a black object naming an old one
        retire(h, t, t + 64)
        assert lib.remap_cycle_begin(h) == 0
        assert lib.remap_mark(h, ffi.cast("void *", s)) == 0
        assert lib.remap_prepare(h) == 0
        # Allocation while PREPARED is allowed now; a TLAB open at the flip is not.
        assert lib.remap_region_acquire(h, s_, e_) == 0
        b = int(ffi.cast("uintptr_t", s_[0]))
        obj(b, 64, nrefs=1)
        u64(b)[1] = s
        assert lib.remap_flip(h) == lib.REMAP_EPHASE and "retire" in ffi.string(
            lib.remap_last_error()
        ).decode()
        assert info(h).phase == 1  # still PREPARED, nothing changed
        retire(h, b, b + 64)
        assert lib.remap_flip(h) == 0
        if info(h).phase == 2:
            assert lib.remap_compact(h) == 0 and lib.remap_finish(h) == 0
        out = ffi.new("void **")
        assert lib.remap_forward(h, ffi.cast("void *", b), out) == 0  # black: unchanged
        assert int(ffi.cast("uintptr_t", out[0])) == b
        assert lib.remap_forward(h, ffi.cast("void *", s), out) == 0
        assert int(u64(b)[1]) == int(ffi.cast("uintptr_t", out[0]))
        cycle(h, [])
    finally:
        lib.remap_heap_destroy(h)

"""Page-level compaction of large objects (issue 7, DESIGN.md section 8).

Live large objects (remap_alloc_large: whole pages, regions of their own)
slide down, whole regions at a time and in address order, over dead large
objects and free regions. Proven here against the stw reference for every
backend x fault mode x GC threads (the same image and graph after each
cycle, several cycles with mutation in between, every way of driving a
cycle, see drive() in differential.py), plus what a runtime sees: forward
answers for large objects, the regions after the cycle, and what the
stats report. The untouched-pages proof (swap, pagemap) lives in
test_large_untouched.py; the C++ reference model of the slide in
tests/native/test_plan.cpp.
"""

from __future__ import annotations

import ctypes
import itertools

import pytest

from libremap.synthetic import KiB, MiB, SyntheticHeap

from support.differential import CONCURRENT_BACKENDS, FAULT_MODES, build, check_case

BASE = {"capacity": 8 * MiB, "region_size": 64 * KiB, "fill_fraction": 0.35}
HOW = ["collect", "mutator", "work", "finish", "concurrent"]

#: Large-object mixes: one region each (48 KiB) with reference slots, several
#: regions each (a tail past a region end) as primitive arrays, and both.
MIXES = [
    {"large_objects": 40, "large_object_size": 48 * KiB, "large_live_fraction": 0.5},
    {"large_objects": 10, "large_object_size": 150 * KiB, "large_live_fraction": 0.4,
     "large_max_refs": 0},
    {"large_objects": 16, "large_object_size": 100 * KiB, "large_live_fraction": 0.6,
     "large_max_refs": 4, "ref_fraction": 0.9},
]

COMBOS = list(itertools.product(CONCURRENT_BACKENDS, FAULT_MODES, (1, 2)))
IDS = [f"{b}-{m}-gc{g}" for b, m, g in COMBOS]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend,fault_mode,gc_threads", COMBOS, ids=IDS)
def test_large_objects_slide_exactly_like_stw(backend, fault_mode, gc_threads):
    moved = 0
    mutator_pages = 0
    for i, (mix, seed) in enumerate(itertools.product(MIXES, (1, 2, 3, 4))):
        params = dict(BASE, seed=700 + 10 * i + seed, live_ratio=0.4, **mix)
        how = HOW[i % len(HOW)]
        st = check_case(backend, fault_mode, gc_threads, params, how, cycles=3)
        moved += st["large_objects_moved_all_cycles"]
        if how == "mutator":
            mutator_pages += st["pages_by_mutator"]
    assert moved > 0, "no large object slid: the cases do not test the slide"
    assert mutator_pages > 0, "the mutator variant never produced a page by faulting"


def _large_live(h: SyntheticHeap) -> list[tuple[int, int, int]]:
    """(address, size, id) of every live large object, in address order."""
    return sorted((a, s, i) for a, s, i, live, large in h.objects() if live and large)


@pytest.mark.parametrize("backend", ["stw", "move", "copy"])
def test_forward_gives_large_objects_their_slid_address(backend):
    h = build(dict(BASE, seed=11, **MIXES[1]), backend=backend, fault_mode="sigbus")
    before = _large_live(h)
    assert len(before) >= 2
    h.mark()
    h.prepare()
    new = {i: h.forward(a) for a, _s, i in before}
    h.flip()
    if backend != "stw":  # stw compacts in the flip
        h.compact()
        h.finish()
    after = _large_live(h)
    # Each object where forward said, region aligned, and never moved up.
    assert {i: a for a, _s, i in after} == new
    for a, _s, i in before:
        assert new[i] <= a and (new[i] - h.base) % h.region_size == 0
    # Address order is kept and no two overlap (region granular). Where
    # exactly each lands is checked against a brute-force model in
    # tests/native/test_plan.cpp.
    order = [i for _a, _s, i in after]
    assert order == [i for _a, _s, i in before]
    rs = h.region_size
    for (a, s, _), (b, _t, _u) in zip(after, after[1:]):
        assert b >= (a + s + rs - 1) // rs * rs
    st = h.stats()
    slid = sum(1 for a, _s, i in before if new[i] != a)
    assert st["large_objects_moved"] == slid > 0
    pages = sum((s + 4095) // 4096 for a, s, i in before if new[i] != a)
    assert st["large_pages_moved"] == pages
    h.verify()
    # The vacated regions are allocatable again: the tops match the model.
    assert h.info()["bytes_allocated"] == sum(h.region_tops())


def test_move_copies_no_large_page_and_copy_copies_all():
    # The heart of use case B in the counters: with move a primitive large
    # object's pages are installed without being copied or rewritten.
    params = dict(BASE, seed=12, **MIXES[1])
    res = {}
    for backend in ("move", "copy", "minor", "stw"):
        h = build(params, backend=backend, fault_mode="sigbus")
        h.collect()
        res[backend] = h.stats()
    live_pages = sum(
        (s + 4095) // 4096 for _a, s, _i, live, large in build(params, backend="stw").objects()
        if live and large
    )
    mv = res["move"]
    assert mv["large_objects_moved"] > 0
    assert mv["large_pages_copied"] == 0
    assert mv["large_pages_updated"] == 0  # large_max_refs=0: nothing to rewrite
    assert res["copy"]["large_pages_copied"] == live_pages
    assert res["minor"]["large_pages_copied"] == mv["large_pages_moved"]
    assert res["stw"]["large_pages_copied"] == mv["large_pages_moved"]
    for b in ("copy", "minor", "stw"):
        assert res[b]["large_pages_moved"] == mv["large_pages_moved"], b


def test_only_pages_with_slots_are_rewritten():
    # Large objects with reference slots (all at the object's start in the
    # synthetic layout): one rewritten page per such live object, however
    # many pages it has.
    params = dict(BASE, seed=13, **MIXES[2])
    h = build(params, backend="move", fault_mode="sigbus")
    with_refs = 0
    for addr, _s, _i, live, large in h.objects():
        # ObjectHeader (bindings/common/object_layout.h): size u32, nrefs u16, ...
        if live and large and ctypes.c_uint16.from_address(addr + 4).value > 0:
            with_refs += 1
    h.collect()
    st = h.stats()
    assert with_refs > 0
    assert st["large_pages_updated"] == with_refs
    assert st["large_pages_copied"] == 0


@pytest.mark.parametrize("backend", ["stw", "move", "minor"])
def test_occupancy_right_after_the_flip_is_the_new_layout(backend):
    # A runtime reads remap_heap_get_info in its pause, right after the flip,
    # to set its next trigger: it must see the compacted layout (slid large
    # objects, freed regions) although a concurrent flip only publishes it.
    h = build(dict(BASE, seed=14, **MIXES[0]), backend=backend, fault_mode="sigbus")
    used_before = h.info()["bytes_allocated"]
    h.mark()
    h.prepare()
    h.flip()
    info = h.info()
    assert info["bytes_allocated"] == sum(h.region_tops()) < used_before
    if backend != "stw":
        h.compact()
        h.finish()
    assert h.info()["bytes_allocated"] == info["bytes_allocated"]
    h.verify()


def _present(addr: int) -> bool:
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(addr // 4096 * 8)
        return bool(int.from_bytes(f.read(8), "little") >> 63 & 1)


@pytest.mark.parametrize("fault_mode", ["sigbus", "thread"])
def test_never_touched_pages_stay_holes_and_read_zero_when_faulted(fault_mode):
    # move skips source holes (UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES): the new
    # page stays unmapped although the engine counts it installed. A mutator
    # that touches it during compaction must get zeros, whether it faults
    # before a GC worker reached the object (its own install COPYs the
    # hole's zeros) or after (fill_hole); untouched, it stays a hole.
    from libremap.bench.floor import madvise

    MADV_DONTNEED = 4
    h = build(dict(BASE, seed=15, **MIXES[1]), backend="move", fault_mode=fault_mode)
    h.mark()
    h.prepare()
    moved = [(a, s, h.forward(a)) for a, s, _i in _large_live(h) if h.forward(a) != a]
    assert len(moved) >= 3
    keep = {}
    for a, s, new in moved:
        assert madvise(a + 4096, 4096, MADV_DONTNEED) == 0  # page 1: a hole
        keep[new] = ctypes.string_at(a + 2 * 4096, 4096)    # page 2: data
    early, late, untouched = moved[0::3], moved[1::3], moved[2::3]
    h.flip()
    zeros = bytes(4096)
    for _a, _s, new in early:  # before any GC worker: the mutator's own install
        assert ctypes.string_at(new + 4096, 4096) == zeros
    h.compact()  # every page installed; holes skipped
    for _a, _s, new in late:  # after the GC worker's run, before finish
        assert ctypes.string_at(new + 4096, 4096) == zeros
    h.finish()
    st = h.stats()
    assert st["pages_zero"] >= len(early) + len(late), st
    assert st["large_pages_by_mutator"] >= len(early), st
    for _a, _s, new in untouched:
        assert not _present(new + 4096), "a never-touched page was populated"
    for _a, _s, new in moved:
        assert ctypes.string_at(new + 2 * 4096, 4096) == keep[new]
        assert ctypes.string_at(new + 4096, 4096) == zeros

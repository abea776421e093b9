"""REMAP_HEAP_EVACUATE: survivors of FRAGMENTED regions are packed, in
address order, into as few of those regions as they fill, and the emptied
regions are free after the cycle (plan.cpp: Plan::pack_regions).

- the layout itself, against a model written here from the objects alone
  (so that stw, the reference of the differential tests, cannot be wrong in
  the same way as the others);
- every backend x fault mode x GC threads x way of driving a cycle leaves
  stw's bytes and the same object graph, over several cycles with mutation;
- what it is for: a heap whose survivors are spread one per region frees
  all but the regions they fill, and a large object fits again (without the
  flag no region is ever freed there);
- beside running mutators (remap_cycle_begin): packing and black regions.
"""

from __future__ import annotations

import itertools

import pytest

from libremap.cabi import ffi, lib
from libremap.synthetic import KiB, MiB

from support.cabi_heap import Heap, alloc_large, err, finish_cycle, put, try_acquire
from support.differential import CONCURRENT_BACKENDS, FAULT_MODES, build, check_case

REMAP_HEAP_EVACUATE = 4
PARAMS = {
    "capacity": 8 * MiB,
    "region_size": 64 * KiB,
    "fill_fraction": 0.6,
    "live_ratio": 0.3,
    "evacuate": True,
}
HOW = ["collect", "mutator", "work", "finish", "concurrent"]


def model_forwarding(h) -> dict[int, int]:
    """old -> new for every live small object, from the objects and region
    tops alone: a region is DENSE when its live bytes reach 0.9 of its top
    (the default dense_threshold), else FRAGMENTED; FRAGMENTED regions'
    blocks are packed in address order."""
    rs = h.region_size
    tops = h.region_tops()
    live: dict[int, list[tuple[int, int]]] = {}
    for addr, size, _id, is_live, large in h.objects():
        if is_live and not large:
            live.setdefault((addr - h.base) // rs, []).append((addr, size))
    fwd: dict[int, int] = {}
    dest, used = None, 0
    for r in sorted(live):
        objs = sorted(live[r])
        lb = sum(s for _a, s in objs)
        if lb >= 0.9 * tops[r]:  # DENSE: stays
            fwd.update({a: a for a, _s in objs})
            continue
        if dest is not None and used + lb <= rs:
            start = h.base + dest * rs + used
            used += lb
        else:
            dest, used = r, lb
            start = h.base + r * rs
        for a, s in objs:
            fwd[a] = start
            start += s
    return fwd


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_layout_matches_the_packing_model(seed):
    h = build(dict(PARAMS, seed=seed), backend="stw")
    want = model_forwarding(h)
    h.mark()
    h.prepare()
    got = {a: h.forward(a) for a in want}
    assert got == want
    moved_out = {(a - h.base) // h.region_size for a, n in want.items()} - {
        (n - h.base) // h.region_size for n in want.values()
    }
    free_before = h.info()["regions_free"]
    h.flip()
    st = h.stats()
    assert st["regions_evacuated"] == len(moved_out) > 0
    # Every region the survivors left is free now (and nothing else changed
    # hands): free = before + emptied by packing + regions with nothing live.
    assert h.info()["regions_free"] >= free_before + len(moved_out)
    h.verify()


COMBOS = list(itertools.product(CONCURRENT_BACKENDS, FAULT_MODES, (1, 2)))


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "backend,fault_mode,gc_threads", COMBOS, ids=[f"{b}-{m}-gc{g}" for b, m, g in COMBOS]
)
def test_every_backend_packs_exactly_like_stw(backend, fault_mode, gc_threads):
    evacuated = by_mutator = 0
    for i, how in enumerate(HOW):
        params = dict(PARAMS, seed=40 + i, large_objects=6 if i % 2 else 0)
        st = check_case(backend, fault_mode, gc_threads, params, how, cycles=3)
        evacuated += st["regions_evacuated"]
        if how == "mutator":
            by_mutator += st["pages_by_mutator"]
    assert evacuated > 0, "no region was evacuated: the cases do not test packing"
    assert by_mutator > 0, "no mutator built a packed page"


@pytest.mark.parametrize("backend", ["stw", "move", "copy", "minor", "sigsegv"])
@pytest.mark.parametrize("evacuate", [False, True], ids=["in-place", "evacuate"])
def test_survivors_spread_thin_free_their_regions(backend, evacuate):
    """One 512-byte survivor in each of 16 regions (1 MiB heap): in place no
    region is freed and a 3-region object never fits; packed, the survivors
    fill one region and 15 are free."""
    backends = {"move": 1, "copy": 2, "minor": 3, "sigsegv": 4, "stw": 5}
    flags = REMAP_HEAP_EVACUATE if evacuate else 0
    try:
        h = Heap(capacity=1 * MiB, backend=backends[backend], flags=flags)
    except AssertionError as e:
        if "REMAP_EUNSUPPORTED" in str(e) or "not available" in str(e):
            pytest.skip(f"{backend}: {e}")
        raise
    try:
        survivors = []
        for i in range(16):
            s, e = try_acquire(h)
            cur = s
            while cur + 512 <= e:
                put(cur, 512)
                ffi.cast("uint64_t *", cur)[1] = i  # the survivor's identity, if chosen
                cur += 512
            assert h.retire(s, cur) == 0
            survivors.append(s + 512 * (i % 100))
        assert try_acquire(h) is None
        for c in range(2):
            for a in survivors:
                assert h.mark(a) == 0, err()
            assert lib.remap_prepare(h.h) == 0, err()
            survivors = [h.forward(a)[1] for a in survivors]
            finish_cycle(h)
            info = h.get_info()
            assert info.regions_free == (15 if evacuate else 0), f"cycle {c + 1}"
            for i, a in enumerate(survivors):
                assert (
                    int(ffi.cast("uint64_t *", a)[0]) == 512
                    and int(ffi.cast("uint64_t *", a)[1]) == i
                )
        st, _ = alloc_large(h, 3 * 64 * KiB)
        if evacuate:
            assert st == 0, err()
            assert sorted(survivors) == [h.base + 512 * i for i in range(16)]  # all in region 0
        else:
            assert st == lib.REMAP_ENOMEM and "0 of 16 regions free" in err()
    finally:
        h.close()


@pytest.mark.parametrize("backend,fault_mode", [("move", "sigbus"), ("copy", "thread")])
def test_packing_beside_black_allocation(backend, fault_mode):
    """A cycle begun beside the mutators packs too; black regions acquired
    before and after prepare are never packing targets (they stay) and
    their slots are forwarded to the packed places."""
    from support.differential import concurrent_cycle

    params = dict(PARAMS, seed=9)
    ref = build(params, backend="stw")
    h = build(params, backend=backend, fault_mode=fault_mode)
    evacuated = 0
    for _ in range(3):
        want = concurrent_cycle(ref, "collect", 160 * KiB, 96 * KiB)
        st = concurrent_cycle(h, "mutator", 160 * KiB, 96 * KiB)
        assert (h.image_hash(), h.checksum()) == (ref.image_hash(), ref.checksum())
        assert st["black_walk_errors"] == 0 and st["slots_stray"] == 0
        assert st["regions_black"] > 0
        evacuated += st["regions_evacuated"]
        assert want["regions_evacuated"] == st["regions_evacuated"]
    assert evacuated > 0

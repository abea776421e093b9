"""The synthetic heap builder on its own (no compaction): determinism, the
live set and the reference graph it promises, marking by traversal."""

from __future__ import annotations

import itertools
import struct

import pytest

from libremap import _core
from libremap.synthetic import KiB, MiB, RemapError, SyntheticHeap

from support.differential import build
from support.model_faults import MODEL_FAULTS, set_fault

SMALL = {"capacity": 4 * MiB, "region_size": 64 * KiB}


def parse(heap: SyntheticHeap, image: bytes | None = None) -> dict[int, dict]:
    """Objects by offset, decoded from the rebased image."""
    img = heap.image() if image is None else image
    out = {}
    for addr, size, oid, live, large in heap.objects():
        off = addr - heap.base
        hsize, nrefs, klass, hid = struct.unpack_from("<IHHQ", img, off)
        slots = struct.unpack_from(f"<{nrefs}Q", img, off + 16)
        payload = struct.unpack_from(
            f"<{(hsize - 16 - 8 * nrefs) // 8}Q", img, off + 16 + 8 * nrefs
        )
        out[off] = {
            "size": size,
            "hsize": hsize,
            "nrefs": nrefs,
            "klass": klass,
            "id": oid,
            "hid": hid,
            "live": live,
            "large": large,
            "slots": slots,
            "payload": payload,
        }
    return out


def test_same_seed_same_heap_at_different_bases():
    a = build(SMALL, seed=7)
    b = build(SMALL, seed=7)
    assert a.base != b.base  # both alive: two mappings
    assert a.image() == b.image()
    assert a.image_hash() == b.image_hash()
    assert a.checksum() == b.checksum()
    assert a.live_count == b.live_count and a.live_bytes == b.live_bytes
    assert [r - a.base for r in a.roots()] == [r - b.base for r in b.roots()]


def test_different_seed_different_heap():
    a = build(SMALL, seed=7)
    b = build(SMALL, seed=8)
    assert a.image() != b.image()
    assert a.image_hash() != b.image_hash()
    assert a.checksum() != b.checksum()


def test_checksum_sees_payload_and_graph_only():
    a = build(SMALL, seed=3)
    assert a.checksum() == a.checksum()
    # A different live_ratio changes the graph: the checksum must follow.
    b = build(SMALL, seed=3, live_ratio=0.2)
    assert a.checksum() != b.checksum()


def test_mutate_is_deterministic():
    a = build(SMALL, seed=11, fill_fraction=0.5)
    b = build(SMALL, seed=11, fill_fraction=0.5)
    for h in (a, b):
        h.mutate(kill_fraction=0.4, grow_bytes=512 * KiB, live_ratio=0.3)
    assert a.image() == b.image()
    assert a.checksum() == b.checksum()
    assert a.verify() == a.live_count


@pytest.mark.parametrize("seed", range(4))
def test_marking_reaches_exactly_the_live_set(seed):
    h = build(SMALL, seed=seed, live_ratio=0.3, root_fraction=0.0)
    live = [o for o in h.objects() if o[3]]
    assert h.live_count == len(live) > 0
    assert h.live_bytes == sum(o[1] for o in live)
    assert h.verify() == len(live)
    assert h.mark() == len(live)
    # Re-marking is harmless (libremap.h); clearing and marking again works.
    assert h.mark() == len(live)
    h.clear_marks()
    assert h.mark() == len(live)


def test_layout_roots_and_references_are_sane():
    h = build(SMALL, seed=5, live_ratio=0.4, dense_fraction=0.3, large_objects=2)
    objs = parse(h)
    cap, rs = h.capacity, h.region_size
    live_offs = {o for o, v in objs.items() if v["live"]}
    ids = sorted(v["id"] for v in objs.values())
    assert ids == list(range(1, len(ids) + 1))
    for off, v in objs.items():
        assert v["hid"] == v["id"] and v["hsize"] == v["size"]
        assert v["size"] % 8 == 0 and v["size"] >= 16 + 8 * v["nrefs"]
        assert v["klass"] != 0
        assert all(w >> 63 for w in v["payload"]), "payload words keep bit 63 set"
        if not v["large"]:
            assert off // rs == (off + v["size"] - 1) // rs, "an object crosses a region"
            assert v["size"] <= 2048
        for s in v["slots"]:
            if s == 0 or s >> 63:
                continue  # null, or a foreign (non-heap) value
            assert s < cap and s in objs, "slot names an object start (rebased by image())"
            if v["live"]:
                assert s in live_offs, "a live object references a dead one"
    roots = [r - h.base for r in h.roots()]
    assert roots and all(r in live_offs for r in roots)
    # Reachability from the roots through live objects only covers the live set.
    seen, todo = set(roots), list(roots)
    while todo:
        for s in objs[todo.pop()]["slots"]:
            if s and not s >> 63 and s not in seen:
                seen.add(s)
                todo.append(s)
    # image() rebases the object at offset 0 to 0, like null: leave it out.
    assert seen - {0} == live_offs - {0}
    # Objects in a region are packed by bump allocation from its start.
    by_region: dict[int, list[int]] = {}
    for off, v in objs.items():
        if not v["large"]:
            by_region.setdefault(off // rs, []).append(off)
    tops = h.region_tops()
    for r, offs in by_region.items():
        offs.sort()
        assert offs[0] == r * rs
        for x, y in itertools.pairwise(offs):
            assert x + objs[x]["size"] == y
        assert tops[r] == offs[-1] + objs[offs[-1]]["size"] - r * rs
    larges = [off for off, v in objs.items() if v["large"]]
    assert len(larges) == 2 and all(off % 4096 == 0 for off in larges)


def test_live_ratio_dense_fraction_fill_fraction():
    h = build(
        {"capacity": 8 * MiB, "region_size": 64 * KiB},
        seed=9,
        live_ratio=0.3,
        dense_fraction=0.25,
        fill_fraction=0.5,
    )
    rs = h.region_size
    tops = h.region_tops()
    used = [r for r, t in enumerate(tops) if t]
    assert len(used) == round(0.5 * len(tops))
    live = [0] * len(tops)
    for addr, size, _, is_live, _ in h.objects():
        if is_live:
            live[(addr - h.base) // rs] += size
    ratios = [live[r] / tops[r] for r in used]
    dense = [x for x in ratios if x >= 0.9]
    frag = [x for x in ratios if x < 0.9]
    assert len(dense) == round(0.25 * len(used))
    assert all(x >= 0.94 for x in dense)
    # Greedy choice under the target: within one max-size object of it.
    assert all(0.3 - 2048 / rs <= x <= 0.3 + 1e-9 for x in frag)
    assert all(t >= rs - 16 for t in (tops[r] for r in used)), "regions are filled to the end"


def test_image_rebases_heap_addresses_only():
    h = build(SMALL, seed=2)
    img = h.image()
    assert len(img) == h.capacity
    words = struct.unpack(f"<{len(img) // 8}Q", img)
    assert all(w < h.capacity or w >> 48 for w in words), "an un-rebased heap address in the image"


def test_model_fault_knob_does_not_change_the_runtime_view():
    h = build(SMALL, seed=4)
    c = h.checksum()
    victim = next(o for o in h.objects() if o[3])
    for kind in MODEL_FAULTS:
        set_fault(h, kind, victim[2])
        assert h.checksum() == c and h.verify() == h.live_count
    set_fault(h, None)
    with pytest.raises(ValueError):
        set_fault(h, "no_such_fault", 1)


def test_library_errors_raise_remap_error():
    with pytest.raises(RemapError) as ei:
        SyntheticHeap(capacity=4 * MiB, region_size=32 * KiB)  # < 64 KiB: the library refuses
    e = ei.value
    assert e.status == _core.STATUS_CODES["REMAP_EINVAL"] and e.status_name == "REMAP_EINVAL"
    assert "remap_heap_create" in e.message and isinstance(e, RuntimeError)
    with pytest.raises(ValueError):
        SyntheticHeap(capacity=4 * MiB, region_size=96 * KiB)  # not a power of two
    with pytest.raises(ValueError):
        SyntheticHeap(backend="nonsense")

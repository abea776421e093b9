"""The heap's C ABI through cffi: config defaults and validation, argument
checks, struct_size rules, allocation, marking, phase rules, remap_forward,
and a whole stw cycle whose result is compared byte for byte with a Python
model of the compaction (objects driven by a Python object model).

Object layout used here: word 0 = size in bytes | nrefs << 32; nrefs
reference slots follow.
"""

from __future__ import annotations

import random

import pytest

from libremap.cabi import ffi, lib

from support.cabi_heap import (
    BACKEND_AUTO,
    BACKEND_STW,
    PHASE_IDLE,
    PHASE_PREPARED,
    GiB,
    Heap,
    KiB,
    MiB,
    config,
    err,
    put,
    u64,
)


@pytest.fixture
def heap():
    h = Heap()
    yield h
    h.close()


# --- config and create -------------------------------------------------------


def test_config_defaults():
    c = ffi.new("remap_heap_config *")
    lib.remap_heap_config_init(c)
    assert c.struct_size == ffi.sizeof("remap_heap_config")
    assert c.model.struct_size == ffi.sizeof("remap_object_model")
    assert c.region_size == 256 * KiB
    assert c.dense_threshold == pytest.approx(0.90)
    assert (c.backend, c.fault_mode, c.gc_threads, c.handler_threads) == (0, 0, 1, 1)
    assert c.pool_max_pages == 4096
    lib.remap_heap_config_init(ffi.NULL)  # harmless


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("capacity", 0, "capacity"),
        ("capacity", 4 * MiB + 4096, "capacity"),
        ("region_size", 96 * KiB, "region_size"),
        ("region_size", 32 * KiB, "region_size"),
        ("dense_threshold", 0.0, "dense_threshold"),
        ("dense_threshold", 1.01, "dense_threshold"),
        ("backend", 9, "backend"),
        ("fault_mode", 7, "fault_mode"),
        ("gc_threads", 0, "gc_threads"),
        ("handler_threads", 65, "handler_threads"),
        ("pool_max_pages", 2**24 + 1, "pool_max_pages"),
        ("large_object_threshold", 64 * KiB + 8, "large_object_threshold"),
        ("struct_size", 16, "remap_heap_config"),
    ],
)
def test_create_rejects_bad_config(field, value, words):
    c = config(**{field: value})
    out = ffi.new("remap_heap **")
    assert lib.remap_heap_create(c, out) == lib.REMAP_EINVAL
    assert words in err()
    assert out[0] == ffi.NULL


def test_create_rejects_null_and_model():
    out = ffi.new("remap_heap **")
    assert lib.remap_heap_create(ffi.NULL, out) == lib.REMAP_EINVAL
    assert lib.remap_heap_create(config(), ffi.NULL) == lib.REMAP_EINVAL
    c = config()
    c.model.object_size = ffi.NULL
    assert lib.remap_heap_create(c, out) == lib.REMAP_EINVAL
    assert "object_size" in err()
    c = config()
    c.model.struct_size = 8
    assert lib.remap_heap_create(c, out) == lib.REMAP_EINVAL
    assert "remap_object_model" in err()
    lib.remap_heap_destroy(ffi.NULL)


def test_config_from_a_caller_built_before_flags():
    # A runtime compiled against the first layout (ending at `model`) keeps
    # working: fields added later read as 0; its garbage past struct_size is
    # never read. Unknown flag bits are refused.
    out = ffi.new("remap_heap **")
    c = config()
    c.struct_size = ffi.offsetof("remap_heap_config", "flags")
    c.flags = 0xDEAD  # past the caller's struct_size: must be ignored
    assert lib.remap_heap_create(c, out) == 0, err()
    lib.remap_heap_destroy(out[0])
    c = config()
    c.struct_size = ffi.offsetof("remap_heap_config", "flags") - 8
    assert lib.remap_heap_create(c, out) == lib.REMAP_EINVAL
    assert "remap_heap_config" in err()
    c = config()
    c.flags = 0x100
    assert lib.remap_heap_create(c, out) == lib.REMAP_EINVAL
    assert "flags" in err()
    c = config()
    c.flags = lib.REMAP_HEAP_VERIFY_REFS
    assert lib.remap_heap_create(c, out) == 0, err()
    lib.remap_heap_destroy(out[0])


def test_info_and_reservation(heap):
    i = heap.info
    assert heap.base % GiB == 0  # DESIGN §3: GiB aligned
    assert (i.capacity, i.region_size, i.region_count) == (4 * MiB, 64 * KiB, 64)
    assert i.page_size == 4096 and i.phase == PHASE_IDLE
    assert i.backend == BACKEND_STW and i.fault_mode != 0
    assert (i.cycles, i.regions_free, i.bytes_allocated) == (0, 64, 0)


def test_auto_backend_is_resolved():
    h = Heap(backend=BACKEND_AUTO)
    try:
        assert h.info.backend != BACKEND_AUTO and h.info.fault_mode != 0
    finally:
        h.close()


def test_info_struct_size_rules(heap):
    info = ffi.new("remap_heap_info *")
    assert lib.remap_heap_get_info(heap.h, info) == lib.REMAP_EINVAL  # struct_size 0
    assert "remap_heap_info" in err()
    info.struct_size = ffi.offsetof("remap_heap_info", "phase")  # the first block only
    info.phase = 77
    assert lib.remap_heap_get_info(heap.h, info) == 0
    assert info.capacity == 4 * MiB and info.phase == 77  # not written past struct_size
    assert lib.remap_heap_get_info(ffi.NULL, info) == lib.REMAP_EINVAL
    assert lib.remap_heap_get_info(heap.h, ffi.NULL) == lib.REMAP_EINVAL


# --- allocation and marking ------------------------------------------------------


def test_acquire_retire_and_large(heap):
    s, e = heap.acquire()
    # Small-object regions from the top, large objects from the bottom
    # (test_region_placement.py).
    assert (s, e) == (heap.base + heap.info.capacity - 64 * KiB, heap.base + heap.info.capacity)
    assert heap.retire(s + 8, s + 64) == lib.REMAP_EINVAL
    assert heap.retire(s, e + 8) == lib.REMAP_EINVAL
    assert heap.retire(s, s + 4) == lib.REMAP_EINVAL
    assert heap.retire(s, s + 1024) == 0
    assert heap.get_info().bytes_allocated == 1024
    out = ffi.new("void **")
    assert lib.remap_alloc_large(heap.h, 1000, out) == lib.REMAP_EINVAL  # below the threshold
    assert lib.remap_alloc_large(heap.h, 100 * KiB, out) == 0
    big = int(ffi.cast("uintptr_t", out[0]))
    assert big == heap.base
    assert lib.remap_alloc_large(heap.h, 100 * KiB, ffi.NULL) == lib.REMAP_EINVAL
    assert lib.remap_region_acquire(heap.h, ffi.NULL, out) == lib.REMAP_EINVAL
    assert lib.remap_region_retire(ffi.NULL, out[0], out[0]) == lib.REMAP_EINVAL


def test_mark_checks(heap):
    s, _ = heap.acquire()
    put(s, 32)
    put(s + 32, 64)
    assert heap.retire(s, s + 96) == 0
    assert heap.mark(s + 4) == lib.REMAP_EINVAL and "aligned" in err()
    assert heap.mark(s + 96) == lib.REMAP_EINVAL and "top" in err()
    assert heap.mark(heap.base - 64) == lib.REMAP_EINVAL
    assert lib.remap_mark(ffi.NULL, ffi.NULL) == lib.REMAP_EINVAL
    put(s + 32, 65)
    assert heap.mark(s + 32) == lib.REMAP_EOBJMODEL
    put(s + 32, 64)
    assert heap.mark(s + 32) == 0 and heap.mark(s + 32) == 0
    put(s + 40, 8)
    assert heap.mark(s + 40) == lib.REMAP_EINVAL and "overlaps" in err()
    assert heap.mark(s) == 0
    assert lib.remap_clear_marks(heap.h) == 0


# --- phases -----------------------------------------------------------------------


def test_phase_rules(heap):
    s, _ = heap.acquire()
    put(s, 64)
    # An acquired region blocks prepare.
    assert lib.remap_prepare(heap.h) == lib.REMAP_EPHASE and "retire" in err()
    assert heap.retire(s, s + 64) == 0
    assert heap.mark(s) == 0
    st, _ = heap.forward(s)
    assert st == lib.REMAP_EPHASE and "IDLE" in err()
    assert lib.remap_flip(heap.h) == lib.REMAP_EPHASE and "IDLE" in err()
    for fn in (lib.remap_compact, lib.remap_compact_work, lib.remap_finish):
        assert fn(heap.h) == lib.REMAP_EPHASE and "COMPACTING" in err()
    assert lib.remap_prepare(heap.h) == 0
    assert heap.get_info().phase == PHASE_PREPARED
    assert lib.remap_prepare(heap.h) == lib.REMAP_EPHASE and "PREPARED" in err()
    assert heap.mark(s) == lib.REMAP_EPHASE and "PREPARED" in err()
    out = ffi.new("void **")
    assert lib.remap_region_acquire(heap.h, out, out) == lib.REMAP_EPHASE
    assert heap.forward(s) == (0, s)
    # clear_marks cancels the prepared cycle.
    assert lib.remap_clear_marks(heap.h) == 0
    assert heap.get_info().phase == PHASE_IDLE
    st, _ = heap.forward(s)
    assert st == lib.REMAP_EPHASE and "no forwarding" in err()
    assert lib.remap_touch(heap.h, ffi.cast("void *", s), 64) == 0  # a no-op outside COMPACTING
    for fn in (lib.remap_prepare, lib.remap_flip, lib.remap_compact, lib.remap_finish):
        assert fn(ffi.NULL) == lib.REMAP_EINVAL


def test_last_stats_struct_size(heap):
    st, s = heap.stats()
    assert st == 0 and s.cycle == 0
    st, s = heap.stats(size=8)
    assert st == lib.REMAP_EINVAL and "remap_cycle_stats" in err()
    st, s = heap.stats(size=ffi.sizeof("remap_cycle_stats") + 8)
    assert st == lib.REMAP_EINVAL
    assert lib.remap_heap_last_stats(heap.h, ffi.NULL) == lib.REMAP_EINVAL


# --- a whole stw cycle against a Python model --------------------------------------


def build_world(heap, rng, regions):
    """Fills `regions` regions with objects; returns (objects, live set)."""
    objs = []
    for _ in range(regions):
        s, e = heap.acquire()
        p = rng.choice([0.0, 0.3, 0.6, 0.97, 1.0])
        cur = s
        limit = e - rng.randrange(0, 3) * 4096
        while True:
            size = 16 + 8 * rng.randrange(0, 40)
            if cur + size > limit:
                break
            nrefs = min(rng.randrange(0, 4), size // 8 - 1)
            put(cur, size, nrefs)
            for w in range(8 + 8 * nrefs, size, 8):
                u64(cur + w)[0] = rng.getrandbits(64)
            objs.append([cur, size, nrefs, rng.random() < p])
            cur += size
        assert heap.retire(s, cur) == 0
    live = [o[0] for o in objs if o[3]]
    foreign = 0xDEAD0000
    for addr, _, nrefs, is_live in objs:
        for i in range(nrefs):
            k = rng.randrange(10)
            v = 0 if k == 0 else foreign if k == 1 else (rng.choice(live) if is_live else 0)
            u64(addr + 8 + 8 * i)[0] = v
    return objs, set(live)


def model_forwarding(heap, objs, dense):
    rs = heap.info.region_size
    per = {}
    for addr, size, _, is_live in objs:
        r = (addr - heap.base) // rs
        top = per.setdefault(r, [0, 0])
        top[0] += size if is_live else 0
        top[1] = addr + size - (heap.base + r * rs)
    fwd, nxt = {}, {}
    cls = {}
    for r, (lb, top) in per.items():
        cls[r] = "empty" if lb == 0 else "dense" if lb >= dense * top else "frag"
    for addr, size, _, is_live in objs:
        if not is_live:
            continue
        r = (addr - heap.base) // rs
        if cls[r] == "frag":
            n = nxt.setdefault(r, heap.base + r * rs)
            fwd[addr] = n
            nxt[r] = n + size
        else:
            fwd[addr] = addr
    return fwd, cls


@pytest.mark.parametrize("seed", range(6))
def test_stw_cycle_matches_model(seed):
    rng = random.Random(seed)
    h = Heap(capacity=2 * MiB)
    try:
        objs, live = build_world(h, rng, regions=12)
        for a in live:
            assert h.mark(a) == 0, err()
        fwd, cls = model_forwarding(h, objs, 0.90)
        before = h.image()
        assert lib.remap_prepare(h.h) == 0, err()
        for a, n in fwd.items():
            assert h.forward(a) == (0, n)
        assert h.forward(0xDEAD0000) == (0, 0xDEAD0000)
        dead = next((o[0] for o in objs if not o[3]), None)
        if dead is not None:
            assert h.forward(dead)[0] == lib.REMAP_EINVAL
        # The expected image, from the snapshot.
        rs = h.info.region_size
        want = bytearray(before)
        for r, c in cls.items():
            if c != "dense":
                want[r * rs : (r + 1) * rs] = bytes(rs)
        for addr, size, nrefs, is_live in objs:
            if not is_live:
                continue
            off, dst = addr - h.base, fwd[addr] - h.base
            want[dst : dst + size] = before[off : off + size]
            for i in range(nrefs):
                so = off + 8 + 8 * i
                v = int.from_bytes(before[so : so + 8], "little")
                nv = fwd.get(v, v)
                want[dst + 8 + 8 * i : dst + 16 + 8 * i] = nv.to_bytes(8, "little")
        assert lib.remap_flip(h.h) == 0, err()
        got = h.image()
        assert got == bytes(want)
        info = h.get_info()
        assert (info.phase, info.cycles) == (PHASE_IDLE, 1)
        st, s = h.stats()
        assert st == 0 and s.cycle == 1 and s.backend == BACKEND_STW
        assert s.live_bytes == sum(o[1] for o in objs if o[3])
        assert s.regions_fragmented == sum(1 for c in cls.values() if c == "frag")
        assert s.regions_dense == sum(1 for c in cls.values() if c == "dense")
        assert s.regions_empty == sum(1 for c in cls.values() if c == "empty")
        assert s.prepare_ns > 0 and s.flip_pause_ns > 0
        # Forwarding outlives the stw flip (issue 12.3: flip, then forward the
        # roots, on every backend) until the next cycle starts.
        for a, n in fwd.items():
            assert h.forward(a) == (0, n)
        assert lib.remap_prepare(h.h) == 0
        assert lib.remap_flip(h.h) == 0
        assert h.get_info().bytes_allocated == 0  # nothing marked: all regions free
    finally:
        h.close()


def test_visit_nonsense_is_refused_heap_usable():
    bad = {"on": False}

    @ffi.callback("void(void *, const void *, remap_visit_fn, void *)")
    def visit(ctx, obj, v, vctx):
        n = int(ffi.cast("uint64_t *", obj)[0]) >> 32
        for i in range(n):
            v(vctx, 8 + 8 * i)
        if bad["on"]:
            v(vctx, 4096)

    c = config()
    c.model.visit_ref_offsets = visit
    out = ffi.new("remap_heap **")
    assert lib.remap_heap_create(c, out) == 0
    hp = out[0]
    try:
        s, e = ffi.new("void **"), ffi.new("void **")
        assert lib.remap_region_acquire(hp, s, e) == 0
        a = int(ffi.cast("uintptr_t", s[0]))
        put(a, 64, 1)
        put(a + 64, 64, 1)
        u64(a + 8)[0] = a + 64
        assert lib.remap_region_retire(hp, s[0], ffi.cast("void *", a + 128)) == 0
        assert lib.remap_mark(hp, ffi.cast("void *", a + 64)) == 0
        # Slot offsets are checked when the object is marked: refused, and
        # nothing changes.
        bad["on"] = True
        assert lib.remap_mark(hp, ffi.cast("void *", a)) == lib.REMAP_EOBJMODEL
        assert "offset 4096" in err()
        bad["on"] = False
        assert lib.remap_mark(hp, ffi.cast("void *", a)) == 0, err()
        assert lib.remap_prepare(hp) == 0, err()
        assert lib.remap_flip(hp) == 0
        assert u64(a + 8)[0] == a + 64  # dense region: in place, slot unchanged
    finally:
        lib.remap_heap_destroy(hp)


def test_forward_rejects_interior_and_misaligned(heap):
    s, _ = heap.acquire()
    put(s, 64)
    assert heap.retire(s, s + 64) == 0
    assert heap.mark(s) == 0
    assert lib.remap_prepare(heap.h) == 0
    assert heap.forward(s) == (0, s)
    for bad in (s + 4, s + 8, s + 64):
        assert heap.forward(bad)[0] == lib.REMAP_EINVAL
    assert lib.remap_forward(heap.h, ffi.cast("void *", s), ffi.NULL) == lib.REMAP_EINVAL
    assert (
        lib.remap_forward(ffi.NULL, ffi.cast("void *", s), ffi.new("void **")) == lib.REMAP_EINVAL
    )


def test_large_objects_and_tails_across_a_cycle():
    h = Heap(capacity=2 * MiB)  # 32 regions of 64 KiB
    try:
        out = ffi.new("void **")
        assert lib.remap_alloc_large(h.h, 100 * KiB, out) == 0
        live_big = int(ffi.cast("uintptr_t", out[0]))
        assert lib.remap_alloc_large(h.h, 40 * KiB, out) == 0
        dead_big = int(ffi.cast("uintptr_t", out[0]))
        put(live_big, 100 * KiB, 1)
        put(dead_big, 40 * KiB)
        u64(dead_big + 4096)[0] = 0x1234  # must read zero once the region is free
        # A fragmented region: 8 objects of 1 KiB, every other one live.
        s, _ = h.acquire()
        for i in range(8):
            put(s + i * KiB, KiB, 1)
            u64(s + i * KiB + 8)[0] = live_big
        assert h.retire(s, s + 8 * KiB) == 0
        u64(live_big + 8)[0] = s + 3 * KiB  # the large object refers to a moving one
        for i in (1, 3, 5, 7):
            assert h.mark(s + i * KiB) == 0
        assert h.mark(live_big) == 0
        assert h.mark(live_big + 4096) == lib.REMAP_EINVAL
        assert lib.remap_prepare(h.h) == 0, err()
        assert h.forward(s + 3 * KiB) == (0, s + KiB)
        assert h.forward(live_big) == (0, live_big)
        assert h.forward(dead_big)[0] == lib.REMAP_EINVAL
        assert lib.remap_flip(h.h) == 0, err()
        assert u64(live_big + 8)[0] == s + KiB
        assert u64(s + 8)[0] == live_big  # moved object, slot into the large object
        assert u64(dead_big + 4096)[0] == 0
        _, st = h.stats()
        assert (st.regions_large, st.regions_fragmented) == (1, 1)
        assert st.regions_empty == 1  # the dead large object's region
        # The compacted region's free tail is handed out first, and reads zero.
        t, e = h.acquire()
        assert (t, e) == (s + 4 * KiB, s + 64 * KiB)
        assert bytes(ffi.buffer(ffi.cast("char *", t), e - t)) == bytes(e - t)
        assert h.retire(t, t + 64) == 0
        # The dead large object's region is free again.
        assert lib.remap_alloc_large(h.h, 40 * KiB, out) == 0
        assert int(ffi.cast("uintptr_t", out[0])) == dead_big
    finally:
        h.close()

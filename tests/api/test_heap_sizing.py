"""Heap sizing through the C ABI (issue 16): a heap reserves max_capacity
and uses `capacity` of it; remap_heap_resize grows it between cycles (and
in the IDLE phase, beside mutators), shrinks it after a cycle by dropping
free regions at the end (their memory returned to the OS, the range kept),
and remap_heap_trim returns free regions' pages and the engine's page pool.
remap_heap_info reports capacity, max_capacity, min_capacity,
committed_bytes, pool_bytes and regions_free. The same on every backend;
the flip costs the same whatever the maximum.

The heaps here are hand-built through cffi (test_slot_values' object model:
word 0 = size | nrefs << 32, slots follow). Concurrency is the stress
harness's (bindings/testing/stress.h, max_heap_mib): C++ mutators allocate, read
and write while the driver resizes after every cycle, and every object is
checked against a model outside the heap.
"""

from __future__ import annotations

import ctypes
import statistics

import pytest

from libremap.cabi import ffi, lib

from support.handbuilt import (
    PHASE_COMPACTING,
    PHASE_IDLE,
    acquire,
    cycle,
    err,
    info,
    make_heap,
    obj,
    retire,
    stats,
    u64,
)
from support.stress import check, stress

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
RS = 64 * KiB  # make_heap's region size
ALL_BACKENDS = ["move", "copy", "minor", "sigsegv", "stw"]
SIZE_MAX = 2**64 - 1

_libc = ctypes.CDLL(None, use_errno=True)


def resident_pages(addr: int, length: int) -> int:
    """Pages of [addr, addr + length) that hold memory, by mincore(2): for
    the memfd heaps, pages in the file's page cache."""
    pages = length // 4096
    vec = (ctypes.c_ubyte * pages)()
    rc = _libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(length), vec)
    assert rc == 0, ctypes.get_errno()
    return sum(v & 1 for v in vec)


def heap_or_skip(backend: str, **kw):
    st, h = make_heap(backend, **kw)
    if st != 0:
        if lib.REMAP_EUNSUPPORTED == st or lib.REMAP_EPERM == st:
            pytest.skip(f"{backend}: {err()}")
        pytest.fail(f"remap_heap_create: {err()}")
    return h


def fill_region(h, objects: int = 4, size: int = 128) -> tuple[int, list[int]]:
    """Acquires a region, writes `objects` objects with a recognisable
    payload (word 1 = the object's own address), retires it."""
    s, _ = acquire(h)
    out = []
    for i in range(objects):
        a = s + i * size
        obj(a, size)
        u64(a)[1] = a
        out.append(a)
    retire(h, s, s + objects * size)
    return s, out


def test_a_heap_is_fixed_unless_it_reserves_more():
    h = heap_or_skip("stw", capacity=1 * MiB)
    try:
        i = info(h)
        assert (i.capacity, i.max_capacity, i.min_capacity) == (1 * MiB, 1 * MiB, RS)
        assert lib.remap_heap_resize(h, 2 * MiB) == lib.REMAP_EINVAL
        assert "max_capacity 1048576" in err()
        assert lib.remap_heap_resize(h, 1 * MiB) == 0  # the same capacity: nothing to do
    finally:
        lib.remap_heap_destroy(h)
    for bad in (512 * KiB, 1 * MiB + 4096):
        st, h = make_heap("stw", capacity=1 * MiB, max_capacity=bad)
        assert st == lib.REMAP_EINVAL and h is None
        assert "max_capacity" in err()


def test_a_caller_built_before_max_capacity_gets_a_fixed_heap():
    # Its struct ends at ref_check_value: whatever follows in memory is not
    # read (here a max_capacity the library would otherwise accept).
    c = ffi.new("remap_heap_config *")
    lib.remap_heap_config_init(c)
    c.capacity = 1 * MiB
    c.region_size = RS
    c.backend = 5
    c.model.object_size = ffi.cast("size_t(*)(void *, const void *)", 1)  # never called
    c.max_capacity = 8 * MiB
    c.struct_size = ffi.offsetof("remap_heap_config", "max_capacity")
    out = ffi.new("remap_heap **")
    assert lib.remap_heap_create(c, out) == 0, err()
    try:
        assert info(out[0]).max_capacity == 1 * MiB
    finally:
        lib.remap_heap_destroy(out[0])


def test_info_accepts_the_sizes_before_the_sizing_fields():
    h = heap_or_skip("stw", capacity=1 * MiB, max_capacity=4 * MiB)
    try:
        raw = ffi.new("char[]", ffi.sizeof("remap_heap_info"))
        i = ffi.cast("remap_heap_info *", raw)
        for end in ("max_capacity", "committed_bytes"):
            ffi.memmove(raw, b"\xab" * ffi.sizeof("remap_heap_info"), ffi.sizeof("remap_heap_info"))
            n = ffi.offsetof("remap_heap_info", end)
            i.struct_size = n
            assert lib.remap_heap_get_info(h, i) == 0, err()
            assert i.struct_size == n and i.capacity == 1 * MiB
            assert ffi.buffer(raw)[n:] == b"\xab" * (ffi.sizeof("remap_heap_info") - n)
        i.struct_size = ffi.sizeof("remap_heap_info")
        assert lib.remap_heap_get_info(h, i) == 0
        assert (i.max_capacity, i.min_capacity, i.committed_bytes) == (4 * MiB, RS, 0)
    finally:
        lib.remap_heap_destroy(h)


def test_resize_refuses_what_it_cannot_do_and_changes_nothing():
    h = heap_or_skip("move", capacity=1 * MiB, max_capacity=4 * MiB)
    try:
        for bad in (0, RS + 8, 4 * MiB + RS):
            assert lib.remap_heap_resize(h, bad) == lib.REMAP_EINVAL, bad
        assert lib.remap_heap_resize(ffi.NULL, RS) == lib.REMAP_EINVAL
        top, objs = fill_region(h)  # the highest region: nothing below it can go
        assert top == int(ffi.cast("uintptr_t", info(h).base)) + 1 * MiB - RS
        assert info(h).min_capacity == 1 * MiB
        assert lib.remap_heap_resize(h, 512 * KiB) == lib.REMAP_EBUSY
        msg = err()
        assert f"region 15 at {top:#x}" in msg and "RETIRED" in msg, msg
        assert "smallest capacity now is 1048576" in msg, msg
        assert info(h).capacity == 1 * MiB
        # Not while a cycle runs: its plan and page states are for its size.
        assert lib.remap_mark(h, ffi.cast("void *", objs[0])) == 0
        assert lib.remap_prepare(h) == 0, err()
        assert lib.remap_heap_resize(h, 2 * MiB) == lib.REMAP_EPHASE
        assert "PREPARED" in err()
        assert lib.remap_heap_trim(h, 0) == lib.REMAP_EPHASE
        assert lib.remap_flip(h) == 0, err()
        assert info(h).phase == PHASE_COMPACTING
        assert lib.remap_heap_resize(h, 2 * MiB) == lib.REMAP_EPHASE
        assert "COMPACTING" in err()
        assert lib.remap_compact(h) == 0 and lib.remap_finish(h) == 0, err()
        assert info(h).capacity == 1 * MiB
        # A cycle begun beside the mutators: the heap may grow, not shrink.
        assert lib.remap_cycle_begin(h) == 0, err()
        assert lib.remap_heap_resize(h, 2 * MiB) == 0, err()
        assert lib.remap_heap_resize(h, 1 * MiB) == lib.REMAP_EPHASE
        assert "remap_cycle_begin" in err()
        assert info(h).min_capacity == 2 * MiB
        assert lib.remap_clear_marks(h) == 0
        assert lib.remap_heap_resize(h, 1 * MiB) == 0, err()
    finally:
        lib.remap_heap_destroy(h)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_grow_fill_collect_shrink_and_grow_again(backend):
    h = heap_or_skip(backend, capacity=1 * MiB, max_capacity=4 * MiB)
    try:
        base = int(ffi.cast("uintptr_t", info(h).base))
        old = [fill_region(h) for _ in range(16)]
        s, e = ffi.new("void **"), ffi.new("void **")
        assert lib.remap_region_acquire(h, s, e) == lib.REMAP_ENOMEM
        assert "remap_heap_resize can grow it to max_capacity 4194304" in err()
        # Grow in IDLE: 48 free regions more, reading zero, taken bottom-up
        # above the full old area (the end stays free as long as it can).
        assert lib.remap_heap_resize(h, 4 * MiB) == 0, err()
        i = info(h)
        assert (i.capacity, i.region_count, i.regions_free) == (4 * MiB, 64, 48)
        young = []
        for k in range(8):
            start, objs = fill_region(h)
            assert start == base + (16 + k) * RS
            young.append(objs)
        assert info(h).min_capacity == 24 * RS
        # A cycle in which the young objects die and one old object per region lives.
        roots = [objs[1] for _, objs in old]
        new = cycle(h, roots)
        for r, n in zip(roots, new):
            assert int(u64(n)[1]) == r, "an object's payload changed"
        assert info(h).min_capacity <= 1 * MiB
        # Memory a runtime left in a free region at the end (its own garbage):
        # the shrink must give it back, not just stop counting it.
        garbage = base + 3 * MiB
        for p in range(0, RS, 4096):
            u64(garbage + p)[0] = 0xDEAD
        assert resident_pages(garbage, RS) == RS // 4096
        assert lib.remap_heap_resize(h, 1 * MiB) == 0, err()
        i = info(h)
        assert (i.capacity, i.region_count, i.max_capacity) == (1 * MiB, 16, 4 * MiB)
        assert resident_pages(base + 1 * MiB, 3 * MiB) == 0
        assert i.committed_bytes <= 1 * MiB
        # The heap still works at its new size, and grows again with zeros.
        new = cycle(h, new)
        for r, n in zip(roots, new):
            assert int(u64(n)[1]) == r
        assert lib.remap_heap_resize(h, 4 * MiB) == 0, err()
        assert all(int(u64(garbage + p)[0]) == 0 for p in range(0, RS, 8))
        fill_region(h)
        new = cycle(h, new)
        assert [int(u64(n)[1]) for n in new] == roots
        assert info(h).phase == PHASE_IDLE
    finally:
        lib.remap_heap_destroy(h)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_trim_returns_free_regions_and_the_pool(backend):
    h = heap_or_skip(backend, capacity=2 * MiB)
    try:
        base = int(ffi.cast("uintptr_t", info(h).base))
        regions = [fill_region(h)[1] for _ in range(8)]
        new_roots = cycle(h, [objs[0] for objs in regions])
        i = info(h)
        if backend in ("move", "copy"):
            assert i.pool_bytes > 0, "the engine keeps a page pool between cycles"
        else:
            assert i.pool_bytes == 0
        # A free region and a retired region's free tail that hold pages
        # (the move backend installs free tails with their data; here the
        # "runtime" wrote them): trim gives them back, and they read zero.
        free_region = base
        for p in range(0, RS, 4096):
            u64(free_region + p)[0] = 1
        tail = (new_roots[0] & ~(RS - 1)) + 4096  # the survivor's region, past its page
        for p in range(0, RS - 4096, 4096):
            u64(tail + p)[0] = 1
        before = info(h).committed_bytes
        assert before >= 2 * RS - 4096
        assert lib.remap_heap_trim(h, SIZE_MAX) == 0, err()  # the pool stays
        i = info(h)
        assert i.committed_bytes <= before - (2 * RS - 4096)
        assert resident_pages(free_region, RS) == 0 and resident_pages(tail, RS - 4096) == 0
        assert int(u64(free_region)[0]) == 0 and int(u64(tail)[0]) == 0
        assert int(u64(new_roots[0])[1]) == regions[0][0], "trim touched live data"
        assert (i.pool_bytes > 0) == (backend in ("move", "copy"))
        assert lib.remap_heap_trim(h, 0) == 0, err()
        assert info(h).pool_bytes == 0
        # The next cycle works with an empty pool (it allocates its buffers).
        new = cycle(h, [objs[0] for objs in regions])
        assert [int(u64(n)[1]) for n in new] == [objs[0] for objs in regions]
    finally:
        lib.remap_heap_destroy(h)


def fragmented_heap(backend: str, capacity: int, max_capacity: int):
    h = heap_or_skip(backend, capacity=capacity, max_capacity=max_capacity)
    roots = []
    for _ in range(capacity // RS):
        s, _e = acquire(h)
        for j in range(0, RS, 4096):
            obj(s + j, 128)
            if j % 8192 == 0:
                roots.append(s + j)
        retire(h, s, s + RS)
    return h, roots


@pytest.mark.parametrize("backend", ["move", "copy", "minor", "sigsegv"])
def test_the_flip_costs_the_same_whatever_the_maximum(backend):
    # The anonymous flip moves the whole reservation's page tables and
    # registers all of it; the shared layouts re-map the capacity's runs.
    # Neither may cost more for a reservation a thousand times larger.
    medians = {}
    for mx in (64 * MiB, 64 * GiB):
        h, roots = fragmented_heap(backend, 64 * MiB, mx)
        try:
            pauses = []
            for _ in range(7):
                roots = cycle(h, roots)
                pauses.append(stats(h).flip_pause_ns)
            medians[mx] = statistics.median(pauses[1:])
        finally:
            lib.remap_heap_destroy(h)
    assert medians[64 * GiB] <= 3 * medians[64 * MiB] + 200_000, medians


STRESS = [
    ("move", "sigbus"),
    ("move", "thread"),
    ("copy", "sigbus"),
    ("minor", "sigbus"),
    ("sigsegv", "auto"),
    ("stw", "auto"),
]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend,fault_mode", STRESS, ids=[f"{b}-{m}" for b, m in STRESS])
def test_growth_and_shrink_across_cycles_with_mutators_running(backend, fault_mode):
    # After each cycle the driver grows the heap (odd cycles) or shrinks it
    # to min_capacity (even ones) while two mutators allocate, read and
    # write; every object is checked against the model at every safepoint,
    # and must lie below the capacity of the moment.
    grows = shrinks = 0
    for seed in (1, 2, 3):
        r = stress(
            backend,
            fault_mode,
            1,
            2,
            12,
            seed=seed,
            max_heap_mib=12,
            evacuate=True,
            alloc_fraction=0.3,
            write_fraction=0.3,
        )
        check(r, 12)
        assert r["capacity_max"] > 4 * MiB
        grows += r["grows"]
        shrinks += r["shrinks"]
    assert grows >= 3 * 5, "the heap did not grow after each odd cycle"
    assert shrinks > 0, "no shrink ever found free regions at the end"


FORK_CODE = """
import os, sys
sys.path.insert(0, {tests!r})
from support.handbuilt import make_heap, info, err, u64
from libremap.cabi import ffi, lib
MiB = 1 << 20
st, h = make_heap({backend!r}, capacity=1 * MiB, max_capacity=4 * MiB)
if st != 0:
    print("unsupported: " + err()); sys.exit({unsupported})
base = int(ffi.cast("uintptr_t", info(h).base))
pid = os.fork()
if pid == 0:
    # The child grows its heap and writes into a region the parent does not
    # have yet: its own memory, not the parent's file.
    ok = lib.remap_heap_resize(h, 4 * MiB) == 0
    u64(base + 3 * MiB)[0] = 0xC0FFEE
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert lib.remap_heap_resize(h, 4 * MiB) == 0, err()
print("parent reads", hex(int(u64(base + 3 * MiB)[0])))
assert int(u64(base + 3 * MiB)[0]) == 0, "the child's store reached the parent's heap"
lib.remap_heap_destroy(h)
print("{{}}")
"""


@pytest.mark.parametrize("backend", ["minor", "sigsegv", "move"])
def test_a_forked_child_that_grows_its_heap_stays_out_of_the_parents(backend):
    # The memfd heaps are MAP_SHARED: at a fork the child's heap range is
    # replaced by a private snapshot. It must cover the whole reservation,
    # or a child that grows writes into the parent's file.
    from pathlib import Path

    from support.differential import CHILD_UNSUPPORTED, run_child

    tests = str(Path(__file__).resolve().parents[1])  # for support.*
    run_child(FORK_CODE.format(tests=tests, backend=backend, unsupported=CHILD_UNSUPPORTED))

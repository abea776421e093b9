"""What the library does with the values in reference slots (issue 12).

The promise (libremap.h, remap_object_model): a slot value is decoded with
the heap's reference encoding (remap_heap_config.ref_*); a reference to a
marked object start is forwarded and keeps its tag bits; every other value
is left exactly as it is — NULL, values outside the heap, immediates, and
in-heap values that are not a marked start (interior or stale pointers),
which are counted in remap_cycle_stats.slots_stray when they point into
memory that moves or is freed, and refused at prepare under
REMAP_HEAP_VERIFY_REFS. The same on every backend, fault mode and producer
(GC workers, faulting mutators, stw, large-object pages).

Part 1 runs the synthetic heap with three real-world tagging schemes and
in-heap immediates through the differential check against stw. Part 2 pins
the rules on hand-built heaps through cffi.
"""

from __future__ import annotations

import itertools

import pytest

from libremap.cabi import ffi, lib
from libremap.synthetic import KiB, MiB

from support.differential import CONCURRENT_BACKENDS, FAULT_MODES, build, check_case
from support.handbuilt import (
    PHASE_IDLE,
    acquire,
    cycle,
    err,
    forward,
    info,
    make_heap,
    model_lies,
    obj,
    retire,
    stats,
    u64,
)

# --- part 1: tagged graphs, every backend x fault mode, against stw ----------------

TAGGINGS = ["none", "guile", "v8", "lowtag"]
BASE = {"capacity": 4 * MiB, "region_size": 64 * KiB, "immediate_fraction": 0.3, "max_refs": 6}
COMBOS = list(itertools.product(CONCURRENT_BACKENDS, FAULT_MODES, (1, 2)))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("tagging", TAGGINGS)
@pytest.mark.parametrize(
    "backend,fault_mode,gc_threads", COMBOS, ids=[f"{b}-{m}-gc{g}" for b, m, g in COMBOS]
)
def test_tagged_graphs_match_stw(tagging, backend, fault_mode, gc_threads):
    # Three ways of producing pages (GC workers; faulting mutators first;
    # compaction beside a mutator traversal), two cycles with mutation, and
    # large objects with slots in one of them.
    for i, how in enumerate(("collect", "mutator", "concurrent")):
        params = dict(BASE, tagging=tagging, seed=700 + 10 * i, live_ratio=0.3 + 0.2 * i)
        if i == 1:
            params.update(large_objects=3, large_object_size=40 * KiB)
        check_case(backend, fault_mode, gc_threads, params, how, cycles=2)


@pytest.mark.parametrize("tagging", TAGGINGS)
def test_stw_keeps_immediates_and_tags(tagging):
    # The reference itself: stw leaves every immediate and tag as it was (the
    # checksum hashes immediates raw and references as target id + tag bits).
    h = build(dict(BASE, tagging=tagging, seed=9, live_ratio=0.3), backend="stw")
    for _ in range(3):
        want = h.checksum()
        h.collect()
        assert h.checksum() == want
        h.verify()
        h.mutate(kill_fraction=0.4, grow_bytes=256 * KiB)
    st = h.stats()
    if tagging == "none":
        # Unaligned in-heap values: not a start, left alone, and counted
        # (those into regions that move or are freed).
        assert st["slots_stray"] > 0
    else:
        # The encoding tells fixnums and Smis from references: none is stray.
        assert st["slots_stray"] == 0


@pytest.mark.parametrize("backend", ["move", "copy", "stw"])
def test_smis_equal_to_object_starts_are_not_forwarded(backend):
    # V8-like: a Smi's bits equal a live object's address. Without the
    # encoding the library would forward it (the value is a marked start);
    # with it, it is a value and must survive unchanged while the objects move.
    params = dict(BASE, tagging="v8", seed=3, live_ratio=0.2, immediate_fraction=0.6)
    h = build(params, backend=backend)
    want = h.checksum()
    h.collect()
    assert h.checksum() == want
    assert h.stats()["regions_fragmented"] > 0  # objects did move


# --- part 2: the rules on hand-built heaps ---------------------------------------


def build_fragmented(h):
    """One region: a dead object, then A (live, 2 slots), then B (live).
    A's slots: an interior pointer into B, and B itself. Returns A, B."""
    s, _ = acquire(h)
    dead, a, b = s, s + 256, s + 512
    obj(dead, 256)
    obj(a, 256, nrefs=2)
    obj(b, 256)
    u64(b)[5] = 0x1234
    retire(h, s, s + 768)
    u64(a)[1] = b + 8  # interior: not a marked start
    u64(a)[2] = b
    return a, b


@pytest.mark.parametrize("backend", ["move", "copy", "minor", "sigsegv", "stw"])
def test_interior_pointer_is_left_alone_and_counted(backend):
    st, h = make_heap(backend)
    if st != 0:
        pytest.skip(f"{backend}: {err()}")
    try:
        a, b = build_fragmented(h)
        na, nb = cycle(h, [a, b])
        assert (na, nb) == (a - 256, b - 256)  # both slid over the dead object
        assert int(u64(na)[2]) == nb, "the reference was not forwarded"
        assert int(u64(na)[1]) == b + 8, "an interior pointer was rewritten"
        assert int(u64(nb)[5]) == 0x1234
        assert stats(h).slots_stray == 1
    finally:
        lib.remap_heap_destroy(h)


def test_verify_refs_refuses_a_stray_value_naming_the_slot():
    st, h = make_heap("stw", flags=lib.REMAP_HEAP_VERIFY_REFS)
    assert st == 0, err()
    try:
        a, b = build_fragmented(h)
        for r in (a, b):
            assert lib.remap_mark(h, ffi.cast("void *", r)) == 0
        assert lib.remap_prepare(h) == lib.REMAP_EOBJMODEL
        msg = err()
        assert "offset 8" in msg and hex(a) in msg and hex(b + 8) in msg, msg
        # Nothing changed: the heap is IDLE, usable, and the values are there.
        assert info(h).phase == PHASE_IDLE
        assert int(u64(a)[1]) == b + 8
        u64(a)[1] = 0
        assert lib.remap_clear_marks(h) == 0
        cycle(h, [a, b])
    finally:
        lib.remap_heap_destroy(h)


@pytest.mark.parametrize("backend", ["move", "stw"])
def test_tag_bits_survive_and_immediates_stay(backend):
    # V8-like encoding on a hand-built heap: pointer|1 and pointer|3 are
    # forwarded with their tags, an even value equal to B's address is a Smi.
    st, h = make_heap(backend, ref_check_mask=1, ref_check_value=1, ref_tag_mask=3)
    if st != 0:
        pytest.skip(f"{backend}: {err()}")
    try:
        s, _ = acquire(h)
        dead, a, b = s, s + 256, s + 512
        obj(dead, 256)
        obj(a, 256, nrefs=3)
        obj(b, 256)
        retire(h, s, s + 768)
        u64(a)[1], u64(a)[2], u64(a)[3] = b | 1, b | 3, b
        na, nb = cycle(h, [a, b])
        assert (int(u64(na)[1]), int(u64(na)[2]), int(u64(na)[3])) == (nb | 1, nb | 3, b)
        # remap_forward_value applies the same rule to a root.
        out = ffi.new("uint64_t *")
        assert lib.remap_forward_value(h, b | 1, out) == 0 and out[0] == nb | 1
        assert lib.remap_forward_value(h, b, out) == 0 and out[0] == b  # a Smi
        assert lib.remap_forward_value(h, (b + 8) | 1, out) == 0 and out[0] == (b + 8) | 1
    finally:
        lib.remap_heap_destroy(h)


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("ref_tag_mask", 1 << 12, "inside the address"),
        ("ref_tag_mask", 8, "inside the address"),
        ("ref_check_value", 2, "outside ref_check_mask"),
    ],
)
def test_encoding_is_validated(field, value, words):
    st, h = make_heap("stw", ref_check_mask=1, **{field: value})
    assert st == lib.REMAP_EINVAL and h is None
    assert words in err()


def test_high_tag_bits_are_allowed():
    # NaN-boxing style: a tag in the top bits.
    st, h = make_heap("stw", ref_tag_mask=0xFFFF << 48)
    assert st == 0, err()
    lib.remap_heap_destroy(h)


# --- the cycle order (issue 12.3) -----------------------------------------------


@pytest.mark.parametrize("backend", ["move", "copy", "minor", "sigsegv", "stw"])
def test_flip_then_forward_works_on_every_backend(backend):
    st, h = make_heap(backend)
    if st != 0:
        pytest.skip(f"{backend}: {err()}")
    try:
        a, b = build_fragmented(h)
        u64(a)[1] = 0
        na, _ = cycle(h, [a, b])  # flip, then remap_forward: asserts inside
        # Still valid after the cycle ended, until the next one starts.
        assert forward(h, a) == (0, na)
        assert lib.remap_mark(h, ffi.cast("void *", na)) == 0  # the next cycle starts
        st, _ = forward(h, a)
        assert st == lib.REMAP_EPHASE and "no forwarding" in err()
        assert lib.remap_clear_marks(h) == 0
    finally:
        lib.remap_heap_destroy(h)


# --- the object model is checked where it is used (issue 12.5) --------------------


def _lying_cycle(mode, nslots):
    """A heap with one object of `nslots` slots under a lying model: the
    mark must fail cleanly or the cycle complete; either way the heap stays
    usable for an honest cycle afterwards."""
    st, h = make_heap("stw")
    assert st == 0, err()
    try:
        s, _ = acquire(h)
        size = 8 + 8 * nslots + 64
        obj(s, size, nrefs=nslots)
        obj(s + size, 64)
        retire(h, s, s + size + 64)
        model_lies.clear()
        model_lies["mode"] = mode
        status = lib.remap_mark(h, ffi.cast("void *", s))
        message = err()
        model_lies["mode"] = None
        if status == 0:
            lib.remap_clear_marks(h)
        cycle(h, [s, s + size])  # honest now: works
        return status, message
    finally:
        model_lies["mode"] = None
        lib.remap_heap_destroy(h)


def test_offsets_out_of_object_on_a_second_visit_are_refused():
    # More than 64 slots: the library visits twice. Today's fix: the second
    # visit is checked too (it used to write the refs bitmap out of bounds).
    status, message = _lying_cycle("second_visit_out", 100)
    assert status == lib.REMAP_EOBJMODEL and "second visit" in message, message


@pytest.mark.parametrize("nslots", [3, 100])
def test_an_offset_past_the_object_is_refused(nslots):
    status, message = _lying_cycle("too_many", nslots)
    assert status == lib.REMAP_EOBJMODEL and "outside the object" in message, message


@pytest.mark.parametrize("nslots", [3, 100])
def test_duplicate_offsets_are_harmless(nslots):
    status, _ = _lying_cycle("duplicates", nslots)
    assert status == 0


def test_object_size_changing_between_calls_is_refused_or_harmless():
    # The library asks once per mark; a size that runs past allocated
    # memory is refused, one that fits is what is moved.
    for nslots in (1, 2, 3):
        status, message = _lying_cycle("size_flips", nslots)
        assert status in (0, lib.REMAP_EOBJMODEL, lib.REMAP_EINVAL), message


# --- bounded tables, info (issue 12.5, 12.8) ---------------------------------------


def test_a_capacity_whose_tables_do_not_fit_is_refused_at_once():
    import resource
    import time

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    st, h = make_heap("stw", capacity=16 << 40)
    assert st == lib.REMAP_ENOMEM and h is None, err()
    assert "tables" in err() and "MiB" in err()
    assert time.monotonic() - t0 < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB


def test_info_reports_the_effective_large_object_threshold():
    st, h = make_heap("stw", flags=lib.REMAP_HEAP_PIN_LARGE)
    assert st == 0, err()
    try:
        i = info(h)
        assert i.large_object_threshold == 32 * KiB  # region_size / 2
        assert i.flags == lib.REMAP_HEAP_PIN_LARGE
    finally:
        lib.remap_heap_destroy(h)


@pytest.mark.parametrize("backend", ["move", "copy", "minor", "sigsegv", "stw"])
def test_acquired_memory_reads_zero_after_cycles(backend):
    # libremap.h: memory from remap_region_acquire reads as zero, on every
    # backend and after cycles, when the runtime writes only below its cursor.
    st, h = make_heap(backend, capacity=2 * MiB)
    if st != 0:
        pytest.skip(f"{backend}: {err()}")
    try:
        for round_ in range(3):
            keep = []
            while True:
                s_, e_ = ffi.new("void **"), ffi.new("void **")
                if lib.remap_region_acquire(h, s_, e_) != 0:
                    break
                s = int(ffi.cast("uintptr_t", s_[0]))
                e = int(ffi.cast("uintptr_t", e_[0]))
                buf = ffi.buffer(ffi.cast("char *", s), e - s)
                assert buf[:] == bytes(e - s), f"{backend} round {round_}: acquired bytes not zero"
                a = s
                while e - a >= 128:
                    obj(a, 128)
                    u64(a)[3] = 0xDEADBEEF  # garbage to be left behind
                    if (a // 128) % 3 == 0:
                        keep.append(a)
                    a += 128
                retire(h, s, a)
                if len(keep) > 600:
                    break
            cycle(h, keep)
    finally:
        lib.remap_heap_destroy(h)

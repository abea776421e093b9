"""remap_wait_idle: a thread (a mutator whose allocation failed, say) blocks
until no cycle is running. It returns at once when IDLE, REMAP_EAGAIN when
its timeout passes first, REMAP_EPHASE on a BROKEN heap, and it is woken by
every way a cycle ends: finish, a flip that completes the cycle (stw, or a
cycle that moves nothing), and a prepared cycle cancelled. (A BROKEN heap:
tests/native/test_fault_failures.cpp, expect_broken_finish.)"""

from __future__ import annotations

import threading
import time

import pytest

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
)

MS = 1_000_000


def fragmented_heap(backend: str):
    """A heap with one region of which every other object is live."""
    st, h = make_heap(backend)
    assert st == 0, err()
    s, e = acquire(h)
    a, live = s, []
    while e - a >= 128:
        obj(a, 128)
        if (a - s) % 256 == 0:
            live.append(a)
        a += 128
    retire(h, s, a)
    for x in live:
        assert lib.remap_mark(h, ffi.cast("void *", x)) == 0, err()
    return h


def waiter(h, timeout_ns: int, out: list) -> threading.Thread:
    def run() -> None:
        t0 = time.monotonic()
        st = lib.remap_wait_idle(h, timeout_ns)
        out.append((st, time.monotonic() - t0))

    t = threading.Thread(target=run)
    t.start()
    return t


def test_idle_returns_at_once_and_bad_arguments():
    st, h = make_heap("move")
    assert st == 0
    try:
        assert lib.remap_wait_idle(h, 0) == 0
        assert lib.remap_wait_idle(h, -1) == 0
        assert lib.remap_wait_idle(ffi.NULL, 0) == lib.REMAP_EINVAL
    finally:
        lib.remap_heap_destroy(h)


@pytest.mark.parametrize("backend", ["move", "copy"])
def test_a_waiter_sleeps_through_compaction_and_wakes_at_finish(backend):
    h = fragmented_heap(backend)
    try:
        assert lib.remap_prepare(h) == 0, err()
        assert lib.remap_flip(h) == 0, err()
        assert info(h).phase == PHASE_COMPACTING
        assert lib.remap_wait_idle(h, 0) == lib.REMAP_EAGAIN
        assert "COMPACTING" in err()
        assert lib.remap_wait_idle(h, 2 * MS) == lib.REMAP_EAGAIN
        out: list = []
        t = waiter(h, -1, out)
        time.sleep(0.05)
        assert out == [], "the waiter returned while the heap was COMPACTING"
        assert lib.remap_compact(h) == 0, err()
        assert lib.remap_finish(h) == 0, err()
        t.join(5)
        assert not t.is_alive() and out[0][0] == 0
        assert info(h).phase == PHASE_IDLE
    finally:
        lib.remap_heap_destroy(h)


def test_a_cancelled_prepare_wakes_a_waiter():
    h = fragmented_heap("move")
    try:
        assert lib.remap_prepare(h) == 0, err()
        out: list = []
        t = waiter(h, 10_000 * MS, out)
        time.sleep(0.05)
        assert out == []
        assert lib.remap_clear_marks(h) == 0, err()
        t.join(5)
        assert not t.is_alive() and out[0][0] == 0 and out[0][1] < 5
    finally:
        lib.remap_heap_destroy(h)


def test_an_stw_flip_wakes_a_waiter():
    h = fragmented_heap("stw")
    try:
        assert lib.remap_prepare(h) == 0, err()
        out: list = []
        t = waiter(h, -1, out)
        time.sleep(0.05)
        assert out == []
        assert lib.remap_flip(h) == 0, err()  # the whole cycle: IDLE again
        t.join(5)
        assert not t.is_alive() and out[0][0] == 0
    finally:
        lib.remap_heap_destroy(h)

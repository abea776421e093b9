"""The event callback (issue 16, observability): remap_heap_set_event_callback
hands a runtime every cycle begin and end, the flip's pause, each phase
change and each call that works outside the pause, in order, on the
calling thread, with the cycle's number, so that it can forward them to its
own tracing. Checked through cffi on every backend: the sequence of one
cycle, a cycle begun beside mutators and cancelled, a failed prepare, a
resize, what the values mean, and that remap_last_error survives a
callback that makes library calls of its own."""

from __future__ import annotations

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

MiB = 1 << 20
KIND = {getattr(lib, n): n[len("REMAP_EVENT_") :] for n in dir(lib) if n.startswith("REMAP_EVENT_")}
PHASES = {0: "IDLE", 1: "PREPARED", 2: "COMPACTING", 3: "BROKEN"}


class Recorder:
    """A callback that keeps every event as a tuple, and optionally runs
    `also(heap)` inside each one (a runtime's tracer reading heap info)."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.also = None
        self.heap = None

        @ffi.callback("void(void *, const remap_event *)")
        def on_event(ctx, ev):
            assert ctx == ffi.cast("void *", 0x1234)
            self.events.append(
                {
                    "size": ev.struct_size,
                    "kind": KIND[ev.kind],
                    "phase": PHASES[ev.phase],
                    "t": ev.time_ns,
                    "cycle": ev.cycle,
                    "value": ev.value,
                    "status": ev.status,
                    "call": ffi.string(ev.call).decode(),
                }
            )
            if self.also is not None:
                self.also(self.heap)

        self.cb = on_event

    def attach(self, h) -> None:
        self.heap = h
        assert lib.remap_heap_set_event_callback(h, self.cb, ffi.cast("void *", 0x1234)) == 0

    def kinds(self) -> list[str]:
        return [e["kind"] + ("" if e["kind"] != "PHASE" else ":" + e["phase"]) for e in self.events]


def heap_with_garbage(backend: str, **kw):
    st, h = make_heap(backend, capacity=4 * MiB, **kw)
    if st != 0:
        pytest.skip(f"{backend}: {err()}")
    s, _ = acquire(h)
    for i in range(8):
        obj(s + 128 * i, 128)
    retire(h, s, s + 1024)
    return h, [s + 128, s + 512]


@pytest.mark.parametrize("backend", ["move", "copy", "minor", "sigsegv", "stw"])
def test_one_cycle_in_order(backend):
    h, roots = heap_with_garbage(backend)
    rec = Recorder()
    rec.attach(h)
    try:
        new = cycle(h, roots)
        st = stats(h)
        k = rec.kinds()
        head = ["CALL_BEGIN", "CYCLE_BEGIN", "PHASE:PREPARED", "CALL_END", "PAUSE_BEGIN"]
        assert k[:5] == head, k
        if backend == "stw":
            # The whole compaction is the pause: the cycle ends inside it.
            assert k[5:] == ["PHASE:IDLE", "CYCLE_END", "PAUSE_END"], k
        else:
            assert k[5:] == [
                "PHASE:COMPACTING",
                "PAUSE_END",
                "CALL_BEGIN",
                "CALL_END",  # remap_compact
                "CALL_BEGIN",
                "PHASE:IDLE",
                "CYCLE_END",
                "CALL_END",  # remap_finish
            ], k
        ev = rec.events
        assert all(e["size"] == ffi.sizeof("remap_event") for e in ev)
        assert all(e["status"] == 0 for e in ev)
        assert [e["t"] for e in ev] == sorted(e["t"] for e in ev)
        calls = [e["call"] for e in ev if e["kind"] in ("CALL_BEGIN", "PAUSE_BEGIN")]
        want = ["remap_prepare", "remap_flip"] + (
            [] if backend == "stw" else ["remap_compact", "remap_finish"]
        )
        assert calls == want
        # Numbers: the cycle is 1 from its begin to its end; the end says it
        # completed (its number) and its stats are there; PHASE's value is
        # the phase before; durations bound the library's own timings.
        assert ev[0]["cycle"] == 0 and all(e["cycle"] == 1 for e in ev[1:])
        end = next(e for e in ev if e["kind"] == "CYCLE_END")
        assert end["value"] == st.cycle == 1
        for e in ev:
            if e["kind"] == "PHASE":
                assert e["value"] in PHASES and PHASES[e["value"]] != e["phase"]
        pause = next(e for e in ev if e["kind"] == "PAUSE_END")
        assert pause["value"] >= st.flip_pause_ns > 0
        prep = next(e for e in ev if e["kind"] == "CALL_END" and e["call"] == "remap_prepare")
        assert prep["value"] >= st.prepare_ns > 0
        # A second cycle is number 2; clearing the callback stops the events.
        n = len(ev)
        cycle(h, new)
        assert [e["cycle"] for e in rec.events[n + 1 :]] == [2] * (len(rec.events) - n - 1)
        assert lib.remap_heap_set_event_callback(h, ffi.NULL, ffi.NULL) == 0
        n = len(rec.events)
        assert lib.remap_heap_resize(h, 4 * MiB) == 0
        assert len(rec.events) == n
    finally:
        lib.remap_heap_destroy(h)


def test_a_begun_cycle_cancelled_and_a_failed_prepare():
    h, roots = heap_with_garbage("move", flags=lib.REMAP_HEAP_VERIFY_REFS)
    rec = Recorder()
    rec.attach(h)
    try:
        assert lib.remap_cycle_begin(h) == 0, err()
        for r in roots:
            assert lib.remap_mark(h, ffi.cast("void *", r)) == 0
        assert lib.remap_clear_marks(h) == 0
        assert rec.kinds() == ["CYCLE_BEGIN", "CYCLE_END"]
        begin, end = rec.events
        assert begin["call"] == "remap_cycle_begin" and end["call"] == "remap_clear_marks"
        assert (end["value"], end["status"], end["cycle"]) == (0, 0, 1)  # cancelled
        # A prepare that fails (a slot pointing into an unmarked object) does
        # not end the cycle: the heap is IDLE with its marks, and the next
        # prepare belongs to the same cycle.
        rec.events.clear()
        u64(roots[0])[0] = 128 | (1 << 32)  # one slot ...
        u64(roots[0])[1] = roots[1] + 8  # ... an interior pointer
        for r in roots:
            assert lib.remap_mark(h, ffi.cast("void *", r)) == 0
        assert lib.remap_prepare(h) == lib.REMAP_EOBJMODEL
        assert rec.kinds() == ["CALL_BEGIN", "CYCLE_BEGIN", "CALL_END"]
        assert rec.events[-1]["status"] == lib.REMAP_EOBJMODEL
        u64(roots[0])[1] = 0
        assert lib.remap_prepare(h) == 0, err()
        assert rec.kinds()[3:] == ["CALL_BEGIN", "PHASE:PREPARED", "CALL_END"]
        assert lib.remap_flip(h) == 0 and lib.remap_compact(h) == 0 and lib.remap_finish(h) == 0
        ends = [e for e in rec.events if e["kind"] == "CYCLE_END"]
        assert [(e["value"], e["cycle"]) for e in ends] == [(1, 1)]
    finally:
        lib.remap_heap_destroy(h)


def test_resize_and_trim_report_themselves():
    h, _roots = heap_with_garbage("copy", max_capacity=8 * MiB)
    rec = Recorder()
    rec.attach(h)
    try:
        assert lib.remap_heap_resize(h, 8 * MiB) == 0
        assert lib.remap_heap_resize(h, 64 * 1024) == lib.REMAP_EBUSY
        assert lib.remap_heap_trim(h, 0) == 0
        got = [
            (e["kind"], e["call"], e["value"] if e["kind"] == "RESIZE" else None, e["status"])
            for e in rec.events
        ]
        assert got == [
            ("CALL_BEGIN", "remap_heap_resize", None, 0),
            ("RESIZE", "remap_heap_resize", 8 * MiB, 0),
            ("CALL_END", "remap_heap_resize", None, 0),
            ("CALL_BEGIN", "remap_heap_resize", None, 0),
            ("CALL_END", "remap_heap_resize", None, lib.REMAP_EBUSY),  # nothing changed
            ("CALL_BEGIN", "remap_heap_trim", None, 0),
            ("CALL_END", "remap_heap_trim", None, 0),
        ]
    finally:
        lib.remap_heap_destroy(h)


def test_a_callback_may_read_the_heap_and_keeps_the_last_error():
    h, roots = heap_with_garbage("move")
    rec = Recorder()
    seen: list[tuple[int, int]] = []

    def tracer(heap) -> None:
        # What a runtime's tracer does: read the heap's info (inside the
        # pause too), and fail a call of its own.
        i = ffi.new("remap_heap_info *")
        i.struct_size = ffi.sizeof("remap_heap_info")
        assert lib.remap_heap_get_info(heap, i) == 0
        seen.append((i.phase, i.capacity))
        assert lib.remap_heap_get_info(ffi.NULL, i) == lib.REMAP_EINVAL

    rec.also = tracer
    rec.attach(h)
    try:
        assert lib.remap_flip(h) == lib.REMAP_EPHASE  # IDLE: nothing to flip
        msg = err()
        assert msg.startswith("remap_flip") and "PREPARED" in msg, msg
        assert [e["kind"] for e in rec.events] == ["PAUSE_BEGIN", "PAUSE_END"]
        assert rec.events[-1]["status"] == lib.REMAP_EPHASE
        cycle(h, roots)
        assert info(h).phase == PHASE_IDLE
        assert len(seen) == len(rec.events) and (PHASE_COMPACTING, 4 * MiB) in seen
    finally:
        lib.remap_heap_destroy(h)


def test_bad_arguments():
    assert lib.remap_heap_set_event_callback(ffi.NULL, ffi.NULL, ffi.NULL) == lib.REMAP_EINVAL
    assert "heap is NULL" in err()

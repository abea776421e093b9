"""A runtime whose object model returns nonsense for one object: libremap
must refuse with REMAP_EOBJMODEL and a message, and leave the heap usable."""

from __future__ import annotations

import pytest

from libremap import _core
from libremap.synthetic import PHASE_BROKEN, PHASE_COMPACTING, KiB, MiB, RemapError

from support.differential import build, skip_if_unsupported
from support.model_faults import MODEL_FAULTS, set_fault

FAULTS = [f for f in MODEL_FAULTS if f != "none"]


def run_cycle_steps(h):
    """mark, prepare, flip (+ compact, finish); returns the step that raised
    (and the exception), or (None, None)."""
    steps = [("mark", h.mark), ("prepare", h.prepare), ("flip", h.flip)]
    for name, step in steps:
        try:
            step()
        except RemapError as e:
            return name, e
    if h.info()["phase"] == PHASE_COMPACTING:
        for name, step in (("compact", h.compact), ("finish", h.finish)):
            try:
                step()
            except RemapError as e:
                return name, e
    return None, None


def victim(h):
    """A live object in a fragmented region, not at the region's start (so
    that something before it dies and it moves)."""
    rs = h.region_size
    live = {}
    tops = h.region_tops()
    for addr, size, _, is_live, _ in h.objects():
        if is_live:
            r = (addr - h.base) // rs
            live[r] = live.get(r, 0) + size
    for addr, _, oid, is_live, large in h.objects():
        r, in_region = divmod(addr - h.base, rs)
        if is_live and not large and live[r] < 0.5 * tops[r] and in_region:
            return oid
    raise AssertionError("no suitable victim object")


@pytest.mark.parametrize("fault", FAULTS)
def test_model_fault_is_refused_and_the_heap_stays_usable(fault):
    h = build(
        {
            "capacity": 4 * MiB,
            "region_size": 64 * KiB,
            "seed": 31,
            "backend": "stw",
            "live_ratio": 0.3,
            "dense_fraction": 0.25,
            "ref_fraction": 0.7,
        }
    )
    want = h.checksum()
    oid = victim(h)
    set_fault(h, fault, oid)
    with skip_if_unsupported("stw cycle", ("remap_prepare", "remap_flip")):
        step, err = run_cycle_steps(h)
        if err is not None and err.status_name == "REMAP_EUNSUPPORTED":
            raise err
    assert err is not None, f"{fault}: the library accepted a nonsense object model"
    assert err.status_name == "REMAP_EOBJMODEL", f"{fault} at {step}: {err.message}"
    assert err.status == _core.STATUS_CODES["REMAP_EOBJMODEL"]
    library_part = err.message.split("REMAP_EOBJMODEL: ", 1)[-1]
    assert len(library_part) > 20, (
        f"{fault}: the message does not say what is wrong: {err.message!r}"
    )

    # Usable afterwards: no BROKEN heap, no change to the objects.
    assert h.info()["phase"] != PHASE_BROKEN, f"{fault} at {step} broke the heap"
    set_fault(h, None)
    assert h.checksum() == want, f"{fault} at {step}: the failed cycle changed the heap"
    h.clear_marks()
    h.collect()
    assert h.checksum() == want
    assert h.verify() == h.live_count
    assert h.stats()["live_bytes"] == h.live_bytes


def test_fault_on_another_object_changes_nothing():
    """The knob is per object: an id that is not in the heap has no effect."""
    h = build(
        {
            "capacity": 4 * MiB,
            "region_size": 64 * KiB,
            "seed": 32,
            "backend": "stw",
            "live_ratio": 0.3,
        }
    )
    want = h.checksum()
    set_fault(h, "size_zero", 2**63)
    with skip_if_unsupported("stw cycle", ("remap_prepare", "remap_flip")):
        h.collect()
    assert h.checksum() == want

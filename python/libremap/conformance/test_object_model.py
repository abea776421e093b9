"""The kit's object-model tests: a runtime whose object model lies is
refused with REMAP_EOBJMODEL, and the refusal changes nothing (the heap is
usable, and the next honest cycle leaves the graph as it was)."""

from __future__ import annotations

import pytest

from .kit import MATRIX

FAULTS = {"size_unaligned": 1, "slot_outside": 2}  # remap_conformance_fault


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("cfg", MATRIX, ids=lambda c: c.id)
def test_object_model_violation_refused(libremap_kit, cfg, fault):
    if not libremap_kit.description["inject_fault"]:
        pytest.skip(f"runtime {libremap_kit.name} has no inject_fault: it cannot be made to lie")
    steps = [
        {"do": "inject_fault", "fault": FAULTS[fault]},
        {"do": "cycle", "expect_status": "REMAP_EOBJMODEL"},
        {"do": "inject_fault", "fault": 0},
        {"do": "clear_marks"},
        {"do": "cycle"},
    ]
    sc = libremap_kit.scenario(cfg, steps, seed=40 + FAULTS[fault])
    out = libremap_kit.passing(sc)
    refused = out["steps"][1]["refused"]
    assert refused["rule"] in ("mark", "remap_mark", "remap_prepare"), (
        f"the lie ({fault}) was refused by {refused['rule']}; the library must refuse it "
        f"while marking or preparing, before anything moves: {refused['message']}"
    )
    assert out["steps"][-1]["checksum"] == out["initial_checksum"], (
        "the honest cycle after the refused one changed the graph: the refusal was not clean"
    )

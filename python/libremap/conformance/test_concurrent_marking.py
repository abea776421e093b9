"""Mutators running through the whole cycle: marking beside the mutator.

A cycle begun with remap_cycle_begin: the runtime's initial mark (roots
taken, write barrier on), its mutator on another thread allocating black
and rewriting slots while the tracer marks from the snapshot and from the
barrier's log, its remark with the mutator stopped (the log replayed), then
prepare, flip and compaction. The graph it leaves must be the one the same
mutation leaves before a plain stop-the-world cycle.

mutator_first runs the whole mutation between the initial mark and the
trace: every object the tracer must still find is found only through the
log, deterministically. interleaved runs both at once, as a runtime does.
"""

from __future__ import annotations

import pytest

from .kit import MATRIX, REFERENCE

SEED = 90


@pytest.mark.parametrize("order", ["mutator_first", "interleaved"])
@pytest.mark.parametrize("cfg", MATRIX, ids=lambda c: c.id)
def test_mutator_through_concurrent_marking(libremap_kit, cfg, order):
    libremap_kit.require("concurrent_marking", "it marks only with its mutator stopped")
    if not libremap_kit.description["concurrent_mark"]:
        pytest.fail(
            f"runtime {libremap_kit.name} declares concurrent_marking but its table has no "
            "concurrent_mark callback (NULL, or a struct_size that ends before it)",
            pytrace=False,
        )
    steps = [{"do": "cycle", "concurrent_mark": order, "mutate_seed": 91}, {"do": "cycle"}]
    sc = libremap_kit.scenario(cfg, steps, seed=SEED)
    out = libremap_kit.play(sc)
    failure = out["failure"] or {}
    if failure.get("rule") == "remap_cycle_begin" and failure["status"] == "REMAP_EUNSUPPORTED":
        pytest.skip(f"{cfg.id}: {failure['message']}")
    libremap_kit.require_ok(sc, out)
    sequential = libremap_kit.reference(
        libremap_kit.scenario(
            REFERENCE, [{"do": "mutate", "seed": 91}, {"do": "cycle"}, {"do": "cycle"}], seed=SEED
        )
    )
    got, want = out["steps"][-1]["checksum"], sequential["steps"][-1]["checksum"]
    assert got == want, (
        f"after marking beside the mutator the graph checksums {got:#x}; the same mutation "
        f"before a stop-the-world cycle leaves {want:#x}: the tracer missed what the mutator "
        f"moved (is every overwritten reference logged by the write barrier?)\non {sc.label()}"
    )

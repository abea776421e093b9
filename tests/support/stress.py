"""The C++ stress driver (libremap._testing.run_stress, bindings/testing/stress.h)
in a child process with a deadline, and the checks every passing run meets."""

from __future__ import annotations

from support.differential import CHILD_PRELUDE, run_child

# Per-cycle remap_cycle_stats fields a keep_stats run returns.
CYCLE_KEYS = (
    "cycle",
    "pages_by_mutator",
    "faults",
    "large_objects_moved",
    "large_pages_moved",
    "large_pages_copied",
    "large_pages_updated",
    "large_pages_by_mutator",
    "regions_evacuated",
)


def stress(
    backend: str,
    fault_mode: str,
    gc_threads: int,
    mutators: int,
    cycles: int,
    heap_mib: int = 4,
    seed: int = 1,
    timeout: float = 100,
    helpers_always: bool = True,
    **kw,
) -> dict:
    """helpers_always: REMAP_HELPERS_ALWAYS=1, so that with gc_threads > 1 the
    workers race each other beside the mutators (by default a helper waits
    while every CPU is busy, which mutators here mostly keep them)."""
    code = (
        CHILD_PRELUDE
        + f"""
import libremap._testing as testing
try:
    r = testing.run_stress({backend!r}, {fault_mode!r}, {gc_threads}, {mutators}, {cycles},
                           {heap_mib}, {seed}, **{kw!r})
except RemapError as e:
    unsupported(e)
# keep_stats: each cycle's large-object counters (the rest stays in the child)
r["cycle_stats"] = [{{k: s[k] for k in {CYCLE_KEYS!r}}} for s in r.pop("stats")]
print(json.dumps(r))
"""
    )
    env = {"REMAP_HELPERS_ALWAYS": "1" if helpers_always else "0"}
    return run_child(code, timeout=timeout, env=env)


def check(r: dict, cycles: int) -> None:
    assert r["verified"], r["error"]
    assert r["error"] == ""
    assert r["cycles"] == cycles
    assert r["reads"] > 0 and r["writes"] > 0 and r["allocs"] > 0
    # Every safepoint (one per cycle and a last one) compared the whole
    # reachable graph with the log: the roots at least.
    assert r["objects_verified"] >= r["live_objects"] > 0
    assert r["objects_verified"] >= cycles + 1
    assert r["log_entries"] >= r["writes"]

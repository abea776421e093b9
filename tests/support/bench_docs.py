"""Bench documents for the schema tests (tests/bench/)."""

from __future__ import annotations


def bench_doc(runs: list) -> dict:
    """The smallest bench document around `runs`, for schema tests."""
    floor_keys = (
        "move_batched_ns_per_page",
        "move_single_ns_per_page",
        "copy_ns_per_page",
        "memcpy_ns_per_page",
    )
    return {
        "machine": {"kernel": "", "cpu": "", "thp": "", "probe": {}},
        "params": {
            "workloads": [],
            "backends": [],
            "runs": 1,
            "warmup": 0,
            "base": {"heap_mib": 1, "live": 0.5, "dense": 0.25, "threads": 0, "seed": 1},
        },
        "floor": {k: None for k in floor_keys},
        "runs": runs,
    }

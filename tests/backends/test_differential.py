"""Differential proof (issue 4): for every backend x fault mode x GC threads,
compaction leaves exactly the bytes the stw reference leaves for the same
seeded heap (image(): the whole heap, heap addresses rebased to offsets) and
the same object graph (checksum()), over seeds, live ratios 5%..100%, dense
fractions, large objects, several ways of driving the cycle, and several
cycles with mutation in between.

Ways of driving a cycle (HOW), each a different producer of the pages:
  collect     remap_compact on this thread (GC workers build every page)
  mutator     after the flip this thread traverses the whole graph first:
              every reachable page is built by the faulting-mutator path
              (SIGBUS handler or handler thread), then compact + finish
  work        remap_compact_work (a runtime-owned GC thread)
  finish      remap_finish alone (it must produce whatever is left)
  concurrent  compact on another thread while this one traverses

The stw reference of each heap is computed once per session (image hash
and checksum); on a mismatch the reference heap is rebuilt to report the
first differing word. Backends the library cannot run yet skip with the
message of remap_heap_create."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from libremap.synthetic import KiB, MiB

from support.differential import CONCURRENT_BACKENDS, FAULT_MODES, MUTATE, check_case

BASE: dict[str, Any] = {"capacity": 4 * MiB, "region_size": 64 * KiB}
RATIOS = [0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.95, 1.0]
DENSE = [0.0, 0.25, 0.6]
HOW = ["collect", "mutator", "work", "finish", "concurrent"]  # see drive() in differential.py
COMBOS = list(itertools.product(CONCURRENT_BACKENDS, FAULT_MODES, (1, 2)))
IDS = [f"{b}-{m}-gc{g}" for b, m, g in COMBOS]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend,fault_mode,gc_threads", COMBOS, ids=IDS)
def test_sweep_matches_stw(backend, fault_mode, gc_threads):
    # 10 ratios x 3 dense fractions x 2 seeds = 60 heaps per combination;
    # the way of driving the cycle rotates, so each way sees every ratio.
    mutator_pages = 0
    for i, (ratio, dense, seed) in enumerate(itertools.product(RATIOS, DENSE, (1, 2))):
        params = dict(BASE, seed=seed * 1000 + i, live_ratio=ratio, dense_fraction=dense)
        if i % 7 == 3:
            params.update(large_objects=3, large_object_size=40 * KiB)
        how = HOW[i % len(HOW)]
        st = check_case(backend, fault_mode, gc_threads, params, how)
        if how == "mutator":
            mutator_pages += st["pages_by_mutator"]
    assert mutator_pages > 0, "the mutator variant never produced a page by faulting"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend,fault_mode,gc_threads", COMBOS, ids=IDS)
def test_cycles_with_mutation_match_stw(backend, fault_mode, gc_threads):
    for seed, how in ((31, "collect"), (32, "mutator"), (33, "concurrent")):
        params = dict(BASE, capacity=8 * MiB, seed=seed, live_ratio=0.4, fill_fraction=0.5)
        check_case(backend, fault_mode, gc_threads, params, how, cycles=3)


@pytest.mark.timeout(60)
def test_full_images_equal_byte_for_byte():
    # The hash shortcut above, spelled out once per backend: image() bytes.
    from support.differential import assert_same_image

    for backend in ("move", "copy"):
        assert_same_image(
            "stw",
            backend,
            dict(BASE, seed=5, live_ratio=0.3),
            params_b={"fault_mode": "sigbus", "gc_threads": 2},
            cycles=2,
            mutate=MUTATE,
        )

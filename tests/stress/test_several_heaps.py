"""Several heaps in one process, each with its own backend and fault mode,
compacting at the same time (issue 16). Each heap is driven by its own
thread through several cycles — mutation between them, a mutator reading
the whole graph (faulting on pages not produced yet) while the GC thread
compacts — and must end each cycle with the bytes and graph of an stw heap
driven the same way. SIGBUS (and the handler threads) must reach the heap
that owns the faulting address, whichever others are compacting."""

from __future__ import annotations

import threading

import pytest

from libremap.synthetic import KiB, MiB

from support.differential import build, collect_with_mutator

PARAMS = {"capacity": 8 * MiB, "region_size": 64 * KiB, "live_ratio": 0.4, "fill_fraction": 0.6}
CYCLES = 4
# (backend, fault mode, seed, options): every engine at once, both deliveries.
HEAPS = [
    ("move", "sigbus", 1, {}),
    ("move", "thread", 2, {"evacuate": True}),
    ("copy", "sigbus", 3, {"tagging": "v8"}),
    ("copy", "thread", 4, {"large_objects": 6}),
    ("minor", "sigbus", 5, {}),
    ("sigsegv", "sigbus", 6, {"evacuate": True}),
]


def reference(seed: int, opts: dict) -> list[tuple[int, int]]:
    h = build(dict(PARAMS, seed=seed, **opts), backend="stw")
    out = []
    for c in range(CYCLES):
        if c:
            h.mutate(kill_fraction=0.3, grow_bytes=256 * KiB)
        h.collect()
        out.append((h.image_hash(), h.checksum()))
    return out


@pytest.mark.timeout(180)
def test_heaps_compacting_at_once_each_match_stw():
    refs = {seed: reference(seed, opts) for _b, _m, seed, opts in HEAPS}
    heaps = [
        (build(dict(PARAMS, seed=seed, **opts), backend=b, fault_mode=m), b, m, seed)
        for b, m, seed, opts in HEAPS
    ]
    start = threading.Barrier(len(heaps))
    errors: list[str] = []
    faulted: dict[str, int] = {}

    def drive(h, backend: str, mode: str, seed: int) -> None:
        name = f"{backend}/{mode}"
        try:
            start.wait(30)
            by_mutator = 0
            for c in range(CYCLES):
                if c:
                    h.mutate(kill_fraction=0.3, grow_bytes=256 * KiB)
                want = h.checksum()
                seen = collect_with_mutator(h)
                assert seen == want, f"{name} cycle {c + 1}: a mutator read a different graph"
                assert (h.image_hash(), h.checksum()) == refs[seed][c], (
                    f"{name} cycle {c + 1}: differs from stw"
                )
                h.verify()
                by_mutator += h.stats()["pages_by_mutator"]
            faulted[name] = by_mutator
        except BaseException as e:  # noqa: BLE001 - reported on the test's thread
            errors.append(f"{name}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=drive, args=hp) for hp in heaps]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    assert not any(t.is_alive() for t in threads), "a heap's cycle hung"
    assert errors == []
    # Mutators faulted in some heap while the others compacted, and every
    # graph above came out right: deliveries went to the right heap. Not
    # "in most heaps": whether a GC thread gets ahead of a mutator is a race
    # that a loaded machine loses for several heaps at once (6 runs of 8
    # failed that way under load).
    assert len(faulted) == len(heaps)
    assert any(n > 0 for n in faulted.values()), faulted

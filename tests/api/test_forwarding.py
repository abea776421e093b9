"""Properties of forwarding seen through the public API: remap_forward on
every live object between prepare and flip (DESIGN section 4)."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libremap.synthetic import PHASE_COMPACTING, KiB, MiB

from support.differential import build, skip_if_unsupported

heaps = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "live_ratio": st.sampled_from([0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0])
        | st.floats(0.01, 1.0),
        "dense_fraction": st.floats(0.0, 1.0),
        "fill_fraction": st.floats(0.1, 1.0),
        "region_size": st.sampled_from([64 * KiB, 128 * KiB]),
        "max_object_size": st.sampled_from([64, 512, 2048, 8192]),
        "dense_threshold": st.sampled_from([0.5, 0.9, 0.99]),
        "large_objects": st.integers(0, 3),
    }
)


def forwarding_of(h):
    """[(old, new, size, large)] for every live object, after mark + prepare."""
    h.mark()
    with skip_if_unsupported("remap_prepare", ("remap_prepare",)):
        h.prepare()
    return [(a, h.forward(a), s, large) for a, s, _, live, large in h.objects() if live]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=heaps)
def test_forwarding_properties(params):
    h = build(params, capacity=4 * MiB, backend="stw")
    rs, base, cap = h.region_size, h.base, h.capacity
    thr = params["dense_threshold"]
    tops = h.region_tops()
    want = h.checksum()
    fw = forwarding_of(h)

    live = [0] * (cap // rs)
    for old, _, size, _ in fw:
        live[(old - base) // rs] += size
    by_region: dict[int, list[tuple[int, int, int]]] = {}
    for old, new, size, large in fw:
        assert base <= new < base + cap and new % 8 == 0
        r = (old - base) // rs
        if large:
            assert new % 4096 == 0, "a large object lost its page alignment"
            continue
        assert (new - base) // rs == r, "an object left its region"
        assert (new - base + size - 1) // rs == r, "an object now crosses its region's end"
        by_region.setdefault(r, []).append((old, new, size))

    for r, objs in by_region.items():
        objs.sort()
        identity = all(old == new for old, new, _ in objs)
        start = base + r * rs
        packed = objs[0][1] == start and all(
            n1 + s1 == n2 for (_, n1, s1), (_, n2, _) in itertools.pairwise(objs)
        )
        # live / top against the threshold decides; exactly at it (up to
        # rounding) either answer is right.
        margin = live[r] - thr * tops[r]
        if margin > 1e-6 * tops[r]:
            assert identity, f"dense region {r} (live {live[r]}/{tops[r]}) moved objects"
        elif margin < -1e-6 * tops[r]:
            assert packed, f"fragmented region {r}: not slid to its start in order without gaps"
        else:
            assert identity or packed

    spans = sorted((new, new + size) for _, new, size, _ in fw)
    for (_, e1), (s2, _) in itertools.pairwise(spans):
        assert e1 <= s2, "two live objects overlap after forwarding"

    # Outside the heap, forward is the identity.
    for outside in (0, base - 8, base + cap, base + cap + 4096):
        assert h.forward(outside) == outside

    # The prepared cycle completes and keeps the graph.
    with skip_if_unsupported("remap_flip", ("remap_flip",)):
        h.flip()
    if h.info()["phase"] == PHASE_COMPACTING:
        h.compact()
        h.finish()
    assert h.checksum() == want
    assert sorted(a for a, *_ in h.objects()) == sorted(new for _, new, _, _ in fw)


def test_clear_marks_cancels_a_prepared_cycle():
    h = build(
        {
            "capacity": 4 * MiB,
            "region_size": 64 * KiB,
            "seed": 5,
            "backend": "stw",
            "live_ratio": 0.3,
        }
    )
    want = h.checksum()
    forwarding_of(h)
    h.clear_marks()
    assert h.info()["phase"] == 0
    assert h.checksum() == want
    with skip_if_unsupported("stw cycle", ("remap_prepare", "remap_flip")):
        h.collect()
    assert h.checksum() == want and h.verify() == h.live_count

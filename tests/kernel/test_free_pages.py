"""Free pages during a concurrent cycle (issue 14): how they are installed.

- A fault on a free page (allocation into a free region while compacting)
  zero-fills the free pages after it in its region with it: one fault and
  one ioctl for up to 16 pages, not one of each per page.
- move: a region's free tail goes in the same MOVE run as its data, so
  consecutive regions are one run (one TLB shootdown) instead of one run
  each; the tail reads zero like every free byte after a cycle.

Children with deadlines: a read of a page nobody produces would hang."""

from __future__ import annotations

import pytest

from support.differential import (
    CHILD_PRELUDE,
    CONCURRENT_BACKENDS,
    FAULT_MODES,
    build_testheap,
    child_testheap,
    run_child,
)

# 4 MiB heap of 64 KiB regions (16 pages), 3/4 filled from the top (small
# objects take the highest free region): the lowest regions are free.
FREE_REGION = """
h = new_heap({backend!r}, {mode!r})
R = th.th_remap(h)
base = th.th_base(h)
page, region = 4096, 64 << 10
last = base                            # a free region
want = th.th_checksum(h)
ok(th.th_cycle_begin(h))
assert th.th_phase(h) == 2, "the cycle did not start compacting"
mem = ffi.cast("volatile unsigned char *", last)
first = mem[0]                               # one fault
rest = [mem[i * page + 123] for i in range(1, 16)]  # already installed: no fault
ok(lib.remap_compact(R))
ok(lib.remap_finish(R))
report(h, want, zeros=first == 0 and not any(rest))
"""


@pytest.fixture(scope="module")
def lib_path(tmp_path_factory):
    return build_testheap(tmp_path_factory.mktemp("testheap"))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("fault_mode", FAULT_MODES)
@pytest.mark.parametrize("backend", CONCURRENT_BACKENDS)
def test_a_fault_on_a_free_page_fills_the_free_pages_after_it(lib_path, backend, fault_mode):
    code = FREE_REGION.format(backend=backend, mode=fault_mode)
    r = run_child(CHILD_PRELUDE + child_testheap(lib_path) + code, timeout=60)
    assert r["zeros"] and r["checksum"], r
    # Sixteen pages read, one fault: the other 15 came with the first.
    assert r["faults"] == 1, r
    assert r["pages_by_mutator"] == 16, r
    assert r["pages_zero"] >= 16, r
    assert r["pages_installed"] == r["pages_by_gc"] + r["pages_by_mutator"], r


# One whole cycle of a 16 MiB move heap (90% of its 64 KiB regions filled,
# 40% live), no mutator: the tests below differ in the switches they set.
COLLECT = """
h = new_heap("move", "sigbus", capacity_mib=16, live_ratio=0.4, fill=0.9)
want = th.th_checksum(h)
ok(th.th_collect(h))
report(h, want)
"""


@pytest.mark.timeout(90)
def test_move_installs_free_tails_with_their_regions_data(lib_path):
    r = run_child(CHILD_PRELUDE + child_testheap(lib_path) + COLLECT, timeout=60)
    assert r["checksum"], r
    assert r["faults"] == 0 and r["regions_fragmented"] > 8, r
    # Before: one run per fragmented region at least (each ended at its new
    # top). Now regions chain into runs of up to 512 pages.
    assert r["ioctl_move"] < r["regions_fragmented"] // 2, r
    # The tails are the GC's zero pages; nothing was installed twice.
    assert r["pages_zero"] > 0 and r["pages_by_mutator"] == 0, r
    assert r["pages_installed"] == r["pages_by_gc"], r


@pytest.mark.timeout(90)
def test_the_measurement_switch_leaves_tails_out(lib_path, monkeypatch):
    # REMAP_FREE_TAILS=0 (compactor.cpp): the path before, kept for the bench.
    # (Every run is then one region's data, under 8 pages here: moved, not
    # copied, only with the short-run switch off too.)
    monkeypatch.setenv("REMAP_FREE_TAILS", "0")
    monkeypatch.setenv("REMAP_SHORT_RUN_COPY", "0")
    r = run_child(CHILD_PRELUDE + child_testheap(lib_path) + COLLECT, timeout=60)
    assert r["pages_zero"] == 0, str({k: v for k, v in r.items() if k.startswith(("pages", "buffers", "ioctl", "regions", "faults"))})
    assert r["ioctl_move"] >= r["regions_fragmented"], r


# The mutator reads the first page of every filled region before any GC worker
# runs: each read builds a page into a pool buffer, and past the (small)
# pool's 64 they are fresh pages. A mutator-built page's buffer raises RSS
# until its region's from-space is dropped; tails would keep each region's
# garbage resident as free pages, so past half the pool's cap in fresh
# buffers they stop, and from-space is dropped as each region is done
# (producer.cpp, gc_region): the cycle's peak RSS stays within the pool's cap.
TAILS_AFTER_FRESH_BUFFERS = """
h = new_heap("move", "sigbus", capacity_mib=16, live_ratio=0.4, fill=0.9)
want = th.th_checksum(h)
base = th.th_base(h)
ok(th.th_cycle_begin(h))
assert th.th_phase(h) == 2, "the cycle did not start compacting"
mem = ffi.cast("volatile unsigned char *", base)
filled = int(0.9 * 256)                # the highest regions (see FREE_REGION)
touched = sum(mem[r * (64 << 10)] for r in range(256 - filled, 256))
ok(lib.remap_compact(th.th_remap(h)))
ok(lib.remap_finish(th.th_remap(h)))
report(h, want)
"""


@pytest.mark.timeout(90)
def test_move_stops_tails_once_mutators_take_fresh_buffers(lib_path, monkeypatch):
    monkeypatch.setenv("TH_POOL_MAX_PAGES", "64")
    monkeypatch.setenv("REMAP_SHORT_RUN_COPY", "0")  # runs counted as MOVEs
    r = run_child(CHILD_PRELUDE + child_testheap(lib_path) + TAILS_AFTER_FRESH_BUFFERS, timeout=60)
    assert r["checksum"], r
    assert r["regions_fragmented"] > 8 and r["pages_by_mutator"] > 100, r
    assert r["buffers_new"] >= 32, r  # past the budget before the GC began
    # No tail went in: the mutators' pages are data, the GC's too.
    assert r["pages_zero"] == 0, str({k: v for k, v in r.items() if k.startswith(("pages", "buffers", "ioctl", "regions", "faults"))})
    assert r["ioctl_move"] >= r["regions_fragmented"] // 2, r


# move: a run shorter than 64 pages goes in with UFFDIO_COPY, page by page,
# not one MOVE (producer.h, kCopyBelowPages): no TLB shootdown for a run that
# mutators' pages cut short. With tails off, each region's data here (40 %
# of 16 pages) is such a run.


@pytest.mark.timeout(90)
@pytest.mark.parametrize("switch", ["on", "off"])
def test_move_copies_short_runs(lib_path, monkeypatch, switch):
    monkeypatch.setenv("REMAP_FREE_TAILS", "0")
    if switch == "off":
        monkeypatch.setenv("REMAP_SHORT_RUN_COPY", "0")
    r = run_child(CHILD_PRELUDE + child_testheap(lib_path) + COLLECT, timeout=60)
    brief = str({k: v for k, v in r.items() if k.startswith(("pages", "buffers", "ioctl", "regions"))})
    assert r["checksum"] and r["regions_fragmented"] > 8, brief
    assert r["pages_installed"] == r["pages_by_gc"] and r["faults"] == 0, brief
    if switch == "on":
        assert r["ioctl_move"] < r["regions_fragmented"] // 2, brief
        assert r["pages_copied"] > r["pages_moved"] and r["buffers_new"] == r["pages_copied"], brief
    else:
        assert r["ioctl_move"] >= r["regions_fragmented"] and r["pages_copied"] == 0, brief

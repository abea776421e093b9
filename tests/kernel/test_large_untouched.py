"""Issue 7, "Untouched": compaction slides live large objects to new
addresses without reading or writing the pages of those that hold no
reference slots, and touches only the slot pages of those that do
(DESIGN.md §8). The kernel is the witness, not the library's counters
(which are checked against it on the way).

Each case runs in a child interpreter with a deadline (a mistake around
userfaultfd hangs a thread instead of failing) and reports what it measured
as JSON; the assertions are made here. A swap file made by a child is
removed here too if the child dies before it could (swapoff + unlink).

What the kernel lets us see, and why it proves what it is used for:

- Swapped-out pages (root: a swap file). After MADV_PAGEOUT every page of
  the live large objects is a swap entry in the page table. Reading or
  writing such a page makes the kernel swap it in: the entry turns into a
  present page (``/proc/self/pagemap`` bit 63 set, bit 62 clear) and the
  process's ``VmSwap`` (its count of swap entries, MM_SWAPENTS) falls by one
  page -- also when the data is still in the swap cache (a minor fault that
  neither ``pswpin`` nor ``majflt`` counts; ``VmSwap`` and the pagemap bits
  do not care where the data came from). UFFDIO_MOVE moves a swap entry
  from one page table entry to another without swapping it in. So: every
  page at the object's new address still a swap entry, the same swap slot
  as before at the old address (bits 0-54: type | offset << 5, root), and
  ``VmSwap`` unchanged to the page, means the library neither read nor
  wrote any of them. ``copy`` on the same heap shows the opposite.
- Without swap: reading a resident page leaves no trace this kernel exposes
  (no CONFIG_IDLE_PAGE_TRACKING; soft-dirty is not configured here, and
  where it is, UFFDIO_MOVE marks every moved PTE soft-dirty "so userspace
  can notice the pte was moved" -- mm/userfaultfd.c move_present_ptes /
  move_swap_pte since 2025 -- so it cannot tell a move from a write). What
  can be seen: (1) a page never touched has no page table entry at all;
  touching it (a load maps the shared zero page, a store or a copy a private
  page) is visible in pagemap bit 63 and PAGEMAP_SCAN's PAGE_IS_PFNZERO
  (both unprivileged). (2) root: a moved page keeps its page frame (PFN),
  a copied one gets a new frame.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
from pathlib import Path
from typing import Any

import pytest

from libremap.bench.floor import madvise
from libremap.bench.pageout import (
    PM_FRAME_MASK,
    PM_PRESENT,
    PM_SWAPPED,
    page_out,
    pagemap,
    pages_of,
)
from libremap.bench.procfs import PAGE_SIZE
from libremap.bench.swapfile import SWAP_PREFIX, SwapFile, remove_swap_file

from support.processes import run_with_timeout

TESTS = Path(__file__).resolve().parent
CHILD_TIMEOUT_S = 180
MADV_DONTNEED = 4
KiB, MiB = 1024, 1024 * 1024

# The heap every case builds: 28 large objects of 512 KiB (2 regions, 128
# pages) after a few regions of small objects; about half of them live.
HEAP = {
    "capacity": 32 * MiB,
    "region_size": 256 * KiB,
    "seed": 7,
    "fill_fraction": 0.1,
    "large_objects": 28,
    "large_object_size": 512 * KiB,
    "large_live_fraction": 0.5,
}


def _move_available() -> str | None:
    from libremap.probe import probe

    p = probe()
    if not p.uffd_available:
        return f"userfaultfd is not available here ({p.uffd_status})"
    if not p.has_move:
        return "the kernel has no UFFDIO_MOVE (Linux 6.8)"
    return None


_why_not = _move_available()
pytestmark = pytest.mark.skipif(_why_not is not None, reason=_why_not or "")


# ------------------------------------------------------------------ child side


def _vm_swap_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSwap:"):
                return int(line.split()[1])
    raise RuntimeError("no VmSwap in /proc/self/status")


_PM_SCAN_FIELDS = (
    "size", "flags", "start", "end", "walk_end", "vec", "vec_len", "max_pages",
    "category_inverted", "category_mask", "category_anyof_mask", "return_mask",
)  # fmt: skip


class _PmScanArg(ctypes.Structure):  # struct pm_scan_arg (linux/fs.h)
    _fields_ = [(n, ctypes.c_uint64) for n in _PM_SCAN_FIELDS]


class _PageRegion(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("start", "end", "categories")]


_PAGEMAP_SCAN = (3 << 30) | (ctypes.sizeof(_PmScanArg) << 16) | (ord("f") << 8) | 16
_PAGE_IS_PFNZERO = 1 << 5


def _zero_pages(addr: int, npages: int) -> set[int]:
    """Indexes of the pages in [addr, +npages) that map the shared zero page
    (PAGEMAP_SCAN, Linux 6.7, unprivileged)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
    vec = (_PageRegion * npages)()
    arg = _PmScanArg(
        size=ctypes.sizeof(_PmScanArg), start=addr, end=addr + npages * PAGE_SIZE,
        vec=ctypes.addressof(vec), vec_len=npages,
        category_mask=_PAGE_IS_PFNZERO, return_mask=_PAGE_IS_PFNZERO,
    )  # fmt: skip
    fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    try:
        n = libc.ioctl(fd, _PAGEMAP_SCAN, ctypes.byref(arg))
        if n < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"PAGEMAP_SCAN: {os.strerror(err)} (needs Linux 6.7)")
    finally:
        os.close(fd)
    out: set[int] = set()
    for r in vec[:n]:
        out.update(range((r.start - addr) // PAGE_SIZE, (r.end - addr) // PAGE_SIZE))
    return out


def _heap(backend: str, large_max_refs: int) -> Any:
    from libremap.synthetic import SyntheticHeap

    return SyntheticHeap(backend=backend, large_max_refs=large_max_refs, **HEAP)


def _cycle(h: Any) -> None:
    from libremap.synthetic import PHASE_COMPACTING

    h.flip()
    if h.phase == PHASE_COMPACTING:
        h.compact()
        h.finish()


def _large_stats(h: Any) -> dict[str, Any]:
    st = h.stats()
    keys = (
        "large_objects_moved", "large_pages_moved", "large_pages_copied", "large_pages_updated",
        "pages_moved", "pages_copied", "fallback_ebusy", "fallback_other", "backend",
    )  # fmt: skip
    return {k: st.get(k) for k in keys}


def _slot_pages(addr: int) -> list[int]:
    """Pages of the object at addr holding its reference slots (header: u32
    size, u16 nrefs, u16 klass, u64 id; the slots follow it; object_layout.h).
    Read while the object is resident."""
    nrefs = ctypes.c_uint16.from_address(addr + 4).value
    if nrefs == 0:
        return []
    return list(range(16 // PAGE_SIZE, (16 + 8 * nrefs - 1) // PAGE_SIZE + 1))


def child_swap(
    backend: str, large_max_refs: int, drop_swap_cache: bool, swap_path: str
) -> dict[str, Any]:
    """Live large objects paged out after prepare (and dropped from the swap
    cache, or not); one cycle; what the page tables, VmSwap and the major
    faults say at their new addresses before anything reads them."""
    from libremap.bench.unavailable import Unavailable

    try:
        swap = SwapFile(64 * MiB, path=swap_path).__enter__()
    except Unavailable as e:
        return {"skip": str(e)}
    try:
        h = _heap(backend, large_max_refs)
        checksum = h.checksum()
        h.mark()
        h.prepare()
        # objects() reads headers: before the page-out.
        live = [(a, s) for a, s, _id, is_live, large in h.objects() if large and is_live]
        objs = []
        for a, s in live:
            objs.append(
                {"old": a, "new": h.forward(a), "pages": pages_of(s), "slots": _slot_pages(a)}
            )
        ranges = [(o["old"], o["pages"]) for o in objs]
        po = page_out(ranges, drop_swap_cache=drop_swap_cache)
        if po.swapped < po.pages:
            return {
                "skip": f"MADV_PAGEOUT swapped {po.swapped} of {po.pages} pages"
                f" ({sorted(po.errors)}): a memory cgroup without swap?"
            }
        for o in objs:
            o["before"] = [int(e) for e in pagemap(o["old"], o["pages"])]
        swap_kib0 = _vm_swap_kib()
        majflt0 = resource.getrusage(resource.RUSAGE_SELF).ru_majflt
        _cycle(h)
        majflt1 = resource.getrusage(resource.RUSAGE_SELF).ru_majflt
        swap_kib1 = _vm_swap_kib()
        for o in objs:
            o["after"] = [int(e) for e in pagemap(o["new"], o["pages"])]
        stats = _large_stats(h)
        # Now read everything back.
        return {
            "objects": objs,
            "swap_kib_before": swap_kib0,
            "swap_kib_after": swap_kib1,
            "in_swap_cache": po.in_swap_cache,
            "major_faults": majflt1 - majflt0,
            "stats": stats,
            "checksum_same": h.checksum() == checksum,
            "verified": h.verify(),
            "live_count": h.live_count,
            "root": os.geteuid() == 0,
        }
    finally:
        swap.remove()


def child_holes(backend: str) -> dict[str, Any]:
    """Every second page of each live primitive large object is made
    never-touched (MADV_DONTNEED after prepare: no page table entry, reads as
    zero); one cycle; the page tables at the new addresses."""
    h = _heap(backend, 0)
    h.mark()
    h.prepare()
    objs = []
    for a, s, _id, is_live, large in h.objects():
        if not (large and is_live):
            continue
        n = pages_of(s)
        data = bytearray(ctypes.string_at(a, s))
        holes = list(range(1, n, 2))
        for p in holes:
            err = madvise(a + p * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED)
            if err:
                raise OSError(err, "madvise(MADV_DONTNEED)")
            end = min(s, (p + 1) * PAGE_SIZE)
            data[p * PAGE_SIZE : end] = bytes(end - p * PAGE_SIZE)
        objs.append({"old": a, "new": h.forward(a), "size": s, "pages": n, "holes": holes,
                     "data": bytes(data), "before": [int(e) for e in pagemap(a, n)]})  # fmt: skip
    _cycle(h)
    scan_error = None
    for o in objs:
        o["after"] = [int(e) for e in pagemap(o["new"], o["pages"])]
        try:
            o["zero"] = sorted(_zero_pages(o["new"], o["pages"]))
        except OSError as e:
            o["zero"] = None
            scan_error = str(e)
    stats = _large_stats(h)
    intact = [ctypes.string_at(o["new"], o["size"]) == o["data"] for o in objs]
    for o in objs:
        del o["data"]
    return {
        "objects": objs,
        "stats": stats,
        "intact": intact,
        "verified": h.verify(),
        "live_count": h.live_count,
        "root": os.geteuid() == 0,
        "scan_error": scan_error,
    }


def child_main(argv: list[str]) -> None:
    args = json.loads(argv[0])
    kind = args.pop("case")
    out = {"swap": child_swap, "holes": child_holes}[kind](**args)
    sys.stdout.write("RESULT " + json.dumps(out) + "\n")


# ------------------------------------------------------------------ parent side


def _run(case: str, **args: Any) -> dict[str, Any]:
    swap_path = f"{SWAP_PREFIX}{os.getpid()}-untouched.swap"
    if case == "swap":
        args["swap_path"] = swap_path
    code = (
        f"import sys; sys.path[:0] = [{str(TESTS)!r}, {str(TESTS.parent)!r}];"
        " from test_large_untouched import child_main; child_main(sys.argv[1:])"
    )
    try:
        p = run_with_timeout(
            [sys.executable, "-c", code, json.dumps({"case": case, **args})],
            timeout=CHILD_TIMEOUT_S,
            cwd=TESTS,
        )
    finally:
        problem = remove_swap_file(swap_path)  # the child removes it; unless it was killed
        assert problem is None, problem
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        pytest.fail(f"the child failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    out: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    if "skip" in out:
        pytest.skip(out["skip"])
    return out


def _moved(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The live large objects that got a new address; fails the test if none did."""
    moved = [o for o in objs if o["new"] != o["old"]]
    if not moved:
        pytest.fail(f"none of the {len(objs)} live large objects got a new address: nothing slid")
    return moved


def _check_read_back(r: dict[str, Any]) -> None:
    assert r["verified"] == r["live_count"], "the object graph is broken after the cycle"
    if "checksum_same" in r:
        assert r["checksum_same"], "an object's bytes changed in the cycle"
    if "intact" in r:
        assert all(r["intact"]), f"{r['intact'].count(False)} large object(s) read back wrong"


def _bad_pages(objs: list[dict[str, Any]], want: Any) -> list[str]:
    """'object@new+page' for each page whose after-entry fails want(obj, i, entry)."""
    bad = []
    for o in objs:
        for i, e in enumerate(o["after"]):
            if not want(o, i, e):
                bad.append(f"{o['new']:#x}+{i}: {e:#018x}")
    return bad


def _pages(objs: list[dict[str, Any]]) -> int:
    return sum(o["pages"] for o in objs)


def _check_cold(r: dict[str, Any]) -> None:
    assert r["in_swap_cache"] == 0, (
        f"{r['in_swap_cache']} paged-out pages are still in the swap cache: the setup failed"
    )


@pytest.mark.timeout(CHILD_TIMEOUT_S + 60)
@pytest.mark.parametrize("swap_cache", ["dropped", "kept"])
def test_move_slides_swapped_out_primitive_arrays_without_swapping_them_in(
    swap_cache: str,
) -> None:
    """move: every page of every live primitive large object is still a swap
    entry at the object's new address -- the same swap slot it had at the old
    one -- and VmSwap did not change by a single page; no major fault. Some
    objects did move. Then every object reads back intact. Both with the
    pages only in the swap file (dropped from the swap cache: cold for real)
    and with MADV_PAGEOUT's written pages left in the swap cache (kept: the
    kernel then moves a swap entry whose page it still holds)."""
    r = _run("swap", backend="move", large_max_refs=0, drop_swap_cache=swap_cache == "dropped")
    objs, st = r["objects"], r["stats"]
    if swap_cache == "dropped":
        _check_cold(r)
    moved = _moved(objs)
    assert not any(o["slots"] for o in objs), "large_max_refs=0 gave an object reference slots"
    bad = _bad_pages(objs, lambda o, i, e: bool(e & PM_SWAPPED) and not e & PM_PRESENT)
    assert not bad, (
        f"{len(bad)} of {_pages(objs)} pages were swapped in (present or not swapped at"
        f" the new address); first: {bad[:5]}; stats {st}"
    )
    assert r["swap_kib_after"] == r["swap_kib_before"], (
        f"VmSwap went from {r['swap_kib_before']} to {r['swap_kib_after']} KiB; stats {st}"
    )
    assert r["major_faults"] == 0, f"{r['major_faults']} major faults during the cycle"
    if r["root"]:  # bits 0-54 are the swap type | offset << 5 only for root
        diff = [
            f"{o['new']:#x}+{i}"
            for o in objs
            for i, (b, a) in enumerate(zip(o["before"], o["after"]))
            if (b & PM_FRAME_MASK) != (a & PM_FRAME_MASK)
        ]
        assert not diff, f"{len(diff)} pages hold another swap slot than before: {diff[:5]}"
    # The library's counts agree with the kernel's.
    assert st["large_objects_moved"] == len(moved), st
    assert st["large_pages_moved"] == _pages(moved), st
    assert st["large_pages_copied"] == 0, st
    assert st["large_pages_updated"] == 0, st
    _check_read_back(r)


@pytest.mark.timeout(CHILD_TIMEOUT_S + 60)
def test_copy_swaps_the_same_arrays_in() -> None:
    """copy, same heap, same page-out (cold for real): every page of every
    live large object is present at its new address (read back from the swap
    file to be copied: major faults), and VmSwap fell by at least all of
    them. The contrast to the move case."""
    r = _run("swap", backend="copy", large_max_refs=0, drop_swap_cache=True)
    objs, st = r["objects"], r["stats"]
    _check_cold(r)
    moved = _moved(objs)
    bad = _bad_pages(objs, lambda o, i, e: bool(e & PM_PRESENT) and not e & PM_SWAPPED)
    assert not bad, f"{len(bad)} pages are not present at the new address: {bad[:5]}; stats {st}"
    fell = r["swap_kib_before"] - r["swap_kib_after"]
    assert fell >= _pages(objs) * PAGE_SIZE // 1024, (r["swap_kib_before"], r["swap_kib_after"])
    assert r["major_faults"] > 0, "copy read nothing from the swap file"
    assert st["large_objects_moved"] == len(moved), st
    assert st["large_pages_copied"] == _pages(objs), st
    _check_read_back(r)


@pytest.mark.timeout(CHILD_TIMEOUT_S + 60)
@pytest.mark.parametrize("large_max_refs", [4, 1500], ids=["slots-on-page-0", "slots-on-pages-0-2"])
def test_move_swaps_in_only_the_pages_that_hold_reference_slots(large_max_refs: int) -> None:
    """Large reference arrays (up to large_max_refs slots right after the
    16-byte header): with move, exactly the pages that hold slots leave swap
    (they are read to forward the slots); every other page stays a swap entry
    at the new address, and VmSwap falls by exactly the slot pages. With 4
    slots at most, the slots of every object are on its first page."""
    r = _run("swap", backend="move", large_max_refs=large_max_refs, drop_swap_cache=True)
    objs, st = r["objects"], r["stats"]
    _check_cold(r)
    moved = _moved(objs)
    with_slots = [o for o in objs if o["slots"]]
    assert with_slots, "no live large object has reference slots: the case proves nothing"
    if large_max_refs == 4:
        assert all(o["slots"] == [0] for o in with_slots)
    else:
        assert any(len(o["slots"]) > 1 for o in with_slots), "no object has slots on 2+ pages"
    slot_pages = sum(len(o["slots"]) for o in objs)

    def ok(o: dict[str, Any], i: int, e: int) -> bool:
        if i in o["slots"]:
            return bool(e & PM_PRESENT)
        return bool(e & PM_SWAPPED) and not e & PM_PRESENT

    bad = _bad_pages(objs, ok)
    assert not bad, (
        f"{len(bad)} pages: a slot page still swapped or another page swapped in; first:"
        f" {bad[:5]}; stats {st}"
    )
    fell = r["swap_kib_before"] - r["swap_kib_after"]
    assert fell == slot_pages * PAGE_SIZE // 1024, (
        f"VmSwap fell by {fell} KiB; the slot pages are {slot_pages * PAGE_SIZE // 1024} KiB"
    )
    assert st["large_pages_updated"] == slot_pages, st
    assert st["large_objects_moved"] == len(moved), st
    _check_read_back(r)


@pytest.mark.timeout(CHILD_TIMEOUT_S + 60)
@pytest.mark.parametrize("backend", ["move", "copy"])
def test_never_touched_pages_without_swap(backend: str) -> None:
    """No swap, any user. Every second page of each live primitive large
    object has no page table entry when the cycle starts (MADV_DONTNEED after
    prepare: a page the runtime never touched). Signal: pagemap bit 63 and
    PAGEMAP_SCAN's PAGE_IS_PFNZERO at the new address.

    move: each such page still has no entry or maps the shared zero page --
    the kernel moves an empty source as nothing (or the library installs the
    zero page), so no private page was allocated for it: nobody stored to it
    and nobody copied it. root also sees page frames: every populated page
    keeps its frame (moved, not copied). copy: the same pages are private
    pages (read as zeros and copied), populated pages have new frames.
    Reads of a resident page are invisible without swap (see the module
    docstring); the swap tests prove those."""
    r = _run("holes", backend=backend)
    objs, st = r["objects"], r["stats"]
    moved = _moved(objs)
    if r["scan_error"]:
        pytest.skip(f"cannot tell the zero page from a private one: {r['scan_error']}")
    hole_total = sum(len(o["holes"]) for o in objs)
    private = [
        f"{o['new']:#x}+{i}"
        for o in objs
        for i in o["holes"]
        if o["after"][i] & (PM_PRESENT | PM_SWAPPED) and i not in set(o["zero"])
    ]
    populated = [(o, i) for o in objs for i in range(o["pages"]) if i not in set(o["holes"])]
    same_frame = sum(
        1
        for o, i in populated
        if o["after"][i] & PM_PRESENT
        and (o["after"][i] & PM_FRAME_MASK) == (o["before"][i] & PM_FRAME_MASK)
    )
    assert st["large_objects_moved"] == len(moved), st
    if backend == "move":
        assert not private, (
            f"{len(private)} of {hole_total} never-touched pages got a private page: {private[:5]};"
            f" stats {st}"
        )
        if r["root"]:
            assert same_frame == len(populated), (
                f"{len(populated) - same_frame} of {len(populated)} populated pages changed frame"
            )
        assert st["large_pages_copied"] == 0, st
    else:
        assert len(private) == hole_total, (
            f"copy left {hole_total - len(private)} never-touched pages without a private page"
        )
        if r["root"]:
            assert same_frame == 0, f"copy kept the frame of {same_frame} pages"
    _check_read_back(r)

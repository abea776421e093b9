"""Making pages cold for real, and reading where they are: MADV_PAGEOUT
until each page is a swap entry, the swap cache dropped, and
``/proc/self/pagemap`` to tell, page by page, which pages a cycle read back
(the cold-pages workload, ``workloads/coldpages.py``, and
tests/kernel/test_large_untouched.py use it). The swap file the pages go to is
``swapfile.py``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

from .floor import madvise
from .procfs import PAGE_SIZE, read_vmstat

MADV_PAGEOUT = 21  # Linux 5.4

# /proc/self/pagemap, one 64-bit entry per virtual page
# (Documentation/admin-guide/mm/pagemap.rst). Bits 55-63 are visible to every
# process; bits 0-54 (the PFN of a present page, the swap type | offset << 5
# of a swapped one) read as 0 without CAP_SYS_ADMIN.
PM_PRESENT = 1 << 63
PM_SWAPPED = 1 << 62
PM_FILE_SHARED = 1 << 61
PM_EXCLUSIVE = 1 << 56
PM_SOFT_DIRTY = 1 << 55
PM_FRAME_MASK = (1 << 55) - 1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


# ------------------------------------------------------------------ pagemap


def pagemap(addr: int, npages: int) -> array:
    """The pagemap entries of ``npages`` pages from ``addr`` (page-aligned)."""
    out = array("Q")
    if npages <= 0:
        return out
    fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.pread(fd, 8 * npages, addr // PAGE_SIZE * 8)
    finally:
        os.close(fd)
    out.frombytes(data)
    if len(out) != npages:
        raise OSError(f"short read of /proc/self/pagemap: {len(out)} of {npages} entries")
    return out


def pages_of(size: int) -> int:
    return (size + PAGE_SIZE - 1) // PAGE_SIZE


def count_pages(ranges: Iterable[tuple[int, int]], mask: int) -> int:
    """Pages in ``ranges`` ((address, pages) pairs) whose entry has a bit of ``mask``."""
    return sum(1 for a, n in ranges for e in pagemap(a, n) if e & mask)


def no_writeback() -> bool:
    """True when no page of the system is under writeback (/proc/meminfo)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("Writeback:"):
                    return int(line.split()[1]) == 0
    except OSError:
        pass
    return True


def wait_for_writeback(timeout_s: float = 10.0) -> bool:
    """Waits until no page is under writeback (swap writes end asynchronously
    after MADV_PAGEOUT; UFFDIO_MOVE answers EBUSY for a page under writeback).
    System-wide, so another process's writeback also delays it; False if it
    did not end in ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not no_writeback():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _mincore(addr: int, npages: int) -> bytes:
    vec = (ctypes.c_ubyte * npages)()
    if _libc.mincore(addr, npages * PAGE_SIZE, vec) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mincore: {os.strerror(err)}")
    return bytes(vec)


@dataclass
class PageOut:
    pages: int  # pages in the ranges
    swapped: int  # of them, swap entries in the page table afterwards
    in_swap_cache: int  # of those, still held in memory by the swap cache (mincore)
    errors: set[str]


def _page_out_pass(ranges: list[tuple[int, int]], attempts: int, errors: set[str]) -> None:
    todo = list(ranges)
    left = sum(n for _, n in todo) + 1
    stalled = 0
    for attempt in range(attempts):
        for a, n in todo:
            err = madvise(a, n * PAGE_SIZE, MADV_PAGEOUT)
            if err:
                errors.add(os.strerror(err))
        todo = [(a, n) for a, n in todo if any(not e & PM_SWAPPED for e in pagemap(a, n))]
        if not todo or errors:
            return
        # Retry pages reclaim skipped for a moment; give up on ranges it never
        # takes (a shared memfd heap: its pages never become swap entries).
        now = sum(n for _, n in todo)
        stalled = stalled + 1 if now >= left else 0
        if stalled >= 3:
            return
        left = now
        time.sleep(0.02 * (1 + attempt // 10))


def page_out(
    ranges: list[tuple[int, int]], drop_swap_cache: bool = True, attempts: int = 50
) -> PageOut:
    """Pages out every (address, pages) range: MADV_PAGEOUT until each page is
    a swap entry in the page table (reclaim can skip a page busy for a
    moment), then waits for the writeback.

    MADV_PAGEOUT leaves the written pages in the swap cache until memory is
    short, and a later access is then a minor fault with no I/O. With
    ``drop_swap_cache`` they are made cold for real: read back (from the swap
    cache: no I/O) and paged out again -- a clean page whose swap slot is
    still valid is unmapped and freed at once, without a write -- so only the
    swap device holds them and touching one reads it from there. (This needs
    the swap devices less than half full, or the kernel frees the slot of a
    page read back and the second pass writes it anew.)"""
    errors: set[str] = set()
    _page_out_pass(ranges, attempts, errors)
    wait_for_writeback()
    swapped = count_pages(ranges, PM_SWAPPED)
    total = sum(n for _, n in ranges)
    if drop_swap_cache and swapped == total and not errors:
        # A folio with an extra reference cannot leave the swap cache: the
        # last ones whose writeback ended sit in a per-CPU LRU batch until it
        # is drained, which MADV_PAGEOUT does for the CPU it runs on. Retry
        # the pages still cached on each CPU in turn.
        cpus = sorted(os.sched_getaffinity(0))
        todo = list(ranges)
        try:
            for attempt in range(4 * len(cpus)):
                if attempt:
                    os.sched_setaffinity(0, {cpus[attempt % len(cpus)]})
                for a, n in todo:
                    ctypes.string_at(a, n * PAGE_SIZE)
                _page_out_pass(todo, attempts, errors)
                wait_for_writeback()
                todo = [
                    (a + i * PAGE_SIZE, 1)
                    for a, n in ranges
                    for i, v in enumerate(_mincore(a, n))
                    if v & 1
                ]
                if not todo or errors:
                    break
        finally:
            os.sched_setaffinity(0, cpus)
        swapped = count_pages(ranges, PM_SWAPPED)
    cached = sum(
        1
        for a, n in ranges
        for e, v in zip(pagemap(a, n), _mincore(a, n))
        if e & PM_SWAPPED and v & 1
    )
    return PageOut(total, swapped, cached, errors)


def read_zswpin() -> int | None:
    """/proc/vmstat zswpin (swap-ins served by zswap, which pswpin misses)."""
    return read_vmstat().get("zswpin")


__all__ = [
    "MADV_PAGEOUT",
    "PM_EXCLUSIVE",
    "PM_FILE_SHARED",
    "PM_FRAME_MASK",
    "PM_PRESENT",
    "PM_SOFT_DIRTY",
    "PM_SWAPPED",
    "PageOut",
    "count_pages",
    "no_writeback",
    "page_out",
    "pagemap",
    "pages_of",
    "read_zswpin",
    "wait_for_writeback",
]

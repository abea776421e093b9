"""The cold-pages workload (use case B, DESIGN.md §8, issue 7).

Large primitive arrays (``remap_alloc_large``: page-aligned, whole regions;
no reference slots: ``large_max_refs=0``), half of them dead, and a few
small-object regions. After prepare, the live arrays are paged out with
MADV_PAGEOUT to a swap file the harness creates for the run; the run waits
until every one of their pages is a swap entry and the writeback is over (a
page under writeback is not exclusive: MOVE would answer EBUSY and the
library would fall back), then drops them from the swap cache (``page_out``
says how), so that they are cold for real: touching one reads it from the
swap file. Then the measured cycle slides the live arrays down over the dead
ones.

What a run reports beyond the common fields:

- ``large_live_pages``: pages of live large objects (page-rounded);
  ``large_pages_paged_out``: those of them that were swap entries at the flip
  (``/proc/self/pagemap`` bit 62 at their old address);
  ``large_pages_in_swap_cache``: of those, the ones the swap cache still held
  (mincore), normally 0.
- ``large_pages_swapped_in``: of those, the ones not a swap entry any more at
  the object's NEW address (``remap_forward`` at prepare) after the cycle:
  the pages the cycle read back from swap. Per page and per process.
- ``swap_ins``: the larger of ``large_pages_swapped_in`` and the fall of this
  process's ``VmSwap`` in pages (it also sees a swap-in served from the swap
  cache, which ``/proc/vmstat`` pswpin does not count). ``major_faults``
  (this process) says how many of them waited for the swap file. ``pswpin``
  (and ``zswpin``) are reported too but are system-wide: other processes add
  to them.
- ``large_objects_moved``, ``large_pages_moved``, ``large_pages_copied``,
  ``large_pages_updated``: the library's own counts (remap_cycle_stats).
- ``large_pages_per_s``: ``large_live_pages`` / compaction time: how fast the
  backend puts the live large pages in place.

The goal (issue 7): no swap-in with ``move``; ``copy`` reads every live
page back in, and is at least 10x slower.

The swap file (root only) lives in /var/tmp, is written (not fallocate()d:
some file systems refuse swap files with unwritten extents), and is always
swapoff()ed and removed: on return, on an exception, at interpreter exit and
on SIGTERM/SIGHUP; a file left by a process that was killed (SIGKILL) is
removed by the next run. Without root or swap support the workload is
skipped with the reason.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import glob
import os
import re
import signal
import subprocess
import sys
import time
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any, final

from .floor import madvise
from .procfs import PAGE_SIZE, read_vmstat, vm_swap_bytes
from .workloads import REGION, MiB, Point, Synthetic, Unavailable

MADV_PAGEOUT = 21

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

#: Size of one large array: 4 regions (1 MiB, 256 pages).
LARGE_OBJECT_BYTES = 4 * REGION
#: Share of the heap's regions holding small objects; the rest is large arrays.
SMALL_FRACTION = 1 / 16

SWAP_PREFIX = "/var/tmp/libremap-bench-"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.swapon.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.swapoff.argtypes = [ctypes.c_char_p]
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


# ------------------------------------------------------------------ swap file


def _active_swaps() -> set[str]:
    try:
        with open("/proc/swaps") as f:
            return {line.split()[0] for line in f.readlines()[1:] if line.strip()}
    except OSError:
        return set()


def remove_swap_file(path: str) -> str | None:
    """swapoff (if active) and unlink ``path``; returns an error message or None."""
    problem = None
    if path in _active_swaps() and _libc.swapoff(path.encode()) != 0:
        err = ctypes.get_errno()
        problem = f"swapoff({path}) failed: {os.strerror(err)}"
    if path not in _active_swaps():
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            problem = f"cannot remove {path}: {e}"
    return problem


def remove_stale_swap_files(prefix: str = SWAP_PREFIX) -> list[str]:
    """Removes ``<prefix><pid>[-*].swap`` files whose process is gone (it was
    killed before it could clean up). Returns the paths removed."""
    removed = []
    for path in glob.glob(glob.escape(prefix) + "*.swap"):
        m = re.fullmatch(re.escape(prefix) + r"(\d+)(-[^/]*)?\.swap", path)
        if not m:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # its process is alive: not ours to remove
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        if remove_swap_file(path) is None:
            removed.append(path)
    return removed


@final
class SwapFile:
    """A swap file active for the lifetime of the object (``with SwapFile(n)``).

    ``path`` defaults to ``/var/tmp/libremap-bench-<pid>.swap``; a caller that
    runs it in a child process passes its own, to remove it if the child is
    killed (``remove_swap_file``)."""

    def __init__(self, size_bytes: int, path: str | None = None) -> None:
        self.path = path or f"{SWAP_PREFIX}{os.getpid()}.swap"
        self.size = max(size_bytes, 16 * MiB) // MiB * MiB
        self.active = False
        self.created = False
        self._old_handlers: dict[int, Any] = {}

    def __enter__(self) -> SwapFile:
        if os.geteuid() != 0:
            raise Unavailable("needs root to create and swapon a swap file")
        atexit.register(self.remove)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            remove_stale_swap_files()
            self._create()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.remove()
        raise SystemExit(128 + signum)

    def _create(self) -> None:
        if os.path.exists(self.path):
            problem = remove_swap_file(self.path)
            if problem:
                raise Unavailable(f"a swap file is in the way: {problem}")
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        self.created = True
        try:
            zeros = bytes(MiB)
            for _ in range(self.size // MiB):
                os.write(fd, zeros)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            subprocess.run(["mkswap", "-q", self.path], check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            raise Unavailable(f"mkswap failed ({e}): is util-linux installed?") from None
        # Set before the call: a signal arriving right after swapon returns
        # must still swapoff. remove() checks /proc/swaps.
        self.active = True
        if _libc.swapon(self.path.encode(), 0) != 0:
            err = ctypes.get_errno()
            self.active = False
            raise Unavailable(
                f"swapon({self.path}) failed: {os.strerror(err)}"
                " (file system without swap file support, or a container)"
            )

    def remove(self) -> None:
        if self.active or self.created:
            problem = remove_swap_file(self.path)
            if problem:
                print(f"WARNING: {problem}", file=sys.stderr)
            else:
                self.active = self.created = False
        for sig, h in self._old_handlers.items():
            signal.signal(sig, h)
        self._old_handlers.clear()
        atexit.unregister(self.remove)


# ------------------------------------------------------------------ workload


class ColdPages(Synthetic):
    name = "cold-pages"

    def __init__(self, point: Point) -> None:
        super().__init__(point)
        self._heap: Any = None
        self._new: list[tuple[int, int]] = []
        self._zswpin0: int | None = None

    def regions(self) -> int:
        return max(8, self.point.heap_mib * MiB // REGION)

    def large_count(self) -> int:
        per = LARGE_OBJECT_BYTES // REGION
        small = max(1, round(self.regions() * SMALL_FRACTION))
        return max(4, (self.regions() - small) // per)

    def describe(self) -> str:
        p = self.point
        n = self.large_count()
        return (
            f"cold-pages: heap {p.heap_mib} MiB, {n} large primitive arrays of"
            f" {LARGE_OBJECT_BYTES // 1024} KiB ({n * LARGE_OBJECT_BYTES // MiB} MiB),"
            f" half dead, the live ones paged out (MADV_PAGEOUT) to a swap file;"
            f" small objects in {SMALL_FRACTION:.0%} of the regions"
        )

    def heap_params(self) -> dict[str, Any]:
        params = super().heap_params()
        params.update(
            {
                "capacity": self.regions() * REGION,
                "fill_fraction": SMALL_FRACTION,
                "large_objects": self.large_count(),
                "large_object_size": LARGE_OBJECT_BYTES,
                "large_live_fraction": 0.5,
                "large_max_refs": 0,  # primitive arrays: nothing to update, nothing to read
            }
        )
        return params

    def swap_bytes_needed(self) -> int:
        # Half the large bytes are live; the swap devices must stay less than
        # half full for page_out() to drop the swap cache: three times that.
        return self.large_count() * LARGE_OBJECT_BYTES * 3 // 2

    def run(self, backend: str) -> dict[str, Any]:
        try:
            rec = super().run(backend)
            if not rec["verified"]:
                rec["large_pages_per_s"] = None  # a wrong result gets no time
            return rec
        finally:
            self._heap = None
            self._new = []

    def before_flip(self, heap: Any, rec: dict[str, Any]) -> None:
        # objects() reads every header: before the page-out, not after.
        live = [
            (a, pages_of(size))
            for a, size, _id, is_live, large in heap.objects()
            if large and is_live
        ]
        self._heap = heap
        self._new = [(heap.forward(a), n) for a, n in live]
        before = vm_swap_bytes() or 0
        po = page_out(live)
        swapped, total, errors = po.swapped, po.pages, po.errors
        rec["large_live_pages"] = total
        rec["large_pages_paged_out"] = swapped
        rec["large_pages_in_swap_cache"] = po.in_swap_cache if swapped else None
        rec["paged_out_bytes"] = (vm_swap_bytes() or 0) - before
        if swapped == 0:
            rec["note"] = (
                "no live large page became a swap entry: this backend's heap is a shared"
                " memfd mapping (minor, sigsegv), whose paged-out pages neither the page"
                " table nor VmSwap show; its swap-ins are not measured"
            )
        elif swapped < total:
            rec["note"] = f"only {swapped} of {total} live large pages were paged out"
        if errors:
            rec["pageout_errors"] = sorted(errors)
        self._zswpin0 = read_zswpin()

    def after_cycle(self, rec: dict[str, Any], delta: dict[str, int]) -> None:
        # Before verification reads the heap (and swaps everything in).
        still = count_pages(self._new, PM_SWAPPED)
        paged = int(rec.get("large_pages_paged_out") or 0)
        rec["large_pages_swapped_after"] = still
        rec["large_pages_swapped_in"] = max(0, paged - still) if paged else None
        st = self._heap.stats() if self._heap is not None else {}
        for k in (
            "large_objects_moved",
            "large_pages_moved",
            "large_pages_copied",
            "large_pages_updated",
        ):
            v = st.get(k)
            rec[k] = None if v is None else int(v)
        comp = rec.get("compaction_ns")
        live = rec.get("large_live_pages")
        rec["large_pages_per_s"] = live / (comp / 1e9) if comp and live else None
        rec["pswpin"] = delta["pswpin"]
        z0, z1 = self._zswpin0, read_zswpin()
        rec["zswpin"] = None if z0 is None or z1 is None else z1 - z0
        before, after = rec.get("vm_swap_before"), rec.get("vm_swap_after")
        fell = None if before is None or after is None else max(0, before - after) // PAGE_SIZE
        rec["vm_swap_fell_pages"] = fell
        # Nothing paged out: nothing to swap in, so nothing measured.
        if paged and fell is not None:
            rec["swap_ins"] = max(fell, rec["large_pages_swapped_in"])
        else:
            rec["swap_ins"] = None


def read_zswpin() -> int | None:
    """/proc/vmstat zswpin (swap-ins served by zswap, which pswpin misses)."""
    return read_vmstat().get("zswpin")


def point_needs_swap(point: Point) -> int:
    return ColdPages(point).swap_bytes_needed()


__all__ = [
    "LARGE_OBJECT_BYTES",
    "PM_EXCLUSIVE",
    "PM_FRAME_MASK",
    "PM_PRESENT",
    "PM_SOFT_DIRTY",
    "PM_SWAPPED",
    "ColdPages",
    "PageOut",
    "SwapFile",
    "count_pages",
    "page_out",
    "pagemap",
    "pages_of",
    "remove_stale_swap_files",
    "remove_swap_file",
    "wait_for_writeback",
]

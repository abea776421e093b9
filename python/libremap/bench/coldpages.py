"""The cold-pages workload (use case B, DESIGN.md §8, a preview).

Large primitive arrays (``remap_alloc_large``: whole pages, regions of their
own), half of them dead; after prepare, the live ones are paged out with
MADV_PAGEOUT to a swap file the harness creates for the run. What is counted
is the pages swapped back in between the flip and the end of the cycle:
``swap_ins`` is the larger of ``/proc/vmstat`` pswpin (system-wide, reads from
the swap device) and the fall of the process's ``VmSwap`` in pages (which also
sees swap-ins served from the swap cache). Compaction that slides cold pages
must not touch them.

The swap file (root only) lives in /var/tmp, is written (not fallocate()d:
some file systems refuse swap files with unwritten extents), and is always
swapoff()ed and removed: on return, on an exception, at interpreter exit and
on SIGTERM/SIGHUP. Without root or swap support the workload is skipped with
the reason.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import signal
import subprocess
from types import FrameType
from typing import Any, final

from .floor import madvise
from .procfs import PAGE_SIZE, vm_swap_bytes
from .workloads import REGION, MiB, Point, Synthetic, Unavailable

MADV_PAGEOUT = 21

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


@final
class SwapFile:
    """A swap file active for the lifetime of the object (``with SwapFile(n)``)."""

    def __init__(self, size_bytes: int) -> None:
        self.path = f"/var/tmp/libremap-bench-{os.getpid()}.swap"
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
        if _libc.swapon(self.path.encode(), 0) != 0:
            err = ctypes.get_errno()
            raise Unavailable(
                f"swapon({self.path}) failed: {os.strerror(err)}"
                " (file system without swap file support, or a container)"
            )
        self.active = True

    def remove(self) -> None:
        if self.active:
            if _libc.swapoff(self.path.encode()) != 0:
                err = ctypes.get_errno()
                print(f"WARNING: swapoff({self.path}) failed: {os.strerror(err)}")
            self.active = False
        if self.created:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.created = False
        for sig, h in self._old_handlers.items():
            signal.signal(sig, h)
        self._old_handlers.clear()
        atexit.unregister(self.remove)


class ColdPages(Synthetic):
    name = "cold-pages"

    def describe(self) -> str:
        p = self.point
        return (
            f"cold-pages: heap {p.heap_mib} MiB, {self.large_count()} large arrays of"
            f" {REGION * 3 // 4 // 1024} KiB, half dead, live ones paged out (MADV_PAGEOUT)"
        )

    def large_count(self) -> int:
        regions = self.point.heap_mib * MiB // REGION
        return max(4, regions // 2)

    def heap_params(self) -> dict[str, Any]:
        params = super().heap_params()
        # Small objects in a quarter of the regions; the large arrays take half.
        params.update(
            {
                "fill_fraction": 0.25,
                "large_objects": self.large_count(),
                "large_object_size": 0,
                "large_live_fraction": 0.5,
            }
        )
        return params

    def swap_bytes_needed(self) -> int:
        return self.large_count() * REGION

    def before_flip(self, heap: Any, rec: dict[str, Any]) -> None:
        before = vm_swap_bytes() or 0
        errors = set()
        for addr, size, _id, live, large in heap.objects():
            if large and live:
                n = (size + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE
                err = madvise(addr, n, MADV_PAGEOUT)
                if err:
                    errors.add(os.strerror(err))
        rec["paged_out_bytes"] = (vm_swap_bytes() or 0) - before
        if rec["paged_out_bytes"] <= 0:
            rec["note"] = (
                "nothing was paged out: MADV_PAGEOUT left this backend's heap resident"
                " (a shared memfd heap), so its swap-ins are not comparable"
            )
        if errors:
            rec["pageout_errors"] = sorted(errors)

    def after_cycle(self, rec: dict[str, Any], delta: dict[str, int]) -> None:
        # MADV_PAGEOUT leaves a written-back page in the swap cache until memory
        # is short, and a fault on it is a minor fault that pswpin does not
        # count; VmSwap falls for either kind of swap-in (and for swap entries
        # freed, which only dead data should have). Report the larger.
        rec["pswpin"] = delta["pswpin"]
        before, after = rec.get("vm_swap_before"), rec.get("vm_swap_after")
        left = 0 if before is None or after is None else max(0, before - after) // PAGE_SIZE
        rec["swap_left_pages"] = left
        rec["swap_ins"] = max(delta["pswpin"], left)


def point_needs_swap(point: Point) -> int:
    return ColdPages(point).swap_bytes_needed()

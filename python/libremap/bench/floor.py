"""The floor: what the hardware and the kernel charge per 4 KiB page.

Measured in the same process and run as the backends (BENCHMARKS.md), with
libremap's own kernel layer (``remap_uffd_*`` through cffi):

- ``move_batched``: one UFFDIO_MOVE of ``BATCH`` pages, ping-ponged between
  two anonymous mappings registered on one userfaultfd (MOVE wants the
  destination VMA registered on the uffd it is called on; registering both
  lets pages go back and forth without re-populating them);
- ``move_single``: the same, one ioctl per page;
- ``copy``: one UFFDIO_COPY of ``BATCH`` pages into a hole (the kernel
  allocates and copies each page); the destination is emptied with
  MADV_DONTNEED between repetitions, outside the timed part;
- ``memcpy``: a warm copy of ``BATCH`` pages between populated buffers;
- ``fault_zero`` (extra): first write to fresh anonymous pages (fault +
  allocate + clear), what an allocating backend pays per page.

Single-page numbers are timed call by call (the median call, so that a
preemption on a loaded machine does not count) and pay one cffi call each:
the median cost of a timed no-op call into libremap is subtracted and
reported as ``call_overhead_ns``.
Mappings are MADV_NOHUGEPAGE so every page is a 4 KiB page.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import statistics
import time
from collections.abc import Callable
from typing import Any, final

from .procfs import PAGE_SIZE

BATCH = 512  # pages per batched ioctl (2 MiB)

_PROT_RW = 0x1 | 0x2
_MAP_PRIVATE_ANON = 0x02 | 0x20
_MADV_DONTNEED = 4
_MADV_NOHUGEPAGE = 15

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def mmap_anon(length: int) -> int:
    addr = _libc.mmap(None, length, _PROT_RW, _MAP_PRIVATE_ANON, -1, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        err = ctypes.get_errno()
        raise OSError(err, f"mmap({length}) failed")
    _libc.madvise(addr, length, _MADV_NOHUGEPAGE)
    return int(addr)


def munmap(addr: int, length: int) -> None:
    _libc.munmap(addr, length)


def madvise(addr: int, length: int, advice: int) -> int:
    """madvise(2); returns 0 or the errno."""
    if _libc.madvise(addr, length, advice) != 0:
        return ctypes.get_errno()
    return 0


def _stats(samples: list[float]) -> dict[str, float]:
    return {
        "median": float(statistics.median(samples)),
        "min": float(min(samples)),
        "max": float(max(samples)),
        "samples": len(samples),
    }


class FloorError(RuntimeError):
    pass


@final
class _Uffd:
    """A userfaultfd from libremap's kernel layer, closed on exit."""

    def __init__(self) -> None:
        from ..cabi import ffi, last_error, lib, status_name

        self.ffi, self.lib = ffi, lib
        out = ffi.new("remap_uffd**")
        st = lib.remap_uffd_open(0, 0, out)
        if st != 0:
            raise FloorError(f"remap_uffd_open: {status_name(st)}: {last_error()}")
        self.h = out[0]
        self._done = ffi.new("size_t*")

    def _check(self, st: int, what: str) -> None:
        if st != 0:
            from ..cabi import last_error, status_name

            raise FloorError(f"{what}: {status_name(st)}: {last_error()}")

    def register(self, addr: int, length: int) -> None:
        st = self.lib.remap_uffd_register(
            self.h,
            self.ffi.cast("void*", addr),
            length,
            self.lib.REMAP_REGISTER_MISSING,
            self.ffi.NULL,
        )
        self._check(st, "remap_uffd_register")

    def move(self, dst: int, src: int, length: int) -> None:
        st = self.lib.remap_uffd_move(
            self.h, self.ffi.cast("void*", dst), self.ffi.cast("void*", src), length, 0, self._done
        )
        self._check(st, "remap_uffd_move")

    def copy(self, dst: int, src: int, length: int) -> None:
        st = self.lib.remap_uffd_copy(
            self.h, self.ffi.cast("void*", dst), self.ffi.cast("void*", src), length, 0, self._done
        )
        self._check(st, "remap_uffd_copy")

    def unregister(self, addr: int, length: int) -> None:
        st = self.lib.remap_uffd_unregister(self.h, self.ffi.cast("void*", addr), length)
        self._check(st, "remap_uffd_unregister")

    def close(self) -> None:
        self.lib.remap_uffd_close(self.h)

    def __enter__(self) -> _Uffd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _time_ns(fn: Callable[[], object]) -> int:
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


def _page_by_page(op: Callable[[int, int, int], None], dst: int, src: int) -> Callable[[int], None]:
    """op on page k of dst from page k of src: one call per page."""

    def one(k: int) -> None:
        op(dst + k * PAGE_SIZE, src + k * PAGE_SIZE, PAGE_SIZE)

    return one


def _per_call_ns(fn: Callable[[int], object], n: int) -> list[int]:
    """fn(i) timed call by call: a per-call median shrugs off the preemptions
    a loaded machine inflicts on a long loop."""
    pc = time.perf_counter_ns
    out = []
    for i in range(n):
        t0 = pc()
        fn(i)
        out.append(pc() - t0)
    return out


def _call_overhead_ns() -> float:
    """Median cost of one timed cffi call into libremap that does nothing."""
    from ..cabi import lib

    f = lib.remap_abi_version
    return float(statistics.median(_per_call_ns(lambda i: f(), 4 * BATCH)))


def measure(reps: int = 50, move_available: bool = True) -> dict[str, Any]:
    """The ``floor`` object: ns per 4 KiB page of each primitive (medians over
    ``reps`` repetitions of ``BATCH`` pages; the first repetition of each is a
    warm-up and is dropped, see the first-touch trap in BENCHMARKS.md)."""
    length = BATCH * PAGE_SIZE
    a = mmap_anon(length)
    b = mmap_anon(length)
    c = mmap_anon(length)
    out: dict[str, Any] = {
        "batch_pages": BATCH,
        "page_size": PAGE_SIZE,
        "reps": reps,
        "move_batched_ns_per_page": None,
        "move_single_ns_per_page": None,
        "copy_ns_per_page": None,
        "memcpy_ns_per_page": None,
        "errors": [],
    }
    samples: dict[str, list[float]] = {
        k: []
        for k in ("move_batched", "move_single", "copy", "copy_single", "memcpy", "fault_zero")
    }
    try:
        ctypes.memset(a, 1, length)
        ctypes.memset(c, 2, length)
        overhead = _call_overhead_ns()
        out["call_overhead_ns"] = overhead

        # memcpy: a warm copy (c -> a, both populated).
        for i in range(reps + 1):
            t = _time_ns(lambda: ctypes.memmove(a, c, length))
            if i:
                samples["memcpy"].append(t / BATCH)

        # fault_zero: first write to fresh pages (b is a hole after each pass).
        for i in range(reps + 1):
            t = _time_ns(lambda: ctypes.memset(b, 3, length))
            madvise(b, length, _MADV_DONTNEED)
            if i:
                samples["fault_zero"].append(t / BATCH)

        with _Uffd() as uffd:
            uffd.register(a, length)
            uffd.register(b, length)
            src, dst = a, b  # a populated, b a hole
            if move_available:
                for i in range(reps + 1):
                    t = _time_ns(functools.partial(uffd.move, dst, src, length))
                    src, dst = dst, src
                    if i:
                        samples["move_batched"].append(t / BATCH)
                for i in range(max(2, reps // 10) + 1):
                    per = _per_call_ns(_page_by_page(uffd.move, dst, src), BATCH)
                    src, dst = dst, src
                    if i:
                        samples["move_single"].append(statistics.median(per) - overhead)
            # COPY into the hole (dst), from the populated buffer c.
            for i in range(reps + 1):
                t = _time_ns(functools.partial(uffd.copy, dst, c, length))
                madvise(dst, length, _MADV_DONTNEED)
                if i:
                    samples["copy"].append(t / BATCH)
            for i in range(max(2, reps // 10) + 1):
                per = _per_call_ns(_page_by_page(uffd.copy, dst, c), BATCH)
                madvise(dst, length, _MADV_DONTNEED)
                if i:
                    samples["copy_single"].append(statistics.median(per) - overhead)
    except (FloorError, OSError) as e:
        out["errors"].append(str(e))
    finally:
        for m in (a, b, c):
            munmap(m, length)
    detail: dict[str, Any] = {}
    for k, v in samples.items():
        if v:
            detail[k] = _stats(v)
            out[f"{k}_ns_per_page"] = detail[k]["median"]
    out["detail"] = detail
    if not move_available:
        out["errors"].append("this kernel has no UFFDIO_MOVE: move floor not measured")
    return out


_GIB = 1 << 30
_MREMAP_MAYMOVE, _MREMAP_FIXED, _MREMAP_DONTUNMAP = 1, 2, 4
_libc.mremap.restype = ctypes.c_void_p
# mremap is variadic: the fifth argument (new_address) must always be passed.
_libc.mremap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_void_p,
]


def _reserve_gib_aligned(length: int) -> int:
    """An anonymous mapping of ``length`` bytes (whole GiB) starting on a GiB
    boundary: over-reserve, then trim both ends."""
    raw = mmap_anon(length + _GIB)
    start = (raw + _GIB - 1) & ~(_GIB - 1)
    if start > raw:
        munmap(raw, start - raw)
    tail = raw + length + _GIB - (start + length)
    if tail:
        munmap(start + length, tail)
    return start


def measure_bare_flip(heap_bytes: int, reps: int = 5) -> dict[str, Any]:
    """What a flip costs the kernel alone: ``mremap(MREMAP_DONTUNMAP)`` of a
    1 GiB-aligned, whole-GiB mapping whose first ``heap_bytes`` are populated
    onto a same-sized from-space, plus ``UFFDIO_REGISTER`` of the emptied
    range (DESIGN.md section 3). Each repetition flips fresh mappings once,
    as a heap's flip does (a second flip of the same mappings back and forth
    is several times cheaper). The library's flip pause is judged against
    this, measured in the same run."""
    out: dict[str, Any] = {"heap_bytes": heap_bytes, "ns": None, "errors": []}
    length = max(_GIB, (heap_bytes + _GIB - 1) & ~(_GIB - 1))
    flags = _MREMAP_MAYMOVE | _MREMAP_FIXED | _MREMAP_DONTUNMAP
    samples: list[float] = []
    try:
        with _Uffd() as uffd:
            for i in range(reps + 1):
                heap = _reserve_gib_aligned(length)
                from_ = _reserve_gib_aligned(length)
                try:
                    ctypes.memset(heap, 1, heap_bytes)
                    t0 = time.perf_counter_ns()
                    r = _libc.mremap(heap, length, length, flags, from_)
                    if r != from_:
                        raise OSError(ctypes.get_errno(), "mremap(DONTUNMAP) failed")
                    uffd.register(heap, length)
                    t = time.perf_counter_ns() - t0
                    uffd.unregister(heap, length)
                finally:
                    munmap(heap, length)
                    munmap(from_, length)
                if i:
                    samples.append(float(t))
        out["ns"] = statistics.median(samples)
        out["detail"] = _stats(samples)
    except (FloorError, OSError) as e:
        out["errors"].append(str(e))
    return out

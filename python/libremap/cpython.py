"""pymalloc's arenas from libremap's arena pool: ``libremap.cpython``.

CPython's object allocator takes 1 MiB arenas from a pluggable arena
allocator (``PyObject_SetArenaAllocator``; by default ``mmap``/``munmap``), so
every new arena costs fresh page faults and zeroing. ``install()`` replaces
it with a libremap arena pool: freed arenas keep their pages, up to
``cap_mib`` MiB of them, and are handed out again without faults; above the
cap their pages go back to the OS in batches.

    from libremap import cpython
    cpython.install(cap_mib=64)      # or: with cpython.install(): ...
    ...
    print(cpython.stats())
    cpython.uninstall()

Without code changes: ``LIBREMAP_ARENAS=1`` in the environment installs the
adapter at interpreter start (``LIBREMAP_ARENAS_CAP_MIB`` sets the cap), via
``libremap_arenas.pth`` shipped in the wheel.

Arenas allocated before ``install()`` are freed through the previous
allocator. After ``uninstall()`` arenas handed out by libremap stay valid;
while any are live, new arenas come from the previous allocator and frees
are routed to whichever allocator owns the block (``stats()["mode"]`` is
``"forwarding"``). The native part lives in ``libremap._core``, which is
built for the interpreter that ran ``pip install``: each CPython version
needs its own install of the package (``pip install .`` under that
interpreter; with ``--no-build-isolation`` it needs pybind11,
scikit-build-core and cffi installed first). Checked here: 3.11 and 3.13
(tests/runtimes/test_cpython_arenas.py, CPython's regrtest subset included); 3.10 and
3.12 use the same API (PyObject_SetArenaAllocator, 1 MiB arenas) but were
not built. Free-threaded builds (3.13t) do not use pymalloc: nothing to
serve there.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from . import _core

_native: Any = _core.cpython_arenas

ARENA_SIZE: int = int(_native.DEFAULT_ARENA_SIZE)
DEFAULT_CAP_MIB = 64.0
DEFAULT_MAX_ARENAS = 16384


class Installation:
    """What ``install()`` returns; as a context manager it uninstalls on exit
    (only if this call was the one that installed)."""

    def __init__(self, installed_now: bool) -> None:
        self.installed_now = installed_now

    def __enter__(self) -> Installation:  # noqa: PYI034 - py3.10 has no typing.Self
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.installed_now:
            uninstall()

    def __bool__(self) -> bool:
        return self.installed_now

    def __repr__(self) -> str:
        return f"<libremap.cpython.Installation installed_now={self.installed_now}>"


def install(
    cap_mib: float = DEFAULT_CAP_MIB,
    *,
    max_arenas: int = DEFAULT_MAX_ARENAS,
    hugepages: bool = False,
    arena_size: int = ARENA_SIZE,
) -> Installation:
    """Serve pymalloc's arenas from a libremap arena pool.

    cap_mib: freed arenas kept populated (MiB); 0 keeps none.
    max_arenas: slots reserved (address space only: max_arenas * 1 MiB).
    hugepages: MADV_HUGEPAGE on the slot range (THP "madvise" mode).
    A second install with the same settings is a no-op (falsy result).
    """
    if cap_mib < 0:
        raise ValueError(f"cap_mib {cap_mib} must be >= 0")
    cap_bytes = int(cap_mib * (1 << 20))
    return Installation(bool(_native.install(arena_size, cap_bytes, max_arenas, hugepages)))


def uninstall() -> bool:
    """Restore the previous arena allocator; False if not installed."""
    return bool(_native.uninstall())


def installed() -> bool:
    return stats()["mode"] == "installed"


def stats() -> dict[str, Any]:
    """Counters of the adapter and its pool.

    mode: "off", "installed" or "forwarding".
    arenas_live / arenas_peak / arenas_allocated / arenas_freed: arena slots.
    arenas_recycled: allocations served by a freed, still populated arena;
    pages_reused: their pages (faults saved, at most).
    arenas_cached: freed arenas holding pages now (<= cap).
    arenas_returned / bytes_returned / madvise_calls: given back to the OS.
    other_*: blocks not arena-sized (frame-stack chunks), mapped on their own.
    foreign_frees: frees of blocks the previous allocator handed out
    (foreign_arena_frees: those of arena size).
    prev_allocs: allocations passed to the previous allocator (forwarding).
    alloc_failures / free_errors: should stay 0.
    """
    return dict(_native.stats())


__all__ = [
    "ARENA_SIZE",
    "DEFAULT_CAP_MIB",
    "Installation",
    "install",
    "installed",
    "stats",
    "uninstall",
]

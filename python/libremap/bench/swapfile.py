"""The swap file the cold-pages workload pages out to, active only while a
run needs it (``with SwapFile(n)``).

It is root's business and a shared resource: the file lives in /var/tmp,
is written (not fallocate()d: some file systems refuse swap files with
unwritten extents), and is always swapoff()ed and removed: on return, on an
exception, at interpreter exit and on SIGTERM/SIGHUP. A file left by a
process that was killed (SIGKILL) is removed by the next run. Without root
or swap support it raises ``Unavailable`` with the reason.
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
from types import FrameType
from typing import Any, final

from .unavailable import Unavailable

MiB = 1 << 20
SWAP_PREFIX = "/var/tmp/libremap-bench-"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.swapon.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.swapoff.argtypes = [ctypes.c_char_p]


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


__all__ = ["SWAP_PREFIX", "SwapFile", "remove_stale_swap_files", "remove_swap_file"]

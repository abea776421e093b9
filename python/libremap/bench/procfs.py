"""What the kernel says about this process and machine, read around each run.

Page allocations are read from ``/proc/vmstat`` (``pgalloc_*``) because
getrusage's minor faults miss the pages the kernel allocates inside
UFFDIO_COPY (BENCHMARKS.md, "two traps"). ``/proc/vmstat`` is system-wide:
on a shared machine other processes add to it, so it is an upper bound.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def read_vmstat() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                k, _, v = line.partition(" ")
                if k.startswith(("pgalloc_", "pswp", "zswp", "pgfault", "pgmajfault", "thp_")):
                    out[k] = int(v)
    except OSError:
        pass
    return out


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int:
    """Resident set of this process (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE_SIZE


def reset_peak_rss() -> bool:
    """Starts a new peak-RSS window: writing 5 to ``/proc/self/clear_refs``
    resets ``VmHWM`` to the current RSS (Linux 4.0+; allowed for one's own
    process). False where the kernel refuses it: the peak is then unknown."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int | None:
    """The highest RSS since the last reset_peak_rss (``VmHWM``)."""
    kib = _status_kib("VmHWM")
    return None if kib is None else kib * 1024


def vma_count() -> int:
    """Mappings of this process (lines of ``/proc/self/maps``)."""
    with open("/proc/self/maps", "rb") as f:
        return sum(1 for _ in f)


def vm_swap_bytes() -> int | None:
    """This process's swapped-out memory (``VmSwap``), None if unreadable."""
    kib = _status_kib("VmSwap")
    return None if kib is None else kib * 1024


@dataclass(frozen=True)
class Counters:
    """A snapshot of the counters a run reports as deltas."""

    vmstat: dict[str, int]
    minflt: int
    majflt: int
    rss: int
    vm_swap: int | None

    @classmethod
    def take(cls) -> Counters:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return cls(read_vmstat(), ru.ru_minflt, ru.ru_majflt, rss_bytes(), vm_swap_bytes())

    def pgalloc(self) -> int:
        return sum(v for k, v in self.vmstat.items() if k.startswith("pgalloc_"))

    def delta(self, later: Counters) -> dict[str, int]:
        return {
            "minor_faults": later.minflt - self.minflt,
            "major_faults": later.majflt - self.majflt,
            "pgalloc": later.pgalloc() - self.pgalloc(),
            "pswpin": later.vmstat.get("pswpin", 0) - self.vmstat.get("pswpin", 0),
            "pswpout": later.vmstat.get("pswpout", 0) - self.vmstat.get("pswpout", 0),
        }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def machine() -> dict[str, Any]:
    """The ``machine`` object of the JSON: kernel, CPU, THP mode, probe, load."""
    from .. import __version__
    from ..probe import probe

    info = probe()
    mem_kib = None
    meminfo = _read("/proc/meminfo") or ""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {
        "kernel": platform.release(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "thp": info.thp_mode,
        "thp_enabled": _read("/sys/kernel/mm/transparent_hugepage/enabled"),
        "mem_total_bytes": None if mem_kib is None else mem_kib * 1024,
        "loadavg": _read("/proc/loadavg"),
        "swap_present": info.swap_present,
        "page_size": PAGE_SIZE,
        "python": sys.version.split()[0],
        "libremap": __version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "probe": info.to_json(),
    }

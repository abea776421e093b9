"""``Unavailable``: a workload, backend or measurement that cannot run on
this machine (no root for a swap file, a kernel without a feature, a limit).

It is a result, not a failure: the runner lists it under ``unavailable``
with the reason and goes on. It sits below every other bench module, so
that the kernel-facing ones (``swapfile``, ``pageout``) can raise it
without importing the workloads.
"""

from __future__ import annotations


class Unavailable(Exception):
    """This workload or backend cannot run here; the message says why."""


# The library says this backend cannot run this cycle here: not a wrong result.
# REMAP_ELIMIT is sigsegv's documented limit (one VMA per page in the worst
# case against vm.max_map_count), refused at flip with the heap intact.
UNAVAILABLE_STATUSES = ("REMAP_EUNSUPPORTED", "REMAP_EPERM", "REMAP_ELIMIT")

"""A runtime that hands heap memory to system calls while compacting.

The kernel cannot take the SIGBUS a mutator's own access takes: in SIGBUS
mode (and on the sigsegv backend's PROT_NONE pages) a read(2) or write(2)
on a page libremap has not produced yet fails with EFAULT, unless the
runtime calls remap_touch on the range first; in thread mode the handler
threads serve the kernel's fault. The kit calls the runtime's syscalls
callback right after the flip, before any page is produced by remap_compact.
"""

from __future__ import annotations

import pytest

from .kit import CONCURRENT


@pytest.mark.parametrize("cfg", CONCURRENT, ids=lambda c: c.id)
def test_syscalls_on_heap_memory_while_compacting(libremap_kit, cfg):
    libremap_kit.require("needs_syscalls", "it hands no heap memory to system calls")
    if not libremap_kit.description["syscalls"]:
        pytest.fail(
            f"runtime {libremap_kit.name} declares needs_syscalls but its table has no "
            "syscalls callback (NULL, or a struct_size that ends before it)",
            pytrace=False,
        )
    steps = [{"do": "cycle", "syscalls": True}, {"do": "mutate", "seed": 81}, {"do": "cycle"}]
    out = libremap_kit.passing(libremap_kit.scenario(cfg, steps, seed=80))
    if not out["steps"][0]["concurrent"]:
        pytest.skip(f"the flip on {cfg.id} finished the cycle: no page was left unproduced")

# Type stubs for libremap._testing, the pybind11 module of test fixtures
# (bindings/testing/). Generated with `pybind11-stubgen libremap._testing`
# (pybind11-stubgen 3.0.0), no hand edits. Regenerate when a binding
# changes; tests/api/test_types.py type-checks the package against it.
"""
libremap's test fixtures (not loaded by `import libremap`)
"""
from __future__ import annotations
import libremap._core
import typing
__all__: list[str] = ['MODEL_FAULTS', 'arena_alloc', 'arena_free', 'run_stress', 'set_model_fault']
def arena_alloc(size: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    Call the installed arena allocator's alloc; the address (0: refused).
    """
def arena_free(addr: typing.SupportsInt | typing.SupportsIndex, size: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Call the installed arena allocator's free.
    """
def run_stress(backend: typing.Any, fault_mode: typing.Any, gc_threads: typing.SupportsInt | typing.SupportsIndex = 1, mutators: typing.SupportsInt | typing.SupportsIndex = 2, cycles: typing.SupportsInt | typing.SupportsIndex = 10, heap_mib: typing.SupportsInt | typing.SupportsIndex = 4, seed: typing.SupportsInt | typing.SupportsIndex = 0, *, idle_ops: typing.SupportsInt | typing.SupportsIndex = 500, write_fraction: typing.SupportsFloat | typing.SupportsIndex = 0.1, alloc_fraction: typing.SupportsFloat | typing.SupportsIndex = 0.6, region_kib: typing.SupportsInt | typing.SupportsIndex = 64, timeout_s: typing.SupportsFloat | typing.SupportsIndex = 60.0, keep_stats: bool = False, inject_stale_cycle: typing.SupportsInt | typing.SupportsIndex = 0, large_fraction: typing.SupportsFloat | typing.SupportsIndex = 0.05, inject_stale_large: bool = False, tagged: bool = False, concurrent_prepare: bool = False, evacuate: bool = False, max_heap_mib: typing.SupportsInt | typing.SupportsIndex = 0) -> dict:
    """
    C++ mutator threads reading, writing and allocating while compaction cycles run (bindings/testing/stress.h). Returns counts, `verified` and the first `error`.
    """
def set_model_fault(heap: libremap._core.SyntheticHeap, kind: typing.Any, object_id: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
    """
    Make the heap's object model lie about object `object_id` in the way `kind` (one of MODEL_FAULTS; 'none' or None stops it).
    """
MODEL_FAULTS: list = ['none', 'size_zero', 'size_crosses_region', 'ref_outside_object', 'size_unaligned', 'ref_unaligned']

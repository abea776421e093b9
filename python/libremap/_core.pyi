# Type stubs for libremap._core, the pybind11 module (bindings/).
# Generated with `pybind11-stubgen libremap._core` (pybind11-stubgen 3.0.0),
# then three hand edits: one file instead of a package (the cpython_arenas
# submodule is typed as a module), and RemapError's attributes, which the
# binding sets at raise time. Regenerate when a binding changes;
# tests/api/test_types.py type-checks the package against this file.
"""
libremap's native core (pybind11 over the C ABI)
"""
from __future__ import annotations
import typing
import types
cpython_arenas: types.ModuleType  # a submodule (libremap.cpython wraps it)
__all__: list[str] = ['RemapError', 'STATUS_CODES', 'SyntheticHeap', 'TOYVM_OPTIONS', 'TOYVM_WORKLOADS', 'abi_version', 'cpython_arenas', 'probe', 'status_name', 'toyvm_mark_bench', 'toyvm_run', 'version', 'version_string']
class RemapError(RuntimeError):
    """
    A libremap call failed. .status is the remap_status (negative int), .status_name its constant name (e.g. 'REMAP_EOBJMODEL'), .message the library's message (remap_last_error()).
    """
    status: int
    status_name: str
    message: str
class SyntheticHeap:
    """
    A libremap heap filled with a deterministic synthetic object graph (see python/libremap/synthetic.py for the documented wrapper).
    """
    def __init__(self, *, capacity: typing.SupportsInt | typing.SupportsIndex = 16777216, region_size: typing.SupportsInt | typing.SupportsIndex = 262144, seed: typing.SupportsInt | typing.SupportsIndex = 0, live_ratio: typing.SupportsFloat | typing.SupportsIndex = 0.5, dense_fraction: typing.SupportsFloat | typing.SupportsIndex = 0.25, fill_fraction: typing.SupportsFloat | typing.SupportsIndex = 0.75, min_object_size: typing.SupportsInt | typing.SupportsIndex = 16, max_object_size: typing.SupportsInt | typing.SupportsIndex = 2048, max_refs: typing.SupportsInt | typing.SupportsIndex = 4, ref_fraction: typing.SupportsFloat | typing.SupportsIndex = 0.5, root_fraction: typing.SupportsFloat | typing.SupportsIndex = 0.02, foreign_ref_fraction: typing.SupportsFloat | typing.SupportsIndex = 0.01, large_objects: typing.SupportsInt | typing.SupportsIndex = 0, large_object_size: typing.SupportsInt | typing.SupportsIndex = 0, large_live_fraction: typing.SupportsFloat | typing.SupportsIndex = 0.5, large_max_refs: typing.SupportsInt | typing.SupportsIndex = -1, backend: typing.SupportsInt | typing.SupportsIndex = 0, fault_mode: typing.SupportsInt | typing.SupportsIndex = 0, gc_threads: typing.SupportsInt | typing.SupportsIndex = 1, handler_threads: typing.SupportsInt | typing.SupportsIndex = 1, dense_threshold: typing.SupportsFloat | typing.SupportsIndex = 0.9, tagging: typing.SupportsInt | typing.SupportsIndex = 0, immediate_fraction: typing.SupportsFloat | typing.SupportsIndex = 0.0, flags: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        ...
    def allocate_black(self, bytes: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def begin_cycle(self) -> None:
        ...
    def checksum(self) -> int:
        ...
    def clear_marks(self) -> None:
        ...
    def collect(self) -> dict:
        ...
    def compact(self) -> None:
        ...
    def compact_work(self) -> None:
        ...
    def events(self) -> dict:
        """
        The events kept since the last call: {origin_ns, events: [dict]} (times since the first).
        """
    def finish(self) -> None:
        ...
    def flip(self) -> None:
        ...
    def forward(self, old: typing.SupportsInt | typing.SupportsIndex) -> int:
        ...
    def image(self) -> bytes:
        ...
    def image_hash(self) -> int:
        ...
    def info(self) -> dict:
        ...
    def mark(self, deferred: bool = False) -> int:
        ...
    def mutate(self, *, kill_fraction: typing.SupportsFloat | typing.SupportsIndex = 0.3, grow_bytes: typing.SupportsInt | typing.SupportsIndex = 0, live_ratio: typing.SupportsFloat | typing.SupportsIndex = 0.5, dense_fraction: typing.SupportsFloat | typing.SupportsIndex = 0.25) -> None:
        ...
    def objects(self) -> list:
        """
        Present objects as (address, size, id, live, large), in id order.
        """
    def prepare(self) -> None:
        ...
    def record_events(self) -> None:
        """
        Keep libremap's events from now on (remap_heap_set_event_callback).
        """
    def region_tops(self) -> list[int]:
        ...
    def roots(self) -> list[int]:
        ...
    def stats(self) -> dict:
        ...
    def verify(self) -> int:
        ...
    @property
    def base(self) -> int:
        ...
    @property
    def capacity(self) -> int:
        ...
    @property
    def live_bytes(self) -> int:
        ...
    @property
    def live_count(self) -> int:
        ...
    @property
    def region_size(self) -> int:
        ...
def abi_version() -> int:
    ...
def probe() -> dict:
    """
    remap_probe() as a dict of the raw remap_probe_info fields
    """
def status_name(status: typing.SupportsInt | typing.SupportsIndex) -> str:
    """
    The constant name of a remap_status, e.g. 'REMAP_EINVAL'.
    """
def toyvm_mark_bench(objects: typing.SupportsInt | typing.SupportsIndex, reps: typing.SupportsInt | typing.SupportsIndex, backend: typing.SupportsInt | typing.SupportsIndex) -> dict:
    """
    remap_mark over `objects` GCBench nodes of a built heap against a plain (and an atomic) bitmap set, alternating, `reps` timed passes each (GIL released); ns per pass.
    """
def toyvm_run(workload: str, options: dict = {}) -> dict:
    """
    Run one toy-VM workload on a fresh heap (GIL released); returns a dict (workload, backend, fault_mode, result, gcs, error, ...).
    """
def version() -> int:
    ...
def version_string() -> str:
    ...
STATUS_CODES: dict = {'REMAP_OK': 0, 'REMAP_EINVAL': -1, 'REMAP_EUNSUPPORTED': -2, 'REMAP_EPERM': -3, 'REMAP_ENOMEM': -4, 'REMAP_EPHASE': -5, 'REMAP_EKERNEL': -6, 'REMAP_EBUSY': -7, 'REMAP_EEXIST': -8, 'REMAP_ENOENT': -9, 'REMAP_EAGAIN': -10, 'REMAP_ELIMIT': -11, 'REMAP_EOBJMODEL': -12, 'REMAP_EINTERNAL': -13}
TOYVM_OPTIONS: list = ['array_size', 'backend', 'dense_threshold', 'depth', 'evacuate', 'exhausted_retries', 'fault_mode', 'gc_threads', 'handler_threads', 'heap_bytes', 'iteration_scale', 'large_fraction', 'mark_delay_us', 'marking', 'max_free_ratio', 'max_heap_bytes', 'max_value_bytes', 'min_depth', 'min_free_ratio', 'ops', 'record_events', 'region_size', 'rounds', 'satb_barrier', 'seed', 'size', 'threads', 'trigger_fraction', 'trigger_min_bytes', 'verify_refs']
TOYVM_WORKLOADS: list = ['gcbench', 'binary_trees', 'lru_cache', 'random_graph', 'large_arrays']

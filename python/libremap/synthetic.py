"""A synthetic heap: libremap's test and benchmark workload.

``SyntheticHeap`` fills a libremap heap, through the public C ABI only, with
objects of the layout in ``bindings/common/object_layout.h``::

    {uint32 size; uint16 nrefs; uint16 klass; uint64 id}  nrefs 8-byte slots  payload

Regions are bump-allocated full of objects (16 B - 2 KiB by default, skewed
small); a fraction of them is made dense (~95-100 % live), the rest keep
``live_ratio`` of their bytes live; a random reference graph makes every
live object reachable from roots kept outside the heap. Everything is drawn
from ``seed``: two heaps built with the same parameters hold the same bytes
relative to their base addresses.

It then plays the runtime in a compaction cycle (``collect()``, or
``mark()``, ``prepare()``, ``flip()``, ``compact()``, ``finish()``) and
observes the result without depending on addresses (``checksum()``,
``image()``).

Import it as ``libremap.synthetic``. Library failures raise
:class:`RemapError` (``.status``, ``.status_name``, ``.message``).
"""

from __future__ import annotations

from typing import Any, Literal

from . import _core
from ._names import BACKENDS, FAULT_MODES, enum_value

RemapError = _core.RemapError

#: remap_phase values (libremap.h).
PHASE_IDLE, PHASE_PREPARED, PHASE_COMPACTING, PHASE_BROKEN = 0, 1, 2, 3

Backend = Literal["auto", "move", "copy", "minor", "sigsegv", "stw"] | int
FaultMode = Literal["auto", "sigbus", "thread"] | int

KiB = 1024
MiB = 1024 * KiB




# Slot encodings of the synthetic heap (SyntheticParams::tagging).
TAGGINGS = {"none": 0, "guile": 1, "v8": 2, "lowtag": 3}
REMAP_HEAP_EVACUATE = 4  # libremap.h: remap_heap_flags


class SyntheticHeap:
    """A libremap heap holding a deterministic synthetic object graph.

    Parameters (keyword only):
        capacity: heap size in bytes, a multiple of ``region_size``.
        region_size: power of two, >= 64 KiB.
        seed: decides every choice (sizes, liveness, graph, payload).
        live_ratio: fraction of the used bytes kept live in fragmented regions.
        dense_fraction: fraction of filled regions made dense (95-100 % live).
        fill_fraction: fraction of the heap's regions filled when building.
        min_object_size, max_object_size: object sizes (log-uniform, multiples of 8).
        max_refs: most reference slots per object.
        ref_fraction: fraction of objects that have reference slots.
        root_fraction: fraction of live objects made roots beyond those needed.
        foreign_ref_fraction: fraction of slots holding a non-heap value.
        large_objects, large_object_size: objects allocated with remap_alloc_large
            (size 0: 3/4 of a region), live with probability large_live_fraction.
        large_max_refs: most reference slots per large object (-1: max_refs;
            0: primitive arrays). A large object's slots are at its start.
        backend, fault_mode, gc_threads, handler_threads, dense_threshold:
            the heap's configuration (remap_heap_config).
        tagging: how slots encode references (``TAGGINGS``): "none" (plain
            addresses), "guile" (fixnums end in 10, pointers in 000), "v8"
            (Smis are even, pointers are address|1 or |3), "lowtag" (address
            | a 3-bit tag). The heap's ref_* encoding is set to match.
        immediate_fraction: fraction of spare slots holding an in-heap value
            that is not a reference: a fixnum or Smi whose bits lie inside the
            heap, or (tagging "none") an unaligned in-heap value. The library
            must leave each one exactly as it is.
        evacuate: REMAP_HEAP_EVACUATE: survivors of fragmented regions are
            packed into as few regions as they fill; the emptied ones are freed.
    """

    def __init__(
        self,
        *,
        capacity: int = 16 * MiB,
        region_size: int = 256 * KiB,
        seed: int = 0,
        live_ratio: float = 0.5,
        dense_fraction: float = 0.25,
        fill_fraction: float = 0.75,
        min_object_size: int = 16,
        max_object_size: int = 2048,
        max_refs: int = 4,
        ref_fraction: float = 0.5,
        root_fraction: float = 0.02,
        foreign_ref_fraction: float = 0.01,
        large_objects: int = 0,
        large_object_size: int = 0,
        large_live_fraction: float = 0.5,
        large_max_refs: int = -1,
        backend: Backend = "auto",
        fault_mode: FaultMode = "auto",
        gc_threads: int = 1,
        handler_threads: int = 1,
        dense_threshold: float = 0.90,
        tagging: str = "none",
        immediate_fraction: float = 0.0,
        evacuate: bool = False,
    ) -> None:
        self.params: dict[str, Any] = {
            "capacity": capacity,
            "region_size": region_size,
            "seed": seed,
            "live_ratio": live_ratio,
            "dense_fraction": dense_fraction,
            "fill_fraction": fill_fraction,
            "min_object_size": min_object_size,
            "max_object_size": max_object_size,
            "max_refs": max_refs,
            "ref_fraction": ref_fraction,
            "root_fraction": root_fraction,
            "foreign_ref_fraction": foreign_ref_fraction,
            "large_objects": large_objects,
            "large_object_size": large_object_size,
            "large_live_fraction": large_live_fraction,
            "large_max_refs": large_max_refs,
            "backend": backend,
            "fault_mode": fault_mode,
            "gc_threads": gc_threads,
            "handler_threads": handler_threads,
            "dense_threshold": dense_threshold,
            "tagging": tagging,
            "immediate_fraction": immediate_fraction,
            "evacuate": evacuate,
        }
        native = dict(self.params)
        native["flags"] = REMAP_HEAP_EVACUATE if native.pop("evacuate") else 0
        native["tagging"] = enum_value(tagging, TAGGINGS, "tagging")
        native["backend"] = enum_value(backend, BACKENDS, "backend")
        native["fault_mode"] = enum_value(fault_mode, FAULT_MODES, "fault mode")
        self._h = _core.SyntheticHeap(**native)

    # ---- workload -------------------------------------------------------
    def mutate(
        self,
        *,
        kill_fraction: float = 0.3,
        grow_bytes: int = 0,
        live_ratio: float = 0.5,
        dense_fraction: float = 0.25,
    ) -> None:
        """Between cycles: kill each live object with probability ``kill_fraction``,
        allocate about ``grow_bytes`` of new objects (in regions or compacted
        regions' free tails), and draw a new graph and roots over the live set."""
        self._h.mutate(
            kill_fraction=kill_fraction,
            grow_bytes=grow_bytes,
            live_ratio=live_ratio,
            dense_fraction=dense_fraction,
        )

    # ---- the cycle ------------------------------------------------------
    def collect(self) -> dict[str, Any]:
        """A whole cycle: mark, prepare, flip (roots rewritten), and compact +
        finish unless flip already finished it (stw). Returns ``stats()``."""
        return self._h.collect()

    def begin_cycle(self) -> None:
        """remap_cycle_begin: objects allocated from now until the flip are
        black (live by construction, never moved in this cycle)."""
        self._h.begin_cycle()

    def allocate_black(self, nbytes: int) -> None:
        """After begin_cycle (IDLE, or PREPARED): about ``nbytes`` of new live
        objects, each made a root, whose slots name random live objects; some
        null slots of old live objects now name them (writes after marking)."""
        self._h.allocate_black(nbytes)

    def mark(self, *, deferred: bool = False) -> int:
        """Marks by BFS from the roots (one remap_mark per object, or with
        ``deferred`` one remap_try_mark: sizes and slots read at prepare);
        returns the count, which is checked to equal the live set
        (RuntimeError if not)."""
        return self._h.mark(deferred)

    def clear_marks(self) -> None:
        """remap_clear_marks: forget marks, cancelling a prepared cycle."""
        self._h.clear_marks()

    def prepare(self) -> None:
        """remap_prepare, then records the forwarding of every live object."""
        self._h.prepare()

    def flip(self) -> None:
        """remap_flip, then rewrites the roots and moves the object table."""
        self._h.flip()

    def compact(self) -> None:
        """remap_compact (concurrent backends)."""
        self._h.compact()

    def compact_work(self) -> None:
        """remap_compact_work: this thread joins as a GC worker."""
        self._h.compact_work()

    def finish(self) -> None:
        """remap_finish (concurrent backends)."""
        self._h.finish()

    # ---- observation ----------------------------------------------------
    def checksum(self) -> int:
        """Address-independent hash of the object graph from the roots."""
        return self._h.checksum()

    def verify(self) -> int:
        """Strict traversal: every reference names a present live object and
        exactly the live set is reachable. Returns the count; RuntimeError if not."""
        return self._h.verify()

    def image(self) -> bytes:
        """The whole heap (capacity bytes) with every word that holds a heap
        address rebased to an offset. IDLE phase only."""
        return self._h.image()

    def image_hash(self) -> int:
        """A hash of ``image()`` without materialising it."""
        return self._h.image_hash()

    def stats(self) -> dict[str, Any]:
        """remap_heap_last_stats as a dict (every field; fault_hist a list)."""
        return self._h.stats()

    def info(self) -> dict[str, Any]:
        """remap_heap_get_info as a dict (base as an int)."""
        return self._h.info()

    def record_events(self) -> None:
        """Keep libremap's events (remap_heap_set_event_callback) from now on."""
        self._h.record_events()

    def events(self) -> dict[str, Any]:
        """The events kept since the last call: ``origin_ns`` (CLOCK_MONOTONIC
        of the first) and ``events``, dicts with ``kind`` (``cycle_begin``,
        ``pause_end``, ...), ``phase``, ``time_ns`` since the first, ``cycle``,
        ``value``, ``status``/``status_name`` and ``call``."""
        return self._h.events()

    def forward(self, old: int) -> int:
        """remap_forward: new address of the object at ``old`` (prepare..finish)."""
        return self._h.forward(old)

    def objects(self) -> list[tuple[int, int, int, bool, bool]]:
        """Present objects as (address, size, id, live, large), in id order."""
        return self._h.objects()

    def live_objects(self) -> list[tuple[int, int, int, bool, bool]]:
        return [o for o in self._h.objects() if o[3]]

    def roots(self) -> list[int]:
        return self._h.roots()

    def region_tops(self) -> list[int]:
        """Bytes used per region as this heap expects them (see synthetic.h)."""
        return self._h.region_tops()

    @property
    def base(self) -> int:
        return self._h.base

    @property
    def capacity(self) -> int:
        return self._h.capacity

    @property
    def region_size(self) -> int:
        return self._h.region_size

    @property
    def live_count(self) -> int:
        return self._h.live_count

    @property
    def live_bytes(self) -> int:
        return self._h.live_bytes

    @property
    def phase(self) -> int:
        return int(self._h.info()["phase"])


__all__ = [
    "BACKENDS",
    "FAULT_MODES",
    "PHASE_BROKEN",
    "PHASE_COMPACTING",
    "PHASE_IDLE",
    "PHASE_PREPARED",
    "RemapError",
    "SyntheticHeap",
]

"""Pytest helpers for differential tests between backends.

Every backend must leave a byte-identical heap to the ``stw`` reference
(DESIGN section 7). These helpers build two synthetic heaps from the same
parameters (so the same objects at the same offsets from their bases),
collect each with its backend, and compare ``image()`` and ``checksum()``::

    from support.differential import assert_same_image

    @pytest.mark.parametrize("backend", ["move", "copy"])
    @pytest.mark.parametrize("fault_mode", ["sigbus", "thread"])
    def test_backend_matches_stw(backend, fault_mode):
        assert_same_image("stw", backend, dict(seed=3, live_ratio=0.3),
                          params_b=dict(fault_mode=fault_mode, gc_threads=2))

A backend the kernel or the library does not support yet (REMAP_EUNSUPPORTED
from heap creation or from the cycle) skips the test with the reason.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from libremap.synthetic import PHASE_COMPACTING, PHASE_IDLE, KiB, MiB, RemapError, SyntheticHeap

#: Small heaps by default: tests run on 2 shared cores.
DEFAULT_PARAMS: dict[str, Any] = {"capacity": 8 * MiB, "region_size": 64 * KiB, "seed": 1}


@contextlib.contextmanager
def skip_if_unsupported(what: str, calls: tuple[str, ...] | None = None) -> Iterator[None]:
    """Turns REMAP_EUNSUPPORTED into pytest.skip (with the library's message)
    if it came from one of `calls` (C function names, e.g. ("remap_flip",);
    None: from any call). Every other error propagates."""
    try:
        yield
    except RemapError as e:
        if e.status_name == "REMAP_EUNSUPPORTED" and (
            calls is None or e.message.startswith(tuple(f"{c}:" for c in calls))
        ):
            pytest.skip(f"{what}: {e.message}")
        raise


def build(
    params: Mapping[str, Any] | None = None, *, skip_unsupported: bool = True, **overrides: Any
) -> SyntheticHeap:
    """A SyntheticHeap from DEFAULT_PARAMS updated with params and overrides.
    skip_unsupported: skip the test if heap creation answers EUNSUPPORTED
    (a backend this kernel cannot run)."""
    p = dict(DEFAULT_PARAMS)
    p.update(params or {})
    p.update(overrides)
    if not skip_unsupported:
        return SyntheticHeap(**p)
    with skip_if_unsupported(f"creating a {p.get('backend', 'auto')} heap", ("remap_heap_create",)):
        return SyntheticHeap(**p)


def collect(heap: SyntheticHeap, calls: tuple[str, ...] | None = None) -> dict[str, Any]:
    """heap.collect(), skipping the test if a call of the cycle (one of
    `calls`, None: any) answers EUNSUPPORTED."""
    with skip_if_unsupported(f"a {heap.params['backend']} cycle", calls):
        return heap.collect()


def assert_same_image(
    backend_a: str,
    backend_b: str,
    params: Mapping[str, Any] | None = None,
    *,
    params_b: Mapping[str, Any] | None = None,
    cycles: int = 1,
    mutate: Mapping[str, Any] | None = None,
) -> tuple[SyntheticHeap, SyntheticHeap]:
    """Builds two heaps from the same params (params_b overrides heap b's
    configuration only: fault_mode, gc_threads, ...), runs `cycles` cycles on
    each with backend_a / backend_b (calling heap.mutate(**mutate) between
    cycles), and asserts after every cycle that both preserved their
    checksum, pass verify(), and have identical images. Returns the heaps."""
    p = dict(params or {})
    a = build(p, backend=backend_a)
    b = build({**p, **(params_b or {})}, backend=backend_b)
    assert a.image() == b.image(), (
        "the two heaps differ before any cycle: the builder is not deterministic"
    )
    for cycle in range(1, cycles + 1):
        if cycle > 1:
            a.mutate(**(mutate or {}))
            b.mutate(**(mutate or {}))
        want_a, want_b = a.checksum(), b.checksum()
        assert want_a == want_b
        collect(a)
        collect(b)
        assert a.checksum() == want_a, f"{backend_a} changed the object graph in cycle {cycle}"
        assert b.checksum() == want_b, f"{backend_b} changed the object graph in cycle {cycle}"
        a.verify()
        b.verify()
        assert_images_equal(a, b, f"{backend_a} vs {backend_b}, cycle {cycle}")
    return a, b


def assert_images_equal(a: SyntheticHeap, b: SyntheticHeap, what: str = "") -> None:
    """image() equality with a useful message: the first differing word, its
    region and offset."""
    ia, ib = a.image(), b.image()
    if ia == ib:
        return
    assert len(ia) == len(ib), f"{what}: images of different sizes"
    first = next(i for i in range(0, len(ia), 8) if ia[i : i + 8] != ib[i : i + 8])
    ndiff = sum(1 for i in range(0, len(ia), 8) if ia[i : i + 8] != ib[i : i + 8])
    rs = a.region_size
    raise AssertionError(
        f"{what}: heap images differ in {ndiff} words; first at offset {first:#x} "
        f"(region {first // rs}, +{first % rs:#x}): "
        f"{ia[first : first + 8].hex()} vs {ib[first : first + 8].hex()}"
    )


def collect_with_mutator(heap: SyntheticHeap, calls: tuple[str, ...] | None = None) -> int:
    """A cycle during which this thread acts as a mutator: after the flip,
    compact() runs on another thread while this one traverses the heap
    (checksum(), faulting on pages not produced yet), then finish().
    Returns the checksum read during compaction (for stw: after the cycle)."""
    with skip_if_unsupported(f"a {heap.params['backend']} cycle", calls):
        heap.mark()
        heap.prepare()
        heap.flip()
    if heap.phase != PHASE_COMPACTING:
        return heap.checksum()
    failure: list[BaseException] = []

    def gc() -> None:
        try:
            heap.compact()
        except BaseException as e:  # noqa: BLE001 - re-raised on the test's thread
            failure.append(e)

    t = threading.Thread(target=gc, name="libremap-gc")
    t.start()
    try:
        seen = heap.checksum()
    finally:
        t.join()
    if failure:
        raise failure[0]
    heap.finish()
    return seen


# ---------------------------------------------------------------------------
# Helpers for the proof-of-correctness tests (issue 4): every backend, child
# processes with deadlines, C helpers compiled against the installed package.

#: Every backend but stw (the reference), for parametrizing; those the
#: library cannot run yet skip with the message of remap_heap_create.
CONCURRENT_BACKENDS: tuple[str, ...] = ("move", "copy", "minor", "sigsegv")
FAULT_MODES: tuple[str, ...] = ("sigbus", "thread")
#: Exit status a child uses to say "EUNSUPPORTED at heap create" (then skip).
CHILD_UNSUPPORTED = 77


def run_child(code: str, timeout: float = 90, env: Mapping[str, str] | None = None) -> Any:
    """Runs `code` in a fresh interpreter with a deadline (a wedged uffd
    fault fails the test instead of hanging it). The code prints one JSON
    document as its last stdout line; that is returned. A child that exits
    CHILD_UNSUPPORTED skips the test with its last stdout line. env: added
    to this process's environment."""
    import json
    import os
    import sys

    from support.processes import run_with_timeout

    full_env = dict(os.environ, **(env or {}))
    r = run_with_timeout([sys.executable, "-c", code], timeout=timeout, env=full_env)
    lines = r.stdout.strip().splitlines()
    if r.returncode == CHILD_UNSUPPORTED:
        pytest.skip(lines[-1] if lines else "unsupported")
    assert r.returncode == 0, (
        f"child exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    )
    return json.loads(lines[-1])


#: Prefix for child code: `unsupported(e)` exits CHILD_UNSUPPORTED for an
#: EUNSUPPORTED RemapError raised by heap creation.
CHILD_PRELUDE = f"""
import json, os, sys
from libremap.synthetic import RemapError
def unsupported(e):
    if isinstance(e, RemapError) and e.status_name == "REMAP_EUNSUPPORTED":
        print(f"unsupported: {{e.message}}")
        sys.exit({CHILD_UNSUPPORTED})
    raise e
"""


def compile_c(name: str, out_dir: Any, shared: bool = False, extra: tuple[str, ...] = ()) -> str:
    """Compiles tests/c/<name>.c against the installed package's header and
    core (the same libremap.so.0 that libremap._core and cffi load) into
    out_dir; returns the path of the program or shared library."""
    import shutil
    from pathlib import Path

    from libremap._paths import package_file

    from support.processes import run_with_timeout

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    lib = package_file("libremap.so.0")
    src = Path(__file__).parents[1] / "c" / f"{name}.c"
    out = Path(out_dir) / (f"lib{name}.so" if shared else name)
    args = [cc, "-O1", "-g", "-Wall", "-std=gnu11", str(src), "-o", str(out)]
    args += ["-I", str(package_file("include")), "-I", str(src.parent)]
    if shared:
        args += ["-shared", "-fPIC"]
    args += [str(lib), f"-Wl,-rpath,{lib.parent}", "-lpthread", *extra]
    run_with_timeout(args, timeout=120, check=True)
    return str(out)


TESTHEAP_CDEF = """
typedef struct th_heap th_heap;
int th_create(int backend, int fault_mode, unsigned gc_threads, size_t capacity_mib,
              uint64_t seed, double live_ratio, double fill, th_heap** out);
void th_destroy(th_heap* h);
remap_heap* th_remap(th_heap* h);
uintptr_t th_base(th_heap* h);
size_t th_nroots(th_heap* h);
uintptr_t th_root(th_heap* h, size_t i);
uint64_t th_checksum(th_heap* h);
int th_cycle_begin(th_heap* h);
int th_phase(th_heap* h);
int th_collect(th_heap* h);
"""

_testheap: dict[str, Any] = {}


def build_testheap(out_dir: Any) -> str:
    """Path of libtestheap.so (tests/c/testheap.c), compiled once per session."""
    if "path" not in _testheap:
        _testheap["path"] = compile_c("testheap", out_dir, shared=True)
    return _testheap["path"]


def load_testheap(out_dir: Any) -> tuple[Any, Any]:
    """(ffi, lib) of tests/c/testheap.c (a tiny runtime in C whose
    th_remap() hands out the raw remap_heap*), built once per session. The
    ffi includes libremap.cabi's, so its remap_heap* goes straight to
    libremap.cabi.lib."""
    if "lib" not in _testheap:
        from cffi import FFI

        from libremap import cabi

        path = build_testheap(out_dir)
        ffi = FFI()
        ffi.include(cabi.ffi)
        ffi.cdef(TESTHEAP_CDEF)
        _testheap["ffi"], _testheap["lib"] = ffi, ffi.dlopen(path)
    return _testheap["ffi"], _testheap["lib"]


def new_testheap(
    th: Any,
    backend: str,
    fault_mode: str,
    gc_threads: int = 1,
    capacity_mib: int = 4,
    seed: int = 1,
    live_ratio: float = 0.4,
    fill: float = 0.75,
) -> Any:
    """A testheap (freed with the test: pass it to th_destroy), skipping on
    EUNSUPPORTED from remap_heap_create."""
    from libremap import cabi
    from libremap.synthetic import BACKENDS
    from libremap.synthetic import FAULT_MODES as MODE_VALUES

    ffi, lib = th
    out = ffi.new("th_heap **")
    s = lib.th_create(
        BACKENDS[backend],
        MODE_VALUES[fault_mode],
        gc_threads,
        capacity_mib,
        seed,
        live_ratio,
        fill,
        out,
    )
    if s == cabi.lib.REMAP_EUNSUPPORTED:
        pytest.skip(f"creating a {backend} heap: {cabi.last_error()}")
    assert s == 0, f"th_create: {cabi.status_name(s)}: {cabi.last_error()}"
    return ffi.gc(out[0], lib.th_destroy)


def child_testheap(path: str) -> str:
    """Child-code prelude (after CHILD_PRELUDE) that loads the testheap
    library at `path` as (ffi, th) next to libremap.cabi's `lib`, and
    defines new_heap(backend, fault_mode, **kw) that exits
    CHILD_UNSUPPORTED on EUNSUPPORTED, ok(status), stats(h) and
    report(h, want, **facts)."""
    return f"""
from cffi import FFI
from libremap import cabi
from libremap.cabi import lib
from libremap.synthetic import BACKENDS, FAULT_MODES
ffi = FFI()
ffi.include(cabi.ffi)
ffi.cdef({TESTHEAP_CDEF!r})
th = ffi.dlopen({path!r})
def new_heap(backend, fault_mode, gc_threads=1, capacity_mib=4, seed=1, live_ratio=0.4, fill=0.75):
    out = ffi.new("th_heap **")
    s = th.th_create(BACKENDS[backend], FAULT_MODES[fault_mode], gc_threads, capacity_mib, seed,
                     live_ratio, fill, out)
    if s == lib.REMAP_EUNSUPPORTED:
        print("unsupported: " + cabi.last_error())
        sys.exit({CHILD_UNSUPPORTED})
    assert s == 0, cabi.status_name(s) + ": " + cabi.last_error()
    return out[0]
def ok(s):
    assert s == 0, cabi.status_name(s) + ": " + cabi.last_error()
def stats(h):
    st = ffi.new("remap_cycle_stats *")
    st.struct_size = ffi.sizeof("remap_cycle_stats")
    ok(lib.remap_heap_last_stats(th.th_remap(h), st))
    return {{n: int(getattr(st, n)) for n, _ in ffi.typeof("remap_cycle_stats").fields
            if n != "fault_hist"}}
def report(h, want, **facts):
    # The child's one JSON line: the last cycle's stats, whether the heap's
    # graph checksum is still `want`, and the script's own facts.
    print(json.dumps(dict(stats(h), checksum=th.th_checksum(h) == want, **facts)))
"""


# --- the differential check of one case against stw (cached reference) ---------

MUTATE = {"kill_fraction": 0.35, "grow_bytes": 512 * KiB, "live_ratio": 0.3, "dense_fraction": 0.2}

_reference: dict[str, list[tuple[int, int]]] = {}


def _key(params: dict[str, Any], cycles: int) -> str:
    return repr(sorted(params.items())) + f"/{cycles}"


def reference(params: dict[str, Any], cycles: int) -> list[tuple[int, int]]:
    """(image_hash, checksum) after each of `cycles` stw cycles."""
    key = _key(params, cycles)
    if key not in _reference:
        h = build(params, backend="stw", skip_unsupported=False)
        out = []
        for c in range(cycles):
            if c:
                h.mutate(**MUTATE)
            h.collect()
            out.append((h.image_hash(), h.checksum()))
        _reference[key] = out
    return _reference[key]


def drive(h, how: str) -> None:
    if how == "collect":
        h.collect()
        return
    if how == "concurrent":
        seen = collect_with_mutator(h)
        assert h.info()["phase"] == PHASE_IDLE
        assert seen == h.checksum(), "a mutator read a different graph during compaction"
        return
    want = h.checksum()
    h.mark()
    h.prepare()
    h.flip()
    if h.info()["phase"] == PHASE_IDLE:
        # A cycle that moves nothing ends at the flip on move and copy
        # (issue 14): no region was fragmented and no large object slid.
        st = h.stats()
        assert st["regions_fragmented"] == 0 and st["large_objects_moved"] == 0, st
        assert st["pages_installed"] == 0 and st["compaction_ns"] == 0, st
        return
    assert h.info()["phase"] == PHASE_COMPACTING
    if how == "mutator":
        assert h.checksum() == want, "the graph read through faults differs"
        h.compact()
    elif how == "work":
        h.compact_work()
    h.finish()


def check_case(backend, fault_mode, gc_threads, params, how, cycles=1) -> dict:
    """`cycles` cycles (mutation in between) driven `how`, each checked
    against stw's image and checksum; the last cycle's stats, plus
    ``large_objects_moved_all_cycles``."""
    ref = reference(params, cycles)
    h = build(params, backend=backend, fault_mode=fault_mode, gc_threads=gc_threads)
    stats: dict = {}
    large_moved = 0
    for c in range(cycles):
        if c:
            h.mutate(**MUTATE)
        want = h.checksum()
        drive(h, how)
        what = f"{backend}/{fault_mode}/gc{gc_threads} {how} {params} cycle {c + 1}"
        assert h.checksum() == want, f"{what}: compaction changed the object graph"
        assert h.checksum() == ref[c][1], f"{what}: graph differs from stw's"
        if h.image_hash() != ref[c][0]:
            r = build(params, backend="stw", skip_unsupported=False)
            for k in range(c + 1):
                if k:
                    r.mutate(**MUTATE)
                r.collect()
            assert_images_equal(r, h, f"stw vs {what}")
            pytest.fail(f"{what}: image hash differs but images are equal?")
        h.verify()
        stats = h.stats()
        assert stats["cycle"] == c + 1
        assert stats["live_bytes"] == h.live_bytes
        large_moved += stats["large_objects_moved"]
    stats["large_objects_moved_all_cycles"] = large_moved
    return stats


# --- a cycle begun beside the mutators (remap_cycle_begin) -----------------


def concurrent_cycle(h, how: str, before: int, after: int, tagging_ok: bool = True) -> dict:
    """begin, allocate black, mark, prepare, allocate black (and write old
    objects), flip, then produce the pages `how`; checks the graph."""
    h.begin_cycle()
    h.allocate_black(before)
    h.mark()
    h.prepare()
    h.allocate_black(after)
    want = h.checksum()
    h.flip()
    if h.info()["phase"] == PHASE_COMPACTING:
        if how == "mutator":
            assert h.checksum() == want, "the graph read through faults differs"
            h.compact()
        elif how == "concurrent":
            failure: list[BaseException] = []

            def gc() -> None:
                try:
                    h.compact()
                except BaseException as e:  # noqa: BLE001 - re-raised below
                    failure.append(e)

            t = threading.Thread(target=gc)
            t.start()
            try:
                seen = h.checksum()
            finally:
                t.join()
            if failure:
                raise failure[0]
            assert seen == want, "a mutator read a different graph during compaction"
        else:
            h.compact()
        h.finish()
    assert h.checksum() == want
    h.verify()
    return h.stats()

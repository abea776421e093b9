"""remap_touch (issue 4): produces and installs a range ahead of use.

After the flip and before any GC work, touching a range installs every page
in it with its final bytes: reading them afterwards faults nowhere (faults
stays 0 in both modes: a handler thread or the SIGBUS handler would count
one), the pages are counted as pages_by_mutator, and the bytes read are the
ones the cycle ends with. Touching the whole heap leaves the GC nothing to
do. Outside COMPACTING it is a no-op; a range past the heap while
compacting, or NULL with a length, is REMAP_EINVAL.

Children with deadlines: a read of a page nobody produces would hang."""

from __future__ import annotations

import pytest

from support.differential import (
    CHILD_PRELUDE,
    CONCURRENT_BACKENDS,
    FAULT_MODES,
    build_testheap,
    child_testheap,
    run_child,
)

CODE = """
h = new_heap({backend!r}, {mode!r}, gc_threads=2)
R = th.th_remap(h)
base = th.th_base(h)
cap = 4 << 20
page = 4096
want = th.th_checksum(h)
# IDLE: a no-op; misuse is EINVAL.
ok(lib.remap_touch(R, ffi.cast("void *", base), page))
result = dict(
    einval_outside=lib.remap_touch(R, ffi.cast("void *", base + cap), page),
    einval_null=lib.remap_touch(R, ffi.NULL, page),
)
ok(th.th_cycle_begin(h))
result["einval_outside_compacting"] = lib.remap_touch(R, ffi.cast("void *", base + cap - page), 2 * page)
n = {pages}
start = base + {first_page} * page
ok(lib.remap_touch(R, ffi.cast("void *", start), n * page))
ok(lib.remap_touch(R, ffi.cast("void *", start), n * page))  # again: already mapped
ok(lib.remap_touch(R, ffi.cast("void *", start), 0))
seen = bytes(ffi.buffer(ffi.cast("char *", start), n * page))  # must not fault
ok(lib.remap_compact(R))
ok(lib.remap_finish(R))
result["same_bytes"] = seen == bytes(ffi.buffer(ffi.cast("char *", start), n * page))
report(h, want, **result)
"""


@pytest.fixture(scope="module")
def lib_path(tmp_path_factory):
    return build_testheap(tmp_path_factory.mktemp("testheap"))


def run(lib_path, backend, mode, first_page, pages):
    code = CODE.format(backend=backend, mode=mode, first_page=first_page, pages=pages)
    return run_child(CHILD_PRELUDE + child_testheap(lib_path) + code, timeout=60)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("fault_mode", FAULT_MODES)
@pytest.mark.parametrize("backend", CONCURRENT_BACKENDS)
def test_touch_produces_ahead_of_use(lib_path, backend, fault_mode):
    # 48 pages from the middle of the filled part: data and region tails.
    r = run(lib_path, backend, fault_mode, first_page=200, pages=48)
    # libremap.h: "A no-op otherwise" (outside COMPACTING), even for a range
    # past the heap; a NULL address with a length is always EINVAL.
    assert r["einval_outside"] == 0, r
    assert r["einval_null"] == r["einval_outside_compacting"] == -1, r
    assert r["faults"] == 0, "reading a touched page faulted: touch did not install it"
    assert r["pages_by_mutator"] == 48, r  # every page of the range, once
    assert r["same_bytes"], "touch installed bytes the cycle did not end with"
    assert r["checksum"]
    assert r["pages_installed"] == r["pages_by_gc"] + r["pages_by_mutator"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("fault_mode", FAULT_MODES)
@pytest.mark.parametrize("backend", CONCURRENT_BACKENDS)
def test_touch_the_whole_heap(lib_path, backend, fault_mode):
    r = run(lib_path, backend, fault_mode, first_page=0, pages=(4 << 20) // 4096)
    assert r["faults"] == 0 and r["pages_by_gc"] == 0, r
    assert r["pages_by_mutator"] == r["pages_installed"] > 0
    assert r["same_bytes"] and r["checksum"]

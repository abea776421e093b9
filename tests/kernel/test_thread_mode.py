"""System calls that read heap memory during compaction (issue 4).

Handler-thread mode with a full-mode userfaultfd: write(2) from a heap page
that is not produced yet makes the kernel fault on it (copy_from_user); a
handler thread reads the fault from the uffd, produces the page, and the
write completes with the page's final bytes.

SIGBUS mode: the same write fails with EFAULT. That is the expected
behaviour, not a bug: with UFFD_FEATURE_SIGBUS the kernel does not queue
kernel-originated faults and cannot deliver a signal from inside a system
call, so it fails the copy. A runtime that hands heap memory to system
calls during compaction calls remap_touch on the range first (then the
write succeeds) or uses handler-thread mode. The sigsegv backend has no
userfaultfd at all (PROT_NONE pages, SIGSEGV delivery): there the write
fails with EFAULT in either mode, and remap_touch is the answer too.

Each case is a child process with a deadline (a thread parked in a fault
nobody serves would hang)."""

from __future__ import annotations

import pytest

import libremap

from support.differential import (
    CHILD_PRELUDE,
    CONCURRENT_BACKENDS,
    build_testheap,
    child_testheap,
    run_child,
)

CODE = """
import errno
h = new_heap({backend!r}, {mode!r})
R = th.th_remap(h)
want = th.th_checksum(h)
ok(th.th_cycle_begin(h))
assert th.th_phase(h) == 2, "not COMPACTING after the flip"
page = {page}
addr = th.th_root(h, th.th_nroots(h) // 2) & ~(page - 1)  # a page with live data, not produced
buf = ffi.buffer(ffi.cast("char *", addr), page)
r, w = os.pipe()
result = {{}}
try:
    result["written"] = os.write(w, buf)
    result["errno"] = 0
except OSError as e:
    result["written"] = -1
    result["errno"] = e.errno
if {touch_after}:
    ok(lib.remap_touch(R, ffi.cast("void *", addr), page))
    result["written_after_touch"] = os.write(w, buf)
os.set_blocking(r, False)
try:
    got = os.read(r, 2 * page)
except BlockingIOError:
    got = b""  # nothing was written
ok(lib.remap_compact(R))
ok(lib.remap_finish(R))
final = bytes(ffi.buffer(ffi.cast("char *", addr), page))
result["bytes_final"] = got[-page:] == final if got else False
report(h, want, **result)
"""


@pytest.fixture(scope="module")
def lib_path(tmp_path_factory):
    return build_testheap(tmp_path_factory.mktemp("testheap"))


def run(lib_path, backend, mode, touch_after):
    code = CODE.format(backend=backend, mode=mode, page=4096, touch_after=touch_after)
    return run_child(CHILD_PRELUDE + child_testheap(lib_path) + code, timeout=60)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("backend", CONCURRENT_BACKENDS)
def test_write_from_unproduced_page_in_thread_mode(lib_path, backend):
    if libremap.probe().uffd_path != "syscall":
        pytest.skip("needs a full-mode userfaultfd (kernel faults served by handler threads)")
    if backend == "sigsegv":
        # No userfaultfd: the heap is PROT_NONE until a page is opened, the
        # fault mode does not apply (backends/sigsegv.cpp), and the kernel
        # fails the copy with EFAULT in either mode. Expected; touch first.
        r = run(lib_path, backend, "thread", touch_after=True)
        assert r["written"] == -1 and r["errno"] == 14, r  # EFAULT
        assert r["written_after_touch"] == 4096
        assert r["bytes_final"] and r["checksum"]
        return
    r = run(lib_path, backend, "thread", touch_after=False)
    assert r["errno"] == 0 and r["written"] == 4096, r
    assert r["bytes_final"], "write(2) sent bytes that differ from the produced page"
    assert r["checksum"]
    # The handler thread produced it: counted as a mutator page and a fault.
    assert r["pages_by_mutator"] >= 1 and r["faults"] >= 1


@pytest.mark.timeout(90)
@pytest.mark.parametrize("backend", CONCURRENT_BACKENDS)
def test_write_in_sigbus_mode_needs_touch(lib_path, backend):
    r = run(lib_path, backend, "sigbus", touch_after=True)
    # Expected: EFAULT (see the module docstring), and no signal.
    assert r["written"] == -1 and r["errno"] == 14, r  # EFAULT
    assert r["written_after_touch"] == 4096
    assert r["bytes_final"] and r["checksum"]
    assert r["pages_by_mutator"] >= 1  # the touched page

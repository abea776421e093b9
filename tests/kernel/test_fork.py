"""fork() before compaction (issue 4): a child forked after marking shares
the heap's pages copy-on-write, so UFFDIO_MOVE refuses them (EBUSY: not
PageAnonExclusive). The parent must still compact to exactly the stw image,
installing those pages by UFFDIO_COPY and counting them (fallback_ebusy);
the child must keep seeing the heap as it was at the fork.

Everything runs in a child interpreter with a deadline; the forked
grandchild only blocks on a pipe, checksums its copy of the heap when the
parent is done, reports it and _exits."""

from __future__ import annotations

import pytest

from support.differential import CHILD_PRELUDE, CONCURRENT_BACKENDS, FAULT_MODES, run_child

CODE = """
from libremap.synthetic import SyntheticHeap
# Mostly dense regions with few reference slots: many pages the GC never
# writes, which stay shared with the child until MOVE meets them.
params = dict(capacity=8 << 20, region_size=64 << 10, seed=9, live_ratio=0.4,
              dense_fraction=0.6, ref_fraction=0.15)
ref = SyntheticHeap(backend="stw", **params)
ref.collect()
try:
    h = SyntheticHeap(backend={backend!r}, fault_mode={mode!r}, gc_threads={gc}, **params)
except RemapError as e:
    unsupported(e)
want = h.checksum()
h.mark()
go_r, go_w = os.pipe()
res_r, res_w = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        os.close(go_w)
        os.read(go_r, 1)  # the parent has compacted (or died: EOF)
        os.write(res_w, str(h.checksum()).encode())
    finally:
        os._exit(0)
os.close(go_r)
os.close(res_w)
h.prepare()
h.flip()
if {mutator!r}:
    assert h.checksum() == want  # faults build pages from shared from-space
h.compact()
h.finish()
st = h.stats()
os.write(go_w, b"x")
child_sum = int(os.read(res_r, 64) or b"-1")
_, status = os.waitpid(pid, 0)
print(json.dumps(dict(
    same_image=h.image() == ref.image(), checksum=h.checksum() == want,
    ref_checksum=ref.checksum() == want, child_checksum=child_sum == want,
    child_status=status, fallback_ebusy=st["fallback_ebusy"], ioctl_copy=st["ioctl_copy"],
    pages_installed=st["pages_installed"], pages_by_gc=st["pages_by_gc"],
    pages_by_mutator=st["pages_by_mutator"])))
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mutator", [False, True], ids=["gc", "mutator"])
@pytest.mark.parametrize("fault_mode", FAULT_MODES)
@pytest.mark.parametrize("backend", CONCURRENT_BACKENDS)
def test_fork_before_compaction(backend, fault_mode, mutator):
    code = CODE.format(backend=backend, mode=fault_mode, gc=2, mutator=mutator)
    r = run_child(CHILD_PRELUDE + code, timeout=90)
    assert r["child_status"] == 0
    assert r["checksum"] and r["ref_checksum"], r
    assert r["same_image"], f"{backend}/{fault_mode}: after fork the image differs from stw's"
    # Private anonymous memory is copied on write; the minor and sigsegv
    # heaps (a MAP_SHARED memfd) get a private snapshot at the fork (issue
    # 12.6, api/fork_guard.h): every child sees the heap as it was then.
    assert r["child_checksum"], "the forked child no longer sees the heap as it was at the fork"
    assert r["pages_installed"] == r["pages_by_gc"] + r["pages_by_mutator"]
    if backend == "move" and not mutator:
        # GC workers MOVE from-space pages themselves: the shared ones fall back.
        assert r["fallback_ebusy"] > 0, f"MOVE met no shared page after fork: {r}"
        assert r["ioctl_copy"] >= r["fallback_ebusy"] > 0
    elif backend != "move":
        assert r["fallback_ebusy"] == 0
    # (mutator: faulting threads build pages in the heap's private buffer
    # pool, which fork does not share, so MOVE may never meet EBUSY.)

"""Pages mutators would otherwise build during a concurrent cycle (issue 14).

- Regions filled ahead (heap.h, "FREE regions filled ahead of allocation";
  Compactor::prefill): once mutators take FREE regions while a cycle
  compacts, a GC worker installs zero pages in the regions acquire_region
  hands out next, so allocating there does not fault. REMAP_PREFILL=0 is
  the path before.
- move: a faulting mutator's page is built on its stack and COPYed in, not
  MOVEd from a pool buffer (a TLB shootdown the faulting thread waits for),
  and a large object's page it faults on is COPYed from its old page, not
  MOVEd; REMAP_FAULT_MOVE=1 is the path before.

Children with deadlines: a read of a page nobody produces would hang."""

from __future__ import annotations

import pytest

from support.differential import (
    CHILD_PRELUDE,
    FAULT_MODES,
    build_testheap,
    child_testheap,
    run_child,
)

# 16 MiB of 64 KiB regions, half of them filled from the top: the lower
# half is FREE. acquire_region hands out the compacted regions' free tails
# first, then FREE regions: two FREE regions taken while compacting are the
# demand. The FREE region taken after remap_compact is one the worker
# filled (or, with REMAP_PREFILL=0, a plain FREE region whose pages fault).
PREFILLED = """
h = new_heap({backend!r}, {mode!r}, capacity_mib=16, fill=0.5)
R = th.th_remap(h)
want = th.th_checksum(h)
s, e = ffi.new("void **"), ffi.new("void **")
def take():
    ok(lib.remap_region_acquire(R, s, e))
    return int(ffi.cast("uintptr_t", s[0])), int(ffi.cast("uintptr_t", e[0]))
ok(th.th_cycle_begin(h))
assert th.th_phase(h) == 2, "the cycle did not start compacting"
taken = []
def take_free():  # past the tails
    for _ in range(256):
        taken.append(take())
        if taken[-1][0] % (64 << 10) == 0:
            return taken[-1]
    raise AssertionError("no FREE region handed out")
take_free(), take_free()
ok(lib.remap_compact(R))
b = take_free()
mem = ffi.cast("volatile unsigned char *", b[0])
assert b[0] % (64 << 10) == 0 and b[1] - b[0] == 64 << 10, "not a whole FREE region"
zeros = all(mem[i] == 0 and mem[i + 4095] == 0 for i in range(0, b[1] - b[0], 4096))
for a, _ in taken:
    ok(lib.remap_region_retire(R, ffi.cast("void *", a), ffi.cast("void *", a)))
ok(lib.remap_finish(R))
report(h, want, zeros=zeros, region_pages=(b[1] - b[0]) // 4096)
"""


@pytest.fixture(scope="module")
def lib_path(tmp_path_factory):
    return build_testheap(tmp_path_factory.mktemp("testheap"))


def brief(r):
    keys = ("pages", "buffers", "ioctl", "faults", "regions")
    return str({k: v for k, v in r.items() if k.startswith(keys)})


@pytest.mark.timeout(90)
@pytest.mark.parametrize("switch", ["on", "off"])
@pytest.mark.parametrize("fault_mode", FAULT_MODES)
@pytest.mark.parametrize("backend", ["move", "copy"])
def test_regions_taken_while_compacting_are_filled_ahead(
    lib_path, monkeypatch, backend, fault_mode, switch
):
    if switch == "off":
        monkeypatch.setenv("REMAP_PREFILL", "0")
    code = PREFILLED.format(backend=backend, mode=fault_mode)
    r = run_child(CHILD_PRELUDE + child_testheap(lib_path) + code, timeout=60)
    assert r["zeros"] and r["checksum"], brief(r)
    if switch == "on":
        # Two regions wanted, filled by the worker: the one read faulted nowhere.
        assert r["faults"] == 0 and r["pages_by_mutator"] == 0, brief(r)
        assert r["pages_zero"] >= 2 * r["region_pages"], brief(r)
    else:
        assert r["faults"] >= 1 and r["pages_by_mutator"] >= r["region_pages"], brief(r)


# A reader faults on a data page before the GC produced it (the highest
# region holds data: the heap fills from the top).
FAULTED_PAGE = """
h = new_heap("move", {mode!r}, capacity_mib=4, fill=0.75)
R = th.th_remap(h)
want = th.th_checksum(h)
ok(th.th_cycle_begin(h))
assert th.th_phase(h) == 2, "the cycle did not start compacting"
top = th.th_base(h) + (4 << 20) - (64 << 10)
mem = ffi.cast("volatile unsigned char *", top)
_ = mem[100]
ok(lib.remap_compact(R))
ok(lib.remap_finish(R))
report(h, want)
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("switch", ["on", "off"])
@pytest.mark.parametrize("fault_mode", FAULT_MODES)
def test_move_copies_the_page_a_mutator_builds(lib_path, monkeypatch, fault_mode, switch):
    # The GC's short runs are MOVEd too, so that every COPY is the fault's.
    monkeypatch.setenv("REMAP_SHORT_RUN_COPY", "0")
    if switch == "off":
        monkeypatch.setenv("REMAP_FAULT_MOVE", "1")
    code = FAULTED_PAGE.format(mode=fault_mode)
    r = run_child(CHILD_PRELUDE + child_testheap(lib_path) + code, timeout=60)
    assert r["checksum"] and r["faults"] >= 1 and r["pages_by_mutator"] >= 1, brief(r)
    # The GC's runs are MOVEd either way (buffers_recycled counts them too).
    if switch == "on":
        assert r["buffers_new"] >= r["pages_by_mutator"] and r["ioctl_copy"] >= 1, brief(r)
    else:
        assert r["buffers_new"] == 0 and r["ioctl_copy"] == 0, brief(r)


# A reader touches a live large object's page after the flip, before any GC
# worker ran: the fault installs that page (Compactor::ensure_page).
LARGE_PAGE = """
import ctypes
from libremap.synthetic import SyntheticHeap, KiB, MiB
h = SyntheticHeap(capacity=8 * MiB, region_size=64 * KiB, seed=3, backend="move",
                  fault_mode={mode!r}, large_objects=8, large_object_size=96 * KiB,
                  large_live_fraction=1.0, large_max_refs=0)
want = h.checksum()
large = [o for o in h.live_objects() if o[4]]
h.mark()
h.prepare()
h.flip()
new = h.forward(large[0][0])
first = ctypes.string_at(new + 8192, 8)  # its third page: faults, served by the library
h.compact()
h.finish()
st = h.stats()
h.verify()
print(json.dumps(dict(st, checksum=h.checksum() == want, read=first.hex())))
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("switch", ["on", "off"])
@pytest.mark.parametrize("fault_mode", FAULT_MODES)
def test_move_copies_the_large_page_a_mutator_faults_on(monkeypatch, fault_mode, switch):
    # A MOVE of one page is a TLB shootdown the faulting thread waits for
    # (toy-VM GCBench: 20.7 us a fault against 2.0 us copied).
    if switch == "off":
        monkeypatch.setenv("REMAP_FAULT_MOVE", "1")
    r = run_child(CHILD_PRELUDE + LARGE_PAGE.format(mode=fault_mode), timeout=60)
    assert r["checksum"], brief(r)
    assert r["faults"] >= 1 and r["large_pages_by_mutator"] >= 1, brief(r)
    if switch == "on":
        assert r["large_pages_copied"] == r["large_pages_by_mutator"], r
        assert r["ioctl_copy"] >= r["large_pages_by_mutator"], brief(r)
    else:
        assert r["large_pages_copied"] == 0, r

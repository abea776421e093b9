"""A heap inherited across fork() (issue 12, defect 6): the child gets a
working heap holding exactly what the parent had at the fork, and neither
process can corrupt the other.

What goes wrong without the fork guard: in a child forked mid-cycle the
kernel has dropped the uffd registrations (no UFFD_FEATURE_EVENT_FORK), so
unproduced pages read zero; the child's cycle calls use the parent's
userfaultfd (UFFDIO_MOVE: EINVAL, the child aborts; UFFDIO_COPY writes into
the parent's address space); the minor and sigsegv heaps are MAP_SHARED
memfd mappings, so stores in either process show up in the other.

Each scenario runs in a fresh interpreter with a deadline. It forks with the
heap IDLE, PREPARED, just after the flip (no page produced), or while a
thread runs remap_compact; the forked child checks the object graph and,
after completing the cycle, the heap image against the stw reference, then
(where the test's own Python lock allows) mutates and runs another cycle.
The parent checks its own heap the same way after the child is done. In the
idle scenario the parent also mutates and collects before the child looks,
and the child must still see the heap as it was at the fork."""

from __future__ import annotations

import pytest

from support.differential import CHILD_PRELUDE, CONCURRENT_BACKENDS, FAULT_MODES, run_child

CODE = """
import signal, threading, time
from libremap.synthetic import PHASE_COMPACTING, PHASE_IDLE, PHASE_PREPARED, SyntheticHeap
backend, mode, scenario, destroy = {backend!r}, {mode!r}, {scenario!r}, {destroy!r}
params = dict(capacity=8 << 20, region_size=64 << 10, seed=5, live_ratio=0.4,
              dense_fraction=0.3, large_objects=4, large_live_fraction=0.5)
ref = SyntheticHeap(backend="stw", **params)
ref.collect()
ref_img = ref.image()
try:
    h = SyntheticHeap(backend=backend, fault_mode=mode, gc_threads=1, **params)
except RemapError as e:
    unsupported(e)
want = h.checksum()
worker = None
if scenario != "idle":
    h.mark()
    h.prepare()
    if scenario in ("flipped", "compacting"):
        h.flip()
    if scenario == "compacting":
        worker = threading.Thread(target=h.compact)
        worker.start()
        time.sleep(0.002)

def read_all(fd):
    out = b""
    while True:
        b = os.read(fd, 1 << 16)
        if not b:
            return out
        out += b

def complete_cycle(heap):
    # Whatever phase the heap was in at the fork, finish that cycle.
    if heap.phase == PHASE_PREPARED:
        heap.flip()
    if heap.phase == PHASE_COMPACTING:
        heap.compact()
        heap.finish()
    elif scenario == "idle":
        heap.collect()

go_r, go_w = os.pipe()
res_r, res_w = os.pipe()
pid = os.fork()
if pid == 0:
    signal.alarm(60)  # a wedged child dies instead of holding the test's pipes
    os.close(go_w)
    os.close(res_r)
    res = dict(phase=h.phase)
    code = 1
    try:
        os.read(go_r, 1)
        res["sum_at_fork"] = h.checksum() == want
        if destroy:
            del h  # remap_heap_destroy of the inherited heap, whatever its phase
            h2 = SyntheticHeap(backend=backend, fault_mode=mode, **params)
            w2 = h2.checksum()
            h2.collect()
            res["new_heap"] = h2.checksum() == w2 and h2.image() == ref_img
        else:
            complete_cycle(h)
            res["image"] = h.image() == ref_img
            res["sum"] = h.checksum() == want
            h.verify()
            st = h.stats()
            res["cycles"] = h.info()["cycles"]
            # compacting: the worker thread held the test heap's (Python
            # binding's) lock at the fork, and mutate needs it exclusively.
            if scenario != "compacting":
                h.mutate(kill_fraction=0.3, grow_bytes=256 << 10)
                w2 = h.checksum()
                h.collect()
                res["next_cycle"] = h.checksum() == w2
                h.verify()
        code = 0
    except BaseException as e:
        res["error"] = repr(e)
    os.write(res_w, json.dumps(res).encode())
    os._exit(code)

os.close(go_r)
os.close(res_w)
out = dict()
if scenario == "idle":
    # The parent's stores after fork() must not reach the child.
    h.mutate(kill_fraction=0.5, grow_bytes=512 << 10)
    h.collect()
    want = h.checksum()
os.write(go_w, b"x")
out["child"] = json.loads(read_all(res_r) or b"{{}}")
_, status = os.waitpid(pid, 0)
out["child_exit"] = os.waitstatus_to_exitcode(status)
if worker:
    worker.join()
try:
    if scenario != "idle":
        complete_cycle(h)
        out["image"] = h.image() == ref_img
        st = h.stats()
        out["installed"] = st["pages_installed"] == st["pages_by_gc"] + st["pages_by_mutator"]
    out["sum"] = h.checksum() == want
    h.verify()
    h.mutate(kill_fraction=0.3, grow_bytes=256 << 10)
    w2 = h.checksum()
    h.collect()
    out["next_cycle"] = h.checksum() == w2
    h.verify()
except BaseException as e:
    out["error"] = repr(e)
print(json.dumps(out))
"""

SCENARIOS = ("idle", "prepared", "flipped", "compacting")
CASES = [(b, m, s) for b in CONCURRENT_BACKENDS for m in FAULT_MODES for s in SCENARIOS] + [
    ("stw", "sigbus", s) for s in ("idle", "prepared")
]


def run(backend: str, mode: str, scenario: str, destroy: bool) -> dict:
    code = CODE.format(backend=backend, mode=mode, scenario=scenario, destroy=destroy)
    return run_child(CHILD_PRELUDE + code, timeout=90)


def check_parent(r: dict, scenario: str) -> None:
    assert "error" not in r, r
    assert r["sum"], f"the parent's object graph changed across the fork: {r}"
    assert r["next_cycle"], r
    if scenario != "idle":
        assert r["image"], f"the parent's cycle no longer matches stw after the fork: {r}"
        assert r["installed"], r


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("backend", "fault_mode", "scenario"), CASES)
def test_fork_child_gets_a_working_heap(backend, fault_mode, scenario):
    r = run(backend, fault_mode, scenario, destroy=False)
    child = r["child"]
    assert r["child_exit"] == 0, f"the forked child failed: {r}"
    assert child["sum_at_fork"], f"the child does not see the heap as it was at the fork: {r}"
    assert child["image"], f"the child's completed cycle differs from stw: {r}"
    assert child["sum"], r
    assert child["cycles"] == 1, r
    if scenario != "compacting":
        assert child["next_cycle"], f"the child's own next cycle broke the graph: {r}"
    check_parent(r, scenario)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("backend", "fault_mode", "scenario"),
    [(b, m, s) for b in CONCURRENT_BACKENDS for m in FAULT_MODES for s in ("idle", "flipped")]
    + [("stw", "sigbus", "idle")],
)
def test_fork_child_destroys_inherited_heap(backend, fault_mode, scenario):
    """remap_heap_destroy in the child (mid-cycle too) neither crashes nor
    hangs nor touches the parent; a new heap in the child works."""
    r = run(backend, fault_mode, scenario, destroy=True)
    child = r["child"]
    assert r["child_exit"] == 0, f"the forked child failed: {r}"
    assert child["sum_at_fork"], r
    assert child["new_heap"], r
    check_parent(r, scenario)


@pytest.fixture(scope="module")
def fork_program(tmp_path_factory):
    from support.differential import compile_c

    return compile_c("fork_compacting", tmp_path_factory.mktemp("fork"))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fault_mode", FAULT_MODES)
@pytest.mark.parametrize("backend", CONCURRENT_BACKENDS)
def test_fork_while_library_threads_run(fork_program, backend, fault_mode):
    """tests/c/fork_compacting.c: the main thread forks while GC workers run
    remap_compact and two mutators fault pages in (or only the mutators),
    at several moments of a cycle. No deadlock, no abort, both heaps right."""
    from support.differential import CHILD_UNSUPPORTED
    from support.processes import run_with_timeout

    r = run_with_timeout([fork_program, backend, fault_mode, "9"], timeout=90)
    if r.returncode == CHILD_UNSUPPORTED:
        pytest.skip(r.stdout.strip())
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert r.stdout.split() == ["ok", "9"]


REFUSED = """
import resource
from libremap.synthetic import PHASE_IDLE, SyntheticHeap
params = dict(capacity=4 << 20, region_size=64 << 10, seed=3, live_ratio=0.4)
try:
    h = SyntheticHeap(backend={backend!r}, fault_mode="sigbus", **params)
except RemapError as e:
    unsupported(e)
want = h.checksum()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    res = {{}}
    code = 1
    try:
        # No file descriptor left: the child's new engine (a userfaultfd or a
        # memfd) cannot be made.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        top = max(int(f) for f in os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1, hard))
        held = []
        try:
            while True:
                held.append(os.dup(0))
        except OSError:
            pass
        h.mark()
        try:
            h.prepare()
            res["refused"] = None
        except RemapError as e:
            res["refused"] = [e.status_name, e.message]
        res["phase"] = h.phase
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        res["sum"] = h.checksum() == want
        h.clear_marks()
        h.collect()  # the next try makes the engine
        res["after"] = h.checksum() == want
        h.verify()
        code = 0
    except BaseException as e:
        res["error"] = repr(e)
    os.write(w, json.dumps(res).encode())
    os._exit(code)
os.close(w)
child = json.loads(os.read(r, 1 << 16) or b"{{}}")
_, status = os.waitpid(pid, 0)
h.collect()
print(json.dumps(dict(child=child, child_exit=os.waitstatus_to_exitcode(status),
                      parent=h.checksum() == want, pid=os.getpid())))
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", CONCURRENT_BACKENDS)
def test_fork_child_engine_failure_is_a_clear_status(backend):
    """When the child cannot make its own engine (here: no file descriptor
    left), remap_prepare fails with a status naming the fork and the parent,
    the heap stays IDLE and intact, and a later cycle succeeds."""
    r = run_child(CHILD_PRELUDE + REFUSED.format(backend=backend), timeout=90)
    child = r["child"]
    assert r["child_exit"] == 0, r
    assert child["refused"], f"remap_prepare succeeded without a file descriptor: {r}"
    name, message = child["refused"]
    assert name != "REMAP_OK", r
    assert "inherited across fork()" in message and f"process {r['pid']}" in message, message
    assert child["phase"] == 0, r
    assert child["sum"] and child["after"], r
    assert r["parent"], r


NESTED = """
import signal
from libremap.synthetic import PHASE_COMPACTING, SyntheticHeap
params = dict(capacity=8 << 20, region_size=64 << 10, seed=5, live_ratio=0.4)
ref = SyntheticHeap(backend="stw", **params)
ref.collect()
img = ref.image()
try:
    h = SyntheticHeap(backend={backend!r}, fault_mode={mode!r}, **params)
except RemapError as e:
    unsupported(e)
want = [h.checksum()]
h.mark()
h.prepare()
h.flip()

def fork_and_wait(level):
    pid = os.fork()
    if pid:
        _, st = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(st)
    signal.alarm(30)
    code = 1
    try:
        ok = h.checksum() == want[0]
        if level < 2:  # the inherited cycle still COMPACTING here
            ok = fork_and_wait(level + 1) == 0 and ok
        if h.phase == PHASE_COMPACTING:
            h.compact()
            h.finish()
            ok = ok and h.image() == img and h.checksum() == want[0]
        h.mutate(grow_bytes=1 << 18)
        want[0] = h.checksum()
        h.collect()  # the child's own engine
        ok = ok and h.checksum() == want[0]
        if level < 2:  # and once more with that engine
            ok = fork_and_wait(level + 1) == 0 and ok
        code = 0 if ok else 1
    finally:
        os._exit(code)

rc = fork_and_wait(1)
h.compact()
h.finish()
print(json.dumps(dict(rc=rc, parent=h.image() == img and h.checksum() == want[0])))
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", CONCURRENT_BACKENDS)
def test_fork_again_in_the_child(backend):
    """A child forked mid-cycle forks again before finishing the inherited
    cycle, and again after running a cycle on its own engine: every
    generation's heap is right, and so is the parent's."""
    r = run_child(CHILD_PRELUDE + NESTED.format(backend=backend, mode="sigbus"), timeout=90)
    assert r == {"rc": 0, "parent": True}, r

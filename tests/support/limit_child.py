"""The child of tests/kernel/test_limits.py: one heap under one limit.

Run as `python -c <this file's text> <json cfg>` (the seccomp cases put a
filter in front of it): cfg gives the backend, the limit ("maps", "as" or
"none" with its argument), where it applies (create, prepare, flip,
compact) and whether to probe. Prints one "result <json>" line; see
test_limits.py for the endings.
"""

import ctypes
import json
import os
import resource
import sys
import threading

import libremap
from libremap.synthetic import KiB, MiB, RemapError, SyntheticHeap

cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
PAGE = os.sysconf("SC_PAGE_SIZE")
NAMES = {v: k for k, v in libremap.synthetic.BACKENDS.items()}
MODES = {v: k for k, v in libremap.synthetic.FAULT_MODES.items()}


def vmas():
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def vm_size():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024


class MapsLimit:
    # vm.max_map_count as seen by this process: its map count is raised to
    # `free` below the limit with one-page PROT_READ islands in a PROT_NONE
    # reservation (each island: two more VMAs), so that the library's next
    # mmap/mremap/mprotect meets the limit exactly as in a process that has
    # used up its maps.
    def __init__(self, free):
        self.free, self.area, self.len = free, None, 0

    def apply(self):
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
        want = limit - self.free
        room = max(0, want - vmas())
        self.len = (room + 2) * PAGE
        self.area = libc.mmap(None, self.len, 0, 0x22 | 0x4000, -1, 0)  # PRIVATE|ANON|NORESERVE
        assert self.area not in (None, ctypes.c_void_p(-1).value), "cannot reserve the filler"
        # Each island splits the reservation's last VMA in three.
        for i in range((want - vmas()) // 2):
            if libc.mprotect(self.area + (2 * i + 1) * PAGE, PAGE, 1) != 0:
                break
        out["maps"] = {"limit": limit, "reached": vmas()}

    def lift(self):
        if self.area:
            libc.munmap(self.area, self.len)
            self.area = None


class AsLimit:
    # RLIMIT_AS at the current address space size plus `slack` bytes.
    def __init__(self, slack):
        self.slack, self.old = slack, None

    def apply(self):
        self.old = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (vm_size() + self.slack, self.old[1]))

    def lift(self):
        if self.old:
            resource.setrlimit(resource.RLIMIT_AS, self.old)
            self.old = None


class NoLimit:
    def apply(self):
        pass

    def lift(self):
        pass


if os.environ.get("PYTHONMALLOC") == "malloc":
    warm = bytearray(48 << 20)  # see MALLOC_ON_BRK
    del warm
kind, arg = cfg["limit"]
limit = {"maps": MapsLimit, "as": AsLimit, "none": lambda _: NoLimit()}[kind](arg)
at = cfg["at"]
out = {"backend": cfg["backend"], "at": at}


def failed(step, e, h=None):
    limit.lift()
    out.update(
        step=step,
        status=getattr(e, "status_name", type(e).__name__),
        message=getattr(e, "message", str(e)),
    )
    if h is not None:
        out["phase"] = h.info()["phase"]


def report():
    limit.lift()
    go.set()  # a GC thread never needed (stw, a cycle that ended at the flip) ends too
    # ... and is joined: a daemon thread still inside the bindings when the
    # interpreter finalizes is ended by pthread_exit, whose unwinding through
    # a noexcept frame is std::terminate (seen once in a full-suite run).
    t.join()
    print("result " + json.dumps(out), flush=True)
    sys.exit(0)


if cfg.get("probe"):
    out["probe"] = libremap.probe().to_json()
if cfg.get("probe_under_limit"):
    libremap.probe()  # its modules loaded (cffi) before the limit
    limit.apply()
    p = libremap.probe().to_json()
    limit.lift()
    print("result " + json.dumps(dict(out, probe=p)), flush=True)
    sys.exit(0)

params = {
    "capacity": 8 * MiB,
    "region_size": 64 * KiB,
    "seed": 3,
    "live_ratio": 0.3,
    "fill_fraction": 0.6,
    "gc_threads": 2,
    "backend": cfg["backend"],
    "fault_mode": cfg.get("fault_mode", "auto"),
}
# The GC thread exists before any limit: starting a thread maps its stack.
go = threading.Event()
gc_error = []
h = None


def gc():
    go.wait()
    if h is None or h.info()["phase"] != 2:
        return
    try:
        h.compact()
    except RemapError as e:
        gc_error.append(e)


t = threading.Thread(target=gc, daemon=True)
t.start()
if at == "create":
    limit.apply()
try:
    h = SyntheticHeap(**params)
except RemapError as e:
    failed("create", e)
    out["ending"] = "refused at creation"
    report()
info = h.info()
out["picked"] = NAMES[info["backend"]]
out["fault_mode"] = MODES[info["fault_mode"]]

want = None
try:
    if at == "prepare":
        limit.apply()
    h.mark()
    h.prepare()
    want = h.checksum()
    if at == "flip":
        limit.apply()
    h.flip()
    if h.info()["phase"] == 2:
        if at == "compact":
            limit.apply()
        go.set()
        seen = h.checksum()  # the mutator: every page through a fault or a GC worker
        t.join()
        if gc_error:
            raise gc_error[0]
        out["mutator_saw_the_graph"] = seen == want
        h.finish()
    limit.lift()
    out["ending"] = "completed"
    out["intact"] = (
        h.checksum() == want and h.verify() > 0 and out.get("mutator_saw_the_graph", True)
    )
    out["stats_backend"] = NAMES[h.stats()["backend"]]
    report()
except RemapError as e:
    go.set()
    t.join()
    failed("cycle", e, h)
except MemoryError as e:
    # RLIMIT_AS reached the interpreter itself (an arena it could not map),
    # not a library call: no verdict on the library from this case.
    go.set()
    t.join()
    failed("interpreter", e, h)
    out["ending"] = "interpreter out of memory"
    report()

if out["phase"] == 3:
    out["ending"] = "broken"
    report()
out["ending"] = "refused"
if out["phase"] == 2:
    # A GC worker's call failed but the cycle goes on: finish does the rest.
    try:
        h.finish()
    except RemapError as e:
        out.update(finish_status=e.status_name, finish_message=e.message)
    out["phase_after_finish"] = h.info()["phase"]
    if out["phase_after_finish"] == 3:
        out["ending"] = "broken"
        report()
if out["phase"] == 1:
    h.clear_marks()  # cancels the prepared cycle
    out["phase_after_cancel"] = h.info()["phase"]
before = h.checksum() if want is None else want
h.collect()
out["intact"] = h.checksum() == before and h.verify() > 0
report()

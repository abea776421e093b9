"""Limits a runtime meets in the field (issue 17, docs/LIMITS.md).

Each case runs in a child process, so a limit never reaches the test
process: a low vm.max_map_count (the child fills its own map count up to
the limit, and a root-only case lowers the sysctl itself for a moment), a
low RLIMIT_AS, an unprivileged user, a seccomp filter that denies
userfaultfd, and a kernel without some userfaultfd features (played by the
test hook LIBREMAP_MASK_UFFD_FEATURES, os/failure_injection.h).

The child (LIMIT_CHILD) creates a synthetic heap per backend, the limit
applied at one point of its life (heap creation, prepare, flip, or the
concurrent compaction, with a mutator reading the whole graph through
faults while GC workers run), lifts the limit, and reports one ending:

- "completed": the cycle ran and the graph is the one marked;
- "refused": a call failed with a status and a message that names the
  limit; the heap is IDLE (or PREPARED, then cancelled) and intact: a
  cycle run after the limit is lifted completes with the same graph;
- "broken": a call failed, the heap says BROKEN and the message says why;
- "refused at creation": remap_heap_create failed with such a message.

Never a crash or a hang (every child has a deadline), never a wrong graph
on a heap that is not broken.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import NOBODY

import libremap

from support import seccomp
from support.processes import python_child, run_with_timeout

BACKENDS = ("auto", "move", "copy", "minor", "sigsegv", "stw")
CHILD_TIMEOUT_S = 120
MAX_MAP_COUNT = "/proc/sys/vm/max_map_count"
PHASE_IDLE, PHASE_PREPARED, PHASE_COMPACTING, PHASE_BROKEN = 0, 1, 2, 3

# The child's code, run with `python -c` (see support/limit_child.py).
LIMIT_CHILD = (Path(__file__).parents[1] / "support" / "limit_child.py").read_text()


# For the map-count cases: Python's allocator and glibc's malloc grow the
# brk heap instead of mapping arenas, so the maps left under the limit are
# the library's, not the interpreter's (which has no way to fail gracefully
# there: a MemoryError in a thread's bootstrap, a child that hangs).
# The child also takes 48 MiB from the brk heap and gives it back before the
# limit, and glibc keeps it (no trim) for the allocations made under it.
MALLOC_ON_BRK = {
    "PYTHONMALLOC": "malloc",
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
    "MALLOC_TOP_PAD_": str(16 << 20),
}


def run_child(cfg: dict, env: dict | None = None, argv0: list[str] | None = None, **kw) -> dict:
    """Runs LIMIT_CHILD with cfg; its report. argv0 replaces the interpreter
    (the unprivileged case)."""
    args = (argv0 + ["-c", LIMIT_CHILD] if argv0 else python_child(LIMIT_CHILD)) + [json.dumps(cfg)]
    full_env = dict(os.environ, **(env or {}))
    r = run_with_timeout(args, timeout=CHILD_TIMEOUT_S, env=full_env, **kw)
    lines = [x for x in r.stdout.splitlines() if x.startswith("result ")]
    assert r.returncode == 0 and lines, (
        f"{cfg}: the child died (exit {r.returncode})\nstdout:\n{r.stdout[-3000:]}\n"
        f"stderr:\n{r.stderr[-5000:]}"
    )
    out = json.loads(lines[-1][len("result ") :])
    out["stderr"] = r.stderr
    return out


def check_ending(out: dict, names: tuple[str, ...]) -> str:
    """Asserts out is one of the accepted endings and, where a call failed,
    that its message names one of `names`; returns the ending."""
    where = json.dumps({k: v for k, v in out.items() if k != "stderr"})[:2500]
    ending = out["ending"]
    if ending == "interpreter out of memory":
        return ending
    if ending == "completed":
        assert out["intact"], f"a completed cycle changed the graph: {where}"
        return ending
    assert any(n.lower() in out["message"].lower() for n in names), (
        f"the message names none of {names}: {where}\n{out['stderr'][-2000:]}"
    )
    if ending == "refused at creation":
        assert out["status"].startswith("REMAP_E"), where
    elif ending == "refused":
        assert out["phase"] in (PHASE_IDLE, PHASE_PREPARED, PHASE_COMPACTING), where
        assert out.get("phase_after_finish", PHASE_IDLE) == PHASE_IDLE, where
        assert out.get("phase_after_cancel", PHASE_IDLE) == PHASE_IDLE, where
        assert out["intact"], f"a refused cycle changed the graph: {where}"
    else:
        assert ending == "broken", where
        assert PHASE_BROKEN in (out["phase"], out.get("phase_after_finish")), where
    return ending


# ---------------------------------------------------------------------------
# vm.max_map_count


MAPS_NAMES = ("max_map_count", "mappings", "VMAs", "out of address space")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("at", ["create", "prepare", "flip", "compact"])
def test_map_count_used_up(backend: str, at: str) -> None:
    """The process has used up its maps (a few left under the limit) at one
    point of a heap's life: each mmap/mremap/mprotect the library makes then
    fails ENOMEM, and each must end in a clear status (naming
    vm.max_map_count) or a fallback that keeps the heap intact."""
    endings = {}
    for free in (0, 8, 48):
        out = run_child({"backend": backend, "limit": ["maps", free], "at": at}, env=MALLOC_ON_BRK)
        print(free, {k: v for k, v in out.items() if k != "stderr"})
        endings[free] = check_ending(out, MAPS_NAMES)
    print(backend, at, endings)
    if at == "create":
        assert endings[0] == "refused at creation", endings


def test_probe_with_maps_used_up() -> None:
    """Defect found here: in a process with no maps left the probe's
    MREMAP_DONTUNMAP trial fails ENOMEM, and its reason blamed the kernel
    ("Linux < 5.7"). auto still falls back to stw (a flip could not be made
    now), but the reason names the limit; with a few maps left, all is as
    usual."""
    out = run_child(
        {"backend": "auto", "limit": ["maps", 0], "at": "none", "probe_under_limit": True},
        env=MALLOC_ON_BRK,
    )
    p = out["probe"]
    if p["mremap_dontunmap"]:
        pytest.skip("the trial mremap found a map to spare")
    assert p["auto_backend"] == "stw", p
    assert "vm.max_map_count" in p["auto_reason"] and "5.7" not in p["auto_reason"], p
    out = run_child(
        {"backend": "auto", "limit": ["maps", 16], "at": "none", "probe_under_limit": True},
        env=MALLOC_ON_BRK,
    )
    assert out["probe"]["mremap_dontunmap"] and out["probe"]["auto_backend"] == "move"
    # The same trial under RLIMIT_AS with no room left.
    out = run_child(
        {"backend": "auto", "limit": ["as", 0], "at": "none", "probe_under_limit": True}
    )
    p = out["probe"]
    assert not p["mremap_dontunmap"] and p["auto_backend"] == "stw", p
    assert "RLIMIT_AS" in p["auto_reason"], p


@pytest.fixture
def lowered_max_map_count() -> Iterator[int]:
    """Lowers vm.max_map_count for the duration of one test, restoring it in
    any case. The new limit stays well above the map count of every process
    on the machine now (others run beside the tests), so only the child,
    which fills its own map count, meets it."""
    if os.geteuid() != 0:
        pytest.skip("vm.max_map_count is a global sysctl: setting it needs root")
    with open(MAX_MAP_COUNT) as f:
        old = int(f.read())
    busiest = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/maps", "rb") as f:
                    busiest = max(busiest, f.read().count(b"\n"))
            except OSError:
                pass
    new = max(busiest + 4096, 8192)
    if new >= old:
        pytest.skip(f"a process has {busiest} maps: no room under vm.max_map_count={old}")
    try:
        with open(MAX_MAP_COUNT, "w") as f:
            f.write(str(new))
        yield new
    finally:
        with open(MAX_MAP_COUNT, "w") as f:
            f.write(str(old))


def test_low_max_map_count_sysctl(lowered_max_map_count: int) -> None:
    """The sysctl itself lowered: the probe reports it, the sigsegv backend
    refuses a flip whose worst case needs more VMAs than the limit (its
    budget check reads the sysctl) and leaves the heap intact, and the
    userfaultfd backends run (they need a handful of maps per heap). The
    child fills its maps to a few hundred under the limit."""
    limit = lowered_max_map_count
    outs = {}
    for backend in ("auto", "sigsegv", "move", "minor"):
        out = run_child(
            {"backend": backend, "limit": ["maps", 400], "at": "flip", "probe": backend == "auto"},
            env=MALLOC_ON_BRK,
        )
        outs[backend] = out
        check_ending(out, MAPS_NAMES)
    assert outs["auto"]["probe"]["max_map_count"] == limit
    assert outs["auto"]["ending"] == "completed", outs["auto"]
    assert outs["move"]["ending"] == "completed", outs["move"]
    sig = outs["sigsegv"]
    assert sig["ending"] == "refused" and sig["status"] == "REMAP_ELIMIT", sig
    assert f"vm.max_map_count is {limit}" in sig["message"], sig["message"]


# ---------------------------------------------------------------------------
# RLIMIT_AS

AS_NAMES = ("RLIMIT_AS",)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("at", ["create", "prepare", "flip", "compact"])
def test_address_space_limit(backend: str, at: str) -> None:
    """RLIMIT_AS at the current size plus a little, at one point of the
    heap's life. At creation the heap's 1 GiB-aligned reservation (virtual,
    MAP_NORESERVE, still counted) cannot fit; later, the cycle's own maps
    (GC worker stacks, buffer pages, plan tables) meet it."""
    endings = {}
    # 2560 MiB: the heap's reservation fits (1 GiB heap + 1 GiB alignment
    # slack, trimmed), the engine's from-space does not.
    for slack_mib in (0, 4, 64) + ((2560,) if at == "create" else ()):
        out = run_child({"backend": backend, "limit": ["as", slack_mib << 20], "at": at})
        endings[slack_mib] = check_ending(out, AS_NAMES)
        print(slack_mib, {k: v for k, v in out.items() if k != "stderr"})
    print(backend, at, endings)
    if at == "create":
        assert endings[0] == "refused at creation", endings


# ---------------------------------------------------------------------------
# An unprivileged user


@pytest.fixture(scope="module")
def nobody_python() -> Iterator[tuple[list[str], dict]]:
    """(argv0, env) that run a Python with libremap as uid 65534: the test
    interpreter may be unreadable for that user (pyenv under /root), so the
    system's interpreter of the same version runs a copy of the package
    from a world-readable folder."""
    if os.geteuid() != 0:
        pytest.skip("dropping to another user needs root")
    setpriv = shutil.which("setpriv")
    import sys

    py = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if setpriv is None or not os.access(py, os.X_OK):
        pytest.skip(f"needs setpriv and {py}")
    import libremap._core as core
    from libremap._paths import package_file

    d = tempfile.mkdtemp(prefix="libremap-nobody-")
    os.chmod(d, 0o755)
    pkg = os.path.join(d, "libremap")
    shutil.copytree(
        os.path.dirname(libremap.__file__),
        pkg,
        ignore=shutil.ignore_patterns("__pycache__", "*.so*"),
    )
    shutil.copy(core.__file__, pkg)
    for name in ("libremap.so.0", "_cdef.h"):  # CMake's files (the core, the cffi cdef)
        shutil.copy(package_file(name), pkg)
    # The probe goes through cffi (libremap.cabi), which nobody's
    # interpreter does not have either.
    import _cffi_backend
    import cffi
    import pycparser

    for mod in (cffi, pycparser):
        shutil.copytree(
            os.path.dirname(mod.__file__),
            os.path.join(d, mod.__name__),
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy(_cffi_backend.__file__, d)
    for root, dirs, files in os.walk(d):
        for n in dirs:
            os.chmod(os.path.join(root, n), 0o755)
        for n in files:
            os.chmod(os.path.join(root, n), 0o755)
    argv0 = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", py]
    yield argv0, {"PYTHONPATH": d, "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/"}
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize(
    "backend,fault_mode", [(b, "auto") for b in BACKENDS] + [("move", "thread"), ("copy", "thread")]
)
def test_unprivileged_user(nobody_python, backend: str, fault_mode: str) -> None:
    """As nobody (no CAP_SYS_PTRACE): the probe finds a user-mode-only
    userfaultfd (with vm.unprivileged_userfaultfd=0), auto still picks
    move and says why the mode matters, and every backend's cycle works:
    the heap's own faults are user faults, which UFFD_USER_MODE_ONLY
    serves."""
    argv0, env = nobody_python
    out = run_child(
        {
            "backend": backend,
            "limit": ["none", 0],
            "at": "none",
            "probe": backend == "auto",
            "fault_mode": fault_mode,
        },
        env=env,
        argv0=argv0,
        cwd="/",
    )
    assert check_ending(out, ()) == "completed", out
    if backend == "auto":
        p = out["probe"]
        assert p["euid"] == NOBODY and not p["cap_sys_ptrace"]
        with open("/proc/sys/vm/unprivileged_userfaultfd") as f:
            if f.read().strip() == "0":
                assert p["uffd"]["path"] == "user_mode_only", p["uffd"]
                assert "user-mode-only" in p["auto_reason"]
        assert out["picked"] == p["auto_backend"]
        assert not p["features"]["event_fork"]


# ---------------------------------------------------------------------------
# seccomp denying userfaultfd (the filter: support/seccomp.py)


def seccomp_child(cfg: dict, denied_with: str, deny_dev: bool = True) -> dict:
    code = seccomp.deny_userfaultfd(getattr(errno, denied_with), deny_dev) + LIMIT_CHILD
    r = run_with_timeout(python_child(code) + [json.dumps(cfg)], timeout=CHILD_TIMEOUT_S)
    lines = [x for x in r.stdout.splitlines() if x.startswith("result ")]
    assert r.returncode == 0 and lines, r.stderr[-3000:]
    out = json.loads(lines[-1][len("result ") :])
    out["stderr"] = r.stderr
    return out


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 syscall numbers")
@pytest.mark.parametrize("denied_with", ["EPERM", "ENOSYS"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_seccomp_denies_userfaultfd(backend: str, denied_with: str) -> None:
    """userfaultfd denied: auto falls back to stw (the probe's rule: move,
    else copy, else stw) and its cycle works; sigsegv needs no userfaultfd and
    works; move, copy and minor are refused at creation with REMAP_EPERM
    (EPERM: "denied ... seccomp") or REMAP_EUNSUPPORTED (ENOSYS: "no
    userfaultfd ... or a seccomp filter hides it")."""
    cfg = {"backend": backend, "limit": ["none", 0], "at": "none", "probe": backend == "auto"}
    out = seccomp_child(cfg, denied_with)
    if backend in ("auto", "stw", "sigsegv"):
        assert check_ending(out, ()) == "completed", out
    else:
        assert check_ending(out, ("seccomp",)) == "refused at creation", out
        want = "REMAP_EPERM" if denied_with == "EPERM" else "REMAP_EUNSUPPORTED"
        assert out["status"] == want, out
    if backend == "auto":
        assert out["picked"] == "stw" == out["probe"]["auto_backend"]
        assert out["probe"]["uffd"]["available"] is False
        status = "denied" if denied_with == "EPERM" else "unsupported"
        assert out["probe"]["uffd"]["status"] == status, out["probe"]["uffd"]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 syscall numbers")
@pytest.mark.parametrize("backend", ["auto", "move", "minor"])
def test_seccomp_denies_only_the_syscall(backend: str) -> None:
    """A profile that denies userfaultfd(2) but leaves /dev/userfaultfd to
    its file mode: where the device is usable (root here) the library opens
    its uffd there, in full mode, and every backend works."""
    if not os.access("/dev/userfaultfd", os.R_OK | os.W_OK):
        pytest.skip("/dev/userfaultfd is missing or not usable by this user")
    cfg = {"backend": backend, "limit": ["none", 0], "at": "none", "probe": backend == "auto"}
    out = seccomp_child(cfg, "EPERM", deny_dev=False)
    assert check_ending(out, ()) == "completed", out
    if backend == "auto":
        u = out["probe"]["uffd"]
        assert u["path"] == "dev" and u["status"] == "full", u
        assert u["errno_names"]["syscall"] == "EPERM", u
        assert out["picked"] == "move"


# ---------------------------------------------------------------------------
# A kernel without some userfaultfd features (LIBREMAP_MASK_UFFD_FEATURES)


def masked(backend: str, hidden: str, fault_mode: str = "auto", probe: bool = False) -> dict:
    cfg = {
        "backend": backend,
        "limit": ["none", 0],
        "at": "none",
        "probe": probe,
        "fault_mode": fault_mode,
    }
    return run_child(cfg, env={"LIBREMAP_MASK_UFFD_FEATURES": hidden})


def test_kernel_without_move() -> None:
    """A kernel before 6.8: auto picks copy (and says why), an explicit move
    heap is refused with REMAP_EUNSUPPORTED naming the missing feature, and
    the other backends work."""
    out = masked("auto", "move", probe=True)
    assert check_ending(out, ()) == "completed"
    p = out["probe"]
    assert not p["features"]["move"] and not p["ioctls"].get("move", False), p
    assert p["auto_backend"] == "copy" == out["picked"] == out["stats_backend"]
    assert "lacks UFFDIO_MOVE" in p["auto_reason"] and "LIBREMAP_MASK" in p["auto_reason"]
    out = masked("move", "move")
    assert check_ending(out, ("move",)) == "refused at creation"
    assert out["status"] == "REMAP_EUNSUPPORTED"
    assert "lacks UFFD_FEATURE move" in out["message"], out["message"]
    for backend in ("copy", "minor", "sigsegv", "stw"):
        assert check_ending(masked(backend, "move"), ()) == "completed", backend


def test_kernel_without_sigbus() -> None:
    """No UFFD_FEATURE_SIGBUS: auto's fault mode is handler threads and the
    cycle works; an explicit sigbus heap is refused naming the feature;
    sigsegv (its own signal) does not care."""
    out = masked("auto", "sigbus", probe=True)
    assert check_ending(out, ()) == "completed"
    assert not out["probe"]["features"]["sigbus"]
    assert out["picked"] == "move" and out["fault_mode"] == "thread", out
    for backend in ("move", "copy", "minor"):
        out = masked(backend, "sigbus", fault_mode="sigbus")
        assert check_ending(out, ("sigbus",)) == "refused at creation", backend
        assert out["status"] == "REMAP_EUNSUPPORTED", out
        assert check_ending(masked(backend, "sigbus", fault_mode="thread"), ()) == "completed"
    assert check_ending(masked("sigsegv", "sigbus", fault_mode="sigbus"), ()) == "completed"


def test_kernel_without_minor_shmem() -> None:
    """No UFFD_FEATURE_MINOR_SHMEM: the minor backend is refused naming it;
    auto is unaffected (move)."""
    out = masked("minor", "minor_shmem")
    assert check_ending(out, ("minor_shmem",)) == "refused at creation"
    assert out["status"] == "REMAP_EUNSUPPORTED"
    out = masked("auto", "minor_shmem,thread_id", probe=True)
    assert check_ending(out, ()) == "completed" and out["picked"] == "move"
    assert not out["probe"]["features"]["minor_shmem"]


def test_mask_hook_names_and_numbers() -> None:
    """The hook takes names or a number; an unknown name is reported and
    ignored, never a silent no-op."""
    out = masked("auto", str(1 << 16), probe=True)
    assert out["picked"] == "copy"
    out = masked("auto", "move,no_such_feature", probe=True)
    assert out["picked"] == "copy"
    assert "unknown feature name" in out["stderr"]


def test_probe_cli_reports_masked_features() -> None:
    """`python -m libremap probe --json` under the hook: what a kernel
    without MOVE would report."""
    r = run_with_timeout(
        [
            *python_child("import runpy; runpy.run_module('libremap', run_name='__main__')"),
            "probe",
            "--json",
        ],
        env=dict(os.environ, LIBREMAP_MASK_UFFD_FEATURES="move,sigbus"),
    )
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    assert not p["features"]["move"] and not p["features"]["sigbus"]
    assert p["auto_backend"] == "copy"

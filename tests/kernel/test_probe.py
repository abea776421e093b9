"""The capability probe agrees with the facts it reports, and says the right
thing for a root process, an unprivileged one, and one under a seccomp filter
that denies userfaultfd."""

from __future__ import annotations

import errno
import json
import os
import platform
import shutil
import sys
import tempfile

import pytest

import libremap
from libremap import cli
from libremap.cabi import ffi, lib

from support import seccomp
from support.processes import python_child, run_with_timeout

CAP_SYS_PTRACE = 19


@pytest.fixture(scope="module")
def info() -> libremap.ProbeInfo:
    return libremap.probe()


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_probe_agrees_with_proc_and_sys(info):
    assert info.kernel == os.uname().release
    assert info.page_size == os.sysconf("SC_PAGESIZE")
    assert info.euid == os.geteuid()
    assert info.max_map_count == int(read("/proc/sys/vm/max_map_count"))
    assert info.unprivileged_userfaultfd == int(read("/proc/sys/vm/unprivileged_userfaultfd"))
    thp = read("/sys/kernel/mm/transparent_hugepage/enabled")
    assert f"[{info.thp_mode}]" in thp
    swaps = [line for line in read("/proc/swaps").splitlines()[1:] if line.strip()]
    assert info.swap_present == bool(swaps)
    cap_eff = next(
        int(line.split()[1], 16)
        for line in read("/proc/self/status").splitlines()
        if line.startswith("CapEff:")
    )
    assert info.cap_sys_ptrace == bool(cap_eff >> CAP_SYS_PTRACE & 1)


def test_feature_names_follow_the_kernel_numbering(info):
    assert ffi.string(lib.remap_uffd_feature_name(16)) == b"move"
    assert ffi.string(lib.remap_uffd_feature_name(7)) == b"sigbus"
    assert ffi.string(lib.remap_uffd_feature_name(1)) == b"event_fork"
    assert lib.remap_uffd_feature_name(63) == ffi.NULL
    assert lib.remap_uffd_feature_name(1000) == ffi.NULL
    assert {"move", "sigbus", "thread_id", "minor_shmem"} <= set(info.features)
    for bit, name in libremap.probe.__globals__["feature_names"]().items():
        assert info.features[name] == bool(info.features_raw >> bit & 1)


def test_auto_backend_follows_the_documented_rule(info):
    if not info.uffd_available or not info.mremap_dontunmap:
        expected = "stw"
    elif info.features["move"] and info.ioctls["move"]:
        expected = "move"
    elif info.ioctls["copy"]:
        expected = "copy"
    else:
        expected = "stw"
    assert info.auto_backend == expected
    assert info.auto_reason.endswith(".") and len(info.auto_reason) > 20


def test_kernel_facts_this_machine_relies_on(info):
    """On Linux 6.8+ the probe must find MOVE; a regression in the probe
    (handshake, register) would silently demote every heap to copy/stw."""
    major, minor = (int(x) for x in info.kernel.split(".")[:2])
    if (major, minor) < (6, 8):
        pytest.skip(f"kernel {info.kernel} predates UFFDIO_MOVE")
    assert info.uffd_available, info
    assert info.features["move"] and info.ioctls["move"] and info.ioctls["copy"]
    assert info.mremap_dontunmap
    assert info.auto_backend == "move"


def test_root_with_ptrace_opens_the_full_syscall(info):
    if not info.cap_sys_ptrace:
        pytest.skip("needs CAP_SYS_PTRACE")
    assert info.uffd_path == "syscall"
    assert info.uffd_status == "full"
    assert info.uffd_errno == {"syscall": 0, "dev": 0, "user_mode_only": 0}
    # EVENT_FORK is granted only with CAP_SYS_PTRACE.
    assert info.features["event_fork"]


def probe_json(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# Probing as another user runs a small C program rather than Python: the
# test interpreter may live where uid 65534 cannot read (pyenv under /root).
PROBE_CHILD_C = r"""
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <libremap.h>

/* userfaultfd(2) and ioctl(USERFAULTFD_IOC_NEW) fail with EPERM, as a
 * container runtime's seccomp profile makes them. x86-64 numbers. */
static int deny_userfaultfd(void) {
  struct sock_filter f[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 4),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xC000003E, 0, 5),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 323, 4, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 16, 0, 2),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 24),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xAA00, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
  };
  struct sock_fprog prog = {sizeof f / sizeof f[0], f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "--seccomp") == 0 && deny_userfaultfd() != 0) {
    perror("seccomp");
    return 3;
  }
  remap_probe_info i = {0};
  i.struct_size = sizeof i;
  if (remap_probe(&i) != REMAP_OK) {
    fprintf(stderr, "%s\n", remap_last_error());
    return 1;
  }
  printf("{\"euid\": %u, \"cap_sys_ptrace\": %d, \"available\": %d, \"path\": %d, "
         "\"syscall\": %d, \"dev\": %d, \"user_mode_only\": %d, \"features\": %llu, "
         "\"auto_backend\": \"%s\", \"auto_reason\": \"%s\"}\n",
         i.euid, i.cap_sys_ptrace, i.uffd_available, i.uffd_path, i.uffd_syscall_errno,
         i.uffd_dev_errno, i.uffd_user_mode_errno, (unsigned long long)i.uffd_features,
         remap_backend_name(i.auto_backend), i.auto_reason);
  return 0;
}
"""


@pytest.fixture(scope="module")
def probe_child():
    """Path of the compiled prober, in a folder any user can read, next to
    its own copy of libremap.so.0 (found through RPATH $ORIGIN)."""
    from libremap._paths import package_file

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    d = tempfile.mkdtemp(prefix="libremap-probe-")
    os.chmod(d, 0o755)
    shutil.copy(package_file("libremap.so.0"), d)
    src = os.path.join(d, "probe_child.c")
    with open(src, "w") as f:
        f.write(PROBE_CHILD_C)
    exe = os.path.join(d, "probe_child")
    run_with_timeout(
        [
            cc,
            "-O1",
            "-I",
            str(package_file("include")),
            src,
            "-o",
            exe,
            os.path.join(d, "libremap.so.0"),
            "-Wl,-rpath,$ORIGIN",
        ],
        timeout=120,
        check=True,
    )
    yield exe
    shutil.rmtree(d, ignore_errors=True)


def test_unprivileged_user_gets_user_mode_only(run_as_nobody, probe_child):
    unpriv = int(read("/proc/sys/vm/unprivileged_userfaultfd"))
    if unpriv != 0:
        pytest.skip("vm.unprivileged_userfaultfd=1 lets nobody use full mode")
    out = probe_json(run_as_nobody([probe_child]))
    assert out["euid"] == 65534 and out["cap_sys_ptrace"] == 0
    # Full mode without CAP_SYS_PTRACE and with the sysctl at 0: EPERM.
    assert out["syscall"] == errno.EPERM
    if not os.path.exists("/dev/userfaultfd"):
        assert out["dev"] == errno.ENOENT
    elif not os.stat("/dev/userfaultfd").st_mode & 0o006:
        assert out["dev"] == errno.EACCES
    assert out["available"] == 1 and out["user_mode_only"] == 0
    assert out["path"] == 3  # REMAP_UFFD_USER_MODE_ONLY
    assert not out["features"] >> 1 & 1  # EVENT_FORK needs CAP_SYS_PTRACE
    assert "user-mode-only" in out["auto_reason"]


def test_seccomp_denied_as_nobody(run_as_nobody, probe_child):
    if platform.machine() != "x86_64":
        pytest.skip("the BPF filter uses x86-64 syscall numbers")
    out = probe_json(run_as_nobody([probe_child, "--seccomp"]))
    assert out["available"] == 0 and out["path"] == 0
    assert out["syscall"] == errno.EPERM and out["user_mode_only"] == errno.EPERM
    assert out["dev"] in (errno.EACCES, errno.ENOENT, errno.EPERM)
    assert out["features"] == 0
    assert out["auto_backend"] == "stw"


# The same filter installed from Python (ctypes), in a child of the test
# interpreter, checked through the Python API and its "denied" status.
SECCOMP_DENY_UFFD = (
    seccomp.deny_userfaultfd(errno.EPERM)
    + """
import json
import libremap
print(json.dumps(libremap.probe().to_json()))
"""
)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 syscall numbers")
def test_seccomp_denied_userfaultfd_falls_back_to_stw():
    out = probe_json(run_with_timeout(python_child(SECCOMP_DENY_UFFD), cwd="/"))
    uffd = out["uffd"]
    assert uffd["available"] is False and uffd["path"] == "none"
    assert uffd["status"] == "denied"
    assert uffd["errno_names"]["syscall"] == "EPERM"
    assert uffd["errno_names"]["user_mode_only"] == "EPERM"
    if os.access("/dev/userfaultfd", os.R_OK | os.W_OK):
        assert uffd["errno_names"]["dev"] == "EPERM"  # the filtered ioctl
    assert out["auto_backend"] == "stw"
    assert not any(out["features"].values())


def test_probe_json_schema():
    jsonschema = pytest.importorskip("jsonschema")
    out = probe_json(run_with_timeout([sys.executable, "-m", "libremap", "probe", "--json"]))
    errno_obj = {
        "type": "object",
        "properties": {k: {"type": "integer"} for k in ("syscall", "dev", "user_mode_only")},
        "required": ["syscall", "dev", "user_mode_only"],
    }
    schema = {
        "type": "object",
        "required": ["kernel", "uffd", "features", "auto_backend", "auto_reason"],
        "properties": {
            "kernel": {"type": "string", "minLength": 1},
            "uffd": {
                "type": "object",
                "required": ["available", "path", "errno", "status"],
                "properties": {
                    "available": {"type": "boolean"},
                    "path": {"enum": ["none", "syscall", "dev", "user_mode_only"]},
                    "status": {
                        "enum": ["full", "user_mode_only", "denied", "unsupported", "unavailable"]
                    },
                    "errno": errno_obj,
                },
            },
            "features": {
                "type": "object",
                "required": ["move", "sigbus"],
                "additionalProperties": {"type": "boolean"},
            },
            "auto_backend": {"enum": ["move", "copy", "stw"]},
            "page_size": {"type": "integer", "minimum": 4096},
        },
    }
    jsonschema.validate(out, schema)


def test_probe_table_is_readable():
    r = run_with_timeout([sys.executable, "-m", "libremap", "probe"], check=True)
    for label in ("kernel", "userfaultfd", "move", "auto backend", "vm.max_map_count"):
        assert label in r.stdout
    assert r.stdout.count("\n") >= 10


def test_cli_dirs_point_at_the_installed_files():
    for flag, wanted in (
        ("--cmakedir", "libremapConfig.cmake"),
        ("--pkgconfigdir", "libremap.pc"),
        ("--includedir", "libremap.h"),
        ("--libdir", "libremap.so.0"),
    ):
        r = run_with_timeout([sys.executable, "-m", "libremap", flag], check=True)
        path = r.stdout.strip().splitlines()[-1]
        assert os.path.isabs(path) and os.path.isfile(os.path.join(path, wanted)), (flag, path)


def test_cli_without_command_shows_usage():
    r = run_with_timeout([sys.executable, "-m", "libremap"])
    assert r.returncode == 2 and "probe" in r.stderr


def test_cli_missing_command_is_an_error(monkeypatch):
    # Issue 12 (7): a command that cannot be imported must not vanish silently.
    monkeypatch.setattr(cli, "COMMANDS", ("probe", "no_such_command_xyz"))
    with pytest.raises(ModuleNotFoundError, match="no_such_command_xyz"):
        cli._command_modules()


def test_cli_lists_every_command_module():
    import pkgutil

    from libremap import commands

    found = {m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")}
    assert found == set(cli.COMMANDS)


def test_pybind_and_cffi_probes_agree(info):
    from libremap import _core

    raw = _core.probe()
    assert raw["kernel_release"] == info.kernel
    assert raw["uffd_features"] == info.features_raw
    assert raw["uffd_ioctls"] == info.ioctls_raw
    assert raw["auto_reason"] == info.auto_reason
    assert raw["max_map_count"] == info.max_map_count

"""Shared pytest helpers for every suite.

- ``run_with_timeout(args, timeout=...)``: a subprocess with a deadline that
  kills its whole process group, so a test that wedges a thread in a
  userfaultfd fault fails instead of hanging. Also as the fixture
  ``subprocess_with_timeout``.
- ``run_as_nobody`` fixture: the same, as uid/gid 65534 with no groups
  (``setpriv``); skips when not root or when setpriv is missing. The test
  interpreter may be unreadable for that user (pyenv under /root, mode 0700):
  run a compiled C program from a world-readable folder instead, as
  test_probe.py's ``probe_child`` fixture does.
- ``python_child(code)``: argv that runs ``code`` in a fresh interpreter of
  the one running the tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence

import pytest

NOBODY = 65534


def run_with_timeout(
    args: Sequence[str], timeout: float = 60, check: bool = False, **kw
) -> subprocess.CompletedProcess[str]:
    """Run args with text output captured; fail the test if it outlives timeout."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    with subprocess.Popen(list(args), start_new_session=True, **kw) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"{args!r} did not finish in {timeout}s\nstdout:\n{out}\nstderr:\n{err}")
    result = subprocess.CompletedProcess(list(args), proc.returncode, out, err)
    if check and result.returncode != 0:
        pytest.fail(
            f"{args!r} exited {result.returncode}\nstdout:\n{result.stdout}\n"
            f"stderr:\n{result.stderr}"
        )
    return result


def python_child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.fixture
def subprocess_with_timeout() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_with_timeout


@pytest.fixture
def run_as_nobody() -> Callable[..., subprocess.CompletedProcess[str]]:
    """run(args, timeout=60, **kw) as uid/gid 65534 with no supplementary groups."""
    if os.geteuid() != 0:
        pytest.skip("dropping to another user needs root")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")

    def run(args: Sequence[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess[str]:
        kw.setdefault("cwd", "/")
        cmd = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *args]
        return run_with_timeout(cmd, timeout=timeout, **kw)

    return run


def bench_doc(runs: list) -> dict:
    """The smallest bench document around `runs`, for schema tests."""
    floor_keys = (
        "move_batched_ns_per_page",
        "move_single_ns_per_page",
        "copy_ns_per_page",
        "memcpy_ns_per_page",
    )
    return {
        "machine": {"kernel": "", "cpu": "", "thp": "", "probe": {}},
        "params": {
            "workloads": [],
            "backends": [],
            "runs": 1,
            "warmup": 0,
            "base": {"heap_mib": 1, "live": 0.5, "dense": 0.25, "threads": 0, "seed": 1},
        },
        "floor": {k: None for k in floor_keys},
        "runs": runs,
    }

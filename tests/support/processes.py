"""Child processes with a deadline.

- ``run_with_timeout(args, timeout=...)``: a subprocess whose whole process
  group is killed at the deadline, so a test that wedges a thread in a
  userfaultfd fault fails instead of hanging;
- ``python_child(code)``: argv that runs ``code`` in a fresh interpreter of
  the one running the tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence

import pytest


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

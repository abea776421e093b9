"""Fixtures for every suite; the helpers tests import are in ``support/``
(this folder is on sys.path for them: pytest puts a root conftest's folder
there).

- ``subprocess_with_timeout``: ``support.processes.run_with_timeout`` as a
  fixture.
- ``run_as_nobody`` fixture: the same, as uid/gid 65534 with no groups
  (``setpriv``); skips when not root or when setpriv is missing. The test
  interpreter may be unreadable for that user (pyenv under /root, mode 0700):
  run a compiled C program from a world-readable folder instead, as
  kernel/test_probe.py's ``probe_child`` fixture does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

import pytest

from support.processes import run_with_timeout

NOBODY = 65534

# With gc_threads > 1 the suites are there to race GC workers against each
# other: the library's helper threads otherwise wait while every CPU is busy
# (a mutator thread, a second test process), and one worker would do it all.
# Children inherit it; tests/backends/test_gc_helpers.py and one stress shape
# set it to 0 to test that default.
os.environ.setdefault("REMAP_HELPERS_ALWAYS", "1")


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

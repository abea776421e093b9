"""SIGBUS chaining (issue 4, DESIGN.md section 6): libremap's SIGBUS handler
takes faults in its heaps and passes every other SIGBUS to the handler that
was installed before it; with none, the default action kills the process.

Python cannot test this itself (its signal handlers run later, on the main
thread, not for a synchronous SIGBUS), so tests/c/sigbus_chain.c, compiled
against the installed package, plays the runtime: a foreign SIGBUS is a
read of a shared file mapping past the file's end."""

from __future__ import annotations

import signal

import pytest

from support.differential import CHILD_UNSUPPORTED, CONCURRENT_BACKENDS, compile_c
from support.processes import run_with_timeout


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    return compile_c("sigbus_chain", tmp_path_factory.mktemp("sigbus"))


def run(program, mode, backend):
    r = run_with_timeout([program, mode, backend], timeout=60)
    if r.returncode == CHILD_UNSUPPORTED:
        pytest.skip(r.stdout.strip())
    return r


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["chain-siginfo", "chain-plain"])
@pytest.mark.parametrize("backend", CONCURRENT_BACKENDS)
def test_foreign_sigbus_reaches_the_previous_handler(program, mode, backend):
    r = run(program, mode, backend)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    ok, hits, faults = r.stdout.split()
    assert ok == "ok" and int(hits) == 53
    assert int(faults) > 0, "no heap fault happened: the test did not mix both kinds"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("backend", CONCURRENT_BACKENDS)
def test_foreign_sigbus_without_handler_kills(program, backend):
    r = run(program, "nochain", backend)
    assert "armed" in r.stdout, r.stdout + r.stderr
    assert "survived" not in r.stdout
    assert r.returncode == -signal.SIGBUS, f"exit {r.returncode}: {r.stderr}"

"""``python -m libremap soak``: a short soak runs both kinds of job on the
backends asked for, prints the summary, and exits 0; a job that fails makes
it exit 1 with the command that repeats it."""

from __future__ import annotations

import sys

from support.processes import run_with_timeout


def soak(*args: str) -> tuple[int, str]:
    r = run_with_timeout([sys.executable, "-m", "libremap", "soak", *args], timeout=240)
    return r.returncode, r.stdout + r.stderr


def test_a_short_soak_passes_and_summarizes():
    rc, out = soak("--jobs", "4", "--threads", "2", "--backends", "move,stw", "--seed", "3")
    assert rc == 0, out
    assert "toyvm: 2 jobs" in out and "stress: 2 jobs" in out, out
    assert " 0 failed" in out and "FAILED" not in out, out


def test_a_failing_job_fails_the_soak_and_says_how_to_repeat_it():
    # A backend name the library does not know: every job fails in its child.
    rc, out = soak("--jobs", "2", "--threads", "2", "--backends", "nonesuch")
    assert rc == 1, out
    assert "FAILED toyvm nonesuch" in out and "repeat:" in out, out

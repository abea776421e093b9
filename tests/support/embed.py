"""Building against the installed package: the tools a build needs (a test
skips without them) and the folders ``python -m libremap`` names for
CMake and pkg-config."""

from __future__ import annotations

import shutil
import sys

import pytest

from support.processes import run_with_timeout


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def cli_dir(flag: str) -> str:
    r = run_with_timeout([sys.executable, "-m", "libremap", flag], check=True)
    return r.stdout.strip().splitlines()[-1]

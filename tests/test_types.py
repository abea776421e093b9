"""The package type-checks with mypy against its own stubs, _core.pyi
included (issue 19): py.typed promises types, this keeps the promise.
From a checkout the source tree is checked with the project's mypy
settings; from an installed package, the package by name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import run_with_timeout

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_type_checks(tmp_path):
    pytest.importorskip("mypy", reason="mypy comes with the test extra: pip install '.[test]'")
    src = ROOT / "python" / "libremap"
    target = [str(src)] if src.is_dir() else ["-p", "libremap"]
    config = ["--config-file", str(ROOT / "pyproject.toml")] if src.is_dir() else []
    r = run_with_timeout(
        [sys.executable, "-m", "mypy", *config, "--cache-dir", str(tmp_path), *target],
        timeout=240,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout


def test_the_stub_names_what_the_module_exports():
    # A binding added without regenerating _core.pyi (pybind11-stubgen
    # libremap._core, see the stub's header) fails here.
    import libremap._core as core

    stub = (ROOT / "python" / "libremap" / "_core.pyi").read_text()
    public = sorted(n for n in dir(core) if not n.startswith("_"))
    missing = [n for n in public if f"{n}" not in stub]
    assert missing == [], f"regenerate python/libremap/_core.pyi: {missing}"

"""The package type-checks with mypy against its own stubs, _core.pyi and
_testing.pyi included (issue 19): py.typed promises types, this keeps the promise.

Whatever ``import libremap`` gives is checked: the source tree (a checkout,
an editable install) as a folder, an installed wheel as a package by name,
which mypy takes only if the wheel ships ``py.typed``, so a wheel that
dropped it or a module's stub fails here (.ci/pythons runs this file against
each built wheel). The project's mypy settings apply either way."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from support.processes import run_with_timeout

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "pyproject.toml"


def _package() -> Path:
    import libremap

    return Path(libremap.__file__).resolve().parent


def test_the_package_type_checks(tmp_path):
    pytest.importorskip("mypy", reason="mypy comes with the test extra: pip install '.[test]'")
    pkg = _package()
    from_source = pkg == ROOT / "python" / "libremap"
    if not from_source:
        for shipped in ("py.typed", "_core.pyi", "_testing.pyi"):
            assert (pkg / shipped).is_file(), f"the installed package lacks {shipped}: {pkg}"
    target = [str(pkg)] if from_source else ["-p", "libremap"]
    # From a temporary folder: the checkout's libremap/ (the C sources) must
    # not stand in for the installed package.
    r = run_with_timeout(
        [sys.executable, "-m", "mypy", "--config-file", str(CONFIG), "--cache-dir",
         str(tmp_path / "cache"), *target],
        timeout=240,
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout


@pytest.mark.parametrize("module", ["_core", "_testing"])
def test_the_stub_names_what_the_module_exports(module):
    # A binding added without regenerating the module's stub (pybind11-stubgen
    # libremap.<module>, see the stub's header) fails here.
    import importlib

    native = importlib.import_module(f"libremap.{module}")
    stub = (_package() / f"{module}.pyi").read_text()
    public = sorted(n for n in dir(native) if not n.startswith("_"))
    missing = [n for n in public if f"{n}" not in stub]
    assert missing == [], f"regenerate python/libremap/{module}.pyi: {missing}"


def test_the_readme_examples_type_check(tmp_path):
    """The README's Python examples are what a user copies first: they must
    type-check against the package as it is (and its stubs)."""
    pytest.importorskip("mypy", reason="mypy comes with the test extra: pip install '.[test]'")

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert blocks, "no ```python block in the README"
    example = tmp_path / "readme_examples.py"
    example.write_text("\n\n".join(blocks))
    r = run_with_timeout(
        [sys.executable, "-m", "mypy", "--config-file", str(CONFIG), "--cache-dir",
         str(tmp_path / "cache"), str(example)],
        timeout=240,
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr

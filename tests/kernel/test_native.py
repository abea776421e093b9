"""The native C++ tests (tests/native/*.cpp) as pytest cases.

The executable ``libremap_native_tests`` is configured and built once per
session into build/native-tests (CMake option LIBREMAP_NATIVE_TESTS; ninja
makes a second session's build a no-op when nothing changed). Each TEST() it
lists with ``--list`` becomes one pytest case, run in its own process under a
deadline: a test that touches a registered, unpopulated userfaultfd page by
mistake blocks forever instead of failing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# LIBREMAP_NATIVE_BUILD_DIR overrides the build folder (a scratch build).
BUILD_DIR = Path(os.environ.get("LIBREMAP_NATIVE_BUILD_DIR", ROOT / "build" / "native-tests"))
EXE = BUILD_DIR / "libremap_native_tests"
TEST_TIMEOUT_S = 120
BUILD_TIMEOUT_S = 900

_SKIP_RE = re.compile(r"^\[ SKIP \] (\S+): (.*)$", re.MULTILINE)


def _cmake() -> str | None:
    found = shutil.which("cmake")
    if found:
        return found
    try:  # the cmake wheel, as scikit-build-core uses it
        import cmake  # type: ignore[import-not-found]

        return str(Path(cmake.CMAKE_BIN_DIR) / "cmake")
    except ImportError:
        return None


def _run(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    return proc.returncode, proc.stdout


_build_result: tuple[list[str], str] | None = None


def _build() -> tuple[list[str], str]:
    """(test names, "") after a successful build, else ([], why)."""
    global _build_result
    if _build_result is not None:
        return _build_result
    cmake = _cmake()
    if cmake is None:
        _build_result = ([], "skip: cmake is not installed")
        return _build_result
    env = dict(os.environ)
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", "2")
    if not (BUILD_DIR / "CMakeCache.txt").exists():
        cfg = [cmake, "-S", str(ROOT), "-B", str(BUILD_DIR),
               "-DLIBREMAP_PYTHON=OFF", "-DLIBREMAP_NATIVE_TESTS=ON"]
        if shutil.which("ninja"):
            cfg += ["-G", "Ninja"]
        rc, out = _run(cfg, env)
        if rc != 0:
            _build_result = ([], "cmake configure failed:\n" + out[-6000:])
            return _build_result
    rc, out = _run(
        [cmake, "--build", str(BUILD_DIR), "--target", "libremap_native_tests",
         "-j", env["CMAKE_BUILD_PARALLEL_LEVEL"]],
        env,
    )
    if rc != 0:
        _build_result = ([], "build failed:\n" + out[-6000:])
        return _build_result
    listed = subprocess.run([str(EXE), "--list"], stdout=subprocess.PIPE, text=True, timeout=60)
    names = [line.strip() for line in listed.stdout.splitlines() if line.strip()]
    _build_result = (names, "" if names else "the executable lists no tests")
    return _build_result


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "native_test" not in metafunc.fixturenames:
        return
    names, why = _build()
    if names:
        metafunc.parametrize("native_test", names)
    else:
        # One case that reports why there is nothing to run.
        metafunc.parametrize("native_test", [f"<{why.splitlines()[0]}>"])
        metafunc.function.__dict__["_native_build_error"] = why


def _remove_leftover_swap(pid: int) -> None:
    """A native test killed by its watchdog cannot swapoff its swap file."""
    path = f"/var/tmp/libremap-native-test-{pid}.swap"
    if not os.path.exists(path):
        return
    try:
        with open("/proc/swaps") as f:
            active = any(line.split()[0] == path for line in f.readlines()[1:] if line.strip())
        if active:
            subprocess.run(["swapoff", path], timeout=120, check=False)
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def test_native(native_test: str) -> None:
    names, why = _build()
    if not names:
        if why.startswith("skip: "):
            pytest.skip(why[6:])
        pytest.fail(why, pytrace=False)
    env = dict(os.environ, LIBREMAP_TEST_TIMEOUT=str(TEST_TIMEOUT_S - 10))
    proc = subprocess.Popen(
        [str(EXE), native_test],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        out, _ = proc.communicate(timeout=TEST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"{native_test} timed out after {TEST_TIMEOUT_S}s:\n{out}", pytrace=False)
    finally:
        _remove_leftover_swap(proc.pid)
    sys.stdout.write(out)
    if proc.returncode != 0:
        pytest.fail(f"{native_test} failed (exit {proc.returncode}):\n{out}", pytrace=False)
    skipped = _SKIP_RE.search(out)
    if skipped and skipped.group(1) == native_test:
        pytest.skip(skipped.group(2))

"""Embedding from C against the pip-installed package: libremap/examples/embed.c
built with CMake (find_package(libremap CONFIG)) and with pkg-config, run,
and checked against the probe; then the same after moving the package, to
prove both descriptions are relocatable."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import libremap
from libremap._paths import package_file

from support.embed import cli_dir, tool
from support.processes import run_with_timeout

PKG_DIR = package_file("libremap.so.0").parent
EMBED_C = package_file("examples") / "embed.c"


def check_output(stdout: str) -> None:
    info = libremap.probe()
    lines = stdout.splitlines()
    assert lines[0] == f"libremap {libremap.__version__} (abi 1)", stdout
    assert f"kernel {info.kernel}" in lines
    assert f"move {'yes' if info.has_move else 'no'}" in lines
    assert any(line.startswith(f"auto_backend {info.auto_backend}: ") for line in lines), stdout


def build_with_cmake(tmp: Path, cmake_dir: str, embed_c: Path) -> Path:
    cmake = tool("cmake")
    src, build = tmp / "src", tmp / "build"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\n"
        "project(embed C)\n"
        "find_package(libremap 0.1 CONFIG REQUIRED)\n"
        f'add_executable(embed "{embed_c}")\n'
        "target_link_libraries(embed PRIVATE libremap::libremap)\n"
    )
    gen = ["-G", "Ninja"] if shutil.which("ninja") else ["-G", "Unix Makefiles"]
    run_with_timeout(
        [cmake, *gen, "-S", str(src), "-B", str(build), f"-DCMAKE_PREFIX_PATH={cmake_dir}"],
        timeout=180,
        check=True,
    )
    run_with_timeout([cmake, "--build", str(build)], timeout=180, check=True)
    return build / "embed"


def build_with_pkg_config(tmp: Path, pc_dir: str, embed_c: Path) -> Path:
    pkg_config = tool("pkg-config")
    cc = shutil.which("cc") or tool("gcc")
    env = dict(os.environ, PKG_CONFIG_PATH=pc_dir)
    flags = run_with_timeout(
        [pkg_config, "--cflags", "--libs", "libremap"], env=env, check=True
    ).stdout.split()
    exe = tmp / "embed"
    run_with_timeout([cc, str(embed_c), "-o", str(exe), *flags], timeout=120, check=True)
    return exe


def run_embed(exe: Path, expect_lib: Path) -> None:
    r = run_with_timeout([str(exe)], check=True)
    check_output(r.stdout)
    ldd = run_with_timeout([tool("ldd"), str(exe)], check=True).stdout
    found = [line.split()[2] for line in ldd.splitlines() if "libremap.so.0 =>" in line]
    assert len(found) == 1 and os.path.samefile(found[0], expect_lib), ldd


def test_embed_with_cmake(tmp_path):
    exe = build_with_cmake(tmp_path, cli_dir("--cmakedir"), EMBED_C)
    run_embed(exe, PKG_DIR / "libremap.so.0")


@pytest.mark.parametrize("backend", ["move", "copy", "minor", "sigsegv", "stw"])
def test_cycle_example_runs_on_every_backend(tmp_path, backend):
    # libremap/examples/cycle.c: the documented cycle order (flip, then
    # forward the roots) and a Guile-like tagged encoding, from C.
    cycle_c = package_file("examples") / "cycle.c"
    exe = build_with_pkg_config(tmp_path, cli_dir("--pkgconfigdir"), cycle_c)
    r = run_with_timeout([str(exe), backend])
    if r.returncode != 0 and "REMAP_EUNSUPPORTED" in r.stderr:
        pytest.skip(f"{backend}: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{backend}: 1000 cells intact"), r.stdout


def test_embed_with_pkg_config(tmp_path):
    exe = build_with_pkg_config(tmp_path, cli_dir("--pkgconfigdir"), EMBED_C)
    run_embed(exe, PKG_DIR / "libremap.so.0")


@pytest.fixture
def moved_package(tmp_path) -> Path:
    """A copy of the package's native files at a path the build never saw."""
    dst = tmp_path / "elsewhere" / "libremap"
    dst.mkdir(parents=True)
    for name in ("libremap.so.0", "libremap.so"):
        shutil.copy(PKG_DIR / name, dst / name)
    for name in ("include", "cmake", "pkgconfig", "examples"):
        shutil.copytree(PKG_DIR / name, dst / name)
    return dst


def test_cmake_package_is_relocatable(tmp_path, moved_package):
    exe = build_with_cmake(
        tmp_path, str(moved_package / "cmake"), moved_package / "examples" / "embed.c"
    )
    run_embed(exe, moved_package / "libremap.so.0")


def test_pkg_config_is_relocatable(tmp_path, moved_package):
    exe = build_with_pkg_config(
        tmp_path, str(moved_package / "pkgconfig"), moved_package / "examples" / "embed.c"
    )
    run_embed(exe, moved_package / "libremap.so.0")

"""Embedding smoke test: a tiny C++ runtime program (the toy VM's sources,
libremap/toyvm/*.cpp, plus libremap/examples/toyvm_main.cpp) built with CMake
against the INSTALLED package (find_package(libremap CONFIG) through
``python -m libremap --cmakedir``), then run: it must collect and verify its
workload, first with the stop-the-world backend and then with auto (the
backend this kernel offers; exit status 3 means REMAP_EUNSUPPORTED)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from libremap._paths import package_file

from support.processes import run_with_timeout

REPO = Path(__file__).resolve().parents[2]
TOYVM = REPO / "libremap" / "toyvm"
MAIN = REPO / "libremap" / "examples" / "toyvm_main.cpp"
PKG_DIR = package_file("libremap.so.0").parent


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture(scope="module")
def toyvm_exe(tmp_path_factory) -> Path:
    if not TOYVM.is_dir() or not MAIN.is_file():
        pytest.skip("the toy VM sources are not in this checkout")
    cmake = tool("cmake")
    cmake_dir = (
        run_with_timeout([sys.executable, "-m", "libremap", "--cmakedir"], check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    tmp = tmp_path_factory.mktemp("toyvm_embed")
    src, build = tmp / "src", tmp / "build"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\n"
        "project(toyvm_embed CXX)\n"
        "set(CMAKE_CXX_STANDARD 20)\n"
        "set(CMAKE_CXX_STANDARD_REQUIRED ON)\n"
        "find_package(libremap 0.1 CONFIG REQUIRED)\n"
        "find_package(Threads REQUIRED)\n"
        f'file(GLOB TOYVM_SOURCES "{TOYVM}/*.cpp")\n'
        f'add_executable(toyvm_main "{MAIN}" ${{TOYVM_SOURCES}})\n'
        f'target_include_directories(toyvm_main PRIVATE "{TOYVM}")\n'
        "target_compile_options(toyvm_main PRIVATE -O1)\n"
        "target_link_libraries(toyvm_main PRIVATE libremap::libremap Threads::Threads)\n"
    )
    gen = ["-G", "Ninja"] if shutil.which("ninja") else ["-G", "Unix Makefiles"]
    run_with_timeout(
        [cmake, *gen, "-S", str(src), "-B", str(build), f"-DCMAKE_PREFIX_PATH={cmake_dir}"],
        timeout=180,
        check=True,
    )
    run_with_timeout([cmake, "--build", str(build), "--parallel", "2"], timeout=600, check=True)
    return build / "toyvm_main"


def test_links_the_installed_core(toyvm_exe):
    ldd = run_with_timeout([tool("ldd"), str(toyvm_exe)], check=True).stdout
    found = [line.split()[2] for line in ldd.splitlines() if "libremap.so.0 =>" in line]
    assert len(found) == 1, ldd
    assert Path(found[0]).resolve() == (PKG_DIR / "libremap.so.0").resolve(), ldd


@pytest.mark.parametrize("workload", ["gcbench", "random_graph"])
def test_runs_stw(toyvm_exe, workload):
    r = run_with_timeout(
        [str(toyvm_exe), workload, "--backend", "stw", "--heap-mib", "16", "--depth", "10"],
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "backend stw" in r.stdout
    assert "\nverified: " in r.stdout, r.stdout
    assert "gc   1:" in r.stdout


def test_runs_auto_backend(toyvm_exe):
    r = run_with_timeout(
        [str(toyvm_exe), "random_graph", "--heap-mib", "16", "--ops", "30000"], timeout=60
    )
    if r.returncode == 3:
        pytest.skip("auto backend unsupported here: " + r.stdout.strip().splitlines()[-1])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "\nverified: " in r.stdout, r.stdout

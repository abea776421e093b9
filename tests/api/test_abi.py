"""The shared library's ABI: what it exports, its SONAME, one copy of the core
per process and per wheel, cffi declarations that match the header byte for
byte and layout for layout, and bad arguments that fail cleanly."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

import libremap
from libremap import cabi
from libremap._paths import package_file
from libremap.cabi import ffi, lib

from support.processes import python_child, run_with_timeout

REPO = Path(__file__).resolve().parents[2]
SOURCE_HEADER = REPO / "libremap" / "include" / "libremap.h"
LIB = package_file("libremap.so.0")
PKG_DIR = LIB.parent
CDEF = package_file("_cdef.h").read_text()

EINVAL = lib.REMAP_EINVAL


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def header_functions() -> set[str]:
    # A declaration is "<type> remap_x(": function-pointer typedefs read
    # "(*remap_x)(" and do not match.
    return set(re.findall(r"\b(remap_\w+)\s*\(", CDEF))


def exported_symbols() -> dict[str, str]:
    out = run_with_timeout([tool("nm"), "-D", "--defined-only", str(LIB)], check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            syms[parts[2].split("@")[0]] = parts[1]
    return syms


def test_exports_remap_symbols_only():
    syms = exported_symbols()
    # The version script's node (LIBREMAP_0) shows as an absolute symbol.
    leaked = sorted(n for n, t in syms.items() if not n.startswith("remap_") and t != "A")
    assert not leaked, f"symbols other than remap_* are exported: {leaked[:20]}"
    undeclared = sorted(n for n in syms if n.startswith("remap_") and n not in header_functions())
    assert not undeclared, f"exported but not in libremap.h: {undeclared}"


def test_exports_every_function_of_the_header():
    missing = sorted(header_functions() - set(exported_symbols()))
    assert not missing, f"declared in libremap.h but not exported: {missing}"


def test_soname_and_core_linkage():
    dyn = run_with_timeout([tool("readelf"), "-d", str(LIB)], check=True).stdout
    assert re.search(r"\(SONAME\).*\[libremap\.so\.0\]", dyn), dyn
    core = next(PKG_DIR.glob("_core*.so"))
    dyn = run_with_timeout([tool("readelf"), "-d", str(core)], check=True).stdout
    assert re.search(r"\(NEEDED\).*\[libremap\.so\.0\]", dyn), dyn
    assert re.search(r"\((RUNPATH|RPATH)\).*\$ORIGIN", dyn), dyn


def is_elf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def test_package_holds_one_real_copy_of_the_core():
    files = sorted(p for p in PKG_DIR.iterdir() if p.name.startswith("libremap.so"))
    elves = [p for p in files if is_elf(p)]
    assert [p.name for p in elves] == ["libremap.so.0"], files
    for p in files:
        assert not p.is_symlink(), f"{p} is a symlink: wheels would store a second copy"
        if p.name == "libremap.so":
            text = p.read_text()
            assert p.stat().st_size < 512 and "INPUT(libremap.so.0)" in text


def test_one_core_per_process():
    code = (
        "import libremap._core, libremap.cabi\n"
        "libremap.cabi.lib.remap_version()\n"
        "print('\\n'.join(sorted({l.split()[-1] for l in open('/proc/self/maps')"
        " if 'libremap.so' in l})))\n"
    )
    r = run_with_timeout(python_child(code), check=True, cwd="/")
    paths = r.stdout.split()
    assert len(paths) == 1, paths
    assert os.path.samefile(paths[0], cabi.LIBRARY_PATH)


def preprocess(header: Path) -> str:
    cc = shutil.which("cc") or tool("gcc")
    return run_with_timeout(
        [cc, "-E", "-P", "-DREMAP_CDEF", "-x", "c", str(header)], check=True
    ).stdout


def test_cdef_is_the_preprocessed_header():
    installed = package_file("include") / "libremap.h"
    assert preprocess(installed) == CDEF
    if SOURCE_HEADER.exists():
        assert installed.read_text() == SOURCE_HEADER.read_text(), "reinstall: header changed"


def struct_names() -> list[str]:
    return sorted(set(re.findall(r"typedef struct (remap_\w+) \{", CDEF)))


def test_cffi_layouts_match_the_c_compiler(tmp_path):
    """sizeof/offsetof of every struct, and every enum constant, as cffi
    computes them from _cdef.h and as the C compiler does from libremap.h."""
    lines = [
        "#include <stddef.h>",
        "#include <stdio.h>",
        "#include <libremap.h>",
        "int main(void) {",
    ]
    expected = []
    for s in struct_names():
        lines.append(f'  printf("{s} %zu\\n", sizeof({s}));')
        expected.append(f"{s} {ffi.sizeof(s)}")
        for name, field in ffi.typeof(s).fields:
            lines.append(f'  printf("{s}.{name} %zu\\n", offsetof({s}, {name}));')
            expected.append(f"{s}.{name} {field.offset}")
    consts = sorted(set(re.findall(r"\b(REMAP_[A-Z0-9_]+)\s*=", CDEF)))
    assert len(consts) > 40
    for c in consts:
        lines.append(f'  printf("{c} %lld\\n", (long long){c});')
        expected.append(f"{c} {getattr(lib, c)}")
    lines += ["  return 0;", "}"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "layout"
    cc = shutil.which("cc") or tool("gcc")
    run_with_timeout([cc, "-I", str(package_file("include")), str(src), "-o", str(exe)], check=True)
    got = run_with_timeout([str(exe)], check=True).stdout.split("\n")
    assert [g for g in got if g] == expected
    assert "remap_probe_info" in struct_names() and "remap_cycle_stats" in struct_names()


def test_versions_agree():
    v = lib.remap_version()
    assert v == (lib.REMAP_VERSION_MAJOR << 16) | (lib.REMAP_VERSION_MINOR << 8) | (
        lib.REMAP_VERSION_PATCH
    )
    assert ffi.string(lib.remap_version_string()).decode() == libremap.__version__
    assert lib.remap_abi_version() == lib.REMAP_ABI_VERSION
    from importlib.metadata import version

    assert version("libremap") == libremap.__version__


# ---- bad arguments: a status and a message, never a crash -----------------


def check_fails(status: int, expected: int, *words: str) -> str:
    msg = cabi.last_error()
    if status == lib.REMAP_EUNSUPPORTED and "not implemented yet" in msg:
        pytest.skip(f"entry point still pending: {msg}")
    assert status == expected, (cabi.status_name(status), msg)
    assert msg, "a failed call must leave a message"
    for w in words:
        assert w in msg, msg
    return msg


def test_probe_rejects_null_and_wrong_sizes():
    check_fails(lib.remap_probe(ffi.NULL), EINVAL, "remap_probe", "NULL")
    info = ffi.new("remap_probe_info*")
    size = ffi.sizeof("remap_probe_info")
    for bad in (0, 8, size - 1, size + 8, 2**63):
        info.struct_size = bad
        check_fails(lib.remap_probe(info), EINVAL, "remap_probe_info", "struct_size")
    info.struct_size = size
    assert lib.remap_probe(info) == 0
    assert cabi.last_error() == ""  # a success clears the thread's message


def test_name_functions_never_return_null():
    for s in [*range(-20, 3), -1000, 2**31 - 1]:
        assert ffi.string(lib.remap_status_name(s))
    assert ffi.string(lib.remap_status_name(EINVAL)) == b"REMAP_EINVAL"
    assert ffi.string(lib.remap_backend_name(99)) == b"unknown"
    assert ffi.string(lib.remap_fault_mode_name(-1)) == b"unknown"
    assert ffi.string(lib.remap_last_error()) is not None


def test_uffd_entry_points_reject_bad_arguments():
    check_fails(lib.remap_uffd_open(0, 0, ffi.NULL), EINVAL)
    lib.remap_uffd_close(ffi.NULL)  # NULL is fine, by contract
    page = ffi.new("char[8192]")
    done = ffi.new("size_t*")
    check_fails(lib.remap_uffd_register(ffi.NULL, page, 4096, 1, ffi.NULL), EINVAL)
    check_fails(lib.remap_uffd_unregister(ffi.NULL, page, 4096), EINVAL)
    check_fails(lib.remap_uffd_move(ffi.NULL, page, page, 4096, 0, done), EINVAL)
    check_fails(lib.remap_uffd_copy(ffi.NULL, page, page, 4096, 0, done), EINVAL)
    check_fails(lib.remap_uffd_zeropage(ffi.NULL, page, 4096, done), EINVAL)
    check_fails(lib.remap_uffd_continue(ffi.NULL, page, 4096, done), EINVAL)
    check_fails(lib.remap_uffd_wake(ffi.NULL, page, 4096), EINVAL)


def test_uffd_open_rejects_unknown_flags():
    out = ffi.new("remap_uffd**")
    st = lib.remap_uffd_open(0, 1 << 20, out)
    if st == 0:
        lib.remap_uffd_close(out[0])
    check_fails(st, EINVAL)


def test_heap_create_rejects_bad_configs():
    out = ffi.new("remap_heap**")
    check_fails(lib.remap_heap_create(ffi.NULL, out), EINVAL)
    cfg = ffi.new("remap_heap_config*")
    lib.remap_heap_config_init(cfg)
    assert cfg.struct_size == ffi.sizeof("remap_heap_config")
    cfg.struct_size = 3
    check_fails(lib.remap_heap_create(cfg, out), EINVAL, "remap_heap_config")
    assert out[0] == ffi.NULL
    lib.remap_heap_config_init(cfg)
    check_fails(lib.remap_heap_create(cfg, ffi.NULL), EINVAL)
    lib.remap_heap_destroy(ffi.NULL)  # NULL is fine, by contract


def test_bad_arguments_do_not_crash_a_fresh_process():
    """The same calls in a child: a crash shows as a signal exit code here
    rather than taking the test session down."""
    code = (
        "from libremap.cabi import ffi, lib\n"
        "lib.remap_probe(ffi.NULL)\n"
        "lib.remap_uffd_close(ffi.NULL)\n"
        "lib.remap_heap_destroy(ffi.NULL)\n"
        "lib.remap_heap_create(ffi.NULL, ffi.NULL)\n"
        "lib.remap_uffd_open(0, 0, ffi.NULL)\n"
        "lib.remap_uffd_move(ffi.NULL, ffi.NULL, ffi.NULL, 4096, 0, ffi.NULL)\n"
        "print('alive')\n"
    )
    r = run_with_timeout(python_child(code), cwd="/")
    assert r.returncode == 0 and r.stdout.strip() == "alive", (r.returncode, r.stderr)


def test_cabi_finds_the_library_through_package_resources():
    assert Path(cabi.LIBRARY_PATH).name == "libremap.so.0"
    assert Path(cabi.LIBRARY_PATH).parent == PKG_DIR
    assert "__file__" not in Path(cabi.__file__).read_text()

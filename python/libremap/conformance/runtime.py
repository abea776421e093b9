"""Loading a runtime's conformance table (libremap_conformance.h) with cffi.

A runtime is named by the user as ``NAME`` (a runtime built into the
package's ``_testing`` module, exported as ``remap_conformance_<name>_v1``;
it is opened as a library, never imported) or as a
``PATH`` to a shared library exporting ``remap_conformance_runtime_v1``.
Both are loaded the same way, ``ffi.dlopen`` plus one symbol: the built-in
runtimes take no shortcut a third-party runtime could not.

The runtime library links ``libremap.so.0`` by its SONAME; loading
``libremap.cabi`` first puts the package's copy in the process, so the
runtime, cffi and the package's extension modules all share one core.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cffi import FFI

from .._paths import package_file
from ..cabi import LIBRARY_PATH

# Built-in runtimes: name -> symbol in _testing (bindings/testing/).
BUILTIN = {
    "synthetic": "remap_conformance_synthetic_v1",
    "toyvm": "remap_conformance_toyvm_v1",
}
BUILTIN_MODULE = "_testing"
ENTRY_SYMBOL = "remap_conformance_runtime_v1"

ffi = FFI()
ffi.cdef(package_file("_cdef.h").read_text())
ffi.cdef(package_file("_cdef_conformance.h").read_text())
ffi.cdef(
    f"const remap_conformance_runtime* {ENTRY_SYMBOL}(void);\n"
    + "".join(f"const remap_conformance_runtime* {sym}(void);\n" for sym in BUILTIN.values())
)
lib = ffi.dlopen(LIBRARY_PATH)

# Fields of ABI version 1, in order: the kit reads only those struct_size covers.
V1_LAST_FIELD = "last_error"

CAPABILITIES = {
    "large_objects": lib.REMAP_CONFORMANCE_LARGE_OBJECTS,
    "tagged_slots": lib.REMAP_CONFORMANCE_TAGGED_SLOTS,
    "concurrent_mutators": lib.REMAP_CONFORMANCE_CONCURRENT_MUTATORS,
    "needs_syscalls": lib.REMAP_CONFORMANCE_NEEDS_SYSCALLS,
    "concurrent_marking": lib.REMAP_CONFORMANCE_CONCURRENT_MARKING,
}


class RuntimeLoadError(Exception):
    """The runtime could not be loaded, or its table is not one the kit reads."""


@dataclass(frozen=True)
class RuntimeSpec:
    """What the user named: enough to load the runtime again in a child."""

    name: str  # the table's own name once loaded, else what the user gave
    library: str  # path given to dlopen
    symbol: str


def resolve(name_or_path: str) -> RuntimeSpec:
    """The library and symbol for a runtime name or path (not loaded yet)."""
    if name_or_path in BUILTIN:
        fixtures = package_file(BUILTIN_MODULE + _extension_suffix())
        return RuntimeSpec(name_or_path, str(fixtures), BUILTIN[name_or_path])
    path = Path(name_or_path)
    if os.sep not in name_or_path and not path.exists():
        raise RuntimeLoadError(
            f"unknown runtime {name_or_path!r}: built-in runtimes are {sorted(BUILTIN)}; "
            "anything else must be the path of a shared library exporting "
            f"{ENTRY_SYMBOL}"
        )
    if not path.exists():
        raise RuntimeLoadError(f"runtime library {name_or_path} does not exist")
    return RuntimeSpec(path.name, str(path.resolve()), ENTRY_SYMBOL)


def _extension_suffix() -> str:
    import importlib.machinery

    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        try:
            package_file(BUILTIN_MODULE + suffix)
        except FileNotFoundError:
            continue
        return suffix
    raise RuntimeLoadError(f"libremap.{BUILTIN_MODULE} is not installed with the package")


def load(spec: RuntimeSpec):
    """The runtime's table (a cffi ``remap_conformance_runtime*``), checked."""
    try:
        runtime_lib = ffi.dlopen(spec.library)
    except OSError as e:
        raise RuntimeLoadError(f"cannot load {spec.library}: {e}") from None
    try:
        entry = getattr(runtime_lib, spec.symbol)
    except AttributeError:
        raise RuntimeLoadError(f"{spec.library} does not export {spec.symbol}") from None
    table = entry()
    if table == ffi.NULL:
        raise RuntimeLoadError(f"{spec.symbol} of {spec.library} returned NULL")
    _check_table(table, spec)
    # Keep the library loaded as long as the table is used.
    _loaded.append(runtime_lib)
    return table


_loaded: list = []


def _check_table(table, spec: RuntimeSpec) -> None:
    need = ffi.offsetof("remap_conformance_runtime", V1_LAST_FIELD) + ffi.sizeof("void*")
    where = f"{spec.symbol} of {spec.library}"
    if table.struct_size < need:
        raise RuntimeLoadError(
            f"{where}: struct_size {table.struct_size} is smaller than ABI version 1's "
            f"{need} bytes: fill it with sizeof(remap_conformance_runtime)"
        )
    if table.abi_version != lib.REMAP_CONFORMANCE_ABI_VERSION:
        raise RuntimeLoadError(
            f"{where}: abi_version {table.abi_version}, this kit reads "
            f"{lib.REMAP_CONFORMANCE_ABI_VERSION}"
        )
    required = (
        "create",
        "destroy",
        "heap",
        "mark",
        "forward_roots",
        "roots",
        "checksum",
        "verify",
        "mutate",
        "last_error",
    )
    missing = [f for f in required if getattr(table, f) == ffi.NULL]
    if missing:
        raise RuntimeLoadError(f"{where}: callbacks missing (NULL): {', '.join(missing)}")


def has_field(table, name: str) -> bool:
    """True if the runtime's table is recent enough to hold field ``name``
    (struct_size covers it) and sets it (not NULL)."""
    end = ffi.offsetof("remap_conformance_runtime", name) + ffi.sizeof("void*")
    return table.struct_size >= end and getattr(table, name) != ffi.NULL


def capability_names(bits: int) -> list[str]:
    return [name for name, bit in CAPABILITIES.items() if bits & bit]


def describe(spec: RuntimeSpec) -> dict:
    """Name, library and capabilities of a runtime, loaded in this process."""
    table = load(spec)
    return {
        "name": ffi.string(table.name).decode() if table.name != ffi.NULL else spec.name,
        "library": spec.library,
        "symbol": spec.symbol,
        "capabilities": capability_names(table.capabilities),
        "inject_fault": has_field(table, "inject_fault"),
        "syscalls": has_field(table, "syscalls"),
        "concurrent_mark": has_field(table, "concurrent_mark"),
    }

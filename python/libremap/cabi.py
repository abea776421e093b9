"""The C ABI through cffi (ABI mode): ``from libremap.cabi import ffi, lib``.

``lib`` is the packaged ``libremap.so.0``, the same file that ``libremap._core``
links, so both see one copy of the core.  The declarations are ``_cdef.h``,
generated at build time from ``libremap.h`` by ``cc -E -P -DREMAP_CDEF``.
Symbols resolve lazily: an entry point the library does not export fails only
when it is called (``AttributeError``).
"""

from __future__ import annotations

from cffi import FFI

from ._paths import package_file

ffi = FFI()
ffi.cdef(package_file("_cdef.h").read_text())
LIBRARY_PATH = str(package_file("libremap.so.0"))
lib = ffi.dlopen(LIBRARY_PATH)


def last_error() -> str:
    """The calling thread's message for its last failed call."""
    return ffi.string(lib.remap_last_error()).decode()


def status_name(status: int) -> str:
    return ffi.string(lib.remap_status_name(status)).decode()


def has_symbol(name: str) -> bool:
    """True if the loaded library exports the declared entry point ``name``."""
    try:
        getattr(lib, name)
    except AttributeError:
        return False
    return True


__all__ = ["LIBRARY_PATH", "ffi", "has_symbol", "last_error", "lib", "status_name"]

"""Names and capabilities of the C ABI's backends and fault modes, read from
the library (``remap_backend_count``, ``remap_backend_name``,
``remap_backend_caps``: the registry in libremap/src/backends/registry.cpp),
so that no Python module keeps a list of its own."""

from __future__ import annotations

from .cabi import ffi, lib

CAP_CONCURRENT: int = lib.REMAP_BACKEND_CAP_CONCURRENT
CAP_UFFD: int = lib.REMAP_BACKEND_CAP_UFFD
CAP_CYCLE_BEGIN: int = lib.REMAP_BACKEND_CAP_CYCLE_BEGIN
CAP_SHARED_HEAP: int = lib.REMAP_BACKEND_CAP_SHARED_HEAP


def _text(p) -> str:
    return ffi.string(p).decode()


def _fault_modes() -> dict[str, int]:
    # The modes are numbered from 0 with no gap; the first number without a
    # name ends them.
    modes: dict[str, int] = {}
    while (name := _text(lib.remap_fault_mode_name(len(modes)))) != "unknown":
        modes[name] = len(modes)
    return modes


BACKENDS: dict[str, int] = {
    _text(lib.remap_backend_name(b)): b for b in range(lib.remap_backend_count())
}
"""Every backend number by name, "auto" included."""
BACKEND_NAMES: dict[int, str] = {b: name for name, b in BACKENDS.items()}
ALL_BACKENDS: tuple[str, ...] = tuple(n for n, b in BACKENDS.items() if b != lib.REMAP_BACKEND_AUTO)
"""The backends a heap can have ("auto" resolves to one of them)."""
FAULT_MODES: dict[str, int] = _fault_modes()
FAULT_MODE_NAMES: dict[int, str] = {m: name for name, m in FAULT_MODES.items()}


def backend_caps(backend: str | int) -> int:
    """The ``REMAP_BACKEND_CAP_*`` bits of a backend; 0 for "auto" and, as
    ``remap_backend_caps`` answers for an unknown number, for an unknown name
    (whoever uses it then fails as it would have)."""
    return lib.remap_backend_caps(
        BACKENDS.get(backend, -1) if isinstance(backend, str) else backend
    )


def backend_uffd_features(backend: str | int) -> int:
    """The UFFD_FEATURE bits a backend needs besides its fault mode's (0 if
    none or unknown)."""
    b = BACKENDS.get(backend, -1) if isinstance(backend, str) else backend
    return lib.remap_backend_uffd_features(b)


def concurrent_backends() -> tuple[str, ...]:
    """The backends that compact while mutators run, in number order."""
    return tuple(b for b in ALL_BACKENDS if backend_caps(b) & CAP_CONCURRENT)


def enum_value(value: str | int, table: dict[str, int], what: str) -> int:
    """``value`` as the enum's integer: an int passes through, a name is looked up."""
    if isinstance(value, int):
        return value
    try:
        return table[value]
    except KeyError:
        raise ValueError(f"unknown {what} {value!r}; expected one of {sorted(table)}") from None

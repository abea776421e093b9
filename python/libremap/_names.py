"""Names of the C ABI's backend and fault-mode enums, shared by the Python
modules that take them as strings."""

from __future__ import annotations

BACKENDS: dict[str, int] = {"auto": 0, "move": 1, "copy": 2, "minor": 3, "sigsegv": 4, "stw": 5}
FAULT_MODES: dict[str, int] = {"auto": 0, "sigbus": 1, "thread": 2}


def enum_value(value: str | int, table: dict[str, int], what: str) -> int:
    """``value`` as the enum's integer: an int passes through, a name is looked up."""
    if isinstance(value, int):
        return value
    try:
        return table[value]
    except KeyError:
        raise ValueError(f"unknown {what} {value!r}; expected one of {sorted(table)}") from None

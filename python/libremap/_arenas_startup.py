"""Installs the CPython arena adapter at interpreter start when asked to.

Imported by ``libremap_arenas.pth`` (site-packages root) only when
``LIBREMAP_ARENAS`` is set and not ``0``. Settings:

- ``LIBREMAP_ARENAS_CAP_MIB``: freed arenas kept populated (default 64).
- ``LIBREMAP_ARENAS_MAX``: arena slots reserved (default 16384).

It must never stop the interpreter from starting: any failure becomes one
line on stderr and the default allocator stays.
"""

from __future__ import annotations

import os
import sys


def _start() -> None:
    flag = os.environ.get("LIBREMAP_ARENAS", "").strip().lower()
    if flag in ("", "0", "no", "off", "false"):
        return
    try:
        from . import cpython

        cap = float(os.environ.get("LIBREMAP_ARENAS_CAP_MIB", cpython.DEFAULT_CAP_MIB))
        max_arenas = int(os.environ.get("LIBREMAP_ARENAS_MAX", cpython.DEFAULT_MAX_ARENAS))
        cpython.install(cap_mib=cap, max_arenas=max_arenas)
    except Exception as e:  # noqa: BLE001 - startup must go on
        sys.stderr.write(f"libremap: LIBREMAP_ARENAS is set but the arena adapter was not installed: {e}\n")


_start()

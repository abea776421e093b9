"""Installs the CPython arena adapter at interpreter start when asked to.

Imported by ``libremap_arenas.pth`` (site-packages root) only when
``LIBREMAP_ARENAS`` is set and not ``0``. Settings:

- ``LIBREMAP_ARENAS_CAP_MIB``: freed arenas kept populated (default 64).
- ``LIBREMAP_ARENAS_MAX``: arena slots reserved (default 16384).
- ``LIBREMAP_ARENAS_REPORT``: a folder; at exit each process writes its
  ``stats()`` there as ``arenas-<pid>.json`` (proof that the adapter was
  active in processes a test runner spawned).

It must never stop the interpreter from starting: any failure becomes one
line on stderr and the default allocator stays.
"""

from __future__ import annotations

import os
import sys


def def _report(folder: str) -> None:
    try:
        import json

        from . import cpython

        path = os.path.join(folder, f"arenas-{os.getpid()}.json")
        with open(path, "w") as f:
            json.dump({"argv": sys.argv, **cpython.stats()}, f)
    except Exception as e:  # noqa: BLE001 - exit must go on
        sys.stderr.write(f"libremap: could not write the arena report: {e}\n")


_start() -> None:
    flag = os.environ.get("LIBREMAP_ARENAS", "").strip().lower()
    if flag in ("", "0", "no", "off", "false"):
        return
    try:
        from . import cpython

        cap = float(os.environ.get("LIBREMAP_ARENAS_CAP_MIB", cpython.DEFAULT_CAP_MIB))
        max_arenas = int(os.environ.get("LIBREMAP_ARENAS_MAX", cpython.DEFAULT_MAX_ARENAS))
        cpython.install(cap_mib=cap, max_arenas=max_arenas)
        report = os.environ.get("LIBREMAP_ARENAS_REPORT")
        if report:
            import atexit

            atexit.register(_report, report)
    except Exception as e:  # noqa: BLE001 - startup must go on
        sys.stderr.write(f"libremap: LIBREMAP_ARENAS is set but the arena adapter was not installed: {e}\n")


def _report(folder: str) -> None:
    try:
        import json

        from . import cpython

        path = os.path.join(folder, f"arenas-{os.getpid()}.json")
        with open(path, "w") as f:
            json.dump({"argv": sys.argv, **cpython.stats()}, f)
    except Exception as e:  # noqa: BLE001 - exit must go on
        sys.stderr.write(f"libremap: could not write the arena report: {e}\n")


_start()

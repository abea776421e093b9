"""Installs the CPython arena adapter at interpreter start when asked to.

Imported at every interpreter start by ``libremap_arenas.pth``; both sit at
the site-packages root. It is a top-level module, not part of the
``libremap`` package, so that it can decide before anything of libremap is
imported: unless ``LIBREMAP_ARENAS`` is set (and not ``0``) it only reads
the environment. Settings:

- ``LIBREMAP_ARENAS_CAP_MIB``: freed arenas kept populated (default 64).
- ``LIBREMAP_ARENAS_MAX``: arena slots reserved (default 16384).
- ``LIBREMAP_ARENAS_REPORT``: a folder; at exit each process writes its
  ``stats()`` there as ``arenas-<pid>.json`` (proof that the adapter was
  active in processes a test runner spawned).

It must never stop the interpreter from starting: any failure becomes one
line on stderr and the default allocator stays. Sub-interpreters also run
site.py, but the arena allocator is process-wide (installed once by the
main interpreter) and pybind11's ``_core`` cannot be imported in a
sub-interpreter (its init waits for the main GIL state: a deadlock), so
they skip the install.

PYTEST_DONT_REWRITE: the package's pytest11 entry point (the conformance
kit) makes pytest want to rewrite every module of the distribution, and
this one is always imported before pytest starts: the marker keeps pytest
from warning about that in every run.
"""

from __future__ import annotations

import os
import sys


def _report(folder: str) -> None:
    try:
        import json

        from libremap import cpython

        path = os.path.join(folder, f"arenas-{os.getpid()}.json")
        with open(path, "w") as f:
            json.dump({"argv": sys.argv, **cpython.stats()}, f)
    except Exception as e:  # noqa: BLE001 - exit must go on
        sys.stderr.write(f"libremap: could not write the arena report: {e}\n")


def _in_subinterpreter() -> bool:
    for name in ("_interpreters", "_xxsubinterpreters"):  # 3.13+, 3.10-3.12
        try:
            mod = __import__(name)
            cur, main = mod.get_current(), mod.get_main()
        except Exception:  # noqa: BLE001, S112 - absent or changed: try the next
            continue
        # 3.13 returns (id, whence) pairs.
        cur = cur[0] if isinstance(cur, tuple) else cur
        main = main[0] if isinstance(main, tuple) else main
        return int(cur) != int(main)
    return False


def _start() -> None:
    flag = os.environ.get("LIBREMAP_ARENAS", "").strip().lower()
    if flag in ("", "0", "no", "off", "false") or _in_subinterpreter():
        return
    try:
        from libremap import cpython

        cap = float(os.environ.get("LIBREMAP_ARENAS_CAP_MIB", cpython.DEFAULT_CAP_MIB))
        max_arenas = int(os.environ.get("LIBREMAP_ARENAS_MAX", cpython.DEFAULT_MAX_ARENAS))
        cpython.install(cap_mib=cap, max_arenas=max_arenas)
        report = os.environ.get("LIBREMAP_ARENAS_REPORT")
        if report:
            import atexit

            atexit.register(_report, report)
    except Exception as e:  # noqa: BLE001 - startup must go on
        sys.stderr.write(
            f"libremap: LIBREMAP_ARENAS is set but the arena adapter was not installed: {e}\n"
        )


_start()

"""Where the installed package's non-Python files are.

The core (``libremap.so.0``), ``_cdef.h``, ``include/``, ``cmake/`` and
``pkgconfig/`` are installed by CMake into the package.  In a regular install
they sit next to the modules; in an editable install the modules come from the
source tree while CMake's files live in site-packages, and the package's
``__path__`` lists both.  Lookups go through ``importlib.resources`` first and
then through every entry of the package search path.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def package_file(name: str) -> Path:
    """Absolute path of an installed file or folder of the package.

    Raises FileNotFoundError naming every place that was searched.
    """
    searched: list[str] = []
    root = importlib.resources.files("libremap")
    candidate = root.joinpath(name)
    if isinstance(candidate, Path) and candidate.exists():
        return candidate.resolve()
    searched.append(str(candidate))
    import libremap

    for entry in getattr(libremap, "__path__", []):
        path = Path(entry) / name
        if path.exists():
            return path.resolve()
        searched.append(str(path))
    raise FileNotFoundError(
        f"libremap: {name} is not installed with the package (searched: {', '.join(searched)}); "
        "reinstall with `pip install .`"
    )

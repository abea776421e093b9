"""libremap: concurrent, zero-copy heap compaction for managed runtimes on Linux.

The native core lives in ``libremap._core`` (pybind11) and behind the C ABI
``libremap.cabi`` (cffi); both load the same ``libremap.so.0``.
"""

from __future__ import annotations

from . import _core
from .probe import ProbeInfo, probe

__version__: str = _core.version_string()

__all__ = ["ProbeInfo", "__version__", "probe"]

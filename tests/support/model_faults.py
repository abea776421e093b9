"""A synthetic heap whose object model lies about one object, through
libremap._testing (bindings/testing/model_faults.cpp): the knob is a test
fixture, so the package's SyntheticHeap does not offer it."""

from __future__ import annotations

from libremap import _testing
from libremap.synthetic import SyntheticHeap

#: Ways the model can lie ('none' stops it).
MODEL_FAULTS: tuple[str, ...] = tuple(_testing.MODEL_FAULTS)


def set_fault(heap: SyntheticHeap, kind: str | int | None, object_id: int = 0) -> None:
    """Make heap's object model lie about object ``object_id`` the way
    ``kind`` says; 'none' or None stops it."""
    # The native heap behind the wrapper: _testing takes _core's type.
    _testing.set_model_fault(heap._h, kind, object_id)

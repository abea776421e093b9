"""The backend registry (libremap/src/backends/registry.cpp) seen through the
C ABI: every name and capability the library and its Python package use
comes from there, and the API follows the capabilities it reports."""

from __future__ import annotations

import typing

import pytest
from support.cabi_heap import config, err

import libremap
from libremap import _names, synthetic
from libremap.bench import options, record
from libremap.cabi import ffi, lib
from libremap.probe import unoffered_reason


def name(b: int) -> str:
    return ffi.string(lib.remap_backend_name(b)).decode()


def abi_backends() -> dict[str, int]:
    return {name(b): b for b in range(lib.remap_backend_count())}


def test_every_number_below_the_count_is_a_named_backend():
    names = [name(b) for b in range(lib.remap_backend_count())]
    assert names[lib.REMAP_BACKEND_AUTO] == "auto"
    assert len(set(names)) == len(names) and "unknown" not in names, names
    assert name(lib.remap_backend_count()) == "unknown"
    assert name(-1) == "unknown"


def test_the_enum_constants_name_their_rows():
    # cffi exposes the header's enum constants: REMAP_BACKEND_MOVE -> "move".
    consts = {
        k: getattr(lib, k)
        for k in dir(lib)
        if k.startswith("REMAP_BACKEND_") and not k.startswith("REMAP_BACKEND_CAP_")
    }
    assert len(consts) == lib.remap_backend_count(), consts
    for k, v in consts.items():
        assert name(v) == k.removeprefix("REMAP_BACKEND_").lower()


def test_python_reads_its_tables_from_the_abi():
    table = abi_backends()
    assert _names.BACKENDS == table
    assert _names.BACKEND_NAMES == {v: k for k, v in table.items()}
    assert synthetic.BACKENDS is _names.BACKENDS
    assert options.ALL_BACKENDS == tuple(n for n in table if n != "auto")
    assert record.BACKEND_NAMES is _names.BACKEND_NAMES
    # The typing aid lists the same names (a new backend must be added there
    # too, or type checkers reject its name).
    literal = typing.get_args(typing.get_args(synthetic.Backend)[0])
    assert set(literal) == set(table), literal


def test_capabilities():
    caps = {n: lib.remap_backend_caps(b) for n, b in abi_backends().items()}
    assert caps["auto"] == 0
    assert not caps["stw"] & lib.REMAP_BACKEND_CAP_CONCURRENT
    assert caps["stw"] & lib.REMAP_BACKEND_CAP_CYCLE_BEGIN
    for n in ("move", "copy", "minor", "sigsegv"):
        assert caps[n] & lib.REMAP_BACKEND_CAP_CONCURRENT, n
    assert caps["sigsegv"] & lib.REMAP_BACKEND_CAP_SHARED_HEAP
    assert not caps["sigsegv"] & lib.REMAP_BACKEND_CAP_UFFD
    assert caps["minor"] & lib.REMAP_BACKEND_CAP_UFFD
    for n, c in caps.items():
        # A shared heap cannot take allocation beside a prepared cycle.
        assert (
            bool(c & lib.REMAP_BACKEND_CAP_SHARED_HEAP)
            != bool(c & lib.REMAP_BACKEND_CAP_CYCLE_BEGIN)
            or n == "auto"
        ), n
    assert lib.remap_backend_uffd_features(lib.REMAP_BACKEND_MOVE) == lib.REMAP_FEATURE_MOVE
    assert lib.remap_backend_uffd_features(lib.REMAP_BACKEND_MINOR) == lib.REMAP_FEATURE_MINOR_SHMEM
    assert lib.remap_backend_uffd_features(lib.REMAP_BACKEND_COPY) == 0
    assert lib.remap_backend_caps(lib.remap_backend_count()) == 0
    assert {"move", "copy", "minor", "sigsegv"} <= set(_names.concurrent_backends())
    assert "stw" not in _names.concurrent_backends()


@pytest.mark.parametrize("bad", ["count", -1])
def test_a_number_outside_the_registry_is_refused(bad):
    n = lib.remap_backend_count() if bad == "count" else bad
    out = ffi.new("remap_heap **")
    assert lib.remap_heap_create(config(backend=n), out) == lib.REMAP_EINVAL
    assert out[0] == ffi.NULL
    assert f"backend {n} is not a remap_backend (0..{lib.remap_backend_count() - 1})" in err()


@pytest.mark.parametrize("backend", _names.ALL_BACKENDS)
def test_cycle_begin_follows_the_capability(backend):
    why = unoffered_reason(libremap.probe().to_json(), backend, "auto")
    if why:
        pytest.skip(why)
    out = ffi.new("remap_heap **")
    assert lib.remap_heap_create(config(backend=_names.BACKENDS[backend]), out) == 0, err()
    try:
        st = lib.remap_cycle_begin(out[0])
        if _names.backend_caps(backend) & lib.REMAP_BACKEND_CAP_CYCLE_BEGIN:
            assert st == lib.REMAP_OK, err()
        else:
            assert st == lib.REMAP_EUNSUPPORTED
            assert f"backend {backend} cannot take allocation" in err()
    finally:
        lib.remap_heap_destroy(out[0])


def test_an_unknown_name_has_no_capabilities():
    # As remap_backend_caps answers for an unknown number: the soak command
    # runs a job on such a name and reports it failed, rather than refusing.
    assert _names.backend_caps("nonesuch") == 0
    assert _names.backend_uffd_features("nonesuch") == 0

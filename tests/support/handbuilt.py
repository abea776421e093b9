"""Hand-built heaps through cffi, a function per C ABI call, with the object
model in Python (word 0 = size | nrefs << 32; nrefs slots follow).

``model_lies["mode"]`` makes the model lie on purpose (a size that changes
between calls, duplicate or out-of-object slot offsets) so that tests see
where the library checks it. The callbacks are module-level: they must
outlive every heap made with them.
"""

from __future__ import annotations

from libremap.cabi import ffi, lib
from libremap.synthetic import KiB, MiB

PHASE_IDLE, PHASE_COMPACTING = 0, 2
BACKENDS = {"move": 1, "copy": 2, "minor": 3, "sigsegv": 4, "stw": 5}
model_lies = {"mode": None}


def err() -> str:
    return ffi.string(lib.remap_last_error()).decode()


def u64(addr: int):
    return ffi.cast("uint64_t *", addr)


# Layout: word 0 = size | nrefs << 32; nrefs slots follow.
@ffi.callback("size_t(void *, const void *)")
def _object_size(ctx, obj):
    size = int(ffi.cast("uint64_t *", obj)[0]) & 0xFFFFFFFF
    mode = model_lies["mode"]
    if mode == "size_flips":  # a different answer on every call
        model_lies["calls"] = model_lies.get("calls", 0) + 1
        return size + 8 * (model_lies["calls"] % 3)
    return size


@ffi.callback("void(void *, const void *, remap_visit_fn, void *)")
def _visit(ctx, obj, visit, vctx):
    w = int(ffi.cast("uint64_t *", obj)[0])
    size, n = w & 0xFFFFFFFF, w >> 32
    mode = model_lies["mode"]
    second = False
    if mode == "second_visit_out":
        key = int(ffi.cast("uintptr_t", obj))
        seen = model_lies.setdefault("seen", set())
        second = key in seen
        seen.add(key)
    for i in range(n):
        visit(vctx, 8 + 8 * i)
    if mode == "duplicates":
        for i in range(n):
            visit(vctx, 8 + 8 * i)
    elif mode == "too_many":
        visit(vctx, size)  # one slot past the object
    elif second:
        visit(vctx, size + 4096)  # in bounds the first time, far out the second


def make_heap(backend="stw", capacity=4 * MiB, **kw):
    c = ffi.new("remap_heap_config *")
    lib.remap_heap_config_init(c)
    c.capacity = capacity
    c.region_size = 64 * KiB
    c.backend = BACKENDS[backend]
    c.model.object_size = _object_size
    c.model.visit_ref_offsets = _visit
    for k, v in kw.items():
        setattr(c, k, v)
    out = ffi.new("remap_heap **")
    st = lib.remap_heap_create(c, out)
    return st, (out[0] if st == 0 else None)


def info(h):
    i = ffi.new("remap_heap_info *")
    i.struct_size = ffi.sizeof("remap_heap_info")
    assert lib.remap_heap_get_info(h, i) == 0, err()
    return i


def stats(h):
    s = ffi.new("remap_cycle_stats *")
    s.struct_size = ffi.sizeof("remap_cycle_stats")
    assert lib.remap_heap_last_stats(h, s) == 0, err()
    return s


def acquire(h):
    s, e = ffi.new("void **"), ffi.new("void **")
    assert lib.remap_region_acquire(h, s, e) == 0, err()
    return int(ffi.cast("uintptr_t", s[0])), int(ffi.cast("uintptr_t", e[0]))


def retire(h, start, cursor):
    assert lib.remap_region_retire(h, ffi.cast("void *", start), ffi.cast("void *", cursor)) == 0


def obj(addr, size, nrefs=0):
    u64(addr)[0] = size | (nrefs << 32)
    for i in range(1, size // 8):
        u64(addr)[i] = 0


def forward(h, addr):
    out = ffi.new("void **")
    st = lib.remap_forward(h, ffi.cast("void *", addr), out)
    return st, int(ffi.cast("uintptr_t", out[0]))


def cycle(h, roots):
    """mark roots, prepare, flip, forward roots (the documented order), and
    compact + finish when the backend left the heap COMPACTING."""
    for r in roots:
        assert lib.remap_mark(h, ffi.cast("void *", r)) == 0, err()
    assert lib.remap_prepare(h) == 0, err()
    assert lib.remap_flip(h) == 0, err()
    new = []
    for r in roots:
        st, n = forward(h, r)
        assert st == 0, f"remap_forward after the flip: {err()}"
        new.append(n)
    if info(h).phase == PHASE_COMPACTING:
        assert lib.remap_compact(h) == 0, err()
        assert lib.remap_finish(h) == 0, err()
    assert info(h).phase == PHASE_IDLE
    return new

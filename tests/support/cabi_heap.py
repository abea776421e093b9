"""A hand-built heap through cffi as an object (``Heap``), with the object
model in Python: word 0 = size in bytes | nrefs << 32; nrefs reference
slots follow (``put`` writes the header). ``handbuilt.py`` is the same
thing a function per call, with a model that can be told to lie.
"""

from __future__ import annotations

from libremap.cabi import ffi, lib

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
BACKEND_AUTO, BACKEND_STW = 0, 5
PHASE_IDLE, PHASE_PREPARED, PHASE_COMPACTING = 0, 1, 2


def err() -> str:
    return ffi.string(lib.remap_last_error()).decode()


def u64(addr: int):
    return ffi.cast("uint64_t *", addr)


# The object model, in Python. Callbacks must outlive the heaps: module level.
@ffi.callback("size_t(void *, const void *)")
def _object_size(ctx, obj):
    return int(ffi.cast("uint64_t *", obj)[0]) & 0xFFFFFFFF


@ffi.callback("void(void *, const void *, remap_visit_fn, void *)")
def _visit(ctx, obj, visit, vctx):
    n = int(ffi.cast("uint64_t *", obj)[0]) >> 32
    for i in range(n):
        visit(vctx, 8 + 8 * i)


def config(**kw):
    c = ffi.new("remap_heap_config *")
    lib.remap_heap_config_init(c)
    c.capacity = 4 * MiB
    c.region_size = 64 * KiB
    c.backend = BACKEND_STW
    c.model.object_size = _object_size
    c.model.visit_ref_offsets = _visit
    for k, v in kw.items():
        setattr(c, k, v)
    return c


class Heap:
    def __init__(self, **kw):
        self.cfg = config(**kw)
        out = ffi.new("remap_heap **")
        st = lib.remap_heap_create(self.cfg, out)
        assert st == 0, err()
        self.h = out[0]
        self.info = self.get_info()
        self.base = int(ffi.cast("uintptr_t", self.info.base))

    def close(self):
        lib.remap_heap_destroy(self.h)
        self.h = ffi.NULL

    def get_info(self):
        info = ffi.new("remap_heap_info *")
        info.struct_size = ffi.sizeof("remap_heap_info")
        assert lib.remap_heap_get_info(self.h, info) == 0, err()
        return info

    def acquire(self):
        s, e = ffi.new("void **"), ffi.new("void **")
        assert lib.remap_region_acquire(self.h, s, e) == 0, err()
        return int(ffi.cast("uintptr_t", s[0])), int(ffi.cast("uintptr_t", e[0]))

    def retire(self, start, cursor):
        return lib.remap_region_retire(
            self.h, ffi.cast("void *", start), ffi.cast("void *", cursor)
        )

    def mark(self, addr):
        return lib.remap_mark(self.h, ffi.cast("void *", addr))

    def forward(self, addr):
        out = ffi.new("void **")
        st = lib.remap_forward(self.h, ffi.cast("void *", addr), out)
        return st, int(ffi.cast("uintptr_t", out[0]))

    def stats(self, size=None):
        s = ffi.new("remap_cycle_stats *")
        s.struct_size = size if size is not None else ffi.sizeof("remap_cycle_stats")
        return lib.remap_heap_last_stats(self.h, s), s

    def image(self):
        return bytes(ffi.buffer(ffi.cast("char *", self.base), self.info.capacity))


def put(addr, size, nrefs=0):
    u64(addr)[0] = size | (nrefs << 32)


# --- regions and large objects, for tests that fill a heap on purpose -------


def alloc_large(h: Heap, size: int) -> tuple[int, int]:
    out = ffi.new("void **")
    st = lib.remap_alloc_large(h.h, size, out)
    return st, int(ffi.cast("uintptr_t", out[0])) if st == 0 else 0


def try_acquire(h: Heap) -> tuple[int, int] | None:
    s, e = ffi.new("void **"), ffi.new("void **")
    st = lib.remap_region_acquire(h.h, s, e)
    if st == lib.REMAP_ENOMEM:
        return None
    assert st == 0, err()
    return int(ffi.cast("uintptr_t", s[0])), int(ffi.cast("uintptr_t", e[0]))


def finish_cycle(h: Heap) -> None:
    assert lib.remap_flip(h.h) == 0, err()
    if h.get_info().phase == PHASE_COMPACTING:
        assert lib.remap_compact(h.h) == 0, err()
        assert lib.remap_finish(h.h) == 0, err()

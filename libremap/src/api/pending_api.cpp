// pending_api.cpp — TEMPORARY weak definitions of entry points whose real
// (strong) definitions are still being written, so that the shared library
// always exports the whole ABI while the layers land in parallel. A strong
// definition elsewhere overrides each of these at link time. This file is
// deleted once every entry point is implemented.
#include "api/status.h"

#define REMAP_PENDING(decl, name)                                                   \
  extern "C" REMAP_API __attribute__((weak)) remap_status decl {                    \
    return remap::api_call(name, [] { return remap::fail(REMAP_EUNSUPPORTED, "not implemented yet"); }); \
  }

REMAP_PENDING(remap_probe(remap_probe_info*), "remap_probe")
REMAP_PENDING(remap_uffd_open(uint64_t, int, remap_uffd**), "remap_uffd_open")
REMAP_PENDING(remap_uffd_register(remap_uffd*, void*, size_t, unsigned, uint64_t*), "remap_uffd_register")
REMAP_PENDING(remap_uffd_unregister(remap_uffd*, void*, size_t), "remap_uffd_unregister")
REMAP_PENDING(remap_uffd_move(remap_uffd*, void*, void*, size_t, unsigned, size_t*), "remap_uffd_move")
REMAP_PENDING(remap_uffd_copy(remap_uffd*, void*, const void*, size_t, unsigned, size_t*), "remap_uffd_copy")
REMAP_PENDING(remap_uffd_zeropage(remap_uffd*, void*, size_t, size_t*), "remap_uffd_zeropage")
REMAP_PENDING(remap_uffd_continue(remap_uffd*, void*, size_t, size_t*), "remap_uffd_continue")
REMAP_PENDING(remap_uffd_wake(remap_uffd*, void*, size_t), "remap_uffd_wake")
REMAP_PENDING(remap_heap_create(const remap_heap_config*, remap_heap**), "remap_heap_create")
REMAP_PENDING(remap_heap_get_info(const remap_heap*, remap_heap_info*), "remap_heap_get_info")
REMAP_PENDING(remap_region_acquire(remap_heap*, void**, void**), "remap_region_acquire")
REMAP_PENDING(remap_region_retire(remap_heap*, void*, void*), "remap_region_retire")
REMAP_PENDING(remap_alloc_large(remap_heap*, size_t, void**), "remap_alloc_large")
REMAP_PENDING(remap_mark(remap_heap*, const void*), "remap_mark")
REMAP_PENDING(remap_clear_marks(remap_heap*), "remap_clear_marks")
REMAP_PENDING(remap_prepare(remap_heap*), "remap_prepare")
REMAP_PENDING(remap_flip(remap_heap*), "remap_flip")
REMAP_PENDING(remap_compact(remap_heap*), "remap_compact")
REMAP_PENDING(remap_compact_work(remap_heap*), "remap_compact_work")
REMAP_PENDING(remap_finish(remap_heap*), "remap_finish")
REMAP_PENDING(remap_forward(const remap_heap*, const void*, void**), "remap_forward")
REMAP_PENDING(remap_touch(remap_heap*, const void*, size_t), "remap_touch")
REMAP_PENDING(remap_heap_last_stats(const remap_heap*, remap_cycle_stats*), "remap_heap_last_stats")

extern "C" {
REMAP_API __attribute__((weak)) const char* remap_uffd_feature_name(unsigned) { return nullptr; }
REMAP_API __attribute__((weak)) void remap_uffd_close(remap_uffd*) {}
REMAP_API __attribute__((weak)) int remap_uffd_fd(const remap_uffd*) { return -1; }
REMAP_API __attribute__((weak)) uint64_t remap_uffd_features(const remap_uffd*) { return 0; }
REMAP_API __attribute__((weak)) void remap_heap_config_init(remap_heap_config* c) {
  if (c) c->struct_size = sizeof *c;
}
REMAP_API __attribute__((weak)) void remap_heap_destroy(remap_heap*) {}
}

/* testheap.c — a tiny runtime on the public C ABI for tests that need the
 * raw remap_heap* (cffi: remap_touch, remap_heap_last_stats, write(2) from
 * heap memory) or a plain C program (SIGBUS chaining).
 *
 * Objects use bindings/common/object_layout.h's layout:
 *   { uint32 size; uint16 nrefs; uint16 klass; uint64 id }  nrefs slots  payload
 * The heap is filled with objects of 32..512 bytes; a live_ratio share of
 * them is live and listed as roots (outside the heap); live objects' slots
 * point to live objects or are null. Payload words are a function of the id,
 * so a checksum over the roots detects any lost or misplaced byte.
 *
 * Built by the tests as a shared library (cffi) or #included by a program.
 * The object model callbacks are plain C: they run in libremap's SIGBUS
 * handler and on its GC threads. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libremap.h"

typedef struct th_heap {
  remap_heap* heap;
  uintptr_t base;
  size_t capacity;
  size_t page_size;
  uintptr_t* roots; /* live objects, heap addresses (forwarded at flip) */
  size_t nroots;
  uintptr_t* fwd;   /* forward() of each root, taken at prepare */
} th_heap;

static size_t th_object_size(void* ctx, const void* obj) {
  (void)ctx;
  return *(const uint32_t*)obj;
}

static void th_visit(void* ctx, const void* obj, remap_visit_fn visit, void* vctx) {
  (void)ctx;
  unsigned n = ((const uint16_t*)obj)[2];
  for (unsigned i = 0; i < n; i++) visit(vctx, 16 + 8 * i);
}

static uint64_t th_mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static uint64_t th_payload(uint64_t id, size_t i) { return th_mix(id * 131 + i) | (1ull << 63); }

void th_destroy(th_heap* h) {
  if (!h) return;
  remap_heap_destroy(h->heap);
  free(h->roots);
  free(h->fwd);
  free(h);
}

remap_heap* th_remap(th_heap* h) { return h->heap; }
uintptr_t th_base(th_heap* h) { return h->base; }
size_t th_nroots(th_heap* h) { return h->nroots; }
uintptr_t th_root(th_heap* h, size_t i) { return h->roots[i]; }

/* Creates a heap of capacity_mib MiB (64 KiB regions), fills `fill` of its
 * regions. Returns a remap_status; *out is NULL on failure. */
int th_create(int backend, int fault_mode, unsigned gc_threads, size_t capacity_mib, uint64_t seed,
              double live_ratio, double fill, th_heap** out) {
  *out = NULL;
  th_heap* h = calloc(1, sizeof *h);
  if (!h) return REMAP_ENOMEM;
  remap_heap_config cfg;
  memset(&cfg, 0, sizeof cfg);
  remap_heap_config_init(&cfg);
  cfg.capacity = capacity_mib << 20;
  cfg.region_size = 64 << 10;
  cfg.backend = backend;
  cfg.fault_mode = fault_mode;
  cfg.gc_threads = gc_threads;
  cfg.model.object_size = th_object_size;
  cfg.model.visit_ref_offsets = th_visit;
  /* TH_POOL_MAX_PAGES: a smaller page pool, for tests of what happens once
   * mutators have used it up (tests/test_free_pages.py). */
  const char* pool = getenv("TH_POOL_MAX_PAGES");
  if (pool && *pool) cfg.pool_max_pages = (size_t)strtoull(pool, NULL, 10);
  int s = remap_heap_create(&cfg, &h->heap);
  if (s != REMAP_OK) {
    free(h);
    return s;
  }
  remap_heap_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  remap_heap_get_info(h->heap, &info);
  h->base = (uintptr_t)info.base;
  h->capacity = info.capacity;
  h->page_size = info.page_size;

  size_t max = h->capacity / 32;
  h->roots = calloc(max, sizeof *h->roots);
  h->fwd = calloc(max, sizeof *h->fwd);
  uintptr_t* all = calloc(max, sizeof *all);
  uint64_t rng = seed * 2654435761u + 1;
  size_t nall = 0, regions = (size_t)(fill * (double)(h->capacity >> 16));
  for (size_t r = 0; r < regions; r++) {
    void *start, *end;
    if ((s = remap_region_acquire(h->heap, &start, &end)) != REMAP_OK) break;
    uintptr_t cur = (uintptr_t)start, e = (uintptr_t)end;
    for (;;) {
      rng = th_mix(rng);
      unsigned nrefs = rng % 4;
      size_t size = 16 + 8 * nrefs + 8 + 8 * ((rng >> 8) % 60);
      if (cur + size > e) break;
      uint64_t id = nall + 1;
      uint32_t* hw = (uint32_t*)cur;
      hw[0] = (uint32_t)size;
      ((uint16_t*)cur)[2] = (uint16_t)nrefs;
      ((uint16_t*)cur)[3] = 1;
      ((uint64_t*)cur)[1] = id;
      uint64_t* w = (uint64_t*)cur;
      for (unsigned i = 0; i < nrefs; i++) w[2 + i] = 0;
      for (size_t i = 2 + nrefs; i < size / 8; i++) w[i] = th_payload(id, i);
      all[nall++] = cur;
      int live = (double)((rng >> 20) % 1000) < live_ratio * 1000;
      if (live) h->roots[h->nroots++] = cur;
      cur += size;
    }
    remap_region_retire(h->heap, start, (void*)cur);
  }
  /* Live objects' slots: other live objects or null. */
  for (size_t i = 0; i < h->nroots; i++) {
    uint64_t* w = (uint64_t*)h->roots[i];
    unsigned n = ((uint16_t*)w)[2];
    for (unsigned k = 0; k < n; k++) {
      rng = th_mix(rng);
      w[2 + k] = (rng & 3) ? h->roots[rng % h->nroots] : 0;
    }
  }
  free(all);
  *out = h;
  return REMAP_OK;
}

/* Order-dependent hash of every root object: id, size, payload, and for
 * each slot the id of its target. Reads through faults while compacting. */
uint64_t th_checksum(th_heap* h) {
  uint64_t x = 0;
  for (size_t i = 0; i < h->nroots; i++) {
    const uint64_t* w = (const uint64_t*)h->roots[i];
    uint32_t size = *(const uint32_t*)w;
    unsigned n = ((const uint16_t*)w)[2];
    x = th_mix(x ^ w[1]) ^ size;
    for (unsigned k = 0; k < n; k++) {
      uint64_t t = w[2 + k];
      x = th_mix(x ^ (t ? ((const uint64_t*)t)[1] : 0));
    }
    for (size_t j = 2 + n; j < size / 8; j++) x = th_mix(x ^ w[j]);
  }
  return x;
}

/* mark, prepare, flip, roots forwarded — the header's order, the same on
 * every backend: the heap is COMPACTING after this (or IDLE again with stw). */
int th_cycle_begin(th_heap* h) {
  int s;
  for (size_t i = 0; i < h->nroots; i++)
    if ((s = remap_mark(h->heap, (const void*)h->roots[i])) != REMAP_OK) return s;
  if ((s = remap_prepare(h->heap)) != REMAP_OK) return s;
  if ((s = remap_flip(h->heap)) != REMAP_OK) return s;
  for (size_t i = 0; i < h->nroots; i++) {
    void* nw;
    if ((s = remap_forward(h->heap, (const void*)h->roots[i], &nw)) != REMAP_OK) return s;
    h->fwd[i] = (uintptr_t)nw;
  }
  memcpy(h->roots, h->fwd, h->nroots * sizeof *h->roots);
  return REMAP_OK;
}

int th_phase(th_heap* h) {
  remap_heap_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  remap_heap_get_info(h->heap, &info);
  return info.phase;
}

/* A whole cycle. */
int th_collect(th_heap* h) {
  int s = th_cycle_begin(h);
  if (s != REMAP_OK || th_phase(h) != REMAP_PHASE_COMPACTING) return s;
  if ((s = remap_compact(h->heap)) != REMAP_OK) return s;
  return remap_finish(h->heap);
}

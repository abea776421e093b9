/*
 * cycle.c — one compaction cycle driven the way libremap.h documents it, on
 * a heap of cons cells whose slots hold Guile-like tagged values.
 *
 * Values: a heap pointer ends in binary 000, a fixnum is (n << 2) | 2. The
 * heap is told so (ref_check_mask 7, ref_check_value 0), so fixnums are left
 * alone even when their bits happen to lie inside the heap.
 *
 * Usage: cycle [backend]   (auto, move, copy, minor, sigsegv, stw; default auto)
 * Prints one line and exits 0 when the list survived the cycle intact.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "libremap.h"

/* A cell: a header word (its size), car, cdr. */
typedef struct cell {
  uint64_t size;
  uint64_t car;
  uint64_t cdr;
} cell;

#define FIXNUM(n) (((uint64_t)(n) << 2) | 2)
#define NIL ((uint64_t)0)

static size_t cell_size(void* ctx, const void* obj) {
  (void)ctx;
  return (size_t)((const cell*)obj)->size;
}

static void cell_slots(void* ctx, const void* obj, remap_visit_fn visit, void* vctx) {
  (void)ctx;
  (void)obj;
  visit(vctx, offsetof(cell, car));
  visit(vctx, offsetof(cell, cdr));
}

static int fail(const char* what, remap_status s) {
  fprintf(stderr, "%s: %s: %s\n", what, remap_status_name(s), remap_last_error());
  return 1;
}

static int backend_named(const char* name) {
  for (int b = REMAP_BACKEND_AUTO; b <= REMAP_BACKEND_STW; b++)
    if (strcmp(remap_backend_name(b), name) == 0) return b;
  return -1;
}

int main(int argc, char** argv) {
  remap_heap_config cfg;
  remap_heap_config_init(&cfg);
  cfg.capacity = 4u << 20;
  cfg.region_size = 64u << 10;
  cfg.backend = argc > 1 ? backend_named(argv[1]) : REMAP_BACKEND_AUTO;
  if (cfg.backend < 0) return fprintf(stderr, "unknown backend %s\n", argv[1]), 2;
  cfg.model.object_size = cell_size;
  cfg.model.visit_ref_offsets = cell_slots;
  cfg.ref_check_mask = 7; /* a reference ends in 000 */
  cfg.ref_check_value = 0;
  remap_heap* heap;
  remap_status s = remap_heap_create(&cfg, &heap);
  if (s != REMAP_OK) return fail("remap_heap_create", s);

  /* A list (0 1 2 ... 999) whose cells alternate with garbage cells; each
   * car holds a fixnum whose bits are an address inside the heap. */
  void *start, *end;
  if ((s = remap_region_acquire(heap, &start, &end)) != REMAP_OK) return fail("acquire", s);
  cell* c = (cell*)start;
  uint64_t list = NIL;
  enum { N = 1000 };
  for (int i = N - 1; i >= 0; i--) {
    cell* garbage = c++;
    garbage->size = sizeof(cell);
    cell* x = c++;
    x->size = sizeof(cell);
    x->car = (uint64_t)(uintptr_t)garbage | 2; /* a fixnum that looks like an address */
    x->cdr = list;
    list = (uint64_t)(uintptr_t)x;
    garbage->car = FIXNUM(i);
  }
  if ((s = remap_region_retire(heap, start, c)) != REMAP_OK) return fail("retire", s);
  uint64_t want_car[N];
  {
    uint64_t v = list;
    for (int i = 0; v; i++, v = ((cell*)(uintptr_t)v)->cdr) want_car[i] = ((cell*)(uintptr_t)v)->car;
  }

  /* The cycle, in the header's order. */
  for (uint64_t v = list; v; v = ((cell*)(uintptr_t)v)->cdr)
    if ((s = remap_mark(heap, (void*)(uintptr_t)v)) != REMAP_OK) return fail("remap_mark", s);
  if ((s = remap_prepare(heap)) != REMAP_OK) return fail("remap_prepare", s);
  /* -- the pause: flip, then forward every root -- */
  if ((s = remap_flip(heap)) != REMAP_OK) return fail("remap_flip", s);
  uint64_t root;
  if ((s = remap_forward_value(heap, list, &root)) != REMAP_OK) return fail("remap_forward_value", s);
  list = root;
  /* -- resume mutators; with a concurrent backend, compact and finish -- */
  remap_heap_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  if ((s = remap_heap_get_info(heap, &info)) != REMAP_OK) return fail("remap_heap_get_info", s);
  if (info.phase == REMAP_PHASE_COMPACTING) {
    if ((s = remap_compact(heap)) != REMAP_OK) return fail("remap_compact", s);
    if ((s = remap_finish(heap)) != REMAP_OK) return fail("remap_finish", s);
  }

  int n = 0;
  for (uint64_t v = list; v; v = ((cell*)(uintptr_t)v)->cdr, n++) {
    if (n >= N || ((cell*)(uintptr_t)v)->car != want_car[n])
      return fprintf(stderr, "cell %d is wrong after the cycle\n", n), 1;
  }
  if (n != N) return fprintf(stderr, "the list has %d cells, not %d\n", n, N), 1;
  remap_cycle_stats st;
  memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  remap_heap_last_stats(heap, &st);
  printf("%s: %d cells intact, list moved by %lld bytes, %llu stray slots\n",
         remap_backend_name(info.backend), n,
         (long long)((int64_t)list - (int64_t)(uintptr_t)start), (unsigned long long)st.slots_stray);
  remap_heap_destroy(heap);
  return 0;
}

/*
 * conformance_cons.c — the smallest runtime that passes libremap's
 * conformance kit: a heap of cons cells. Copy it, and replace each part with
 * your runtime's own (object model, allocation, tracer, roots).
 *
 * Build it as a shared library against the installed package, e.g.
 *     find_package(libremap CONFIG REQUIRED)
 *     add_library(cons MODULE conformance_cons.c)
 *     target_link_libraries(cons PRIVATE libremap::libremap)
 * and run the kit on it:
 *     python -m pytest --pyargs libremap.conformance --libremap-runtime=./libcons.so
 *
 * The object model: every object is a cell of two words, car and cdr, with
 * no header (a Lisp heap of conses needs none: the size is always 16).
 * A word is a value:
 *     NIL        0
 *     fixnum     (n << 1) | 1      odd: never a reference
 *     cell       its address       even, 16-aligned from the heap base
 * which the heap is told with ref_check_mask 1 / ref_check_value 0, so that
 * fixnums whose bits look like heap addresses are left alone.
 *
 * Roots live outside the heap, in a malloc'd array: the only words the
 * runtime must rewrite itself after a flip.
 *
 * Variants that break one rule each, so that the kit's own tests can check
 * the kit catches them (compile with one of):
 *     -DBREAK_ROOTS   forward_roots skips root 0
 *     -DBREAK_MARK    the tracer never marks a cell whose cdr is NIL
 *     -DBREAK_SIZE    object_size says 24 bytes (a header the cells lack)
 *     -DBREAK_STALE   the mutator caches root 0 across a cycle (outside the
 *                     roots, so never forwarded) and writes through it
 *     -DBREAK_TOUCH   hands heap memory to read(2)/write(2) while compacting
 *                     without remap_touch first
 *     -DBREAK_HANG    the object model waits forever for the mutator (a lock
 *                     taken in a callback that runs inside a page fault)
 *     -DBREAK_SATB    the write barrier of concurrent marking logs nothing
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libremap.h"
#include "libremap_conformance.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct cell {
  uint64_t car;
  uint64_t cdr;
} cell;

enum { CELL_BYTES = sizeof(cell), NROOTS = 64, ERROR_BYTES = 512 };

#define NIL ((uint64_t)0)
#define FIXNUM(n) ((((uint64_t)(n)) << 1) | 1)
#define IS_FIXNUM(v) (((v)&1) != 0)

/* One runtime instance: its heap, its allocation buffer, its roots. */
typedef struct cons_rt {
  remap_heap* heap;
  uintptr_t base;
  size_t capacity;
  /* The region the mutator bump-allocates in (a TLAB): [cursor, limit). */
  char* region;
  char* cursor;
  char* limit;
  uint64_t roots[NROOTS];
  uint64_t rng;
#ifdef BREAK_STALE
  uint64_t cached_root0; /* the bug: a copy of a root that forward_roots misses */
#endif
  /* inject_fault: the cell the object model lies about, and how. */
  uintptr_t lie_at;
  int lie;
  /* Concurrent marking, snapshot at the beginning: the roots as they were
   * at the initial mark, and while barrier_on the old value of every
   * reference slot the mutator overwrites (its log). Objects allocated
   * meanwhile are black (libremap never moves or frees them this cycle). */
  uint64_t snapshot[NROOTS];
  int barrier_on; /* atomic: set and cleared in pauses, read by the mutator */
  pthread_mutex_t log_lock;
  uint64_t* log;
  size_t log_len, log_cap;
  char error[ERROR_BYTES];
} cons_rt;

/* create's message when there is no instance to hold it. */
static char create_error[ERROR_BYTES];

static int fail(cons_rt* rt, remap_status status, const char* fmt, ...) {
  char* buf = rt ? rt->error : create_error;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, ERROR_BYTES, fmt, ap);
  va_end(ap);
  /* A status from a libremap call carries the library's message: keep it.
   * (The runtime's own failures are REMAP_CONFORMANCE_EFAILED.) */
  if (status != REMAP_CONFORMANCE_EFAILED && n >= 0 && (size_t)n < ERROR_BYTES)
    snprintf(buf + n, ERROR_BYTES - (size_t)n, ": %s: %s", remap_status_name(status),
             remap_last_error());
  return status;
}

/* xorshift64*: the graph must be a function of the seed, never of an address. */
static uint64_t next_random(cons_rt* rt) {
  uint64_t x = rt->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rt->rng = x;
  return x * 0x2545f4914f6cdd1dull;
}

static void seed_random(cons_rt* rt, uint64_t seed) {
  rt->rng = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
  if (rt->rng == 0) rt->rng = 1;
}

/* ---- the object model (called by libremap, also in a SIGBUS handler:
 * read the object only, no locks, no allocation) ------------------------- */

static size_t cell_size(void* ctx, const void* obj) {
  const cons_rt* rt = ctx;
#ifdef BREAK_HANG
  /* What a lock in a callback does when its holder is the faulting thread. */
  for (;;) pause();
#endif
  if (rt->lie == REMAP_CONFORMANCE_FAULT_SIZE_UNALIGNED && (uintptr_t)obj == rt->lie_at)
    return CELL_BYTES - 4;
#ifdef BREAK_SIZE
  return CELL_BYTES + 8;
#else
  (void)obj;
  return CELL_BYTES;
#endif
}

static void cell_slots(void* ctx, const void* obj, remap_visit_fn visit, void* vctx) {
  const cons_rt* rt = ctx;
  visit(vctx, offsetof(cell, car));
  visit(vctx, offsetof(cell, cdr));
  if (rt->lie == REMAP_CONFORMANCE_FAULT_SLOT_OUTSIDE && (uintptr_t)obj == rt->lie_at)
    visit(vctx, CELL_BYTES);
}

static int is_cell(const cons_rt* rt, uint64_t v);

/* ---- allocation ---------------------------------------------------------- */

/* Hands the allocation region back to the heap, so that what was allocated
 * in it counts as allocated memory (marking needs it) and the rest is free. */
static remap_status retire_region(cons_rt* rt) {
  if (!rt->region) return REMAP_OK;
  remap_status s = remap_region_retire(rt->heap, rt->region, rt->cursor);
  rt->region = rt->cursor = rt->limit = NULL;
  return s == REMAP_OK ? REMAP_OK : fail(rt, s, "remap_region_retire");
}

static remap_status alloc_cell(cons_rt* rt, cell** out) {
  if (rt->cursor == NULL || rt->limit - rt->cursor < CELL_BYTES) {
    remap_status s = retire_region(rt);
    if (s != REMAP_OK) return s;
    void *start, *end;
    if ((s = remap_region_acquire(rt->heap, &start, &end)) != REMAP_OK)
      return fail(rt, s, "remap_region_acquire");
    rt->region = rt->cursor = start;
    rt->limit = end;
  }
  *out = (cell*)rt->cursor;
  rt->cursor += CELL_BYTES;
  return REMAP_OK;
}

/* ---- the mutator's reference stores: the write barrier -------------------- */

static void log_old_value(cons_rt* rt, uint64_t old) {
  if (!is_cell(rt, old)) return;
  pthread_mutex_lock(&rt->log_lock);
  if (rt->log_len == rt->log_cap) {
    size_t cap = rt->log_cap ? 2 * rt->log_cap : 1024;
    uint64_t* grown = realloc(rt->log, cap * sizeof *grown);
    if (!grown) abort(); /* a lost log entry would be a heap corruption */
    rt->log = grown;
    rt->log_cap = cap;
  }
  rt->log[rt->log_len++] = old;
  pthread_mutex_unlock(&rt->log_lock);
}

/* Every store over a reference slot of a published cell goes here: the
 * tracer may be reading the slot (hence atomics), and the value it held at
 * the initial mark must still be traced (hence the log). */
static void store_slot(cons_rt* rt, uint64_t* slot, uint64_t value) {
#ifdef BREAK_SATB
  (void)rt;
  (void)log_old_value;
#else
  if (__atomic_load_n(&rt->barrier_on, __ATOMIC_ACQUIRE))
    log_old_value(rt, __atomic_load_n(slot, __ATOMIC_RELAXED));
#endif
  __atomic_store_n(slot, value, __ATOMIC_RELAXED);
}

static uint64_t load_slot(const uint64_t* slot) { return __atomic_load_n(slot, __ATOMIC_RELAXED); }

/* Pushes one new cell on a random root's list. Its car is a fixnum or
 * another root's list (sharing); now and then the old list is dropped,
 * which is the garbage a cycle reclaims. */
static remap_status push_random_cell(cons_rt* rt) {
  cell* c = NULL;
  remap_status s = alloc_cell(rt, &c);
  if (s != REMAP_OK) return s;
  uint64_t r = next_random(rt);
  size_t root = r % NROOTS;
  uint64_t other = rt->roots[(r >> 8) % NROOTS];
  c->car = ((r >> 16) % 4 == 0 && other != NIL) ? other : FIXNUM(r >> 20);
  c->cdr = ((r >> 24) % 8 == 0) ? NIL : rt->roots[root];
  rt->roots[root] = (uint64_t)(uintptr_t)c;
  return REMAP_OK;
}

/* ---- reading values safely (checksum and verify must survive a heap the
 * kit has caught being corrupt) ------------------------------------------- */

static int is_cell(const cons_rt* rt, uint64_t v) {
  return v != NIL && !IS_FIXNUM(v) && v >= rt->base && v - rt->base < rt->capacity &&
         (v - rt->base) % CELL_BYTES == 0;
}

/* An open-addressing set of visited cells, address -> visit order. */
typedef struct visited {
  uint64_t* keys;
  uint32_t* order;
  size_t mask;
  uint32_t count;
} visited;

static int visited_init(visited* v, size_t max_cells) {
  size_t n = 1024;
  while (n < 2 * max_cells) n <<= 1;
  v->keys = calloc(n, sizeof *v->keys);
  v->order = calloc(n, sizeof *v->order);
  v->mask = n - 1;
  v->count = 0;
  return v->keys && v->order;
}

static void visited_free(visited* v) {
  free(v->keys);
  free(v->order);
}

/* The visit order of cell address a; *fresh = 1 if it was not seen before. */
static uint32_t visited_index(visited* v, uint64_t a, int* fresh) {
  size_t i = (size_t)((a >> 4) * 0x9e3779b97f4a7c15ull) & v->mask;
  while (v->keys[i] != 0 && v->keys[i] != a) i = (i + 1) & v->mask;
  *fresh = v->keys[i] == 0;
  if (*fresh) {
    v->keys[i] = a;
    v->order[i] = v->count++;
  }
  return v->order[i];
}

static uint64_t mix(uint64_t h, uint64_t w) {
  h ^= w;
  h = (h << 23 | h >> 41) * 0x9e3779b97f4a7c15ull;
  return h ^ (h >> 29);
}

/* Breadth-first walk from the roots. Hashes each value: a fixnum or NIL
 * by its bits, a cell by its visit order (never its address), anything else
 * as a "bad value" marker without following it. Fails on the first bad
 * value when strict (verify). */
static remap_status walk(cons_rt* rt, int strict, uint64_t* hash_out) {
  visited seen = {0};
  size_t max_cells = rt->capacity / CELL_BYTES;
  uint64_t* queue = malloc(max_cells * sizeof *queue);
  if (!queue || !visited_init(&seen, max_cells)) {
    free(queue);
    visited_free(&seen);
    return fail(rt, REMAP_CONFORMANCE_EFAILED, "walk: out of memory");
  }
  uint64_t h = 0x6a09e667f3bcc908ull;
  size_t tail = 0;
  remap_status status = REMAP_OK;
  for (size_t i = 0; i < NROOTS + 2 * (size_t)tail && status == REMAP_OK; i++) {
    /* Values in order: the roots, then car and cdr of each queued cell. */
    uint64_t v;
    if (i < NROOTS) {
      v = rt->roots[i];
    } else {
      size_t k = i - NROOTS;
      const cell* c = (const cell*)(uintptr_t)queue[k / 2];
      v = k % 2 == 0 ? c->car : c->cdr;
      if (k % 2 == 0 && strict && v == NIL) {
        /* No car is ever NIL: a NIL car is a cell read from freed memory. */
        status = fail(rt, REMAP_CONFORMANCE_EFAILED,
                      "cell at heap offset %#llx reads as zero: freed or never written",
                      (unsigned long long)(queue[k / 2] - rt->base));
        break;
      }
    }
    if (v == NIL || IS_FIXNUM(v)) {
      h = mix(mix(h, 0), v);
    } else if (is_cell(rt, v)) {
      int fresh;
      uint32_t order = visited_index(&seen, v, &fresh);
      if (fresh) queue[tail++] = v;
      h = mix(mix(h, 1), order);
    } else {
      if (strict)
        status = fail(rt, REMAP_CONFORMANCE_EFAILED,
                      "%s %zu holds %#llx: neither NIL, a fixnum nor a cell of the heap",
                      i < NROOTS ? "root" : "slot", i < NROOTS ? i : i - NROOTS,
                      (unsigned long long)v);
      h = mix(mix(h, 2), v - rt->base);
    }
  }
  if (hash_out) *hash_out = mix(h, tail);
  free(queue);
  visited_free(&seen);
  return status;
}

/* ---- the table's callbacks ---------------------------------------------- */

static remap_status cons_create(const remap_heap_config* kit, uint64_t seed, void** out) {
  *out = NULL;
  cons_rt* rt = calloc(1, sizeof *rt);
  if (!rt) return fail(NULL, REMAP_CONFORMANCE_EFAILED, "cons_create: out of memory");
  pthread_mutex_init(&rt->log_lock, NULL);
  /* Keep every field the kit chose; add what only the runtime knows. */
  remap_heap_config cfg = *kit;
  cfg.struct_size = sizeof cfg;
  cfg.model.struct_size = sizeof cfg.model;
  cfg.model.ctx = rt;
  cfg.model.object_size = cell_size;
  cfg.model.visit_ref_offsets = cell_slots;
  cfg.ref_check_mask = 1; /* even values are references ... */
  cfg.ref_check_value = 0;
  cfg.ref_tag_mask = 0;   /* ... and carry no tag bits */
  remap_status s = remap_heap_create(&cfg, &rt->heap);
  if (s != REMAP_OK) {
    fail(NULL, s, "remap_heap_create");
    free(rt);
    return s;
  }
  remap_heap_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  remap_heap_get_info(rt->heap, &info);
  rt->base = (uintptr_t)info.base;
  rt->capacity = info.capacity;

  /* Fill a third of the heap (the kit asks for about half; a cons heap is
   * dense, and its walks cost per cell); about one cell in eight drops a
   * list, so a good share of that is garbage by the first cycle. */
  seed_random(rt, seed);
  size_t cells = cfg.capacity / 3 / CELL_BYTES;
  for (size_t i = 0; i < cells; i++) {
    if ((s = push_random_cell(rt)) != REMAP_OK) {
      remap_heap_destroy(rt->heap);
      memcpy(create_error, rt->error, sizeof create_error);
      free(rt);
      return s;
    }
  }
  *out = rt;
  return REMAP_OK;
}

static void cons_destroy(void* vrt) {
  cons_rt* rt = vrt;
  if (!rt) return;
  remap_heap_destroy(rt->heap);
  free(rt->log);
  pthread_mutex_destroy(&rt->log_lock);
  free(rt);
}

static remap_heap* cons_heap(void* rt) { return ((cons_rt*)rt)->heap; }

/* The tracer: remap_try_mark is both the mark and the visited set (it
 * returns 1 the first time only, 0 for a black cell), so the runtime needs
 * no mark bits. Marks everything reachable from values[0..n). */
static remap_status trace(cons_rt* rt, const uint64_t* values, size_t n) {
  /* Each marked cell pushes at most two values. */
  size_t cap = 2 * (rt->capacity / CELL_BYTES) + n;
  uint64_t* stack = malloc(cap * sizeof *stack);
  if (!stack) return fail(rt, REMAP_CONFORMANCE_EFAILED, "trace: out of memory");
  size_t top = 0;
  remap_status s = REMAP_OK;
  for (size_t i = 0; i < n; i++)
    if (is_cell(rt, values[i])) stack[top++] = values[i];
  while (top > 0) {
    const cell* c = (const cell*)(uintptr_t)stack[--top];
    uint64_t car = load_slot(&c->car), cdr = load_slot(&c->cdr);
#ifdef BREAK_MARK
    if (cdr == NIL) continue;
#endif
    int r = remap_try_mark(rt->heap, c);
    if (r < 0) {
      s = fail(rt, r, "remap_try_mark(heap offset %#llx)",
               (unsigned long long)((uintptr_t)c - rt->base));
      break;
    }
    if (r == 0) continue; /* marked already, or black */
    if (is_cell(rt, car)) stack[top++] = car;
    if (is_cell(rt, cdr)) stack[top++] = cdr;
  }
  free(stack);
  return s;
}

static remap_status cons_mark(void* vrt) {
  cons_rt* rt = vrt;
  /* The GC pause starts by retiring the mutator's allocation region. */
  remap_status s = retire_region(rt);
  return s != REMAP_OK ? s : trace(rt, rt->roots, NROOTS);
}

/* Traces what the log holds now (the mutator may go on adding to it). */
static remap_status trace_log(cons_rt* rt) {
  for (;;) {
    pthread_mutex_lock(&rt->log_lock);
    uint64_t* entries = rt->log;
    size_t n = rt->log_len;
    rt->log = NULL;
    rt->log_len = rt->log_cap = 0;
    pthread_mutex_unlock(&rt->log_lock);
    if (n == 0) return REMAP_OK;
    remap_status s = trace(rt, entries, n);
    free(entries);
    if (s != REMAP_OK) return s;
  }
}

static remap_status cons_concurrent_mark(void* vrt, int phase) {
  cons_rt* rt = vrt;
  remap_status s;
  switch (phase) {
    case REMAP_CONFORMANCE_MARK_INITIAL:
      if ((s = retire_region(rt)) != REMAP_OK) return s;
      memcpy(rt->snapshot, rt->roots, sizeof rt->snapshot);
      __atomic_store_n(&rt->barrier_on, 1, __ATOMIC_RELEASE);
      return REMAP_OK;
    case REMAP_CONFORMANCE_MARK_TRACE:
      if ((s = trace(rt, rt->snapshot, NROOTS)) != REMAP_OK) return s;
      return trace_log(rt);
    case REMAP_CONFORMANCE_MARK_FINAL:
      if ((s = trace_log(rt)) != REMAP_OK) return s;
      __atomic_store_n(&rt->barrier_on, 0, __ATOMIC_RELEASE);
      return retire_region(rt);
  }
  return fail(rt, REMAP_CONFORMANCE_EFAILED, "concurrent_mark: unknown phase %d", phase);
}

static remap_status cons_forward_roots(void* vrt) {
  cons_rt* rt = vrt;
  for (size_t i = 0; i < NROOTS; i++) {
#ifdef BREAK_ROOTS
    if (i == 0) continue;
#endif
    remap_status s = remap_forward_value(rt->heap, rt->roots[i], &rt->roots[i]);
    if (s != REMAP_OK) return fail(rt, s, "remap_forward_value(root %zu)", i);
  }
  return REMAP_OK;
}

static size_t cons_roots(void* vrt, uint64_t* out, size_t cap) {
  cons_rt* rt = vrt;
  for (size_t i = 0; i < NROOTS && i < cap; i++) out[i] = rt->roots[i];
  return NROOTS;
}

static remap_status cons_checksum(void* rt, uint64_t* out) { return walk(rt, 0, out); }

static remap_status cons_verify(void* rt) { return walk(rt, 1, NULL); }

/* The mutator: new cells on the lists (allocation), and set-car! of one
 * root cell to another root's list (a write that may close a cycle). Safe
 * beside remap_compact: every read and write here is an ordinary access
 * that libremap makes see to-space, and allocation is remap_region_acquire. */
static remap_status cons_mutate(void* vrt, uint64_t seed) {
  cons_rt* rt = vrt;
  seed_random(rt, seed);
#ifdef BREAK_STALE
  /* A counter kept in root 0's cell, bumped through the copy taken at the
   * last mutation, and mixed into this mutation's choices: after a cycle
   * that moved the cell, a read and a write of whatever lies at its old
   * address. */
  if (is_cell(rt, rt->cached_root0)) {
    cell* counter = (cell*)(uintptr_t)rt->cached_root0;
    counter->car = IS_FIXNUM(counter->car) ? counter->car + 2 : FIXNUM(0);
    seed_random(rt, seed ^ counter->car);
  }
#endif
  size_t cells = rt->capacity / 64 / CELL_BYTES;
  for (size_t i = 0; i < cells; i++) {
    remap_status s = push_random_cell(rt);
    if (s != REMAP_OK) return s;
    uint64_t r = next_random(rt);
    uint64_t a = rt->roots[r % NROOTS], b = rt->roots[(r >> 8) % NROOTS];
    if (i % 16 == 0 && is_cell(rt, a) && b != NIL) store_slot(rt, &((cell*)(uintptr_t)a)->car, b);
    if (i % 16 == 8 && is_cell(rt, a)) {
      /* Pop root a's list and cut the popped cell from the rest: the rest
       * is now reachable only from a root the tracer's snapshot does not
       * have; the barrier logs it when the cdr is overwritten. */
      cell* head = (cell*)(uintptr_t)a;
      rt->roots[r % NROOTS] = load_slot(&head->cdr);
      store_slot(rt, &head->cdr, NIL);
    }
  }
#ifdef BREAK_STALE
  rt->cached_root0 = rt->roots[0];
#endif
  return REMAP_OK;
}

static remap_status cons_inject_fault(void* vrt, int fault) {
  cons_rt* rt = vrt;
  if (fault != REMAP_CONFORMANCE_FAULT_NONE && fault != REMAP_CONFORMANCE_FAULT_SIZE_UNALIGNED &&
      fault != REMAP_CONFORMANCE_FAULT_SLOT_OUTSIDE)
    return fail(rt, REMAP_EUNSUPPORTED, "cons cannot tell lie %d", fault);
  /* Lie about the first reachable cell: the tracer reaches it for sure. */
  rt->lie_at = 0;
  for (size_t i = 0; i < NROOTS && !rt->lie_at; i++)
    if (is_cell(rt, rt->roots[i])) rt->lie_at = rt->roots[i];
  rt->lie = fault;
  return REMAP_OK;
}

/* The runtime hands cells to the kernel: each root's cell goes out through a
 * pipe with write(2) (the kernel reads it) and comes back with read(2) (the
 * kernel writes it). A kernel access cannot take the SIGBUS that produces a
 * page for a user access: remap_touch produces the cell's page first. */
static remap_status cons_syscalls(void* vrt) {
  cons_rt* rt = vrt;
  int fds[2];
  if (pipe(fds) != 0)
    return fail(rt, REMAP_CONFORMANCE_EFAILED, "pipe: %s", strerror(errno));
  remap_status s = REMAP_OK;
  for (size_t i = 0; i < NROOTS && s == REMAP_OK; i++) {
    if (!is_cell(rt, rt->roots[i])) continue;
    cell* c = (cell*)(uintptr_t)rt->roots[i];
#ifndef BREAK_TOUCH
    if ((s = remap_touch(rt->heap, c, CELL_BYTES)) != REMAP_OK) {
      fail(rt, s, "remap_touch(root %zu)", i);
      break;
    }
#endif
    if (write(fds[1], c, CELL_BYTES) != CELL_BYTES || read(fds[0], c, CELL_BYTES) != CELL_BYTES)
      s = fail(rt, REMAP_CONFORMANCE_EFAILED,
               "write(2)/read(2) of root %zu's cell (heap offset %#llx): %s", i,
               (unsigned long long)((uintptr_t)c - rt->base), strerror(errno));
  }
  close(fds[0]);
  close(fds[1]);
  return s;
}

static const char* cons_last_error(void* rt) {
  return rt ? ((cons_rt*)rt)->error : create_error;
}

static const remap_conformance_runtime cons_runtime = {
    .struct_size = sizeof(remap_conformance_runtime),
    .abi_version = REMAP_CONFORMANCE_ABI_VERSION,
    .capabilities = REMAP_CONFORMANCE_TAGGED_SLOTS | REMAP_CONFORMANCE_CONCURRENT_MUTATORS |
                    REMAP_CONFORMANCE_NEEDS_SYSCALLS | REMAP_CONFORMANCE_CONCURRENT_MARKING,
    .name = "cons",
    .create = cons_create,
    .destroy = cons_destroy,
    .heap = cons_heap,
    .mark = cons_mark,
    .forward_roots = cons_forward_roots,
    .roots = cons_roots,
    .checksum = cons_checksum,
    .verify = cons_verify,
    .mutate = cons_mutate,
    .inject_fault = cons_inject_fault,
    .last_error = cons_last_error,
    .syscalls = cons_syscalls,
    .concurrent_mark = cons_concurrent_mark,
};

EXPORT const remap_conformance_runtime* remap_conformance_runtime_v1(void) {
  return &cons_runtime;
}

/*
 * libremap_conformance.h — what a runtime exports so that libremap's
 * conformance kit can test the runtime's own integration with libremap.
 *
 *   python -m pytest --pyargs libremap.conformance --libremap-runtime=PATH
 *
 * PATH is a shared library exporting one symbol,
 *
 *   const remap_conformance_runtime* remap_conformance_runtime_v1(void);
 *
 * that returns a table of callbacks. The split of work is the one a real
 * embedding has: the runtime owns its object model, its object graph, its
 * tracer and its roots; the KIT drives libremap's cycle (remap_prepare,
 * remap_flip, remap_compact, remap_finish) on the runtime's heap, in a
 * subprocess per test, on every backend and fault mode the kernel offers.
 * What the kit checks, and so what the callbacks must make observable:
 *
 *   - a cycle leaves the graph the runtime reaches unchanged: checksum()
 *     before and after are equal, and equal to the stw backend's;
 *   - forward_roots() rewrites every root the way remap_forward_value says
 *     (the kit compares roots() before the flip and after);
 *   - the marking is complete: no live reference slot is left stray
 *     (remap_cycle_stats.slots_stray, and REMAP_HEAP_VERIFY_REFS);
 *   - the runtime's own invariants hold after every cycle: verify();
 *   - a lying object model is refused with REMAP_EOBJMODEL and leaves the
 *     heap usable (inject_fault());
 *   - a cycle is invisible to the mutator: mutate, cycle, mutate leaves
 *     what mutate, mutate leaves (no heap address kept across a cycle);
 *   - the mutator may run through compaction (CONCURRENT_MUTATORS), the
 *     runtime may fork() in the middle of a cycle, and hand heap memory to
 *     system calls while compacting (syscalls(), NEEDS_SYSCALLS);
 *   - the runtime's part of the pause (forward_roots) does not grow with
 *     the heap.
 *
 * Rules for every callback: it runs on the kit's thread (mutate may run on
 * a second thread, see REMAP_CONFORMANCE_CONCURRENT_MUTATORS); it returns
 * REMAP_OK, the status of the libremap call that failed, or
 * REMAP_CONFORMANCE_EFAILED for a failure of the runtime's own, and then
 * last_error() says what went wrong. No C++ exception may cross it.
 *
 * Versioning: the table starts with struct_size and abi_version. Fields are
 * only ever appended; the kit reads a field only if struct_size covers it,
 * so a runtime built against an older header keeps working, and a runtime
 * whose abi_version the kit does not know is refused with a message.
 * Plain C, no macros needed at run time: the kit reads this header with
 * cffi after `cc -E -P -DREMAP_CDEF`.
 */
#ifndef LIBREMAP_CONFORMANCE_H
#define LIBREMAP_CONFORMANCE_H

/* Under REMAP_CDEF the kit has already given cffi libremap.h's declarations. */
#ifndef REMAP_CDEF
#include "libremap.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

enum {
  /* The table layout this header describes. */
  REMAP_CONFORMANCE_ABI_VERSION = 1,
  /* A callback's own check failed (not a libremap call): see last_error. */
  REMAP_CONFORMANCE_EFAILED = -100
};

/* Capability bits: what the runtime has, so the kit runs the tests that
 * exercise it and skips the others with this reason in the report. */
enum {
  /* It allocates objects with remap_alloc_large (>= the heap's
   * large_object_threshold) in the graphs create/mutate build. */
  REMAP_CONFORMANCE_LARGE_OBJECTS = 1 << 0,
  /* Its slots hold immediates beside references, described to the heap with
   * remap_heap_config's ref_* fields (fixnums, Smis, tagged pointers). */
  REMAP_CONFORMANCE_TAGGED_SLOTS = 1 << 1,
  /* mutate() may run on another thread while the heap is COMPACTING (after
   * forward_roots, beside remap_compact): its reads and writes fault pages
   * in, its allocations come from remap_region_acquire. */
  REMAP_CONFORMANCE_CONCURRENT_MUTATORS = 1 << 2,
  /* It hands heap memory to system calls (read(2), write(2), ...) while
   * compacting, which needs REMAP_FAULT_THREAD or remap_touch first. */
  REMAP_CONFORMANCE_NEEDS_SYSCALLS = 1 << 3,
  /* It marks beside its mutator (remap_cycle_begin, a write barrier):
   * concurrent_mark() is set. */
  REMAP_CONFORMANCE_CONCURRENT_MARKING = 1 << 4
};

/* The phases of concurrent_mark(), in the order the kit calls them. */
typedef enum remap_conformance_mark_phase {
  REMAP_CONFORMANCE_MARK_INITIAL = 1, /* initial-mark pause, before remap_cycle_begin */
  REMAP_CONFORMANCE_MARK_TRACE = 2,   /* beside the mutator */
  REMAP_CONFORMANCE_MARK_FINAL = 3    /* remark pause: the mutator is stopped */
} remap_conformance_mark_phase;

/* Lies inject_fault can be asked to tell, each about one reachable object. */
typedef enum remap_conformance_fault {
  REMAP_CONFORMANCE_FAULT_NONE = 0,      /* tell the truth again */
  REMAP_CONFORMANCE_FAULT_SIZE_UNALIGNED = 1, /* object_size: not a multiple of 8 */
  REMAP_CONFORMANCE_FAULT_SLOT_OUTSIDE = 2    /* visit_ref_offsets: an offset >= the size */
} remap_conformance_fault;

typedef struct remap_conformance_runtime {
  /* sizeof(remap_conformance_runtime) as the runtime was compiled: fields
   * past it are absent (older header). */
  size_t struct_size;
  /* REMAP_CONFORMANCE_ABI_VERSION the runtime was compiled against. */
  uint32_t abi_version;
  /* REMAP_CONFORMANCE_* capability bits. */
  uint32_t capabilities;
  /* Shown in the report, e.g. "cons". Static storage. */
  const char* name;

  /* Creates a runtime instance, its heap and its initial object graph.
   * `kit` is a remap_heap_config whose capacity, region_size, backend,
   * fault_mode, gc_threads, handler_threads and flags the runtime must keep
   * (the kit chooses them per test); the runtime sets model, ref_* and
   * large_object_threshold, calls remap_heap_create, and allocates a graph
   * with garbage in it, filling a third to a half of the capacity (the pause
   * check compares two capacities; mutate needs room). The graph must be
   * a function of `seed` alone, never of an address, so that two instances
   * built with one seed checksum alike on every backend. */
  remap_status (*create)(const remap_heap_config* kit, uint64_t seed, void** out);
  /* Releases the instance and its heap (remap_heap_destroy). NULL is fine. */
  void (*destroy)(void* rt);
  /* The instance's heap: the kit drives its cycles and reads its stats. */
  remap_heap* (*heap)(void* rt);

  /* The runtime's tracer, heap IDLE: from the roots, report every reachable
   * object once with remap_mark or remap_try_mark. */
  remap_status (*mark)(void* rt);
  /* Right after remap_flip, in the pause: rewrite every root with
   * remap_forward / remap_forward_value, and anything the runtime keeps
   * outside the heap that names heap objects (tables, handles). */
  remap_status (*forward_roots)(void* rt);
  /* Copies up to `cap` root values, in the heap's slot encoding, into out
   * (out may be NULL when cap is 0) and returns how many roots there are.
   * The number and order of roots must not change across forward_roots. */
  size_t (*roots)(void* rt, uint64_t* out, size_t cap);

  /* An address-independent checksum of everything reachable from the roots:
   * object contents, immediates, and the shape of the graph (a reference
   * hashes as its target's visit order or identity, never as an address).
   * It must not crash on a corrupt heap: a value that is not a valid object
   * should change the checksum, not follow it. Heap IDLE. */
  remap_status (*checksum)(void* rt, uint64_t* out);
  /* The runtime's own consistency check of its reachable graph (headers,
   * reference targets, counts). REMAP_CONFORMANCE_EFAILED with last_error
   * naming the first broken object. Heap IDLE. */
  remap_status (*verify)(void* rt);
  /* The mutator: change the graph deterministically from `seed` (allocate,
   * drop, rewrite slots). What it does must be a function of the seed and
   * the reachable graph only, not of addresses or of the heap's layout (how
   * much a region or a compacted region's tail holds): then a cycle between
   * two mutations must be invisible, which catches pointers the runtime
   * kept across the cycle without forwarding them. Heap IDLE, or COMPACTING
   * with CONCURRENT_MUTATORS. */
  remap_status (*mutate)(void* rt, uint64_t seed);

  /* Optional (NULL: the kit skips the object-model tests): make the object
   * model lie about one reachable object until called with
   * REMAP_CONFORMANCE_FAULT_NONE. REMAP_EUNSUPPORTED for a fault it cannot
   * tell. */
  remap_status (*inject_fault)(void* rt, int fault);
  /* The instance's message for its last failed callback; "" if none. May be
   * called with rt NULL after create failed. Never NULL. */
  const char* (*last_error)(void* rt);

  /* Optional (NULL: the kit skips the system-call tests), expected with
   * REMAP_CONFORMANCE_NEEDS_SYSCALLS: while the heap is COMPACTING, before
   * remap_compact, hand some reachable objects to system calls the way the
   * runtime does (e.g. write(2) them to a pipe and read(2) them back) and
   * leave them unchanged. A kernel access to a page libremap has not
   * produced yet cannot take the SIGBUS that a user access takes: it fails
   * with EFAULT in REMAP_FAULT_SIGBUS mode (and on the sigsegv backend's
   * PROT_NONE pages) unless the runtime calls remap_touch on the range
   * first; in REMAP_FAULT_THREAD mode the handler threads serve it. */
  remap_status (*syscalls)(void* rt);

  /* Optional, with REMAP_CONFORMANCE_CONCURRENT_MARKING (NULL: the kit
   * skips the concurrent-marking tests): the tracer of a cycle begun with
   * remap_cycle_begin, split at the pauses, while mutate() runs on another
   * thread between INITIAL and FINAL.
   *   INITIAL  (pause) retire allocation regions (remap_cycle_begin needs
   *            them all retired), take the roots as they are now, turn the
   *            write barrier on (a store over a reference logs the old value);
   *   TRACE    (beside the mutator) mark from those roots and from the log
   *            with remap_mark / remap_try_mark; objects allocated since
   *            remap_cycle_begin are black (remap_try_mark answers 0);
   *   FINAL    (pause, mutator stopped) trace what the log still holds, turn
   *            the barrier off, retire allocation regions (remap_flip needs
   *            them retired).
   * The kit then calls remap_prepare, remap_flip and forward_roots. */
  remap_status (*concurrent_mark)(void* rt, int phase);
} remap_conformance_runtime;

/* The one symbol a runtime library exports (name it exactly so). */
typedef const remap_conformance_runtime* (*remap_conformance_entry_fn)(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LIBREMAP_CONFORMANCE_H */

/*
 * libremap.h — the stable C ABI of libremap.
 *
 * libremap gives a managed runtime concurrent, zero-copy heap compaction on
 * Linux, built on userfaultfd's UFFDIO_MOVE (Linux 6.8+). This is the only
 * public header. Rules every entry point keeps:
 *
 *   - Every call returns remap_status: 0 is success, negative values are
 *     error classes. remap_last_error() gives the calling thread's message
 *     for its last failed call (never NULL).
 *   - Handles are opaque. *_destroy / *_close accept NULL.
 *   - Every struct passed in starts with `size_t struct_size`. Fill it with
 *     sizeof(the struct) (the *_init functions do). A caller built against an
 *     older, smaller struct keeps working; a size the library cannot handle is
 *     rejected with REMAP_EINVAL and a message naming the struct.
 *   - No C++ exception ever leaves the library; it never takes ownership of
 *     runtime memory and calls back into the runtime only through the
 *     remap_object_model callbacks.
 *
 * The header must stay parseable by cffi after `cc -E -P -DREMAP_CDEF`:
 * constants a caller needs at run time are enums, not macros.
 */
#ifndef LIBREMAP_H
#define LIBREMAP_H

#ifndef REMAP_CDEF
#include <stddef.h>
#include <stdint.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#if defined(REMAP_CDEF)
#define REMAP_API
#elif defined(LIBREMAP_BUILDING)
#define REMAP_API __attribute__((visibility("default")))
#else
#define REMAP_API
#endif

/* ------------------------------------------------------------------------
 * Versions and status
 * ---------------------------------------------------------------------- */

enum {
  REMAP_VERSION_MAJOR = 0,
  REMAP_VERSION_MINOR = 1,
  REMAP_VERSION_PATCH = 0,
  /* Bumped whenever a struct layout or a signature changes incompatibly. */
  REMAP_ABI_VERSION = 1
};

typedef int32_t remap_status;

enum {
  REMAP_OK = 0,
  REMAP_EINVAL = -1,       /* an argument is wrong (NULL, size, alignment, range) */
  REMAP_EUNSUPPORTED = -2, /* the kernel lacks what this needs */
  REMAP_EPERM = -3,        /* permission denied (sysctl, seccomp, capabilities) */
  REMAP_ENOMEM = -4,       /* out of memory or address space */
  REMAP_EPHASE = -5,       /* call not allowed in the heap's current phase */
  REMAP_EKERNEL = -6,      /* a system call failed in a way not classified below */
  REMAP_EBUSY = -7,        /* a page is not exclusive (fork COW, KSM, pinned, writeback);
                              remap_heap_resize: memory it would drop is in use */
  REMAP_EEXIST = -8,       /* destination already populated */
  REMAP_ENOENT = -9,       /* source hole, or no mapping */
  REMAP_EAGAIN = -10,      /* the mm is changing; retry */
  REMAP_ELIMIT = -11,      /* a system limit would be exceeded (vm.max_map_count) */
  REMAP_EOBJMODEL = -12,   /* the runtime's object model returned nonsense */
  REMAP_EINTERNAL = -13    /* a bug in libremap: please report the message */
};

/* Packed (major << 16) | (minor << 8) | patch of the loaded library. */
REMAP_API uint32_t remap_version(void);
REMAP_API const char* remap_version_string(void);
REMAP_API uint32_t remap_abi_version(void);
/* The calling thread's message for its last failed call; "" if none. */
REMAP_API const char* remap_last_error(void);
/* A short constant name for a status ("REMAP_EINVAL"); never NULL. */
REMAP_API const char* remap_status_name(remap_status status);

/* ------------------------------------------------------------------------
 * Backends and fault delivery
 * ---------------------------------------------------------------------- */

typedef enum remap_backend {
  REMAP_BACKEND_AUTO = 0,    /* move where the kernel has MOVE, else copy, else stw */
  REMAP_BACKEND_MOVE = 1,    /* UFFDIO_MOVE, recycled buffer pages */
  REMAP_BACKEND_COPY = 2,    /* UFFDIO_COPY, from-space released by madvise */
  REMAP_BACKEND_MINOR = 3,   /* shmem heap, UFFDIO_CONTINUE */
  REMAP_BACKEND_SIGSEGV = 4, /* shmem heap, PROT_NONE + SIGSEGV + mprotect */
  REMAP_BACKEND_STW = 5      /* everything in the pause */
} remap_backend;

typedef enum remap_fault_mode {
  REMAP_FAULT_AUTO = 0,   /* SIGBUS where available, else handler threads */
  REMAP_FAULT_SIGBUS = 1, /* the faulting thread produces its page in a SIGBUS handler */
  REMAP_FAULT_THREAD = 2  /* handler threads read the uffd and produce the page */
} remap_fault_mode;

REMAP_API const char* remap_backend_name(int backend);
REMAP_API const char* remap_fault_mode_name(int fault_mode);

/* What a backend can do (remap_backend_caps). Added later in 0.1 (additive,
 * ABI 1), with the three calls below. */
typedef enum remap_backend_cap {
  REMAP_BACKEND_CAP_CONCURRENT = 1 << 0,  /* compacts while mutators run (every one but stw) */
  REMAP_BACKEND_CAP_UFFD = 1 << 1,        /* takes faults through a userfaultfd: the fault
                                             mode applies, and the probe must offer one */
  REMAP_BACKEND_CAP_CYCLE_BEGIN = 1 << 2, /* remap_cycle_begin works (allocation beside a
                                             prepared cycle, concurrent marking) */
  REMAP_BACKEND_CAP_SHARED_HEAP = 1 << 3  /* the heap lives on a memfd (MAP_SHARED) */
} remap_backend_cap;

/* Backend numbers run from 0 (REMAP_BACKEND_AUTO) to remap_backend_count() - 1,
 * each named by remap_backend_name; the library's registry of backends is
 * the one list of them. */
REMAP_API int remap_backend_count(void);
/* remap_backend_cap bits of `backend`; 0 for REMAP_BACKEND_AUTO (it is
 * resolved to a backend when a heap is created) and for unknown numbers. */
REMAP_API uint32_t remap_backend_caps(int backend);
/* REMAP_FEATURE_* bits `backend` needs from the kernel's userfaultfd besides
 * those of its fault mode (REMAP_FEATURE_SIGBUS); 0 if none or unknown. */
REMAP_API uint64_t remap_backend_uffd_features(int backend);

/* ------------------------------------------------------------------------
 * Kernel capability probe
 * ---------------------------------------------------------------------- */

typedef enum remap_uffd_path {
  REMAP_UFFD_NONE = 0,          /* no way to open a userfaultfd */
  REMAP_UFFD_SYSCALL = 1,       /* userfaultfd(2), full mode */
  REMAP_UFFD_DEV = 2,           /* /dev/userfaultfd + USERFAULTFD_IOC_NEW */
  REMAP_UFFD_USER_MODE_ONLY = 3 /* userfaultfd(UFFD_USER_MODE_ONLY) */
} remap_uffd_path;

typedef enum remap_thp_mode {
  REMAP_THP_UNKNOWN = 0,
  REMAP_THP_ALWAYS = 1,
  REMAP_THP_MADVISE = 2,
  REMAP_THP_NEVER = 3
} remap_thp_mode;

typedef struct remap_probe_info {
  size_t struct_size;
  char kernel_release[65];     /* uname -r */
  int uffd_available;          /* 1 if some path opened a userfaultfd */
  int uffd_path;               /* remap_uffd_path of the best path that worked */
  int uffd_syscall_errno;      /* errno of userfaultfd(2) full mode, 0 if it worked */
  int uffd_dev_errno;          /* errno of /dev/userfaultfd, 0 if it worked or was not tried */
  int uffd_user_mode_errno;    /* errno of UFFD_USER_MODE_ONLY, 0 if it worked or was not tried */
  uint64_t uffd_features;      /* UFFD_FEATURE_* bits from the UFFDIO_API handshake */
  uint64_t uffd_ioctls;        /* ioctl bits UFFDIO_REGISTER reports for anonymous memory */
  int mremap_dontunmap;        /* 1 if MREMAP_DONTUNMAP works on anonymous memory */
  int thp_mode;                /* remap_thp_mode */
  int64_t max_map_count;       /* vm.max_map_count, -1 if unreadable */
  int unprivileged_userfaultfd;/* vm.unprivileged_userfaultfd, -1 if unreadable */
  int swap_present;            /* 1 if /proc/swaps lists an active swap area */
  size_t page_size;
  uint32_t euid;
  int cap_sys_ptrace;          /* 1 if the effective set holds CAP_SYS_PTRACE */
  int auto_backend;            /* remap_backend that REMAP_BACKEND_AUTO resolves to */
  char auto_reason[160];       /* why, in one sentence */
} remap_probe_info;

/* Fills *out. Never fails for lack of userfaultfd: that is reported inside. */
REMAP_API remap_status remap_probe(remap_probe_info* out);
/* Name of UFFD_FEATURE bit `bit` (0..63), e.g. "move", "sigbus"; NULL if unknown. */
REMAP_API const char* remap_uffd_feature_name(unsigned bit);

/* ------------------------------------------------------------------------
 * The kernel layer: userfaultfd primitives with libremap's error handling.
 * For runtimes that drive the kernel themselves, and for tests that pin the
 * kernel's rules. Lengths and addresses must be page aligned.
 * ---------------------------------------------------------------------- */

typedef struct remap_uffd remap_uffd;

enum {
  /* remap_uffd_open flags */
  REMAP_UFFD_OPEN_NONBLOCK = 1,     /* O_NONBLOCK on the fd */
  REMAP_UFFD_OPEN_USER_MODE = 2,    /* ask for UFFD_USER_MODE_ONLY */
  /* UFFD_FEATURE_* bits most callers need (the kernel's numbering) */
  REMAP_FEATURE_SIGBUS = 1 << 7,
  REMAP_FEATURE_THREAD_ID = 1 << 8,
  REMAP_FEATURE_MINOR_SHMEM = 1 << 10,
  REMAP_FEATURE_MOVE = 1 << 16,
  /* remap_uffd_register modes (UFFDIO_REGISTER_MODE_*) */
  REMAP_REGISTER_MISSING = 1,
  REMAP_REGISTER_WP = 2,
  REMAP_REGISTER_MINOR = 4,
  /* mode bits of move / copy */
  REMAP_MOVE_DONTWAKE = 1,
  REMAP_MOVE_ALLOW_SRC_HOLES = 2,
  REMAP_COPY_DONTWAKE = 1
};

/* Opens a userfaultfd (paths in the order of the probe) and does the
 * UFFDIO_API handshake asking for `features` (0 = none). */
REMAP_API remap_status remap_uffd_open(uint64_t features, int flags, remap_uffd** out);
REMAP_API void remap_uffd_close(remap_uffd* uffd);
REMAP_API int remap_uffd_fd(const remap_uffd* uffd);
/* Feature bits the handshake granted. */
REMAP_API uint64_t remap_uffd_features(const remap_uffd* uffd);
REMAP_API remap_status remap_uffd_register(remap_uffd* uffd, void* addr, size_t len, unsigned mode,
                                           uint64_t* ioctls_out);
REMAP_API remap_status remap_uffd_unregister(remap_uffd* uffd, void* addr, size_t len);
/* The four "fill" ioctls. *done (may be NULL) receives the bytes handled
 * before the call stopped; a short move (EAGAIN with progress) is retried
 * internally, so a non-OK status means the page at addr + *done failed with
 * that class. REMAP_EEXIST means that page was already populated. */
REMAP_API remap_status remap_uffd_move(remap_uffd* uffd, void* dst, void* src, size_t len,
                                       unsigned mode, size_t* done);
REMAP_API remap_status remap_uffd_copy(remap_uffd* uffd, void* dst, const void* src, size_t len,
                                       unsigned mode, size_t* done);
REMAP_API remap_status remap_uffd_zeropage(remap_uffd* uffd, void* dst, size_t len, size_t* done);
REMAP_API remap_status remap_uffd_continue(remap_uffd* uffd, void* dst, size_t len, size_t* done);
REMAP_API remap_status remap_uffd_wake(remap_uffd* uffd, void* addr, size_t len);

/* ------------------------------------------------------------------------
 * The runtime's object model
 * ---------------------------------------------------------------------- */

typedef void (*remap_visit_fn)(void* vctx, size_t offset);

/* Both callbacks are called at remap_mark, on the marking thread, once per
 * object per cycle (the library records each object's size and slot offsets
 * in its bitmaps then); and for objects allocated during a cycle begun with
 * remap_cycle_begin ("black" objects, never marked), while their pages are
 * produced: on GC threads and inside the SIGBUS handler of a mutator that
 * touches one. They must only read the object (no locks, no allocation), must
 * not depend on the values of reference slots, and the class metadata they
 * read must not live in the moving heap. What they return is checked where
 * it is used: a size that is not a positive multiple of 8 or runs past
 * allocated memory, or a slot offset outside the object or not 8-aligned,
 * fails that remap_mark with REMAP_EOBJMODEL and changes nothing.
 *
 * What a slot value means (see also remap_heap_config's ref_* fields):
 * a value is decoded as a reference only if it passes the heap's reference
 * check; its address is the value without its tag bits. A reference whose
 * address is the start of an object marked this cycle is rewritten to the
 * object's new address with the same tag bits. Every other value is left
 * exactly as it is: NULL, values outside the heap, immediates (fixnums,
 * Smis, ...), and in-heap values that are not a marked object start
 * (interior or derived pointers, stale pointers): the library never
 * rewrites those. It counts the ones that point into memory that moves or
 * is freed (remap_cycle_stats.slots_stray), and REMAP_HEAP_VERIFY_REFS
 * refuses such a cycle at prepare with REMAP_EOBJMODEL naming the slot. */
typedef struct remap_object_model {
  size_t struct_size;
  void* ctx;
  /* Size in bytes of the object at obj: a multiple of 8, > 0. */
  size_t (*object_size)(void* ctx, const void* obj);
  /* Calls visit(vctx, offset) for each reference slot (8-byte aligned byte
   * offset from the object start, inside the object). A slot may hold any
   * value; see above for which ones are rewritten. May be NULL: no
   * references. */
  void (*visit_ref_offsets)(void* ctx, const void* obj, remap_visit_fn visit, void* vctx);
} remap_object_model;

/* ------------------------------------------------------------------------
 * Heaps
 * ---------------------------------------------------------------------- */

typedef struct remap_heap remap_heap;

typedef struct remap_heap_config {
  size_t struct_size;
  size_t capacity;            /* bytes, a multiple of region_size */
  size_t region_size;         /* power of two, >= 64 KiB; default 256 KiB */
  double dense_threshold;     /* live ratio at or above which a region stays put; default 0.90 */
  int backend;                /* remap_backend; default AUTO */
  int fault_mode;             /* remap_fault_mode; default AUTO */
  unsigned gc_threads;        /* library GC threads for remap_compact, the caller's included;
                                 default 1. The ones the library starts claim work only while the
                                 machine has a CPU free (stats.helper_wait_ns; a process pinned to
                                 fewer CPUs than the machine has cannot tell, and they always
                                 work): threads a runtime puts in remap_compact_work always work */
  unsigned handler_threads;   /* threads reading the uffd in THREAD mode; default 1 */
  size_t pool_max_pages;      /* recycled pages kept populated; default 4096 (16 MiB) */
  size_t large_object_threshold; /* bytes; default region_size / 2 */
  remap_object_model model;
  /* Added in 0.1 after model: a caller whose struct_size ends at model gets 0. */
  unsigned flags;             /* REMAP_HEAP_* bits; default 0 */
  /* Added later in 0.1 (additive, ABI 1: a caller whose struct_size ends
   * at flags gets 0, i.e. untagged references). How a reference slot encodes a reference:
   *   a slot value v is a reference iff (v & ref_check_mask) == ref_check_value;
   *   its address is v & ~ref_tag_mask; the bits v & ref_tag_mask are kept
   *   when it is forwarded: new value = forward(address) | (v & ref_tag_mask).
   * Tag bits may only be the low 3 bits (objects are 8-aligned) and bits
   * 47..63 (above any user address: NaN-boxing, top-byte tags).
   * Examples: Guile-like (heap pointers end in 000, fixnums in 10):
   *   check_mask 7, check_value 0, tag_mask 0. V8-like (Smis end in 0,
   *   pointers are address | 1, weak ones | 3): check_mask 1, check_value 1,
   *   tag_mask 3. Lisp-style low tags (address | 3-bit type tag): check 0/0,
   *   tag_mask 7. */
  uint64_t ref_tag_mask;      /* default 0 */
  uint64_t ref_check_mask;    /* default 0: every value is a reference candidate */
  uint64_t ref_check_value;   /* default 0; must have no bit outside ref_check_mask */
  /* Added later in 0.1 (additive, ABI 1: a caller whose struct_size ends at
   * ref_check_value gets 0, a heap of fixed size). The heap's address range
   * is reserved for max_capacity bytes at create (address space only); the
   * heap starts at `capacity` bytes, and remap_heap_resize moves its
   * capacity anywhere up to max_capacity later. Every table follows the
   * capacity in use (the most it has been, for the region table); the mark
   * bitmaps reserve address space for the maximum, touched where marked. */
  size_t max_capacity;        /* bytes, a multiple of region_size, >= capacity; default 0: capacity */
} remap_heap_config;

enum {
  /* remap_prepare also checks that every reference slot of every live object
   * holds NULL, a value outside the heap, an immediate (per the ref_* fields),
   * or a reference to a marked object start (a missed mark or an interior
   * pointer otherwise: REMAP_EOBJMODEL naming the slot). One pass over the
   * recorded slots in the runtime's pause: for development and tests. (Slot
   * offsets are always checked, at remap_mark.) */
  REMAP_HEAP_VERIFY_REFS = 1,
  /* Large objects never move. By default a live large object slides down,
   * whole regions at a time, over dead large objects and free regions
   * (remap_forward gives its new address like any object's); its pages are
   * moved, not copied, by the move backend, and pages without reference
   * slots are never read or written. Set this if the runtime
   * hands large objects' addresses to code it cannot update. */
  REMAP_HEAP_PIN_LARGE = 2,
  /* Added later in 0.1 (additive, ABI 1): older libraries refuse the bit
   * with REMAP_EINVAL ("flags ... has bits this library does not know").
   * Survivors leave sparse regions. By default a FRAGMENTED region's live
   * objects slide to its own start, so a region is freed only when nothing
   * in it survives, and survivors spread over every region leave free bytes
   * but no free region (a large object then finds no room). With this bit
   * they are packed, in address order, into as few of the cycle's
   * FRAGMENTED regions as they fill — a region's survivors go together,
   * after the previous region's, into the lowest such region with room —
   * and the regions emptied are free after the cycle. It costs no more
   * copying (the same objects move either way) and fewer pages installed.
   * remap_forward answers for the new places as usual. */
  REMAP_HEAP_EVACUATE = 4
};

/* Sets struct_size (also of model) and every default. */
REMAP_API void remap_heap_config_init(remap_heap_config* config);

/* REMAP_ENOMEM, before anything is allocated, when the tables a cycle needs
 * for this capacity (about 1% of it: region table, forwarding prefix sums,
 * per-page tables) would exceed a quarter of the machine's physical memory. */
REMAP_API remap_status remap_heap_create(const remap_heap_config* config, remap_heap** out);
/* Releases everything. Not allowed while compaction runs (returns quietly
 * after finishing it). NULL is fine. */
REMAP_API void remap_heap_destroy(remap_heap* heap);

typedef enum remap_phase {
  REMAP_PHASE_IDLE = 0,       /* allocate, mark */
  REMAP_PHASE_PREPARED = 1,   /* forwarding computed; the heap must not change */
  REMAP_PHASE_COMPACTING = 2, /* flipped; pages are produced concurrently */
  REMAP_PHASE_BROKEN = 3      /* an unrecoverable kernel failure; only destroy works */
} remap_phase;

/* Memory handed out by remap_region_acquire reads as zero, on every backend
 * and after any number of cycles, provided the runtime never writes past the
 * cursor it later passes to remap_region_retire (bytes written past it are
 * the runtime's garbage: the library does not know they were written). Large
 * objects from remap_alloc_large read as zero likewise. */
typedef struct remap_heap_info {
  size_t struct_size;
  void* base;                 /* first byte of the heap */
  size_t capacity;
  size_t region_size;
  size_t region_count;
  size_t page_size;
  int phase;                  /* remap_phase */
  int backend;                /* resolved, never AUTO */
  int fault_mode;             /* resolved, never AUTO */
  uint64_t cycles;            /* completed compaction cycles */
  size_t regions_free;
  size_t bytes_allocated;     /* sum of region tops */
  /* Added later in 0.1 (additive, ABI 1). */
  size_t large_object_threshold; /* effective: remap_alloc_large takes sizes >= this */
  unsigned flags;             /* the REMAP_HEAP_* bits the heap was created with */
  /* Added later in 0.1 (additive, ABI 1): heap sizing. `capacity` and
   * `region_count` above are the current ones (remap_heap_resize). */
  size_t max_capacity;        /* the reservation: the capacity may grow up to this */
  size_t min_capacity;        /* the smallest capacity remap_heap_resize accepts now: the end of
                                 the highest region in use, at least one region */
  size_t committed_bytes;     /* bytes of [base, base + capacity) backed by memory now (one
                                 mincore(2): O(capacity / page size)) */
  size_t pool_bytes;          /* memory the move and copy engines' page pool holds between
                                 cycles (remap_heap_config.pool_max_pages at most; 0 otherwise) */
} remap_heap_info;

REMAP_API remap_status remap_heap_get_info(const remap_heap* heap, remap_heap_info* out);

/* Allocation. The runtime bump-allocates inside [*start, *end) that it gets
 * from remap_region_acquire (the free tail of a compacted region, else a free
 * region: the highest one in a heap with no small-object region, else a hole
 * below the highest small-object region, else the lowest free region above
 * it, so that the end of the heap is used last) and hands back with
 * remap_region_retire(heap, *start, cursor) when done. An object never crosses a region boundary. Objects of
 * at least large_object_threshold bytes go to remap_alloc_large:
 * page-aligned, whole pages, the lowest run of free regions that fits (so
 * small and large objects meet only when the heap is nearly full); they move
 * in a cycle like any object (they slide down whole pages at a time, see
 * REMAP_HEAP_PIN_LARGE). Allowed in IDLE and COMPACTING. */
REMAP_API remap_status remap_region_acquire(remap_heap* heap, void** start, void** end);
REMAP_API remap_status remap_region_retire(remap_heap* heap, void* start, void* cursor);
REMAP_API remap_status remap_alloc_large(remap_heap* heap, size_t size, void** out);

/* Marking (IDLE only; thread-safe): report each live object once. The
 * library reads its size through the object model. Re-marking the same
 * object is harmless; a mark that overlaps another marked object, lies
 * outside allocated memory, or is misaligned is rejected. */
REMAP_API remap_status remap_mark(remap_heap* heap, const void* obj);
/* Marking at bitmap speed: sets the object's mark bit and nothing else (no
 * callback, one atomic). Returns 1 if this call marked the object, 0 if it
 * was marked already or is black (see remap_cycle_begin), or a negative
 * remap_status for an address that cannot be an object start (misaligned,
 * not allocated memory, inside a large object) or a call out of phase: a
 * tracer can use it as its mark bitmap. Thread-safe, lock-free, IDLE only.
 * The object's size and reference slots are read at remap_prepare, once per
 * object (off the pause when prepare runs beside the mutators): an answer
 * that cannot be right, or two marked objects that overlap, fail that
 * prepare with REMAP_EOBJMODEL / REMAP_EINVAL naming the object, leaving the
 * heap IDLE with its marks (remap_clear_marks to start over). May be mixed
 * with remap_mark in one cycle. */
REMAP_API int remap_try_mark(remap_heap* heap, const void* obj);
/* Forget all marks (IDLE or PREPARED: a prepared cycle is cancelled). */
REMAP_API remap_status remap_clear_marks(remap_heap* heap);

/* A cycle whose marking and prepare run beside the mutators (a concurrent
 * collector: pauses are the runtime's initial mark, its remark, and the flip).
 * Call remap_cycle_begin in the initial-mark pause, with every region retired
 * (REMAP_EPHASE otherwise). From then until remap_flip:
 *   - mutators may allocate (remap_region_acquire / _retire / remap_alloc_large
 *     work in IDLE and PREPARED) and write any object;
 *   - what they allocate is "black": live this cycle by construction, never
 *     moved in it, and never marked (remap_mark of a black object is accepted
 *     and ignored). Black memory comes from free regions only (compacted
 *     regions' tails are not offered in this window). Its reference slots are
 *     found with the object model when its pages are produced: every region
 *     acquired in the window must hold objects parseable from its start to the
 *     cursor it is retired with (object_size of each, back to back), and a
 *     large object is one object;
 *   - the runtime marks (remap_mark, any thread) every object reachable at
 *     the snapshot, e.g. with a snapshot-at-the-beginning write barrier, and
 *     then calls remap_prepare, which may run while mutators run;
 *   - at remap_flip, in the final pause, every region must be retired again
 *     (REMAP_EPHASE otherwise, nothing changed): the runtime retires its TLABs
 *     in that pause. Slot values written up to the flip are honoured.
 * Large objects slide in such a cycle too: the regions they slide onto are
 * reserved at prepare, so that no region acquired in the window is one of
 * them. Backends move, copy and stw; minor and sigsegv answer
 * REMAP_EUNSUPPORTED. */
REMAP_API remap_status remap_cycle_begin(remap_heap* heap);

/* The cycle, in this order on every backend:
 *
 *   remap_mark ...          (IDLE) each live object
 *   remap_prepare           classify regions, compute forwarding (-> PREPARED)
 *   -- pause --
 *   remap_flip              stw: the whole compaction, -> IDLE;
 *                           others: -> COMPACTING, pages are produced lazily
 *                           (move, copy: a cycle that moves nothing produces
 *                           no page; -> IDLE if nothing died either, else
 *                           COMPACTING until compact/finish have released the
 *                           dead regions, after the pause)
 *   remap_forward(root) ... rewrite every root (valid on every backend here)
 *   -- resume mutators --
 *   remap_compact           only while COMPACTING (concurrent backends);
 *   remap_finish            after an stw flip the heap is IDLE: cycle done
 *
 * compact: runs the concurrent phase on the library's GC threads and
 * returns when every page is installed. work: the calling (runtime-owned)
 * thread joins as a GC worker until no work is left. finish: waits for every
 * page, unregisters, recycles from-space, fills the stats (COMPACTING ->
 * IDLE). A runtime that drives every backend the same way checks
 * remap_heap_get_info's phase after the flip: COMPACTING needs compact (or
 * work) and finish, IDLE means the cycle is complete. */
REMAP_API remap_status remap_prepare(remap_heap* heap);
REMAP_API remap_status remap_flip(remap_heap* heap);
REMAP_API remap_status remap_compact(remap_heap* heap);
REMAP_API remap_status remap_compact_work(remap_heap* heap);
REMAP_API remap_status remap_finish(remap_heap* heap);

/* New address of the object that started at `old` (an address from before
 * the flip). Valid from remap_prepare until the next cycle starts (the next
 * remap_mark, remap_clear_marks or remap_prepare), on every backend: roots
 * may be forwarded right after remap_flip whether or not the flip already
 * finished the cycle (stw), and weak tables later. Addresses outside the
 * heap come back unchanged; an in-heap address that is not the start of an
 * object marked this cycle is REMAP_EINVAL. Not concurrently with the call
 * that starts the next cycle. O(1), lock-free, async-signal-safe. */
REMAP_API remap_status remap_forward(const remap_heap* heap, const void* old, void** new_out);
/* The same for a slot value in the heap's reference encoding (ref_* fields
 * of remap_heap_config): a reference to a marked object start comes back
 * forwarded with its tag bits; every other value (immediates, NULL, values
 * outside the heap, in-heap values that are not a marked start) comes back
 * unchanged with REMAP_OK, exactly as the library treats slots. Same
 * validity and cost as remap_forward. */
REMAP_API remap_status remap_forward_value(const remap_heap* heap, uint64_t value,
                                           uint64_t* new_out);

/* Produce and install [addr, addr+len) now (COMPACTING), for runtimes that
 * hand heap memory to system calls during compaction. A no-op otherwise. */
REMAP_API remap_status remap_touch(remap_heap* heap, const void* addr, size_t len);

/* Added later in 0.1 (additive, ABI 1).
 * Blocks until no cycle is running (the heap is IDLE): e.g. a mutator whose
 * allocation failed while the heap was COMPACTING waits for the cycle that
 * frees memory. timeout_ns < 0 waits as long as it takes, 0 only looks.
 * REMAP_OK: IDLE. REMAP_EAGAIN: the timeout passed first. REMAP_EPHASE: the
 * heap is BROKEN (nothing will end the wait). Any thread may call it, the
 * library's own need nothing from it: COMPACTING ends without the mutators
 * (their faults are served), so a mutator may wait there. A cycle between
 * prepare and flip ends only when the runtime flips it: a thread the
 * runtime's pause waits for must not wait here then. */
REMAP_API remap_status remap_wait_idle(remap_heap* heap, int64_t timeout_ns);

/* ------------------------------------------------------------------------
 * Heap sizing (added later in 0.1; additive, ABI 1)
 *
 * A heap reserves max_capacity bytes of address space at create and uses
 * the first `capacity` of them (remap_heap_config). Between cycles a
 * runtime moves the capacity to follow its own sizing policy (a growable
 * heap, a soft maximum, an adaptive size): remap_heap_get_info reports the
 * capacity, max_capacity, min_capacity, committed_bytes and regions_free it
 * decides from. The flip costs the same at every capacity: it moves the
 * page tables of the whole reservation at PUD level (anonymous heaps) or
 * re-maps the capacity's runs of regions (minor, sigsegv), and the
 * reservation holds no memory past the capacity.
 * ---------------------------------------------------------------------- */

/* Sets the heap's capacity: [base, base + capacity) is the heap from now on.
 * capacity is a multiple of region_size in [min_capacity, max_capacity].
 *   - Growing adds free regions at the end; they read zero. They are the
 *     last remap_region_acquire hands out (see Allocation), and so the
 *     first to be free again.
 *   - Shrinking drops free regions at the end and returns their memory to
 *     the OS (MADV_DONTNEED; MADV_REMOVE on the minor and sigsegv heaps,
 *     which live on a memfd); the address range stays reserved. Only free
 *     regions can go: right after a cycle is the moment, before mutators
 *     take regions again (REMAP_HEAP_EVACUATE helps: it packs the survivors
 *     of sparse regions into the lowest of them).
 * IDLE only. Any thread, beside mutators that allocate and mark: it holds
 * the allocation lock for O(regions added or dropped). Growing is allowed
 * in a cycle begun with remap_cycle_begin (until remap_prepare); shrinking
 * is not. remap_forward keeps answering for the last cycle. The heap's
 * memory beyond the capacity is not the heap's: the runtime must not touch
 * it (during compaction that is a fault the library refuses, see
 * remap_finish).
 * Errors: REMAP_EINVAL: capacity 0, not a multiple of region_size, or above
 * max_capacity. REMAP_EBUSY: below min_capacity, a region it would drop is
 * in use (the message names it and the smallest capacity now; a mutator may
 * have taken it since remap_heap_get_info: look again and retry).
 * REMAP_EPHASE: the heap is PREPARED, COMPACTING or BROKEN, or shrinking in
 * a begun cycle. REMAP_ENOMEM: the tables a cycle needs at that capacity
 * would exceed a quarter of physical memory (as at remap_heap_create).
 * Nothing changes on failure. */
REMAP_API remap_status remap_heap_resize(remap_heap* heap, size_t capacity);

/* Returns physical memory the heap holds but does not use to the OS now:
 * the pages of every free region and of every retired region's free tail
 * (whole pages above its top: the move backend installs them, zeroed, with
 * the region's data; anything written into free memory stays until this),
 * and the move and copy engines' page pool down to pool_keep_bytes (pages kept populated between
 * cycles so that the next one faults no fresh memory in: SIZE_MAX keeps
 * the pool, 0 empties it, and the next cycle then allocates its buffers).
 * IDLE only (REMAP_EPHASE otherwise); any thread, beside mutators (their
 * allocation calls wait while free regions' pages go). */
REMAP_API remap_status remap_heap_trim(remap_heap* heap, size_t pool_keep_bytes);

/* ------------------------------------------------------------------------
 * Events (added later in 0.1; additive, ABI 1)
 *
 * A runtime that has its own tracing (JFR, perfetto, a GC log) forwards
 * these. Nothing is recorded or timed while no callback is set (one atomic
 * load per cycle call). No event comes from a fault handler: per-fault
 * numbers are in remap_cycle_stats.
 * ---------------------------------------------------------------------- */

typedef enum remap_event_kind {
  /* A cycle starts: remap_cycle_begin, else remap_prepare (the first one
   * since the last cycle ended; a failed prepare does not end the cycle). */
  REMAP_EVENT_CYCLE_BEGIN = 1,
  /* The cycle ended. value: its number (remap_cycle_stats.cycle; its stats
   * are in remap_heap_last_stats now) if it completed; 0 if it did not:
   * status is then the failure that made the heap BROKEN, or REMAP_OK for
   * a cycle cancelled by remap_clear_marks. */
  REMAP_EVENT_CYCLE_END = 2,
  /* remap_flip runs: the library's part of the runtime's pause (stw: the
   * whole compaction). PAUSE_END: value its duration in ns, status what
   * remap_flip returns. */
  REMAP_EVENT_PAUSE_BEGIN = 3,
  REMAP_EVENT_PAUSE_END = 4,
  /* The heap's phase changed to `phase`; value: the phase before. */
  REMAP_EVENT_PHASE = 5,
  /* An entry point that works outside the pause runs: remap_prepare,
   * remap_compact, remap_compact_work, remap_finish, remap_heap_resize,
   * remap_heap_trim (`call` names it). CALL_END: value its duration in ns,
   * status what it returns. */
  REMAP_EVENT_CALL_BEGIN = 6,
  REMAP_EVENT_CALL_END = 7,
  /* remap_heap_resize changed the capacity to `value` bytes. */
  REMAP_EVENT_RESIZE = 8
} remap_event_kind;

typedef struct remap_event {
  size_t struct_size;   /* sizeof(remap_event) of the library sending it: fields
                           past it (added later) are not there */
  int kind;             /* remap_event_kind */
  int phase;            /* the heap's phase now (REMAP_EVENT_PHASE: the new one) */
  uint64_t time_ns;     /* CLOCK_MONOTONIC */
  uint64_t cycle;       /* cycles completed, + 1 from CYCLE_BEGIN to CYCLE_END */
  uint64_t value;       /* per kind (remap_event_kind), else 0 */
  remap_status status;  /* CYCLE_END, PAUSE_END, CALL_END: see there; else REMAP_OK */
  const char* call;     /* the entry point sending it ("remap_flip"): static, never NULL */
} remap_event;

typedef void (*remap_event_fn)(void* ctx, const remap_event* event);

/* Sets the heap's event callback (fn NULL: none). It is called on the thread
 * that makes the call, synchronously, possibly inside the runtime's pause
 * and holding the heap's cycle lock: it should record and return. It may
 * call remap_heap_get_info, remap_heap_last_stats and anything on other
 * heaps; a call of this heap's cycle entry points (prepare, flip, compact,
 * finish, clear_marks, cycle_begin, resize, trim) from it deadlocks or
 * fails. remap_last_error is kept across it. Any thread, any phase; a call
 * running on another thread meanwhile may still deliver one event to the
 * previous (fn, ctx), so a ctx must outlive the calls made while it was
 * set. */
REMAP_API remap_status remap_heap_set_event_callback(remap_heap* heap, remap_event_fn fn,
                                                     void* ctx);

/* ------------------------------------------------------------------------
 * Statistics of the last completed cycle
 * ---------------------------------------------------------------------- */

enum { REMAP_LATENCY_BUCKETS = 64 };

typedef struct remap_cycle_stats {
  size_t struct_size;
  uint64_t cycle;              /* 1 for the first completed cycle */
  int backend;
  int fault_mode;
  /* times, ns */
  uint64_t prepare_ns;
  uint64_t flip_pause_ns;      /* the library's part of the pause */
  uint64_t compaction_ns;      /* end of flip to all pages installed */
  uint64_t finish_ns;
  uint64_t produce_ns;         /* summed over threads: memcpy + reference updates */
  uint64_t install_ns;         /* summed over threads: MOVE/COPY/CONTINUE/mprotect */
  uint64_t wait_ns;            /* summed over threads: waiting for another producer */
  uint64_t fault_alloc_ns;     /* summed: faults and page allocation we cause ourselves */
  uint64_t madvise_ns;
  /* heap shape */
  uint64_t live_bytes;
  uint64_t regions_dense;
  uint64_t regions_fragmented;
  uint64_t regions_empty;
  uint64_t regions_large;
  /* pages */
  uint64_t pages_installed;    /* to-space pages mapped during the cycle */
  uint64_t pages_by_gc;
  uint64_t pages_by_mutator;
  uint64_t pages_zero;         /* pages with no live data installed zeroed: on touch, or
                                  (move) a region's free tail installed with its data */
  uint64_t pages_in_place;     /* dense pages updated in place and moved back */
  /* kernel work */
  uint64_t ioctl_move;
  uint64_t ioctl_copy;
  uint64_t ioctl_zeropage;
  uint64_t ioctl_continue;
  uint64_t ioctl_wake;
  uint64_t pages_moved;         /* pages UFFDIO_MOVE installed (skipped source holes count too) */
  uint64_t pages_copied;
  uint64_t mprotect_calls;
  uint64_t madvise_calls;
  uint64_t bytes_copied;       /* bytes memcpy'd by the library */
  uint64_t buffers_recycled;   /* pages of built data that reused an old page (no allocation) */
  uint64_t buffers_new;        /* pages of built data the kernel had to allocate; zero
                                  pages installed for allocation count in pages_zero only */
  uint64_t fallback_ebusy;     /* pages MOVE refused as not exclusive, installed by COPY */
  uint64_t fallback_other;
  /* mutator faults */
  uint64_t faults;
  uint64_t fault_p50_ns;
  uint64_t fault_p99_ns;
  uint64_t fault_max_ns;
  uint64_t fault_hist[REMAP_LATENCY_BUCKETS]; /* bucket i counts faults of [2^i, 2^(i+1)) ns */
  /* address space */
  uint64_t vmas_before;
  uint64_t vmas_after;
  /* large objects */
  uint64_t large_objects_moved;  /* live large objects that slid to a new address */
  uint64_t large_pages_moved;    /* pages of those objects installed at the new address */
  uint64_t large_pages_copied;   /* pages of live large objects whose bytes were copied to
                                    install them, by the library or the kernel (move: 0; its
                                    EBUSY fallbacks count in fallback_ebusy) */
  uint64_t large_pages_updated;  /* pages of live large objects whose reference slots were
                                    rewritten: with move, the only ones read or written */
  uint64_t large_pages_by_mutator; /* pages of live large objects a faulting mutator produced */
  /* Added later in 0.1 (additive, ABI 1). Reference slots of live objects
   * whose value decoded as an in-heap address in a region that moves or is
   * freed this cycle (not DENSE) but was not a marked object start: left
   * unchanged (see remap_object_model). Nonzero means a missed mark, an
   * interior pointer, or an immediate the encoding does not describe. */
  uint64_t slots_stray;
  /* Added later in 0.1 (additive, ABI 1). Regions allocated black since
   * remap_cycle_begin (they stay, their slots are forwarded by walking their
   * objects), and walk errors: an object_size in a black region that was 0,
   * unaligned or ran past the region's cursor (the rest of that region's
   * slots were not forwarded; the cycle fails with REMAP_EOBJMODEL at
   * remap_finish / remap_flip). */
  uint64_t regions_black;
  uint64_t black_walk_errors;
  /* Added later in 0.1 (additive, ABI 1). REMAP_HEAP_EVACUATE: FRAGMENTED
   * regions whose survivors were packed into a lower region (free after the
   * cycle); included in regions_fragmented. */
  uint64_t regions_evacuated;
  /* Added later in 0.1 (additive, ABI 1). Time the helper GC threads
   * (gc_threads > 1) spent waiting for a free CPU instead of claiming
   * regions: beside running mutators a helper would take a mutator's CPU,
   * so it steps aside while every CPU is busy (see gc_threads). Summed over
   * the helpers; 0 with gc_threads 1. */
  uint64_t helper_wait_ns;
} remap_cycle_stats;

REMAP_API remap_status remap_heap_last_stats(const remap_heap* heap, remap_cycle_stats* out);

/* ========================================================================
 * Arena pools (added in 0.1, ABI version 1; additive)
 *
 * Fixed-size blocks ("arenas") for a runtime's own allocator, e.g. the
 * 1 MiB arenas of CPython's pymalloc. The pool reserves one range of
 * max_arenas * arena_size bytes (virtual only) and carves it into
 * arena-sized slots. A freed arena keeps its pages, up to cap_bytes of
 * freed arenas in all, and the next allocation reuses it without page
 * faults and without clearing it (its bytes are whatever the last user
 * left). Above the cap, freed arenas go back to the OS in batches (one
 * MADV_DONTNEED per contiguous run), down to three quarters of the cap.
 * Requests of another size, or when the range is full, are served by a
 * private mmap of their own, tracked so that free knows which is which.
 * Memory from a pool is not MADV_DONTFORK: a fork()ed child keeps it.
 * All calls are thread-safe; alloc and free of arenas are lock-free.
 * ====================================================================== */

typedef struct remap_arena_pool remap_arena_pool;

typedef struct remap_arena_config {
  size_t struct_size;
  size_t arena_size;  /* bytes, a multiple of the page size; default 1 MiB */
  size_t max_arenas;  /* slots in the reserved range; default 16384 (16 GiB of address space) */
  size_t cap_bytes;   /* freed arenas kept populated, in bytes; default 64 MiB; 0 keeps none */
  int hugepages;      /* 1: MADV_HUGEPAGE on the range (THP "madvise" mode); default 0 */
} remap_arena_config;

typedef struct remap_arena_stats {
  size_t struct_size;
  size_t arena_size;
  size_t reserved_bytes;      /* address space of the slot range */
  uint64_t arenas_live;       /* arenas handed out and not freed */
  uint64_t arenas_peak;       /* highest arenas_live */
  uint64_t arenas_allocated;  /* arena allocations served from the range */
  uint64_t arenas_freed;
  uint64_t arenas_recycled;   /* allocations served by a freed, still populated arena */
  uint64_t arenas_cached;     /* freed arenas holding their pages now */
  uint64_t pages_reused;      /* pages of recycled arenas (those the last user touched fault no more) */
  uint64_t arenas_returned;   /* freed arenas whose pages went back to the OS */
  uint64_t bytes_returned;    /* bytes given back with MADV_DONTNEED */
  uint64_t madvise_calls;
  uint64_t other_live;        /* blocks of other sizes (or overflow) mapped on their own */
  uint64_t other_bytes_live;
  uint64_t other_allocated;
  uint64_t other_freed;
} remap_arena_stats;

/* Sets struct_size and every default. */
REMAP_API void remap_arena_config_init(remap_arena_config* config);
/* config may be NULL (defaults). */
REMAP_API remap_status remap_arena_pool_create(const remap_arena_config* config,
                                               remap_arena_pool** out);
/* Unmaps everything, including blocks still handed out. NULL is fine. */
REMAP_API void remap_arena_pool_destroy(remap_arena_pool* pool);
/* A block of `size` bytes (> 0), page aligned; arena_size blocks are aligned
 * to arena_size when it is a power of two. Never cleared if recycled. */
REMAP_API remap_status remap_arena_alloc(remap_arena_pool* pool, size_t size, void** out);
/* Gives back a block from remap_arena_alloc with the size it was allocated
 * with. REMAP_ENOENT: the pool did not hand out ptr (nothing is done);
 * REMAP_EINVAL: ptr is the pool's but size does not match. */
REMAP_API remap_status remap_arena_free(remap_arena_pool* pool, void* ptr, size_t size);
/* *owned = 1 if ptr lies in a block the pool handed out and has not taken
 * back (arena slots: anywhere in the slot range). Lock-free for the range. */
REMAP_API remap_status remap_arena_owns(const remap_arena_pool* pool, const void* ptr, int* owned);
/* Returns freed arenas above keep_bytes to the OS now (batched). */
REMAP_API remap_status remap_arena_pool_trim(remap_arena_pool* pool, size_t keep_bytes);
REMAP_API remap_status remap_arena_pool_get_stats(const remap_arena_pool* pool,
                                                  remap_arena_stats* out);

/* ======================================================================== */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LIBREMAP_H */

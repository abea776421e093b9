// synthetic.h — a synthetic heap: the test and benchmark workload.
//
// A SyntheticHeap is a libremap heap filled, through the public C ABI only,
// with objects of object_layout.h: regions bump-allocated full of objects of
// a skewed size distribution, a chosen live set per region (dense regions
// ~95–100% live, fragmented regions at live_ratio), a random reference graph
// whose roots live outside the heap, and random payload. It then plays the
// runtime's part of a cycle: marking by traversal, rewriting roots with
// remap_forward, and checking what compaction left behind.
//
// Invariants:
//   - Everything is decided by one std::mt19937_64 seeded from params.seed,
//     never by an address: two heaps built with the same parameters (and the
//     same later calls) hold the same bytes relative to their bases, provided
//     the library hands out regions deterministically.
//   - Every live object is reachable from the roots through live objects;
//     live objects' slots hold live objects, 0, or a foreign value (bit 63
//     set: never a heap address). Dead objects' slots hold anything.
//   - Payload words have bit 63 set, header words are >= 2^48 (klass != 0):
//     so the only words of the heap that look like heap addresses are
//     reference slots, and image() can rebase them without false hits.
//   - The object table (id - 1 -> address) tracks present objects: those
//     allocated and not yet reclaimed by a cycle. A cycle drops dead objects
//     and moves live ones to their forwarded addresses.
//
// Not thread-safe by itself: the Python binding takes mutex() (see there).
#pragma once

#include <cstddef>
#include <cstdint>
#include <shared_mutex>
#include <random>
#include <vector>

#include "event_log.h"
#include "libremap.h"
#include "object_layout.h"

namespace libremap_py {

struct SyntheticParams {
  size_t capacity = size_t(16) << 20;
  size_t region_size = size_t(256) << 10;
  uint64_t seed = 0;
  double live_ratio = 0.5;       // live bytes / used bytes in fragmented regions
  double dense_fraction = 0.25;  // fraction of filled regions made ~95–100% live
  double fill_fraction = 0.75;   // fraction of the heap's regions filled at build
  size_t min_object_size = 16;
  size_t max_object_size = 2048;  // log-uniform between min and max: skewed small
  unsigned max_refs = 4;
  double ref_fraction = 0.5;      // fraction of objects with 1..max_refs slots
  double root_fraction = 0.02;    // live objects made roots beyond those needed
  double foreign_ref_fraction = 0.01;  // slots holding a non-heap value
  size_t large_objects = 0;
  size_t large_object_size = 0;   // 0: 3/4 of a region
  double large_live_fraction = 0.5;
  int large_max_refs = -1;        // reference slots of a large object: -1 = like max_refs, 0 = none
  int backend = REMAP_BACKEND_AUTO;
  int fault_mode = REMAP_FAULT_AUTO;
  unsigned gc_threads = 1;
  unsigned handler_threads = 1;
  double dense_threshold = 0.90;
  // How slots encode references (remap_heap_config.ref_*), issue 12:
  //   kTagNone   plain addresses; "immediates" are in-heap values that are
  //              not object starts (base + 8k + 4): the library must leave
  //              them alone
  //   kTagGuile  heap pointers end in 000; immediates are fixnums (.. 10)
  //              whose raw value lies inside the heap
  //   kTagV8     pointers are address | 1 (strong) or | 3 (weak); immediates
  //              are Smis (even), drawn equal to live objects' addresses
  //   kTagLow    address | a 3-bit type tag; no in-heap immediates
  int tagging = 0;
  double immediate_fraction = 0.0;  // fraction of spare slots holding an in-heap immediate
  unsigned flags = 0;               // remap_heap_config.flags (REMAP_HEAP_*)
};

enum SyntheticTagging : int { kTagNone = 0, kTagGuile = 1, kTagV8 = 2, kTagLow = 3 };

// One present object, for tests.
struct ObjectView {
  uintptr_t addr;
  uint32_t size;
  uint64_t id;
  bool live;
  bool large;
};

class SyntheticHeap {
 public:
  explicit SyntheticHeap(const SyntheticParams& params);
  ~SyntheticHeap();
  SyntheticHeap(const SyntheticHeap&) = delete;
  SyntheticHeap& operator=(const SyntheticHeap&) = delete;

  // ---- workload between cycles (IDLE) ----
  // Kills each live object with probability kill_fraction, allocates about
  // grow_bytes of new objects in regions/tails from remap_region_acquire
  // (each span dense with probability dense_fraction, else at live_ratio),
  // then draws a new reference graph and new roots over the live set.
  void mutate(double kill_fraction, size_t grow_bytes, double live_ratio, double dense_fraction);

  // ---- a cycle begun beside the mutators (remap_cycle_begin) ----
  // remap_cycle_begin: objects allocated from now until the flip are black.
  void begin_cycle();
  // Black allocation (IDLE after begin_cycle, or PREPARED): about `bytes` of
  // new objects in fresh regions, all live and each made a root; their
  // slots name random live objects (old or new), and some null slots of old
  // live objects now name new ones (writes after marking, which the cycle
  // must honour).
  void allocate_black(size_t bytes);

  // ---- the cycle, step by step ----
  // Marks by BFS from the roots, one remap_mark per reached object; throws
  // std::logic_error unless exactly the live set was reached.
  // deferred: remap_try_mark (sizes and slots read at prepare) instead of
  // remap_mark.
  size_t mark(bool deferred = false);
  void clear_marks();
  // remap_prepare, then records remap_forward of every live object and root.
  void prepare();
  // remap_flip, then rewrites the roots (remap_forward while COMPACTING;
  // the values recorded at prepare if flip already finished, as with stw)
  // and moves the object table to the new addresses.
  void flip();
  // The runtime's part of a flip that someone else drove (the conformance
  // kit calls remap_prepare and remap_flip itself): records forwarding with
  // remap_forward, which stays valid after the flip on every backend, reading
  // object sizes at their new addresses, then rewrites roots and the object
  // table as flip() does.
  void adopt_flip();
  void compact();
  void compact_work();
  void finish();
  // mark, prepare, flip, and compact + finish unless flip finished the cycle.
  void collect();

  // ---- observation ----
  // Hash of the graph from the roots in BFS order: ids, headers, payload,
  // and per slot the target's id (0 for null, the value for foreign ones).
  // Never follows a slot that does not name a present object; hashes a
  // marker instead, so a corrupt heap changes the checksum, not the process.
  uint64_t checksum() const;
  // The strict traversal of mark() without marking; returns objects reached.
  size_t verify() const;
  // capacity bytes: the whole heap, each word in [base, base + capacity)
  // replaced by word - base. IDLE only (raises REMAP_EPHASE otherwise).
  void image(char* out) const;
  uint64_t image_hash() const;
  remap_cycle_stats stats() const;
  remap_heap_info info() const;
  uintptr_t forward(uintptr_t old) const;
  void set_fault(libremap_layout::ModelFault kind, uint64_t id) { model_.set_fault(kind, id); }

  std::vector<ObjectView> objects() const;
  const std::vector<uintptr_t>& roots() const { return roots_; }
  const std::vector<uint64_t>& region_tops() const { return region_top_; }
  size_t live_count() const { return live_count_; }
  size_t live_bytes() const { return live_bytes_; }
  uintptr_t base() const { return base_; }
  remap_heap* handle() const { return heap_; }
  // libremap's events, once record_events() attached it (bench --trace).
  EventLog& event_log() { return event_log_; }
  size_t capacity() const { return params_.capacity; }
  size_t region_size() const { return params_.region_size; }
  const SyntheticParams& params() const { return params_; }
  // Exclusive for calls that change the object table or roots (build,
  // mutate, prepare, flip, clear_marks, collect); shared for the rest, so
  // that a mutator thread can traverse while another runs compact().
  std::shared_mutex& mutex() { return mu_; }

 private:
  static constexpr uint32_t kGone = UINT32_MAX;
  static constexpr uint8_t kLive = 1, kLarge = 2;

  uintptr_t addr_of(size_t idx) const { return base_ + uintptr_t(word_[idx]) * 8; }
  bool present(size_t idx) const { return word_[idx] != kGone; }
  uint64_t random_payload_word() { return rng_() | (uint64_t(1) << 63); }
  uint64_t foreign_value() { return (uint64_t(1) << 63) | (rng_() & 0xffff) << 3; }
  // Slot encoding (params_.tagging): a reference to the object at addr, and
  // an in-heap value that is not a reference (or not an object start).
  uint64_t encode_ref(uintptr_t addr);
  uint64_t in_heap_immediate(const std::vector<uint32_t>& live);
  // The encoding's parts, as given to remap_heap_config.
  uint64_t tag_mask() const;
  bool is_reference(uint64_t v) const;
  bool coin(double p) { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < p; }

  void build();
  // What prepare() records for flip (forwarding of live objects and roots,
  // the region tops the cycle leaves). headers_moved: read object headers
  // at their forwarded address (after the flip) instead of the old one.
  void record_forwarding(bool headers_moved);
  // flip()'s part after remap_flip: roots and object table to new addresses.
  void apply_forwarding();
  size_t sample_size();
  // Fills [start, end) with objects, retires it, picks the live ones so that
  // their bytes are close to ratio * used bytes.
  void fill_span(uintptr_t start, uintptr_t end, double ratio);
  uintptr_t write_object(uintptr_t at, size_t size, unsigned nrefs);
  size_t large_size() const;
  void add_large_objects();
  void build_graph();
  void recount_live();
  int phase() const;
  // Index of the present object starting at v, or -1.
  long resolve(uint64_t v) const;
  template <typename Visit>
  size_t traverse(bool strict, Visit&& visit_object) const;

  SyntheticParams params_;
  EventLog event_log_;  // outlives the heap: ~SyntheticHeap destroys the heap first
  libremap_layout::ModelCtx model_;
  remap_heap* heap_ = nullptr;
  uintptr_t base_ = 0;
  size_t page_size_ = 4096;
  std::mt19937_64 rng_;

  std::vector<uint32_t> word_;   // per object (id - 1): (addr - base) / 8, or kGone
  std::vector<uint8_t> flags_;   // kLive | kLarge
  std::vector<uintptr_t> roots_;
  std::vector<uint64_t> region_top_;  // bytes used from each region's base
  size_t live_count_ = 0;
  size_t live_bytes_ = 0;

  // Recorded at prepare for flip.
  bool prepared_ = false;
  std::vector<uint32_t> fwd_word_;
  std::vector<uintptr_t> fwd_roots_;
  std::vector<uint64_t> new_top_;

  std::shared_mutex mu_;
};

}  // namespace libremap_py

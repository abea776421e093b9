// stress_driver.h — the C++ stress driver's shared parts (stress.h says what
// it checks and why that proves it): the object table and logs kept outside
// the heap, and the class Stress, whose parts live in three files by
// concern — stress_heap.cpp (the heap, allocation, the initial graph),
// stress_mutator.cpp (mutator threads: snapshots, checks, writes) and
// stress_cycle.cpp (the driver: safepoints, verification against the
// model, cycles). stress.cpp binds it as libremap._testing.run_stress.
//
// Threads: one driver (the calling thread, GIL released) that builds the
// heap and runs the cycles; `mutators` threads that walk, check and write.
// The driver never touches the heap while mutators run except through the
// library (remap_compact / remap_finish); mutators never hold a heap
// address across a safepoint, so the flip may move everything.
#pragma once

#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "errors_py.h"
#include "object_layout.h"
#include "stress.h"

namespace libremap_py::stress_detail {

using namespace libremap_layout;

constexpr unsigned kMaxRefs = 4;
constexpr size_t kMaxObject = 256;
constexpr size_t kSeen = 64;
constexpr int kSlotPayload = -1;  // log: a payload-only write
constexpr int kSlotAlloc = -2;    // log: the object was allocated (version 1, slots null)
constexpr uint32_t kAnyTarget = UINT32_MAX;
constexpr uint32_t kMaxLarge = 1u << 16;  // large objects per run; then no more are allocated

inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Payload word i of object id at version v. Bit 63 set: never a heap address.
inline uint64_t payload_word(uint32_t id, uint32_t v, size_t i) {
  return (mix(uint64_t(id) << 32 | v) + i * 0x9e3779b97f4a7c15ull) | (uint64_t(1) << 63);
}

inline uint64_t load_word(uintptr_t a) { return __atomic_load_n(reinterpret_cast<uint64_t*>(a), __ATOMIC_RELAXED); }
inline void store_word(uintptr_t a, uint64_t v) {
  __atomic_store_n(reinterpret_cast<uint64_t*>(a), v, __ATOMIC_RELAXED);
}

// Untracked slot i of large object id: a value outside the heap (bit 63)
// that the library must leave alone; it never changes.
inline uint64_t filler_word(uint32_t id, size_t i) {
  return mix(0x5107f111e5ull ^ (uint64_t(id) << 20) ^ i) | (uint64_t(1) << 63);
}

// Whether a write that takes large object id to version v rewrites page p
// (of npages): one page chosen by (id, v) and about an eighth of the
// others; version 1 (the allocation) writes them all. The log replay uses
// the same function, so a log entry needs no page list.
inline bool page_written(uint32_t id, uint32_t v, size_t npages, size_t p) {
  if (v <= 1) return true;
  const uint64_t h = mix(uint64_t(id) << 32 | v);
  return p == h % npages || (mix(h + p + 1) & 7) == 0;
}

// One object's entry in the table outside the heap (index: id).
struct Obj {
  std::atomic<uintptr_t> addr{0};  // current address; 0: never allocated or dead
  std::atomic<uint32_t> seq{0};    // seqlock, odd while a writer holds it
  std::atomic<uint32_t> version{0};
  std::atomic<uint32_t> target[kMaxRefs];  // committed slot targets (ids, 0 = null)
  uint32_t born = 0;               // the cycle count when it was allocated (diagnostics)
  uint32_t size = 0;               // immutable once the object is published
  uint16_t nrefs = 0;
  uint16_t klass = 0;
  uint32_t large = 0;              // 1 + its index in the large table; 0: a small object
  Obj() {
    for (auto& t : target) t.store(0, std::memory_order_relaxed);
  }
};

// A large object's page versions: the version of the last write that
// rewrote each page. Written under the object's seqlock.
struct LargeInfo {
  uint32_t npages = 0;
  std::unique_ptr<std::atomic<uint32_t>[]> pv;
};

struct LogEntry {
  uint32_t id;
  uint32_t version;
  int32_t slot;    // 0..3, kSlotPayload or kSlotAlloc
  uint32_t target; // slot writes: the target id (0 = null)
};

// What the logs say each object holds.
struct ModelObj {
  uint32_t version = 0;
  uint32_t target[kMaxRefs] = {0, 0, 0, 0};
};

struct Hasher {
  uint64_t h = 0x6a09e667f3bcc908ull;
  void add(uint64_t w) { h = mix(h ^ w); }
};

struct Snapshot {
  uint64_t words[kMaxObject / 8];  // small objects: all of it
  uint64_t hdr[2];                 // the header
  uint64_t slot[kMaxRefs];         // the tracked slots' values
  uint32_t version;
  uint32_t target[kMaxRefs];
  // Large objects: sampled words (offsets from the object start) and the
  // page versions, under the same seqlock.
  std::vector<uint32_t> sample_off;
  std::vector<uint64_t> sample_val;
  std::vector<uint32_t> pv;
};

// The slots the stress tracks (targets in the table, the log and the
// model): 0..3, except that an object with more than kMaxRefs slots (a
// large one) has its last tracked slot at its last slot (on page 1 when it
// has >= 511). Its other slots hold filler_word.
inline unsigned tracked(const Obj& o) { return std::min<unsigned>(o.nrefs, kMaxRefs); }
inline size_t slot_byte(const Obj& o, unsigned k) {
  return slot_offset(k == kMaxRefs - 1 && o.nrefs > kMaxRefs ? o.nrefs - 1u : k);
}
inline bool untracked_slot(const Obj& o, size_t i) { return i >= kMaxRefs - 1 && i + 1 < o.nrefs; }

class Stress {
 public:
  explicit Stress(const StressParams& p) : p_(p) {}
  ~Stress() {
    stop_threads();
    remap_heap_destroy(heap_);
  }
  StressResult run();

 private:
  struct Mutator {
    std::thread thread;
    std::mt19937_64 rng;
    std::vector<LogEntry> log;
    uintptr_t tlab_start = 0, tlab_cur = 0, tlab_end = 0;
    std::atomic<uint64_t> ops{0};
    uint32_t seen[64];  // ids reached this epoch (valid until the next safepoint)
    size_t seen_n = 0;
    uint64_t reads = 0, writes = 0, allocs = 0, retries = 0;
    uint64_t large_reads = 0, large_reads_compacting = 0, large_writes = 0, large_allocs = 0;
    uint64_t large_pages_missing = 0;
    std::vector<unsigned char> incore;
    // Large objects this mutator linked, to unlink once
    // `due` flips have happened (if the edge still names them).
    struct Unlink {
      uint32_t from, slot, large;
      uint64_t due;
    };
    std::vector<Unlink> unlinks;
  };

  // ---- setup and allocation ----
  void create_heap();
  void build();
  // Bump-allocates in m's TLAB (refilled from remap_region_acquire); 0 if
  // the heap is full or the id space is used up.
  uintptr_t alloc(Mutator& m, size_t size, uint32_t* id_out);
  void retire(Mutator& m);
  // A large object from remap_alloc_large, with its id and an entry of the
  // large table (*large_out: 1 + index); 0 if the heap has no room for it
  // (until the next cycle) or ids or large entries are used up.
  uintptr_t alloc_large(size_t size, uint32_t* id_out, uint32_t* large_out);
  // Writes a fresh object (version 1, tracked slots null, untracked ones
  // filler) and publishes it in the table. large: 0 or alloc_large's entry.
  void init_object(uintptr_t at, uint32_t id, size_t size, unsigned nrefs, uint32_t large = 0);
  void random_shape(std::mt19937_64& rng, size_t* size, unsigned* nrefs);
  // Just over the threshold to three regions; mostly primitive, some with
  // four slots, some with more than a page of slots. need_refs: >= 1 slot.
  void random_large_shape(std::mt19937_64& rng, bool need_refs, size_t* size, unsigned* nrefs);
  // Payload words of a large object's page p: byte offsets [*lo, *hi) from
  // its start (empty when slots fill the page).
  void page_payload(const Obj& o, size_t p, size_t* lo, size_t* hi) const {
    *lo = std::max(min_object_size(o.nrefs), p * page_size_);
    *hi = std::min(size_t(o.size), (p + 1) * page_size_);
    if (*hi < *lo) *hi = *lo;
  }
  LargeInfo& large_info(const Obj& o) const { return large_[o.large - 1]; }

  // ---- mutators ----
  void mutator_loop(Mutator& m);
  bool snapshot(Mutator& m, uint32_t id, uintptr_t a, Snapshot* s);
  bool check_snapshot(uint32_t id, uintptr_t a, const Snapshot& s);
  bool snapshot_large(Mutator& m, Obj& o, uintptr_t a, Snapshot* s);
  // What is wrong with a large object's sample ("" if nothing).
  std::string check_large(uint32_t id, const Snapshot& s) const;
  // Writes (slot < 0: payload only); with expect != kAnyTarget only if the
  // slot still names `expect`. Returns whether it wrote.
  bool write(Mutator& m, uint32_t id, uintptr_t a, int slot, uint32_t target,
             uint32_t expect = kAnyTarget);
  // Unlinks the large objects of m.unlinks that are due: a large object
  // lives 1 to 4 cycles after its allocation unless other edges keep it.
  void unlink_due(Mutator& m);
  void fail(const std::string& why);
  bool failed() const { return failed_.load(std::memory_order_acquire); }

  // ---- the driver ----
  bool safepoint_begin();
  void safepoint_end();
  void park(Mutator& m);
  void stop_threads();
  // Replays the logs, compares the heap with the model; marks (if mark).
  bool verify_and_mark(bool mark);
  void inject_stale();
  bool cycle();
  // max_heap_mib: the capacity after a cycle (see StressParams).
  bool resize_after(uint64_t cycle);

  const StressParams p_;
  // A tracked slot's value for target address addr (0: null), in the
  // run's encoding (StressParams::tagged).
  uint64_t encode(uintptr_t addr, uint32_t owner, unsigned k) const {
    return addr && p_.tagged ? addr | ((owner * 5 + k) & 7) : addr;
  }
  ModelCtx model_ctx_;
  remap_heap* heap_ = nullptr;
  uintptr_t base_ = 0;
  size_t capacity_ = 0;      // the current capacity (the driver's: it resizes)
  size_t max_capacity_ = 0;
  size_t region_size_ = 0;
  size_t page_size_ = 0;
  size_t threshold_ = 0;  // large_object_threshold
  bool anon_ = false;     // move or copy: a page not yet installed is not resident (mincore)
  std::unique_ptr<LargeInfo[]> large_;
  std::atomic<uint32_t> next_large_{0};
  // What the logs say each reachable large object's pages hold (driver only).
  std::unordered_map<uint32_t, std::vector<uint32_t>> model_pv_;
  std::unique_ptr<Obj[]> table_;
  uint32_t max_ids_ = 0;
  std::atomic<uint32_t> next_id_{1};
  std::vector<ModelObj> model_;
  std::vector<uint32_t> root_id_;
  std::unique_ptr<std::atomic<uintptr_t>[]> root_addr_;
  std::vector<uint8_t> marked_;
  std::vector<std::unique_ptr<Mutator>> muts_;
  Mutator driver_;  // the builder's TLAB and log

  // Safepoint: request_ is polled by mutators between object visits.
  std::mutex sp_mu_;
  std::condition_variable sp_cv_;
  std::atomic<bool> request_{false};
  std::atomic<bool> stop_{false};
  unsigned parked_ = 0;
  uint64_t epoch_ = 0;

  std::atomic<uint64_t> cycles_started_{0};  // flips so far
  std::atomic<bool> compacting_{false};      // between flip and finish
  std::atomic<bool> failed_{false};
  std::mutex err_mu_;
  std::string error_;
  std::string lib_error_;  // the first failing library call (under err_mu_)
  StressResult res_;
};

}  // namespace libremap_py::stress_detail

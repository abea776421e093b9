// stress.cpp — C++ mutator threads against concurrent compaction (stress.h
// says what is checked and why that proves it), and its binding
// libremap._core.run_stress.
//
// Threads: one driver (the calling thread, GIL released) that builds the
// heap and runs the cycles; `mutators` threads that walk, check and write.
// The driver never touches the heap while mutators run except through the
// library (remap_compact / remap_finish); mutators never hold a heap
// address across a safepoint, so the flip may move everything.
#include "stress.h"
#include "stats_py.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
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
#include <thread>
#include <unordered_map>

#include "errors_py.h"
#include "object_layout.h"

namespace py = pybind11;

namespace libremap_py {

namespace {

using namespace libremap_layout;

constexpr unsigned kMaxRefs = 4;
constexpr size_t kMaxObject = 256;
constexpr size_t kSeen = 64;
constexpr int kSlotPayload = -1;  // log: a payload-only write
constexpr int kSlotAlloc = -2;    // log: the object was allocated (version 1, slots null)
constexpr uint32_t kAnyTarget = UINT32_MAX;
constexpr uint32_t kMaxLarge = 1u << 16;  // large objects per run; then no more are allocated

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Payload word i of object id at version v. Bit 63 set: never a heap address.
uint64_t payload_word(uint32_t id, uint32_t v, size_t i) {
  return (mix(uint64_t(id) << 32 | v) + i * 0x9e3779b97f4a7c15ull) | (uint64_t(1) << 63);
}

uint64_t load_word(uintptr_t a) { return __atomic_load_n(reinterpret_cast<uint64_t*>(a), __ATOMIC_RELAXED); }
void store_word(uintptr_t a, uint64_t v) {
  __atomic_store_n(reinterpret_cast<uint64_t*>(a), v, __ATOMIC_RELAXED);
}

// Untracked slot i of large object id: a value outside the heap (bit 63)
// that the library must leave alone; it never changes.
uint64_t filler_word(uint32_t id, size_t i) {
  return mix(0x5107f111e5ull ^ (uint64_t(id) << 20) ^ i) | (uint64_t(1) << 63);
}

// Whether a write that takes large object id to version v rewrites page p
// (of npages): one page chosen by (id, v) and about an eighth of the
// others; version 1 (the allocation) writes them all. The log replay uses
// the same function, so a log entry needs no page list.
bool page_written(uint32_t id, uint32_t v, size_t npages, size_t p) {
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
unsigned tracked(const Obj& o) { return std::min<unsigned>(o.nrefs, kMaxRefs); }
size_t slot_byte(const Obj& o, unsigned k) {
  return slot_offset(k == kMaxRefs - 1 && o.nrefs > kMaxRefs ? o.nrefs - 1u : k);
}
bool untracked_slot(const Obj& o, size_t i) { return i >= kMaxRefs - 1 && i + 1 < o.nrefs; }

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

  const StressParams p_;
  // A tracked slot's value for target address addr (0: null), in the
  // run's encoding (StressParams::tagged).
  uint64_t encode(uintptr_t addr, uint32_t owner, unsigned k) const {
    return addr && p_.tagged ? addr | ((owner * 5 + k) & 7) : addr;
  }
  ModelCtx model_ctx_;
  remap_heap* heap_ = nullptr;
  uintptr_t base_ = 0;
  size_t capacity_ = 0;
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

void Stress::fail(const std::string& why) {
  std::lock_guard<std::mutex> g(err_mu_);
  if (error_.empty()) error_ = why;
  failed_.store(true, std::memory_order_release);
}

void Stress::create_heap() {
  remap_heap_config cfg;
  std::memset(&cfg, 0, sizeof cfg);
  remap_heap_config_init(&cfg);
  cfg.capacity = p_.heap_mib << 20;
  cfg.region_size = p_.region_kib << 10;
  cfg.backend = p_.backend;
  cfg.fault_mode = p_.fault_mode;
  cfg.gc_threads = p_.gc_threads;
  cfg.ref_tag_mask = p_.tagged ? 7 : 0;
  if (p_.evacuate) cfg.flags |= REMAP_HEAP_EVACUATE;
  model_ctx_.region_size = cfg.region_size;
  install_model(cfg.model, &model_ctx_);
  check(remap_heap_create(&cfg, &heap_), "remap_heap_create");
  remap_heap_info hi;
  std::memset(&hi, 0, sizeof hi);
  hi.struct_size = sizeof hi;
  check(remap_heap_get_info(heap_, &hi), "remap_heap_get_info");
  base_ = reinterpret_cast<uintptr_t>(hi.base);
  capacity_ = hi.capacity;
  region_size_ = hi.region_size;
  page_size_ = hi.page_size;
  anon_ = hi.backend == REMAP_BACKEND_MOVE || hi.backend == REMAP_BACKEND_COPY;
  // remap_heap_config_init leaves it 0: the library's default.
  threshold_ = cfg.large_object_threshold ? cfg.large_object_threshold : region_size_ / 2;
  large_.reset(new LargeInfo[kMaxLarge]);
  // Ids are never reused: room for the heap full of the smallest objects
  // several times over; allocation stops when they run out.
  max_ids_ = uint32_t(std::min<size_t>(capacity_ / 8, size_t(1) << 24));
  table_.reset(new Obj[max_ids_]);
  model_.assign(max_ids_, ModelObj{});
  marked_.assign(max_ids_, 0);
}

void Stress::random_shape(std::mt19937_64& rng, size_t* size, unsigned* nrefs) {
  *nrefs = unsigned(rng() % (kMaxRefs + 1));
  size_t min = min_object_size(*nrefs) + 8;  // at least one payload word
  *size = std::min(kMaxObject, min + 8 * size_t(rng() % 20));
}

void Stress::random_large_shape(std::mt19937_64& rng, bool need_refs, size_t* size, unsigned* nrefs) {
  const size_t lo = (threshold_ + 8 + 7) & ~size_t(7), hi = 3 * region_size_;
  *size = lo + 8 * size_t(rng() % ((hi - lo) / 8 + 1));
  unsigned kind = unsigned(rng() % 8);  // 0: up to four slots; 1: a page and more of slots; else none
  if (need_refs && kind >= 2) kind = unsigned(rng() % 2);
  if (kind == 0)
    *nrefs = 1 + unsigned(rng() % kMaxRefs);
  else if (kind == 1)  // the last slot on page 1
    *nrefs = unsigned((page_size_ - kHeaderBytes) / kSlotBytes + 1 + rng() % 64);
  else
    *nrefs = 0;
  *size = std::max(*size, min_object_size(*nrefs) + 8);
}

uintptr_t Stress::alloc_large(size_t size, uint32_t* id_out, uint32_t* large_out) {
  if (next_large_.load(std::memory_order_relaxed) >= kMaxLarge) return 0;
  void* out = nullptr;
  remap_status s = remap_alloc_large(heap_, size, &out);
  if (s == REMAP_ENOMEM) return 0;  // no run of free regions until a cycle makes one
  if (s != REMAP_OK) {
    fail(std::string("remap_alloc_large: ") + remap_status_name(s) + ": " + remap_last_error());
    return 0;
  }
  // Past this point a failure leaves the object allocated and unreachable:
  // garbage for the next cycle, like any unlinked object. It gets a header
  // all the same (id 0, no slots): memory allocated in a concurrent cycle's
  // black window must be parseable by the object model (libremap.h).
  auto abandon = [&] {
    ObjectHeader h{uint32_t(size), 0, 1, 0};
    uint64_t hw[2];
    std::memcpy(hw, &h, sizeof h);
    store_word(reinterpret_cast<uintptr_t>(out), hw[0]);
    store_word(reinterpret_cast<uintptr_t>(out) + 8, hw[1]);
    return uintptr_t(0);
  };
  const uint32_t l = next_large_.fetch_add(1);
  if (l >= kMaxLarge) return abandon();
  const uint32_t id = next_id_.fetch_add(1);
  if (id >= max_ids_) {
    next_id_.store(max_ids_);
    return abandon();
  }
  *id_out = id;
  *large_out = l + 1;
  return reinterpret_cast<uintptr_t>(out);
}

void Stress::retire(Mutator& m) {
  if (!m.tlab_start) return;
  remap_status s = remap_region_retire(heap_, reinterpret_cast<void*>(m.tlab_start),
                                       reinterpret_cast<void*>(m.tlab_cur));
  if (s != REMAP_OK) fail(std::string("remap_region_retire: ") + remap_last_error());
  m.tlab_start = m.tlab_cur = m.tlab_end = 0;
}

uintptr_t Stress::alloc(Mutator& m, size_t size, uint32_t* id_out) {
  if (m.tlab_end - m.tlab_cur < size) {
    retire(m);
    void *s = nullptr, *e = nullptr;
    if (remap_region_acquire(heap_, &s, &e) != REMAP_OK) return 0;  // full until the next cycle
    m.tlab_start = m.tlab_cur = reinterpret_cast<uintptr_t>(s);
    m.tlab_end = reinterpret_cast<uintptr_t>(e);
    if (m.tlab_end - m.tlab_cur < size) return 0;
  }
  uint32_t id = next_id_.fetch_add(1);
  if (id >= max_ids_) {
    next_id_.store(max_ids_);
    return 0;
  }
  uintptr_t at = m.tlab_cur;
  m.tlab_cur += size;
  *id_out = id;
  return at;
}

void Stress::init_object(uintptr_t at, uint32_t id, size_t size, unsigned nrefs, uint32_t large) {
  Obj& o = table_[id];
  o.size = uint32_t(size);
  o.nrefs = uint16_t(nrefs);
  o.klass = uint16_t(1 + id % 1000);
  o.large = large;
  if (large) {
    LargeInfo& L = large_info(o);
    L.npages = uint32_t((size + page_size_ - 1) / page_size_);
    L.pv.reset(new std::atomic<uint32_t>[L.npages]);
    for (uint32_t p = 0; p < L.npages; p++) L.pv[p].store(1, std::memory_order_relaxed);
  }
  ObjectHeader h{uint32_t(size), uint16_t(nrefs), o.klass, id};
  uint64_t hw[2];
  std::memcpy(hw, &h, sizeof h);
  store_word(at, hw[0]);
  store_word(at + 8, hw[1]);
  for (unsigned i = 0; i < nrefs; i++)
    store_word(at + slot_offset(i), untracked_slot(o, i) ? filler_word(id, i) : 0);
  const size_t first = min_object_size(nrefs);
  for (size_t off = first; off < size; off += 8) store_word(at + off, payload_word(id, 1, (off - first) / 8));
  o.born = uint32_t(cycles_started_.load(std::memory_order_relaxed));
  o.version.store(1, std::memory_order_relaxed);
  for (auto& t : o.target) t.store(0, std::memory_order_relaxed);
  o.addr.store(at, std::memory_order_release);
}

void Stress::build() {
  std::mt19937_64 rng(p_.seed);
  std::vector<uint32_t> ids;
  const size_t want = size_t(double(capacity_) * p_.fill_fraction);
  // Large objects take this share of the bytes (whole regions counted),
  // interleaved with the small ones.
  double large_share = std::min(0.5, 5 * p_.large_fraction);
  size_t large_used = 0;
  for (size_t used = 0; used < want;) {
    size_t size;
    unsigned nrefs;
    uint32_t id, large = 0;
    uintptr_t at;
    if (large_share > 0 && double(large_used) < large_share * double(used)) {
      random_large_shape(rng, false, &size, &nrefs);
      at = alloc_large(size, &id, &large);
      if (!at) {
        large_share = 0;  // no room for more: small objects only
        continue;
      }
      const size_t bytes = (size + region_size_ - 1) / region_size_ * region_size_;
      used += bytes;
      large_used += bytes;
      res_.large_allocs++;
    } else {
      random_shape(rng, &size, &nrefs);
      used += size;
      at = alloc(driver_, size, &id);
      if (!at) break;
    }
    init_object(at, id, size, nrefs, large);
    model_[id].version = 1;
    if (large) model_pv_[id].assign(large_info(table_[id]).npages, 1);
    // Slots point to earlier objects (or null): some of the heap is garbage.
    for (unsigned k = 0; k < tracked(table_[id]) && !ids.empty(); k++) {
      if (rng() % 10 < 1) continue;
      uint32_t t = ids[rng() % ids.size()];
      store_word(at + slot_byte(table_[id], k), encode(table_[t].addr.load(), id, k));
      table_[id].target[k].store(t);
      model_[id].target[k] = t;
    }
    ids.push_back(id);
  }
  retire(driver_);
  if (ids.empty()) throw std::invalid_argument("run_stress: the heap is too small for any object");
  root_addr_.reset(new std::atomic<uintptr_t>[p_.roots]);
  for (unsigned r = 0; r < p_.roots; r++) {
    // Roots among the newer half: their descendants are most of the heap.
    uint32_t id = ids[ids.size() / 2 + rng() % (ids.size() - ids.size() / 2)];
    root_id_.push_back(id);
    root_addr_[r].store(table_[id].addr.load());
  }
}

// ---------------------------------------------------------------------------
// Mutators

bool Stress::snapshot(Mutator& m, uint32_t id, uintptr_t a, Snapshot* s) {
  Obj& o = table_[id];
  if (o.large) return snapshot_large(m, o, a, s);
  const size_t n = o.size / 8;
  if (n == 0 || n > kMaxObject / 8) {
    fail("object " + std::to_string(id) + " has no valid size in the table");
    return false;
  }
  for (;;) {
    uint32_t s1 = o.seq.load(std::memory_order_acquire);
    if (s1 & 1) {
      m.retries++;
      sched_yield();
      continue;
    }
    for (size_t i = 0; i < n; i++) s->words[i] = load_word(a + 8 * i);  // may fault: produced first
    s->version = o.version.load(std::memory_order_relaxed);
    for (unsigned k = 0; k < kMaxRefs; k++) s->target[k] = o.target[k].load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (o.seq.load(std::memory_order_relaxed) == s1) break;
    m.retries++;
  }
  s->hdr[0] = s->words[0];
  s->hdr[1] = s->words[1];
  for (unsigned k = 0; k < tracked(o); k++) s->slot[k] = s->words[2 + k];
  return true;
}

bool Stress::snapshot_large(Mutator& m, Obj& o, uintptr_t a, Snapshot* s) {
  const LargeInfo& L = large_info(o);
  // The sample: the first and last payload word of every page (every page
  // is read: one left behind faults or fails), a random payload word, and
  // a random untracked slot.
  s->sample_off.clear();
  for (size_t p = 0; p < L.npages; p++) {
    size_t lo, hi;
    page_payload(o, p, &lo, &hi);
    if (lo == hi) continue;
    s->sample_off.push_back(uint32_t(lo));
    if (hi - 8 != lo) s->sample_off.push_back(uint32_t(hi - 8));
  }
  const size_t first = min_object_size(o.nrefs);
  s->sample_off.push_back(uint32_t(first + 8 * (m.rng() % ((o.size - first) / 8))));
  if (o.nrefs > kMaxRefs)
    s->sample_off.push_back(uint32_t(slot_offset(kMaxRefs - 1 + m.rng() % (o.nrefs - kMaxRefs))));
  s->sample_val.resize(s->sample_off.size());
  s->pv.resize(L.npages);
  if (anon_ && compacting_.load(std::memory_order_relaxed)) {
    // Pages this read is about to fault on (or the GC installs first).
    m.incore.resize(L.npages);
    if (mincore(reinterpret_cast<void*>(a), L.npages * page_size_, m.incore.data()) == 0)
      for (unsigned char c : m.incore) m.large_pages_missing += !(c & 1);
  }
  for (;;) {
    uint32_t s1 = o.seq.load(std::memory_order_acquire);
    if (s1 & 1) {
      m.retries++;
      sched_yield();
      continue;
    }
    s->hdr[0] = load_word(a);  // may fault: produced (moved) first
    s->hdr[1] = load_word(a + 8);
    for (unsigned k = 0; k < tracked(o); k++) s->slot[k] = load_word(a + slot_byte(o, k));
    for (size_t i = 0; i < s->sample_off.size(); i++) s->sample_val[i] = load_word(a + s->sample_off[i]);
    s->version = o.version.load(std::memory_order_relaxed);
    for (unsigned k = 0; k < kMaxRefs; k++) s->target[k] = o.target[k].load(std::memory_order_relaxed);
    for (size_t p = 0; p < L.npages; p++) s->pv[p] = L.pv[p].load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (o.seq.load(std::memory_order_relaxed) == s1) break;
    m.retries++;
  }
  m.large_reads++;
  if (compacting_.load(std::memory_order_relaxed)) m.large_reads_compacting++;
  return true;
}

bool Stress::check_snapshot(uint32_t id, uintptr_t a, const Snapshot& s) {
  const Obj& o = table_[id];
  auto bad = [&](const std::string& what) {
    const size_t off = a - base_;
    fail("mutator saw object " + std::to_string(id) + " at heap+" + std::to_string(off) +
         " (region " + std::to_string(off / (p_.region_kib << 10)) + " +" +
         std::to_string(off % (p_.region_kib << 10)) + ", page +" + std::to_string(off % 4096) +
         ", size " + std::to_string(o.size) +
         (o.large ? " large " + std::to_string(large_info(o).npages) + " pages" : std::string()) +
         ", version " + std::to_string(s.version) +
         ", allocated after flip " + std::to_string(o.born) + ", now after flip " +
         std::to_string(cycles_started_.load()) + (compacting_.load() ? ", compacting" : ", idle") +
         "): " + what);
    return false;
  };
  if (o.addr.load(std::memory_order_acquire) != a) return bad("it is not at the address the table says");
  ObjectHeader h;
  std::memcpy(&h, s.hdr, sizeof h);
  if (h.id != id) return bad("header id " + std::to_string(h.id));
  if (h.size != o.size || h.nrefs != o.nrefs || h.klass != o.klass)
    return bad("header size/nrefs/klass " + std::to_string(h.size) + "/" + std::to_string(h.nrefs) +
               "/" + std::to_string(h.klass));
  const size_t first = min_object_size(h.nrefs) / 8;
  if (o.large) {
    const std::string why = check_large(id, s);
    if (!why.empty()) return bad(why);
  } else for (size_t i = first; i < h.size / 8; i++)
    if (s.words[i] != payload_word(id, s.version, i - first)) {
      // Which version does the word encode? Helps tell stale from torn.
      for (uint32_t v = 1; v <= s.version + 1; v++)
        if (s.words[i] == payload_word(id, v, i - first))
          return bad("payload word " + std::to_string(i - first) + " is of version " +
                     std::to_string(v) + " (stale)");
      return bad("payload word " + std::to_string(i - first) + " matches no version (torn or foreign)");
    }
  for (unsigned k = 0; k < tracked(o); k++) {
    uint64_t want =
        encode(s.target[k] ? table_[s.target[k]].addr.load(std::memory_order_acquire) : 0, id, k);
    if (s.slot[k] != want)
      return bad("slot " + std::to_string(k) + " (at +" + std::to_string(slot_byte(o, k)) + ") holds heap+" +
                 std::to_string(s.slot[k] - base_) + ", its target " + std::to_string(s.target[k]) +
                 " is at heap+" + std::to_string(want - base_));
  }
  return true;
}

std::string Stress::check_large(uint32_t id, const Snapshot& s) const {
  const Obj& o = table_[id];
  const size_t first = min_object_size(o.nrefs);
  for (size_t p = 0; p < s.pv.size(); p++)
    if (s.pv[p] == 0 || s.pv[p] > s.version)
      return "page " + std::to_string(p) + " has version " + std::to_string(s.pv[p]) + " in the table";
  for (size_t j = 0; j < s.sample_off.size(); j++) {
    const size_t off = s.sample_off[j];
    const uint64_t got = s.sample_val[j];
    if (off < first) {  // an untracked slot
      const size_t i = (off - kHeaderBytes) / kSlotBytes;
      if (got != filler_word(id, i))
        return "untracked slot " + std::to_string(i) + " (at +" + std::to_string(off) +
               ") was changed: it holds " + std::to_string(got);
      continue;
    }
    const size_t p = off / page_size_, i = (off - first) / 8;
    const uint32_t pv = s.pv[p];
    if (got == payload_word(id, pv, i)) continue;
    const std::string where = "payload word " + std::to_string(i) + " (at +" + std::to_string(off) +
                              ", page " + std::to_string(p) + " of version " + std::to_string(pv) + ")";
    for (uint32_t v = 1; v <= s.version + 1; v++)
      if (got == payload_word(id, v, i))
        return where + " is of version " + std::to_string(v) + (v < pv ? " (stale)" : " (ahead of the table)");
    return where + " matches no version (torn or foreign)";
  }
  return "";
}

bool Stress::write(Mutator& m, uint32_t id, uintptr_t a, int slot, uint32_t target, uint32_t expect) {
  Obj& o = table_[id];
  uint32_t s;
  for (;;) {
    s = o.seq.load(std::memory_order_relaxed);
    if (!(s & 1) && o.seq.compare_exchange_weak(s, s + 1, std::memory_order_acquire)) break;
    sched_yield();
  }
  std::atomic_thread_fence(std::memory_order_release);
  if (expect != kAnyTarget && o.target[slot].load(std::memory_order_relaxed) != expect) {
    o.seq.store(s + 2, std::memory_order_release);
    return false;
  }
  const uint32_t v = o.version.load(std::memory_order_relaxed) + 1;
  const size_t first = min_object_size(o.nrefs);
  if (slot >= 0) {
    store_word(a + slot_byte(o, unsigned(slot)),
               encode(target ? table_[target].addr.load() : 0, id, unsigned(slot)));
    o.target[slot].store(target, std::memory_order_relaxed);
  }
  if (o.large) {
    // Some of its pages (page_written), each with the new version.
    LargeInfo& L = large_info(o);
    for (size_t p = 0; p < L.npages; p++) {
      if (!page_written(id, v, L.npages, p)) continue;
      size_t lo, hi;
      page_payload(o, p, &lo, &hi);
      for (size_t off = lo; off < hi; off += 8) store_word(a + off, payload_word(id, v, (off - first) / 8));
      L.pv[p].store(v, std::memory_order_relaxed);
    }
    m.large_writes++;
  } else {
    for (size_t off = first; off < o.size; off += 8) store_word(a + off, payload_word(id, v, (off - first) / 8));
  }
  o.version.store(v, std::memory_order_relaxed);
  o.seq.store(s + 2, std::memory_order_release);
  m.log.push_back({id, v, slot, target});
  m.writes++;
  return true;
}

void Stress::unlink_due(Mutator& m) {
  const uint64_t now = cycles_started_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < m.unlinks.size();) {
    const Mutator::Unlink u = m.unlinks[i];
    if (u.due > now) {
      i++;
      continue;
    }
    m.unlinks[i] = m.unlinks.back();
    m.unlinks.pop_back();
    // Addresses in the table hold from flip to the next safepoint, as the
    // walks' do: no safepoint can come between this load and the write.
    const uintptr_t a = table_[u.from].addr.load(std::memory_order_acquire);
    // On the spine a bypass (what the large object's slot 0 names now
    // takes its place), elsewhere a clear.
    const uint32_t t = u.slot == 0 ? table_[u.large].target[0].load(std::memory_order_relaxed) : 0;
    if (a) write(m, u.from, a, int(u.slot), t, u.large);
  }
}

void Stress::park(Mutator& m) {
  retire(m);
  m.seen_n = 0;
  std::unique_lock<std::mutex> g(sp_mu_);
  const uint64_t e = epoch_;
  parked_++;
  sp_cv_.notify_all();
  sp_cv_.wait(g, [&] { return epoch_ != e || stop_.load(); });
  parked_--;
  sp_cv_.notify_all();
}

void Stress::mutator_loop(Mutator& m) {
  std::mt19937_64& rng = m.rng;
  Snapshot snap;
  while (!stop_.load(std::memory_order_acquire)) {
    if (request_.load(std::memory_order_acquire)) {
      park(m);
      continue;
    }
    unlink_due(m);
    const unsigned r = unsigned(rng() % p_.roots);
    uint32_t id = root_id_[r];
    uintptr_t a = root_addr_[r].load(std::memory_order_acquire);
    uint32_t prev = 0;  // an object reached before on this walk: a target for new edges
    uintptr_t prev_a = 0;
    bool via_spine = false;  // reached through prev's slot 0
    for (int step = 0; step < 64; step++) {
      if (!snapshot(m, id, a, &snap) || !check_snapshot(id, a, snap)) return;
      m.reads++;
      m.ops.fetch_add(1, std::memory_order_relaxed);
      const Obj& o = table_[id];
      // Large objects become targets of redirected edges 4 times less
      // often: most have one referrer, and die when it lets go (unlink).
      if (rng() % 8 == 0 && (!o.large || rng() % 4 == 0)) m.seen[m.seen_n++ % kSeen] = id;
      if (double(rng() % 1000) < p_.write_fraction * 1000) {
        if (o.nrefs == 0 || rng() % 2 == 0) {
          write(m, id, a, kSlotPayload, 0);
        } else {
          // Slot 0 is the spine: inserting on it keeps everything
          // reachable; a bypass (prev's slot 0 skips this object) kills
          // about one object. Slots 1.. carry cross edges that are
          // redirected or cleared, and garbage falls out of those too.
          const int k = int(rng() % tracked(o));
          size_t size;
          unsigned nrefs;
          random_shape(rng, &size, &nrefs);
          if (k == 0 && nrefs == 0) {
            nrefs = 1;
            size = std::max(size, min_object_size(1) + 8);
          }
          uint32_t nid = 0, large = 0;
          uintptr_t at = 0;
          if (double(rng() % 1000) < p_.alloc_fraction * 1000) {
            // (No draw without large objects: the same run as before them.)
            if (p_.large_fraction > 0 && double(rng() % 1000000) < p_.large_fraction * 1e6) {
              random_large_shape(rng, k == 0, &size, &nrefs);
              at = alloc_large(size, &nid, &large);
            } else {
              at = alloc(m, size, &nid);
            }
          }
          if (at) {
            // On the edge it replaces (the old target stays reachable
            // through it), with a back edge: cycles in the graph.
            init_object(at, nid, size, nrefs, large);
            m.log.push_back({nid, 1, kSlotAlloc, 0});
            m.allocs++;
            if (large) m.large_allocs++;
            if (nrefs > 0 && snap.target[k]) write(m, nid, at, 0, snap.target[k]);
            if (nrefs > 1) write(m, nid, at, 1, id);
            // A slot on page 1 from the start.
            if (nrefs > kMaxRefs) write(m, nid, at, kMaxRefs - 1, prev ? prev : id);
            write(m, id, a, k, nid);
            if (large)
              m.unlinks.push_back({id, uint32_t(k), nid, cycles_started_.load() + 1 + rng() % 4});
          } else if (k == 0) {
            if (via_spine && snap.target[0]) write(m, prev, prev_a, 0, snap.target[0], id);
          } else {
            uint32_t t = 0;
            if (rng() % 4)  // redirected to an object seen on an earlier walk of this epoch
              t = m.seen_n ? m.seen[rng() % std::min<size_t>(m.seen_n, kSeen)] : (prev ? prev : id);
            write(m, id, a, k, t);
          }
          // Re-read after writing: the snapshot must show our own writes.
          if (!snapshot(m, id, a, &snap) || !check_snapshot(id, a, snap)) return;
        }
      }
      // Next: a random non-null slot of this object.
      unsigned live[kMaxRefs], nl = 0;
      for (unsigned k = 0; k < tracked(o); k++)
        if (snap.target[k]) live[nl++] = k;
      if (!nl || request_.load(std::memory_order_acquire) || failed()) break;
      unsigned k = live[rng() % nl];
      via_spine = k == 0;
      prev = id;
      prev_a = a;
      id = snap.target[k];
      a = snap.slot[k] & (p_.tagged ? ~uint64_t(7) : ~uint64_t(0));  // the tag off
    }
    if (failed()) return;
  }
}

// ---------------------------------------------------------------------------
// The driver

bool Stress::safepoint_begin() {
  std::unique_lock<std::mutex> g(sp_mu_);
  request_.store(true, std::memory_order_release);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(p_.timeout_s);
  // A mutator that failed has returned from its loop and never parks.
  bool ok = sp_cv_.wait_until(g, deadline, [&] { return parked_ == muts_.size() || failed(); });
  if (!ok) fail("mutators did not reach the safepoint in time");
  return ok && !failed();
}

void Stress::safepoint_end() {
  {
    std::lock_guard<std::mutex> g(sp_mu_);
    request_.store(false, std::memory_order_release);
    epoch_++;
  }
  sp_cv_.notify_all();
  // Let the mutators leave the barrier before compaction starts, so that
  // they really run (and fault) while it does. Bounded: never a hang.
  std::unique_lock<std::mutex> g(sp_mu_);
  sp_cv_.wait_for(g, std::chrono::milliseconds(200), [&] { return parked_ == 0; });
}

void Stress::stop_threads() {
  {
    std::lock_guard<std::mutex> g(sp_mu_);
    stop_.store(true);
    request_.store(false);
    epoch_++;
  }
  sp_cv_.notify_all();
  for (auto& m : muts_)
    if (m->thread.joinable()) m->thread.join();
}

bool Stress::verify_and_mark(bool mark) {
  // Replay this epoch's writes: per object, the entries are totally ordered
  // by version (writes to one object hold its seqlock).
  std::vector<LogEntry> all;
  for (auto& m : muts_) {
    all.insert(all.end(), m->log.begin(), m->log.end());
    m->log.clear();
  }
  std::sort(all.begin(), all.end(), [](const LogEntry& x, const LogEntry& y) {
    return x.id != y.id ? x.id < y.id : x.version != y.version ? x.version < y.version : x.slot < y.slot;
  });
  for (const LogEntry& e : all) {
    ModelObj& mo = model_[e.id];
    const Obj& o = table_[e.id];
    if (e.slot == kSlotAlloc) {
      mo = ModelObj{};
      mo.version = 1;
      if (o.large) model_pv_[e.id].assign(large_info(o).npages, 1);
      continue;
    }
    if (e.version != mo.version + 1) {
      fail("write log: object " + std::to_string(e.id) + " goes from version " +
           std::to_string(mo.version) + " to " + std::to_string(e.version));
      return false;
    }
    mo.version = e.version;
    if (e.slot >= 0) mo.target[e.slot] = e.target;
    if (o.large) {
      std::vector<uint32_t>& pv = model_pv_[e.id];
      for (size_t p = 0; p < pv.size(); p++)
        if (page_written(e.id, e.version, pv.size(), p)) pv[p] = e.version;
    }
  }
  res_.log_entries += all.size();

  // The heap graph from the roots against the model; checksums of both.
  std::fill(marked_.begin(), marked_.end(), 0);
  std::vector<uint32_t> queue;
  Hasher heap_hash, model_hash;
  uint64_t large_live = 0;
  auto bad = [&](uint32_t id, const std::string& what) {
    fail("safepoint check: object " + std::to_string(id) + ": " + what);
    return false;
  };
  for (unsigned r = 0; r < p_.roots; r++) {
    uint32_t id = root_id_[r];
    uintptr_t a = root_addr_[r].load();
    if (a < base_ || a >= base_ + capacity_) return bad(id, "root outside the heap");
    ObjectHeader h;
    std::memcpy(&h, reinterpret_cast<const void*>(a), sizeof h);
    if (h.id != id) return bad(id, "root points to object " + std::to_string(h.id));
    heap_hash.add(h.id);
    model_hash.add(id);
    if (!marked_[id]) {
      marked_[id] = 1;
      queue.push_back(id);
    }
  }
  for (size_t qi = 0; qi < queue.size(); qi++) {
    const uint32_t id = queue[qi];
    const Obj& o = table_[id];
    const ModelObj& mo = model_[id];
    const uintptr_t a = o.addr.load();
    ObjectHeader h;
    std::memcpy(&h, reinterpret_cast<const void*>(a), sizeof h);
    if (h.id != id || h.size != o.size || h.nrefs != o.nrefs || h.klass != o.klass)
      return bad(id, "header differs from the table");
    if (o.version.load() != mo.version)
      return bad(id, "committed version " + std::to_string(o.version.load()) + ", the log says " +
                         std::to_string(mo.version));
    const size_t first = min_object_size(h.nrefs);
    uint32_t first_version = mo.version;  // of the first payload word
    if (o.large) {
      // Every payload word of every page, every untracked slot.
      const LargeInfo& L = large_info(o);
      auto it = model_pv_.find(id);
      if (it == model_pv_.end() || it->second.size() != L.npages) return bad(id, "no page versions in the model");
      const std::vector<uint32_t>& pv = it->second;
      for (size_t p = 0; p < L.npages; p++) {
        if (L.pv[p].load() != pv[p])
          return bad(id, "page " + std::to_string(p) + " committed version " + std::to_string(L.pv[p].load()) +
                             ", the log says " + std::to_string(pv[p]));
        size_t lo, hi;
        page_payload(o, p, &lo, &hi);
        for (size_t off = lo; off < hi; off += 8)
          if (load_word(a + off) != payload_word(id, pv[p], (off - first) / 8))
            return bad(id, "large object: payload word " + std::to_string((off - first) / 8) + " (page " +
                               std::to_string(p) + ") is not version " + std::to_string(pv[p]) +
                               " (a lost write, or a stale or misplaced page)");
      }
      for (size_t i = kMaxRefs - 1; i + 1 < h.nrefs; i++)
        if (load_word(a + slot_offset(i)) != filler_word(id, i))
          return bad(id, "large object: untracked slot " + std::to_string(i) + " was changed");
      first_version = pv[first / page_size_];
      large_live++;
    } else {
      for (size_t off = first; off < h.size; off += 8)
        if (load_word(a + off) != payload_word(id, mo.version, (off - first) / 8))
          return bad(id, "payload is not version " + std::to_string(mo.version) + " (a lost write)");
    }
    heap_hash.add(uint64_t(h.id) << 32 | load_word(a + first) >> 32);
    model_hash.add(uint64_t(id) << 32 | payload_word(id, first_version, 0) >> 32);
    for (unsigned k = 0; k < tracked(o); k++) {
      uint64_t v = load_word(a + slot_byte(o, k));
      const uint32_t t = mo.target[k];
      uint32_t got = 0;
      if (v && p_.tagged) {
        if ((v & 7) != (encode(8, id, k) & 7))
          return bad(id, "slot " + std::to_string(k) + " lost its tag bits");
        v &= ~uint64_t(7);
      }
      if (v) {
        if (v < base_ || v >= base_ + capacity_ || (v & 7)) return bad(id, "slot outside the heap");
        got = reinterpret_cast<const ObjectHeader*>(v)->id;
        if (got == 0 || got >= max_ids_ || table_[got].addr.load() != v)
          return bad(id, "slot " + std::to_string(k) + " does not point to an object start");
      }
      if (got != t)
        return bad(id, "slot " + std::to_string(k) + " names object " + std::to_string(got) +
                           ", the log says " + std::to_string(t) + " (a lost reference write)");
      heap_hash.add(got);
      model_hash.add(t);
      if (got && !marked_[got]) {
        marked_[got] = 1;
        queue.push_back(got);
      }
    }
  }
  heap_hash.add(queue.size());
  model_hash.add(queue.size());
  if (heap_hash.h != model_hash.h) {
    fail("graph checksum of the heap differs from the model's");
    return false;
  }
  res_.objects_verified += queue.size();
  res_.live_objects = queue.size();
  res_.large_verified += large_live;
  res_.large_live = large_live;
  if (!mark) return true;
  for (uint32_t id : queue) {
    remap_status s = remap_mark(heap_, reinterpret_cast<const void*>(table_[id].addr.load()));
    if (s != REMAP_OK) {
      fail(std::string("remap_mark: ") + remap_last_error());
      return false;
    }
  }
  return true;
}

void Stress::inject_stale() {
  if (p_.inject_stale_large) {
    // One page of a reachable large object goes back a version (the last
    // page of one never written: torn), what a page left behind by the
    // slide would show. Prefer one written since its allocation.
    uint32_t pick = 0;
    for (uint32_t id = 1; id < std::min(next_id_.load(), max_ids_); id++) {
      if (!marked_[id] || !table_[id].large) continue;
      if (!pick || table_[id].version.load() >= 2) pick = id;
      if (table_[id].version.load() >= 2) break;
    }
    // The page: one written since the allocation if any, else the last one
    // that holds payload at all (a page of slots only would roll nothing
    // back, and the checker would have nothing to catch).
    size_t p = SIZE_MAX, lo = 0, hi = 0;
    if (pick) {
      const Obj& o = table_[pick];
      const LargeInfo& L = large_info(o);
      for (size_t q = 0; q < L.npages; q++) {
        page_payload(o, q, &lo, &hi);
        if (lo < hi && (p == SIZE_MAX || L.pv[q].load() >= 2 || L.pv[p].load() < 2)) p = q;
      }
    }
    if (pick && p != SIZE_MAX) {
      const Obj& o = table_[pick];
      const LargeInfo& L = large_info(o);
      const uintptr_t a = o.addr.load();
      const size_t first = min_object_size(o.nrefs);
      page_payload(o, p, &lo, &hi);
      const uint32_t v = L.pv[p].load();
      for (size_t off = lo; off < hi; off += 8)
        store_word(a + off, v >= 2 ? payload_word(pick, v - 1, (off - first) / 8) : 0);
      return;
    }
  }
  // A root object written at least once: its payload goes back one version.
  for (unsigned r = 0; r < p_.roots; r++) {
    const uint32_t id = root_id_[r];
    const Obj& o = table_[id];
    const uint32_t v = o.version.load();
    if (v < 2) continue;
    const uintptr_t a = o.addr.load();
    const size_t first = min_object_size(o.nrefs);
    if (o.large) {  // its pages written since the allocation go back one version
      const LargeInfo& L = large_info(o);
      bool rolled = false;
      for (size_t p = 0; p < L.npages; p++) {
        const uint32_t pv = L.pv[p].load();
        size_t lo, hi;
        page_payload(o, p, &lo, &hi);
        if (pv < 2 || lo == hi) continue;
        for (size_t off = lo; off < hi; off += 8) store_word(a + off, payload_word(id, pv - 1, (off - first) / 8));
        rolled = true;
      }
      if (rolled) return;
      continue;  // only payload-less pages written (slots): no payload to roll back
    }
    for (size_t off = first; off < o.size; off += 8) store_word(a + off, payload_word(id, v - 1, (off - first) / 8));
    return;
  }
  // None written yet: tear the first root's first payload word instead.
  const Obj& o = table_[root_id_[0]];
  store_word(o.addr.load() + min_object_size(o.nrefs), 0);
}

bool Stress::cycle() {
  auto lib = [&](remap_status s, const char* what) {
    if (s != REMAP_OK) {
      std::string why = std::string(what) + ": " + remap_status_name(s) + ": " + remap_last_error();
      {
        std::lock_guard<std::mutex> g(err_mu_);
        if (lib_error_.empty()) lib_error_ = why;
      }
      fail(why);
    }
    return s == REMAP_OK;
  };
  if (!safepoint_begin()) return false;
  // Mutators parked with their TLABs retired: the initial mark's pause.
  if (p_.concurrent_prepare && !lib(remap_cycle_begin(heap_), "remap_cycle_begin")) return false;
  if (!verify_and_mark(true)) return false;
  if (p_.inject_stale_cycle == res_.cycles + 1) inject_stale();
  // Ids from here on are allocated after the marking: black when prepare
  // runs beside the mutators.
  const uint32_t ids_marked = std::min(next_id_.load(), max_ids_);
  if (p_.concurrent_prepare) {
    safepoint_end();  // the mutators run (and allocate) while prepare does
    if (!lib(remap_prepare(heap_), "remap_prepare")) return false;
    if (!safepoint_begin()) return false;  // the flip's pause: TLABs retired
  } else if (!lib(remap_prepare(heap_), "remap_prepare")) {
    return false;
  }
  // Forwarding is valid from prepare: take it now, apply it after the flip.
  const uint32_t ids = std::min(next_id_.load(), max_ids_);
  std::vector<uintptr_t> fwd(ids, 0);
  for (uint32_t id = 1; id < ids; id++) {
    if (id >= ids_marked && table_[id].addr.load()) {
      fwd[id] = table_[id].addr.load();  // black: stays (checked below)
      continue;
    }
    if (!marked_[id]) {
      if (table_[id].large && table_[id].addr.load()) res_.large_died++;
      continue;
    }
    void* nw = nullptr;
    if (!lib(remap_forward(heap_, reinterpret_cast<const void*>(table_[id].addr.load()), &nw), "remap_forward"))
      return false;
    fwd[id] = reinterpret_cast<uintptr_t>(nw);
  }
  if (!lib(remap_flip(heap_), "remap_flip")) return false;
  // The runtime's part of the pause: roots through remap_forward (while
  // COMPACTING; with stw the cycle is over and the recorded values hold).
  remap_heap_info hi;
  std::memset(&hi, 0, sizeof hi);
  hi.struct_size = sizeof hi;
  if (!lib(remap_heap_get_info(heap_, &hi), "remap_heap_get_info")) return false;
  const bool concurrent = hi.phase == REMAP_PHASE_COMPACTING;
  for (unsigned r = 0; r < p_.roots; r++) {
    uintptr_t nw = fwd[root_id_[r]];
    if (concurrent) {
      void* f = nullptr;
      if (!lib(remap_forward(heap_, reinterpret_cast<const void*>(root_addr_[r].load()), &f), "remap_forward"))
        return false;
      if (reinterpret_cast<uintptr_t>(f) != nw) {
        fail("remap_forward of a root changed between prepare and flip");
        return false;
      }
    }
    root_addr_[r].store(nw);
  }
  for (uint32_t id = 1; id < ids; id++) {
    if (id >= ids_marked && fwd[id]) {
      // A black object: remap_forward must answer its own address.
      void* f = nullptr;
      if (!lib(remap_forward(heap_, reinterpret_cast<const void*>(fwd[id]), &f), "remap_forward") ||
          reinterpret_cast<uintptr_t>(f) != fwd[id]) {
        fail("remap_forward moved a black object (allocated after the marking)");
        return false;
      }
      continue;
    }
    table_[id].addr.store(marked_[id] ? fwd[id] : 0);
  }
  cycles_started_.fetch_add(1);
  compacting_.store(concurrent);
  safepoint_end();
  if (concurrent) {
    if (!lib(remap_compact(heap_), "remap_compact")) return false;
    if (!lib(remap_finish(heap_), "remap_finish")) return false;
  }
  compacting_.store(false);
  remap_cycle_stats st;
  std::memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  if (!lib(remap_heap_last_stats(heap_, &st), "remap_heap_last_stats")) return false;
  res_.cycles++;
  res_.pages_by_mutator += st.pages_by_mutator;
  res_.pages_by_gc += st.pages_by_gc;
  res_.faults += st.faults;
  res_.fallback_ebusy += st.fallback_ebusy;
  res_.large_objects_moved += st.large_objects_moved;
  res_.large_pages_moved += st.large_pages_moved;
  res_.large_pages_copied += st.large_pages_copied;
  res_.large_pages_updated += st.large_pages_updated;
  if (st.large_objects_moved) res_.large_cycles_moved++;
  if (p_.keep_stats) res_.stats.push_back(st);
  // Mutators run in IDLE for a while before the next cycle.
  uint64_t start = 0;
  for (auto& m : muts_) start += m->ops.load();
  const uint64_t want = start + p_.idle_ops * muts_.size();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(p_.timeout_s);
  for (;;) {
    uint64_t now = 0;
    for (auto& m : muts_) now += m->ops.load();
    if (now >= want || failed() || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return !failed();
}

StressResult Stress::run() {
  create_heap();
  build();
  for (unsigned i = 0; i < p_.mutators; i++) {
    auto m = std::make_unique<Mutator>();
    m->rng.seed(mix(p_.seed * 1000 + i + 1));
    muts_.push_back(std::move(m));
  }
  for (auto& m : muts_) {
    Mutator* mp = m.get();
    mp->thread = std::thread([this, mp] { mutator_loop(*mp); });
  }
  for (unsigned c = 0; c < p_.cycles && !failed(); c++)
    if (!cycle()) break;
  // The last word: every write of the last epoch against the heap.
  if (!failed() && safepoint_begin()) verify_and_mark(false);
  // A failure may leave a cycle open: finish it so the heap can go.
  remap_heap_info hi;
  std::memset(&hi, 0, sizeof hi);
  hi.struct_size = sizeof hi;
  if (remap_heap_get_info(heap_, &hi) == REMAP_OK && hi.phase == REMAP_PHASE_COMPACTING) remap_finish(heap_);
  stop_threads();
  if (remap_heap_get_info(heap_, &hi) == REMAP_OK) res_.final_phase = hi.phase;
  res_.lib_error = lib_error_;
  if (!lib_error_.empty() && error_ == lib_error_ && res_.final_phase == REMAP_PHASE_PREPARED &&
      remap_clear_marks(heap_) == REMAP_OK) {
    // A refused flip leaves the cycle prepared; clearing the marks cancels it.
    res_.final_phase = REMAP_PHASE_IDLE;
  }
  if (!lib_error_.empty() && error_ == lib_error_ && res_.final_phase == REMAP_PHASE_IDLE) {
    // A refused cycle must leave the graph as the mutators last wrote it:
    // compare it with the logs (the mutators are joined, nothing races).
    failed_.store(false);
    error_.clear();
    res_.verified_after_refusal = verify_and_mark(false) && error_.empty();
    if (error_.empty()) error_ = lib_error_;
  }
  for (auto& m : muts_) {
    res_.reads += m->reads;
    res_.writes += m->writes;
    res_.allocs += m->allocs;
    res_.retries += m->retries;
    res_.large_reads += m->large_reads;
    res_.large_reads_compacting += m->large_reads_compacting;
    res_.large_writes += m->large_writes;
    res_.large_allocs += m->large_allocs;
    res_.large_pages_missing += m->large_pages_missing;
  }
  res_.error = error_;
  res_.verified = error_.empty() && res_.cycles == p_.cycles;
  if (error_.empty() && res_.cycles != p_.cycles)
    res_.error = "only " + std::to_string(res_.cycles) + " cycles ran";
  return res_;
}

int parse_enum(const py::object& v, const char* const* names, int n, const char* what) {
  if (py::isinstance<py::str>(v)) {
    std::string s = v.cast<std::string>();
    for (int i = 0; i < n; i++)
      if (names[i] && s == names[i]) return i;
    throw py::value_error(std::string("unknown ") + what + " '" + s + "'");
  }
  return v.cast<int>();
}

}  // namespace

StressResult run_stress(const StressParams& params) {
  if (params.mutators == 0 || params.roots == 0 || params.heap_mib == 0)
    throw std::invalid_argument("run_stress: mutators, roots and heap_mib must be positive");
  if (!(params.large_fraction >= 0 && params.large_fraction <= 1))
    throw std::invalid_argument("run_stress: large_fraction must be in [0, 1]");
  Stress s(params);
  return s.run();
}

void register_stress(py::module_& m) {
  m.def(
      "run_stress",
      [](const py::object& backend, const py::object& fault_mode, unsigned gc_threads,
         unsigned mutators, unsigned cycles, size_t heap_mib, uint64_t seed, size_t idle_ops,
         double write_fraction, double alloc_fraction, size_t region_kib, double timeout_s,
         bool keep_stats, unsigned inject_stale_cycle, double large_fraction,
         bool inject_stale_large, bool tagged, bool concurrent_prepare, bool evacuate) {
        static const char* const backends[] = {"auto", "move", "copy", "minor", "sigsegv", "stw"};
        static const char* const modes[] = {"auto", "sigbus", "thread"};
        StressParams p;
        p.backend = parse_enum(backend, backends, 6, "backend");
        p.fault_mode = parse_enum(fault_mode, modes, 3, "fault mode");
        p.gc_threads = gc_threads;
        p.mutators = mutators;
        p.cycles = cycles;
        p.heap_mib = heap_mib;
        p.seed = seed;
        p.idle_ops = idle_ops;
        p.write_fraction = write_fraction;
        p.alloc_fraction = alloc_fraction;
        p.region_kib = region_kib;
        p.timeout_s = timeout_s;
        p.keep_stats = keep_stats;
        p.inject_stale_cycle = inject_stale_cycle;
        p.large_fraction = large_fraction;
        p.inject_stale_large = inject_stale_large;
        p.tagged = tagged;
        p.concurrent_prepare = concurrent_prepare;
        p.evacuate = evacuate;
        StressResult r;
        {
          py::gil_scoped_release nogil;
          r = run_stress(p);
        }
        py::dict d;
#define F(name) d[#name] = r.name;
        F(cycles) F(reads) F(writes) F(allocs) F(retries) F(objects_verified) F(live_objects)
        F(pages_by_mutator) F(pages_by_gc) F(faults) F(fallback_ebusy) F(log_entries) F(verified)
        F(error) F(large_allocs) F(large_reads) F(large_reads_compacting) F(large_writes)
        F(large_died) F(large_live) F(large_verified) F(large_cycles_moved) F(large_objects_moved)
        F(large_pages_moved) F(large_pages_copied) F(large_pages_updated) F(large_pages_missing)
        F(lib_error) F(final_phase) F(verified_after_refusal)
#undef F
        py::list stats;
        for (const remap_cycle_stats& s : r.stats) stats.append(stats_dict(s));
        d["stats"] = stats;
        return d;
      },
      py::arg("backend"), py::arg("fault_mode"), py::arg("gc_threads") = 1, py::arg("mutators") = 2,
      py::arg("cycles") = 10, py::arg("heap_mib") = 4, py::arg("seed") = 0, py::kw_only(),
      py::arg("idle_ops") = 500, py::arg("write_fraction") = 0.1, py::arg("alloc_fraction") = 0.6,
      py::arg("region_kib") = 64, py::arg("timeout_s") = 60.0, py::arg("keep_stats") = false,
      py::arg("inject_stale_cycle") = 0, py::arg("large_fraction") = StressParams{}.large_fraction,
      py::arg("inject_stale_large") = false, py::arg("tagged") = false,
      py::arg("concurrent_prepare") = false, py::arg("evacuate") = false,
      "C++ mutator threads reading, writing and allocating while compaction cycles run "
      "(bindings/stress.h). Returns counts, `verified` and the first `error`.");
}

}  // namespace libremap_py

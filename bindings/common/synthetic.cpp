// synthetic.cpp — building a SyntheticHeap and drawing its object graph.
// The cycle and the observers are in synthetic_cycle.cpp.
//
// Everything random comes from rng_ in a fixed call order, so the sequence
// of calls made on a heap (not its base address) decides its contents.
#include "synthetic.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "errors_py.h"

namespace libremap_py {

using namespace libremap_layout;

SyntheticHeap::SyntheticHeap(const SyntheticParams& p) : params_(p), rng_(p.seed) {
  if (p.region_size == 0 || (p.region_size & (p.region_size - 1)) != 0)
    throw std::invalid_argument("region_size must be a power of two");
  if (p.capacity == 0 || p.capacity % p.region_size != 0)
    throw std::invalid_argument("capacity must be a positive multiple of region_size");
  if (p.capacity / 8 >= kGone)
    throw std::invalid_argument("capacity above 32 GiB is not supported by the object table");
  if (p.min_object_size < 16 || p.min_object_size % 8 || p.max_object_size < p.min_object_size)
    throw std::invalid_argument("object sizes: need 16 <= min_object_size <= max_object_size, min a multiple of 8");
  if (p.max_refs > 0xffff) throw std::invalid_argument("max_refs must fit in 16 bits");
  if (p.large_max_refs > 0xffff) throw std::invalid_argument("large_max_refs must fit in 16 bits");
  if (p.tagging < kTagNone || p.tagging > kTagLow)
    throw std::invalid_argument("tagging must be 0 (none), 1 (guile), 2 (v8) or 3 (low tags)");

  model_.region_size = p.region_size;
  remap_heap_config cfg;
  std::memset(&cfg, 0, sizeof cfg);
  remap_heap_config_init(&cfg);
  cfg.capacity = p.capacity;
  cfg.region_size = p.region_size;
  cfg.dense_threshold = p.dense_threshold;
  cfg.backend = p.backend;
  cfg.fault_mode = p.fault_mode;
  cfg.gc_threads = p.gc_threads;
  cfg.handler_threads = p.handler_threads;
  cfg.flags = p.flags;
  install_model(cfg.model, &model_);
  cfg.ref_tag_mask = tag_mask();
  switch (p.tagging) {
    case kTagGuile: cfg.ref_check_mask = 7; cfg.ref_check_value = 0; break;
    case kTagV8: cfg.ref_check_mask = 1; cfg.ref_check_value = 1; break;
    default: break;
  }
  check(remap_heap_create(&cfg, &heap_), "remap_heap_create");
  try {
    remap_heap_info hi = info();
    base_ = reinterpret_cast<uintptr_t>(hi.base);
    page_size_ = hi.page_size ? hi.page_size : 4096;
    region_top_.assign(p.capacity / p.region_size, 0);
    build();
  } catch (...) {
    remap_heap_destroy(heap_);
    throw;
  }
}

SyntheticHeap::~SyntheticHeap() { remap_heap_destroy(heap_); }

uint64_t SyntheticHeap::tag_mask() const {
  return params_.tagging == kTagV8 ? 3 : params_.tagging == kTagLow ? 7 : 0;
}

bool SyntheticHeap::is_reference(uint64_t v) const {
  switch (params_.tagging) {
    case kTagGuile: return (v & 7) == 0;
    case kTagV8: return (v & 1) == 1;
    default: return true;
  }
}

uint64_t SyntheticHeap::encode_ref(uintptr_t addr) {
  switch (params_.tagging) {
    case kTagV8: return addr | (coin(0.25) ? 3 : 1);
    case kTagLow: return addr | (rng_() & 7);
    default: return addr;
  }
}

uint64_t SyntheticHeap::in_heap_immediate(const std::vector<uint32_t>& live) {
  const uint64_t k = rng_() % (params_.capacity / 8);
  switch (params_.tagging) {
    case kTagNone: return base_ + 8 * k + 4;   // not 8-aligned: never an object start
    case kTagGuile: return base_ + 8 * k + 2;  // a fixnum: low bits 10
    case kTagV8:  // a Smi whose bits equal a live object's address
      return live.empty() ? base_ : addr_of(live[rng_() % live.size()]);
    default: return foreign_value();  // every in-heap value is a reference
  }
}

// Log-uniform between min and max: most objects small, a tail up to max, as
// in the heaps of managed runtimes (median ~ sqrt(min * max)).
size_t SyntheticHeap::sample_size() {
  double lo = std::log(double(params_.min_object_size));
  double hi = std::log(double(params_.max_object_size) + 1.0);
  double x = std::exp(std::uniform_real_distribution<double>(lo, hi)(rng_));
  size_t s = (size_t(x) + 7) & ~size_t(7);
  return std::clamp(s, params_.min_object_size, params_.max_object_size & ~size_t(7));
}

uintptr_t SyntheticHeap::write_object(uintptr_t at, size_t size, unsigned nrefs) {
  ObjectHeader* h = header(reinterpret_cast<void*>(at));
  h->size = uint32_t(size);
  h->nrefs = uint16_t(nrefs);
  // klass != 0 keeps the header's first word >= 2^48: never a heap address.
  h->klass = uint16_t(1 + rng_() % 1000);
  h->id = word_.size() + 1;
  uint64_t* w = slots(reinterpret_cast<void*>(at));
  for (unsigned i = 0; i < nrefs; ++i) w[i] = 0;  // drawn by build_graph
  for (size_t i = nrefs; i < (size - kHeaderBytes) / 8; ++i) w[i] = random_payload_word();
  word_.push_back(uint32_t((at - base_) / 8));
  flags_.push_back(0);
  return at;
}

void SyntheticHeap::fill_span(uintptr_t start, uintptr_t end, double ratio) {
  const size_t first = word_.size();
  uintptr_t cursor = start;
  while (end - cursor >= kHeaderBytes) {
    size_t rem = end - cursor;
    unsigned nrefs = 0;
    if (params_.max_refs > 0 && coin(params_.ref_fraction))
      nrefs = std::uniform_int_distribution<unsigned>(1, params_.max_refs)(rng_);
    size_t size = std::max(sample_size(), min_object_size(nrefs));
    if (size > rem) {  // the last object takes the rest of the span
      size = rem;
      nrefs = std::min<size_t>(nrefs, (rem - kHeaderBytes) / kSlotBytes);
    }
    write_object(cursor, size, nrefs);
    cursor += size;
  }
  check(remap_region_retire(heap_, reinterpret_cast<void*>(start), reinterpret_cast<void*>(cursor)),
        "remap_region_retire");
  size_t r = (start - base_) / params_.region_size;
  region_top_[r] = std::max<uint64_t>(region_top_[r], cursor - base_ - r * params_.region_size);

  // Live set: objects in random order, taken while they fit under the target.
  std::vector<size_t> order(word_.size() - first);
  for (size_t i = 0; i < order.size(); ++i) order[i] = first + i;
  std::shuffle(order.begin(), order.end(), rng_);
  const double target = ratio * double(cursor - start);
  double live = 0;
  for (size_t idx : order) {
    double sz = header(reinterpret_cast<void*>(addr_of(idx)))->size;
    if (live + sz <= target + 1e-9) {
      flags_[idx] |= kLive;
      live += sz;
    }
  }
}

size_t SyntheticHeap::large_size() const {
  size_t size = params_.large_object_size ? params_.large_object_size : params_.region_size * 3 / 4;
  return (size + 7) & ~size_t(7);
}

void SyntheticHeap::add_large_objects() {
  const size_t size = large_size();
  if (size > UINT32_MAX) throw std::invalid_argument("large_object_size must fit the 32-bit size field");
  for (size_t i = 0; i < params_.large_objects; ++i) {
    void* p = nullptr;
    check(remap_alloc_large(heap_, size, &p), "remap_alloc_large");
    unsigned nrefs = 0;
    const unsigned max_refs =
        params_.large_max_refs < 0 ? params_.max_refs : unsigned(params_.large_max_refs);
    if (max_refs > 0 && coin(params_.ref_fraction))
      nrefs = std::uniform_int_distribution<unsigned>(1, max_refs)(rng_);
    uintptr_t at = reinterpret_cast<uintptr_t>(p);
    write_object(at, size, nrefs);
    flags_.back() |= kLarge;
    if (coin(params_.large_live_fraction)) flags_.back() |= kLive;
    size_t r = (at - base_) / params_.region_size;
    region_top_[r] = (size + page_size_ - 1) & ~(page_size_ - 1);
  }
}

void SyntheticHeap::build() {
  const size_t nreg = params_.capacity / params_.region_size;
  // Large objects get regions of their own: keep enough free for them.
  const size_t lsize = large_size();
  const size_t large_regions =
      params_.large_objects *
      ((((lsize + page_size_ - 1) & ~(page_size_ - 1)) + params_.region_size - 1) / params_.region_size);
  const size_t fill = std::min(
      size_t(std::llround(std::clamp(params_.fill_fraction, 0.0, 1.0) * double(nreg))),
      nreg > large_regions ? nreg - large_regions : 0);
  // Exactly round(dense_fraction * fill) dense regions, at random positions.
  std::vector<uint8_t> dense(fill, 0);
  size_t ndense = size_t(std::llround(std::clamp(params_.dense_fraction, 0.0, 1.0) * double(fill)));
  for (size_t i = 0; i < ndense && i < fill; ++i) dense[i] = 1;
  std::shuffle(dense.begin(), dense.end(), rng_);
  for (size_t i = 0; i < fill; ++i) {
    void *s = nullptr, *e = nullptr;
    check(remap_region_acquire(heap_, &s, &e), "remap_region_acquire (building the synthetic heap)");
    double ratio = dense[i] ? std::uniform_real_distribution<double>(0.95, 1.0)(rng_) : params_.live_ratio;
    fill_span(reinterpret_cast<uintptr_t>(s), reinterpret_cast<uintptr_t>(e), ratio);
  }
  add_large_objects();
  build_graph();
}

void SyntheticHeap::begin_cycle() {
  if (prepared_) raise_status(REMAP_EPHASE, "begin_cycle: a cycle is prepared already");
  check(remap_cycle_begin(heap_), "remap_cycle_begin");
}

void SyntheticHeap::allocate_black(size_t bytes) {
  std::vector<uint32_t> old_live;
  for (size_t i = 0; i < word_.size(); ++i)
    if (present(i) && (flags_[i] & kLive)) old_live.push_back(uint32_t(i));
  const size_t first_new = word_.size();
  size_t grown = 0;
  while (grown < bytes) {
    void *s = nullptr, *e = nullptr;
    check(remap_region_acquire(heap_, &s, &e), "remap_region_acquire (black allocation)");
    fill_span(reinterpret_cast<uintptr_t>(s), reinterpret_cast<uintptr_t>(e), 1.0);
    grown += reinterpret_cast<uintptr_t>(e) - reinterpret_cast<uintptr_t>(s);
  }
  std::vector<uint32_t> fresh;
  for (size_t i = first_new; i < word_.size(); ++i) {
    flags_[i] |= kLive;  // black: live by construction
    fresh.push_back(uint32_t(i));
  }
  auto obj = [&](size_t idx) { return reinterpret_cast<void*>(addr_of(idx)); };
  std::vector<uint32_t> all_live = old_live;
  all_live.insert(all_live.end(), fresh.begin(), fresh.end());
  for (uint32_t idx : fresh) {
    uint64_t* s = slots(obj(idx));
    for (unsigned i = 0; i < header(obj(idx))->nrefs; ++i)
      s[i] = coin(0.6) ? encode_ref(addr_of(all_live[rng_() % all_live.size()])) : 0;
    roots_.push_back(addr_of(idx));
  }
  // Writes into old objects after their marking: null slots now name black
  // objects (never a slot that was some object's only path).
  for (uint32_t idx : old_live) {
    uint64_t* s = slots(obj(idx));
    for (unsigned i = 0; i < header(obj(idx))->nrefs; ++i)
      if (s[i] == 0 && coin(0.2)) s[i] = encode_ref(addr_of(fresh[rng_() % fresh.size()]));
  }
  if (prepared_) {
    // Allocated after prepare: the forwarding recorded there is the identity
    // for them, and their regions keep their tops.
    for (size_t i = first_new; i < word_.size(); ++i) fwd_word_.push_back(word_[i]);
    for (uint32_t idx : fresh) {
      const size_t r = size_t(word_[idx]) * 8 / params_.region_size;
      new_top_[r] = region_top_[r];
      fwd_roots_.push_back(addr_of(idx));
    }
  }
  recount_live();
}

void SyntheticHeap::mutate(double kill_fraction, size_t grow_bytes, double live_ratio,
                           double dense_fraction) {
  if (phase() != REMAP_PHASE_IDLE) raise_status(REMAP_EPHASE, "mutate: the heap is not IDLE");
  if (prepared_) raise_status(REMAP_EPHASE, "mutate: a cycle is prepared; flip it or clear_marks() first");
  for (size_t i = 0; i < word_.size(); ++i)
    if (present(i) && (flags_[i] & kLive) && coin(kill_fraction)) flags_[i] &= uint8_t(~kLive);
  size_t grown = 0;
  while (grown < grow_bytes) {
    void *s = nullptr, *e = nullptr;
    check(remap_region_acquire(heap_, &s, &e), "remap_region_acquire (mutate)");
    double ratio = coin(dense_fraction) ? std::uniform_real_distribution<double>(0.95, 1.0)(rng_) : live_ratio;
    fill_span(reinterpret_cast<uintptr_t>(s), reinterpret_cast<uintptr_t>(e), ratio);
    grown += reinterpret_cast<uintptr_t>(e) - reinterpret_cast<uintptr_t>(s);
  }
  build_graph();
}

// A random spanning forest over the live objects makes every one of them
// reachable (each either a root or the target of a slot of a live object
// placed before it in a random order), then the spare slots get random
// extra edges (cycles, sharing). Dead objects point anywhere.
void SyntheticHeap::build_graph() {
  std::vector<uint32_t> live, all;
  for (size_t i = 0; i < word_.size(); ++i) {
    if (!present(i)) continue;
    all.push_back(uint32_t(i));
    if (flags_[i] & kLive) live.push_back(uint32_t(i));
  }
  std::shuffle(live.begin(), live.end(), rng_);
  auto obj = [&](size_t idx) { return reinterpret_cast<void*>(addr_of(idx)); };

  roots_.clear();
  std::vector<uint16_t> used(word_.size(), 0);  // slots taken by tree edges
  std::vector<uint32_t> open;                    // live objects with a free slot
  for (uint32_t idx : live) {
    if (open.empty() || coin(params_.root_fraction)) {
      roots_.push_back(addr_of(idx));
    } else {
      size_t k = std::uniform_int_distribution<size_t>(0, open.size() - 1)(rng_);
      uint32_t parent = open[k];
      slots(obj(parent))[used[parent]++] = encode_ref(addr_of(idx));
      if (used[parent] == header(obj(parent))->nrefs) {
        open[k] = open.back();
        open.pop_back();
      }
    }
    if (header(obj(idx))->nrefs > 0) open.push_back(idx);
  }
  auto random_of = [&](const std::vector<uint32_t>& v) {
    return addr_of(v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng_)]);
  };
  // Spare slots of live objects: live targets only, so that marking by
  // traversal reaches exactly the live set.
  std::vector<uint32_t> by_index = live;
  std::sort(by_index.begin(), by_index.end());
  for (uint32_t idx : by_index) {
    unsigned n = header(obj(idx))->nrefs;
    uint64_t* s = slots(obj(idx));
    for (unsigned i = used[idx]; i < n; ++i) {
      if (params_.immediate_fraction > 0 && coin(params_.immediate_fraction))
        s[i] = in_heap_immediate(live);
      else if (coin(params_.foreign_ref_fraction)) s[i] = foreign_value();
      else s[i] = coin(0.5) ? encode_ref(random_of(live)) : 0;
    }
  }
  for (uint32_t idx : all) {
    if (flags_[idx] & kLive) continue;
    unsigned n = header(obj(idx))->nrefs;
    uint64_t* s = slots(obj(idx));
    for (unsigned i = 0; i < n; ++i) {
      if (coin(params_.foreign_ref_fraction)) s[i] = foreign_value();
      else s[i] = coin(0.6) ? encode_ref(random_of(all)) : 0;
    }
  }
  recount_live();
}

void SyntheticHeap::recount_live() {
  live_count_ = live_bytes_ = 0;
  for (size_t i = 0; i < word_.size(); ++i) {
    if (!present(i) || !(flags_[i] & kLive)) continue;
    ++live_count_;
    live_bytes_ += header(reinterpret_cast<void*>(addr_of(i)))->size;
  }
}

std::vector<ObjectView> SyntheticHeap::objects() const {
  std::vector<ObjectView> out;
  for (size_t i = 0; i < word_.size(); ++i) {
    if (!present(i)) continue;
    const ObjectHeader* h = header(reinterpret_cast<const void*>(addr_of(i)));
    out.push_back({addr_of(i), h->size, i + 1, bool(flags_[i] & kLive), bool(flags_[i] & kLarge)});
  }
  return out;
}

}  // namespace libremap_py

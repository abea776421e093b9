// synthetic_cycle.cpp — the runtime's side of a compaction cycle on a
// SyntheticHeap (marking by traversal, root rewriting, moving the object
// table), and the address-independent observers (checksum, image).
#include <cstring>
#include <stdexcept>
#include <string>

#include "errors_py.h"
#include "synthetic.h"

namespace libremap_py {

using namespace libremap_layout;

namespace {

// A word-at-a-time mixing hash. Not cryptographic; it only has to make an
// accidental equality of two different heaps implausible.
struct Hasher {
  uint64_t h = 0x6a09e667f3bcc908ull;
  void add(uint64_t w) {
    h ^= w;
    h = (h << 23 | h >> 41) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
  }
};

// Slot/root tags in the checksum, so that a null, a foreign value, an id and
// a broken reference can never hash alike.
enum : uint64_t { kTagNull = 0, kTagForeign = 1, kTagRef = 2, kTagBad = 3, kTagBadObject = 4 };

}  // namespace

int SyntheticHeap::phase() const { return info().phase; }

remap_heap_info SyntheticHeap::info() const {
  remap_heap_info hi;
  std::memset(&hi, 0, sizeof hi);
  hi.struct_size = sizeof hi;
  check(remap_heap_get_info(heap_, &hi), "remap_heap_get_info");
  return hi;
}

remap_cycle_stats SyntheticHeap::stats() const {
  remap_cycle_stats st;
  std::memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  check(remap_heap_last_stats(heap_, &st), "remap_heap_last_stats");
  return st;
}

uintptr_t SyntheticHeap::forward(uintptr_t old) const {
  void* nw = nullptr;
  check(remap_forward(heap_, reinterpret_cast<const void*>(old), &nw), "remap_forward");
  return reinterpret_cast<uintptr_t>(nw);
}

long SyntheticHeap::resolve(uint64_t v) const {
  if (v < base_ || v - base_ > params_.capacity - kHeaderBytes || (v & 7) != 0) return -1;
  uint64_t id = header(reinterpret_cast<const void*>(v))->id;
  if (id == 0 || id > word_.size()) return -1;
  size_t idx = id - 1;
  if (!present(idx) || addr_of(idx) != v) return -1;
  return long(idx);
}

// BFS from the roots. strict: every reference must name a present live
// object (else std::logic_error); mark: remap_mark each reached object;
// hasher: feed the checksum. Returns the number of objects reached.
template <typename Visit>
size_t SyntheticHeap::traverse(bool strict, Visit&& visit_object) const {
  std::vector<uint8_t> seen(word_.size(), 0);
  std::vector<uint32_t> queue;
  queue.reserve(live_count_);
  auto fail = [&](const char* what, uint64_t v) {
    throw std::logic_error(std::string("synthetic heap graph is inconsistent: ") + what +
                           " (value base+" + std::to_string(v - base_) + ")");
  };
  // Returns the tag to hash for value v and enqueues its target. A slot is
  // decoded as the library is told to (params_.tagging): immediates, and
  // in-heap values that can never be an object start (unaligned), are
  // values, hashed raw — the library must have left them exactly as they
  // were. A reference hashes its target's id and its tag bits.
  // Roots are plain addresses (the runtime's own words), never encoded.
  auto reach = [&](uint64_t v, uint64_t& payload, bool root = false) -> uint64_t {
    const uint64_t tmask = root ? 0 : tag_mask();
    if (v == 0) return payload = 0, kTagNull;
    // An immediate, hashed by value — relative to the heap base when its
    // bits fall inside the heap (Guile fixnums and V8 Smis drawn from heap
    // addresses), so that two heaps built from one seed hash alike wherever
    // they are mapped (the differential tests compare heaps at different
    // bases; hashing the raw value made them differ now and then).
    if (!root && !is_reference(v))
      return payload = v - base_ < params_.capacity ? v - base_ : v, kTagForeign;
    const uint64_t a = v & ~tmask;
    if (a < base_ || a - base_ >= params_.capacity) return payload = v, kTagForeign;
    if (a & 7) return payload = v - base_, kTagForeign;  // kTagNone's in-heap immediates
    long idx = resolve(a);
    if (idx < 0) {
      if (strict) fail("a reference that is not the start of a present object", v);
      return payload = v - base_, kTagBad;
    }
    if (strict && !(flags_[idx] & kLive)) fail("a live object references a dead one", v);
    if (!seen[idx]) {
      seen[idx] = 1;
      queue.push_back(uint32_t(idx));
    }
    payload = (idx + 1) | (v & tmask) << 56;
    return kTagRef;
  };
  for (uintptr_t r : roots_) {
    uint64_t payload = 0;
    uint64_t tag = reach(r, payload, true);
    visit_object(-1, tag, payload);
  }
  for (size_t qi = 0; qi < queue.size(); ++qi) {
    const size_t idx = queue[qi];
    const void* obj = reinterpret_cast<const void*>(addr_of(idx));
    const ObjectHeader* h = header(obj);
    const bool sane = h->size % 8 == 0 && h->size >= min_object_size(h->nrefs) &&
                      addr_of(idx) - base_ + h->size <= params_.capacity;
    if (!sane) {
      if (strict) fail("an object header with a bad size", addr_of(idx));
      visit_object(long(idx), kTagBadObject, 0);
      continue;
    }
    visit_object(long(idx), kTagRef, 0);
    for (unsigned i = 0; i < h->nrefs; ++i) {
      uint64_t payload = 0;
      uint64_t tag = reach(slots(obj)[i], payload);
      visit_object(-1, tag, payload);
    }
  }
  return queue.size();
}

size_t SyntheticHeap::mark(bool deferred) {
  size_t n = traverse(true, [&](long idx, uint64_t tag, uint64_t) {
    if (idx < 0 || tag != kTagRef) return;
    const void* o = reinterpret_cast<const void*>(addr_of(size_t(idx)));
    if (!deferred) {
      check(remap_mark(heap_, o), "remap_mark");
      return;
    }
    // The traversal reaches each object once: a fresh object is newly
    // marked unless it is black (0).
    const int r = remap_try_mark(heap_, o);
    if (r < 0) check(r, "remap_try_mark");
  });
  if (n != live_count_)
    throw std::logic_error("marking reached " + std::to_string(n) + " objects; the live set has " +
                           std::to_string(live_count_));
  return n;
}

size_t SyntheticHeap::verify() const {
  size_t n = traverse(true, [](long, uint64_t, uint64_t) {});
  if (n != live_count_)
    throw std::logic_error("traversal reached " + std::to_string(n) + " objects; the live set has " +
                           std::to_string(live_count_));
  return n;
}

uint64_t SyntheticHeap::checksum() const {
  Hasher hs;
  size_t n = traverse(false, [&](long idx, uint64_t tag, uint64_t payload) {
    hs.add(tag);
    if (idx < 0) {  // a root or a slot
      hs.add(payload);
      return;
    }
    if (tag != kTagRef) return;
    const void* obj = reinterpret_cast<const void*>(addr_of(size_t(idx)));
    const ObjectHeader* h = header(obj);
    hs.add(h->id);
    hs.add(uint64_t(h->size) | uint64_t(h->nrefs) << 32 | uint64_t(h->klass) << 48);
    const uint64_t* w = slots(obj);
    for (size_t i = h->nrefs; i < (h->size - kHeaderBytes) / 8; ++i) hs.add(w[i]);
  });
  hs.add(n);
  hs.add(roots_.size());
  return hs.h;
}

void SyntheticHeap::clear_marks() {
  check(remap_clear_marks(heap_), "remap_clear_marks");
  prepared_ = false;
}

void SyntheticHeap::prepare() {
  prepared_ = false;
  check(remap_prepare(heap_), "remap_prepare");
  record_forwarding(false);
}

void SyntheticHeap::record_forwarding(bool headers_moved) {
  const uintptr_t end = base_ + params_.capacity;
  fwd_word_.assign(word_.size(), kGone);
  for (size_t i = 0; i < word_.size(); ++i) {
    if (!present(i) || !(flags_[i] & kLive)) continue;
    uintptr_t nw = forward(addr_of(i));
    if (nw < base_ || nw >= end || (nw & 7) != 0)
      throw std::logic_error("remap_forward sent a live object outside the heap or misaligned");
    fwd_word_[i] = uint32_t((nw - base_) / 8);
  }
  fwd_roots_.resize(roots_.size());
  for (size_t i = 0; i < roots_.size(); ++i) fwd_roots_[i] = forward(roots_[i]);

  // The region tops the cycle should leave (checked against the library's
  // bytes_allocated by the tests): a region whose objects move, or whose
  // live ratio is under the threshold, is fragmented (top = its live bytes);
  // one that stays put is dense (top unchanged); one with nothing live and
  // a dead large object are empty (0).
  const size_t nreg = region_top_.size();
  std::vector<uint64_t> live(nreg, 0);
  std::vector<uint8_t> moved(nreg, 0), has_live(nreg, 0), large(nreg, 0);
  for (size_t i = 0; i < word_.size(); ++i) {
    if (!present(i)) continue;
    size_t r = size_t(word_[i]) * 8 / params_.region_size;
    if (flags_[i] & kLarge) large[r] = 1;
    if (!(flags_[i] & kLive)) continue;
    has_live[r] = 1;
    const uintptr_t at = headers_moved ? base_ + uintptr_t(fwd_word_[i]) * 8 : addr_of(i);
    live[r] += header(reinterpret_cast<const void*>(at))->size;
    if (fwd_word_[i] != word_[i]) moved[r] = 1;
  }
  new_top_.assign(nreg, 0);
  for (size_t r = 0; r < nreg; ++r) {
    if (!has_live[r] || large[r]) new_top_[r] = 0;
    else if (moved[r] || double(live[r]) < params_.dense_threshold * double(region_top_[r]))
      new_top_[r] = live[r];
    else new_top_[r] = region_top_[r];
  }
  // A live large object keeps its page-rounded top at its head, which may
  // have slid to another region (DESIGN §8).
  for (size_t i = 0; i < word_.size(); ++i) {
    if (!present(i) || !(flags_[i] & kLarge) || !(flags_[i] & kLive)) continue;
    const size_t old_r = size_t(word_[i]) * 8 / params_.region_size;
    new_top_[size_t(fwd_word_[i]) * 8 / params_.region_size] = region_top_[old_r];
  }
  prepared_ = true;
}

void SyntheticHeap::flip() {
  if (!prepared_)
    raise_status(REMAP_EPHASE, "flip() needs prepare() first: the object table's forwarding is recorded there");
  check(remap_flip(heap_), "remap_flip");
  apply_forwarding();
}

void SyntheticHeap::adopt_flip() {
  record_forwarding(true);
  apply_forwarding();
}

void SyntheticHeap::apply_forwarding() {
  prepared_ = false;
  // The runtime's part of the pause: rewrite the roots with remap_forward,
  // the same way on every backend (forwarding stays valid after an stw flip
  // ended the cycle). The answer must not have changed since prepare.
  for (size_t i = 0; i < roots_.size(); ++i) {
    uintptr_t nw = forward(roots_[i]);
    if (nw != fwd_roots_[i])
      throw std::logic_error("remap_forward of a root changed between prepare and flip");
    roots_[i] = nw;
  }
  for (size_t i = 0; i < word_.size(); ++i) word_[i] = fwd_word_[i];  // dead -> kGone
  region_top_ = new_top_;
}

void SyntheticHeap::compact() { check(remap_compact(heap_), "remap_compact"); }
void SyntheticHeap::compact_work() { check(remap_compact_work(heap_), "remap_compact_work"); }
void SyntheticHeap::finish() { check(remap_finish(heap_), "remap_finish"); }

void SyntheticHeap::collect() {
  mark();
  prepare();
  flip();
  if (phase() == REMAP_PHASE_COMPACTING) {
    compact();
    finish();
  }
}

void SyntheticHeap::image(char* out) const {
  if (phase() != REMAP_PHASE_IDLE)
    raise_status(REMAP_EPHASE, "image() reads the whole heap: only in the IDLE phase");
  const uint64_t* src = reinterpret_cast<const uint64_t*>(base_);
  const size_t n = params_.capacity / 8;
  for (size_t i = 0; i < n; ++i) {
    uint64_t v = src[i];
    if (v - base_ < params_.capacity) v -= base_;  // unsigned: also rejects v < base
    std::memcpy(out + i * 8, &v, 8);
  }
}

uint64_t SyntheticHeap::image_hash() const {
  if (phase() != REMAP_PHASE_IDLE)
    raise_status(REMAP_EPHASE, "image_hash() reads the whole heap: only in the IDLE phase");
  Hasher hs;
  const uint64_t* src = reinterpret_cast<const uint64_t*>(base_);
  const size_t n = params_.capacity / 8;
  for (size_t i = 0; i < n; ++i) {
    uint64_t v = src[i];
    if (v - base_ < params_.capacity) v -= base_;
    hs.add(v);
  }
  return hs.h;
}

}  // namespace libremap_py

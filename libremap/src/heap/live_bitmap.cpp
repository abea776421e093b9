// live_bitmap.cpp — storage and word-granular scans of LiveBitmap.
//
// Scans read whole 64-bit words and use ctz/clz/popcount; a range's first and
// last words are masked. Reads go through atomic_ref relaxed loads so that a
// scan racing with marking is defined (it is only meaningful after marking).
#include "heap/live_bitmap.h"

#include <algorithm>
#include <cstring>

namespace remap {
namespace {

inline uint64_t load(const uint64_t* w) {
  return std::atomic_ref<uint64_t>(*const_cast<uint64_t*>(w)).load(std::memory_order_relaxed);
}
// Bits [lo, hi) of a word, 0 <= lo < hi <= 64.
inline uint64_t mask_bits(unsigned lo, unsigned hi) {
  uint64_t upper = hi == 64 ? ~uint64_t(0) : ((uint64_t(1) << hi) - 1);
  return upper & (~uint64_t(0) << lo);
}

}  // namespace

Status LiveBitmap::init(uintptr_t base, size_t bytes) {
  base_ = base;
  words_count_ = (bytes + kChunkBytes - 1) >> kChunkShift;
  size_t len = words_count_ * sizeof(uint64_t);
  size_t ps = os::page_size();
  len = (len + ps - 1) & ~(ps - 1);
  if (len == 0) len = ps;
  Status s = os::map_anonymous(len, &storage_);
  if (!s) return s;
  words_ = reinterpret_cast<uint64_t*>(storage_.data());
  return Status::ok();
}

bool LiveBitmap::set_range_exclusive(uintptr_t from, uintptr_t to) {
  size_t b0 = bit_index(from), b1 = bit_index(to);
  if (b0 >= b1) return true;
  size_t w0 = b0 >> 6, wl = (b1 - 1) >> 6;
  for (size_t w = w0; w <= wl; ++w) {
    unsigned lo = w == w0 ? unsigned(b0 & 63) : 0;
    unsigned hi = w == wl ? unsigned(((b1 - 1) & 63) + 1) : 64;
    uint64_t m = mask_bits(lo, hi);
    uint64_t old = std::atomic_ref<uint64_t>(words_[w]).fetch_or(m, std::memory_order_acq_rel);
    if (old & m) {
      // Somebody's bit was there: undo exactly what this call set. Words
      // before w had no bit set before us (else we would have stopped there).
      std::atomic_ref<uint64_t>(words_[w]).fetch_and(~(m & ~old), std::memory_order_acq_rel);
      for (size_t u = w0; u < w; ++u) {
        unsigned ulo = u == w0 ? unsigned(b0 & 63) : 0;
        std::atomic_ref<uint64_t>(words_[u]).fetch_and(~mask_bits(ulo, 64),
                                                       std::memory_order_acq_rel);
      }
      return false;
    }
  }
  return true;
}

void LiveBitmap::clear_range(uintptr_t from, uintptr_t to) {
  size_t b0 = bit_index(from), b1 = bit_index(to);
  if (b0 >= b1) return;
  size_t w0 = b0 >> 6, wl = (b1 - 1) >> 6;
  if (w0 == wl) {
    words_[w0] &= ~mask_bits(unsigned(b0 & 63), unsigned(((b1 - 1) & 63) + 1));
    return;
  }
  words_[w0] &= ~mask_bits(unsigned(b0 & 63), 64);
  if (wl > w0 + 1) std::memset(words_ + w0 + 1, 0, (wl - w0 - 1) * sizeof(uint64_t));
  words_[wl] &= ~mask_bits(0, unsigned(((b1 - 1) & 63) + 1));
}

void LiveBitmap::clear_range_atomic(uintptr_t from, uintptr_t to) {
  size_t b0 = bit_index(from), b1 = bit_index(to);
  for (size_t b = b0; b < b1;) {
    const size_t w = b >> 6;
    const unsigned lo = unsigned(b & 63);
    const unsigned hi = unsigned(std::min<size_t>(64, lo + (b1 - b)));
    std::atomic_ref<uint64_t>(words_[w]).fetch_and(~mask_bits(lo, hi), std::memory_order_acq_rel);
    b += hi - lo;
  }
}

void LiveBitmap::clear_all() {
  // DONTNEED drops the pages (a private anonymous mapping reads zero again);
  // if it fails, fall back to writing zeros.
  if (!os::advise(storage_.addr(), storage_.size(), os::Advice::dontneed))
    std::memset(storage_.addr(), 0, storage_.size());
}

uintptr_t LiveBitmap::find_next_set(uintptr_t from, uintptr_t limit) const {
  if (from >= limit) return limit;
  size_t b = bit_index(from), end = bit_index(limit);
  size_t w = b >> 6;
  uint64_t x = load(words_ + w) & (~uint64_t(0) << (b & 63));
  for (;;) {
    if (x) {
      size_t bit = (w << 6) + size_t(std::countr_zero(x));
      return bit < end ? bit_addr(bit) : limit;
    }
    if (++w > ((end - 1) >> 6)) return limit;
    x = load(words_ + w);
  }
}

uintptr_t LiveBitmap::find_next_clear(uintptr_t from, uintptr_t limit) const {
  if (from >= limit) return limit;
  size_t b = bit_index(from), end = bit_index(limit);
  size_t w = b >> 6;
  uint64_t x = ~load(words_ + w) & (~uint64_t(0) << (b & 63));
  for (;;) {
    if (x) {
      size_t bit = (w << 6) + size_t(std::countr_zero(x));
      return bit < end ? bit_addr(bit) : limit;
    }
    if (++w > ((end - 1) >> 6)) return limit;
    x = ~load(words_ + w);
  }
}

uintptr_t LiveBitmap::find_prev_set(uintptr_t at, uintptr_t floor) const {
  if (at < floor) return 0;
  size_t b = bit_index(at), lo = bit_index(floor);
  size_t w = b >> 6;
  unsigned top = unsigned(b & 63);
  uint64_t x = load(words_ + w) & (top == 63 ? ~uint64_t(0) : ((uint64_t(2) << top) - 1));
  for (;;) {
    if (x) {
      size_t bit = (w << 6) + 63 - size_t(std::countl_zero(x));
      return bit >= lo ? bit_addr(bit) : 0;
    }
    if (w == 0 || w - 1 < (lo >> 6)) return 0;
    --w;
    x = load(words_ + w);
  }
}

size_t LiveBitmap::count(uintptr_t from, uintptr_t to) const {
  size_t b0 = bit_index(from), b1 = bit_index(to);
  if (b0 >= b1) return 0;
  size_t w0 = b0 >> 6, wl = (b1 - 1) >> 6;
  if (w0 == wl)
    return size_t(popcount64(load(words_ + w0) &
                                mask_bits(unsigned(b0 & 63), unsigned(((b1 - 1) & 63) + 1))));
  size_t n = size_t(popcount64(load(words_ + w0) & mask_bits(unsigned(b0 & 63), 64)));
  for (size_t w = w0 + 1; w < wl; ++w) n += size_t(popcount64(load(words_ + w)));
  n += size_t(popcount64(load(words_ + wl) & mask_bits(0, unsigned(((b1 - 1) & 63) + 1))));
  return n;
}

}  // namespace remap

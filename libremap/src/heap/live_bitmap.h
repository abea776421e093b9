// live_bitmap.h — one bit per 8-byte word of the heap.
//
// The heap keeps two of these: `begin` (a bit at each marked object's first
// word) and `live` (a bit at every word of every marked object). Bit i covers
// the word at base + 8*i; 64-bit word w of the bitmap covers the 512-byte
// chunk at base + 512*w, which is exactly the plan's forwarding chunk (plan.h, ChunkForward),
// so a chunk's live words are one popcount.
//
// Invariants:
//   - Storage is a private anonymous mapping, zero until written: an unused
//     part of a big heap costs no memory.
//   - Writers (marking) use atomic RMW through std::atomic_ref; readers after
//     prepare read plain words (nothing writes between prepare and finish).
//   - All address arguments are inside [base, base + covered bytes] and
//     8-byte aligned; callers check (these are hot and unchecked).
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "base/status.h"
#include "os/vm.h"

namespace remap {

// Bits set in x. std::popcount compiles to a libgcc call (__popcountdi2)
// unless the build targets POPCNT (x86-64-v2); forward() runs it on every
// reference, so without POPCNT use the inline SWAR form instead of a call.
inline unsigned popcount64(uint64_t x) {
#if defined(__POPCNT__) || !defined(__x86_64__)
  return unsigned(std::popcount(x));
#else
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return unsigned((x * 0x0101010101010101ull) >> 56);
#endif
}

class LiveBitmap {
 public:
  static constexpr unsigned kWordShift = 3;   // 8-byte heap words
  static constexpr unsigned kChunkShift = 9;  // 512-byte chunks = one bitmap word
  static constexpr size_t kChunkBytes = size_t(1) << kChunkShift;

  LiveBitmap() = default;
  LiveBitmap(const LiveBitmap&) = delete;
  LiveBitmap& operator=(const LiveBitmap&) = delete;

  // Maps storage for a heap range [base, base + bytes) (bytes a multiple of
  // 512). Fails with REMAP_ENOMEM if the mapping cannot be made.
  Status init(uintptr_t base, size_t bytes);

  uintptr_t base() const { return base_; }
  // Number of 64-bit words (= number of 512-byte chunks covered).
  size_t word_count() const { return words_count_; }
  // The raw word for chunk `chunk` (plain read: only valid when no marking
  // runs concurrently, i.e. from prepare to finish).
  uint64_t word(size_t chunk) const { return words_[chunk]; }
  const uint64_t* words() const { return words_; }

  size_t bit_index(uintptr_t addr) const { return (addr - base_) >> kWordShift; }
  uintptr_t bit_addr(size_t bit) const { return base_ + (bit << kWordShift); }

  bool test(uintptr_t addr) const {
    size_t b = bit_index(addr);
    return (std::atomic_ref<uint64_t>(words_[b >> 6]).load(std::memory_order_relaxed) >> (b & 63)) & 1;
  }
  // Sets the bit of addr; returns whether it was already set.
  bool test_and_set(uintptr_t addr) {
    size_t b = bit_index(addr);
    uint64_t m = uint64_t(1) << (b & 63);
    return std::atomic_ref<uint64_t>(words_[b >> 6]).fetch_or(m, std::memory_order_acq_rel) & m;
  }
  void clear_bit(uintptr_t addr) {
    size_t b = bit_index(addr);
    std::atomic_ref<uint64_t>(words_[b >> 6])
        .fetch_and(~(uint64_t(1) << (b & 63)), std::memory_order_acq_rel);
  }

  // Sets every bit of [from, to) with atomic fetch_or, one bitmap word at a
  // time. Returns true if none of them was set before. If some was, the bits
  // this call newly set are cleared again (only those: bits set by another
  // marker stay) and false is returned, so two overlapping concurrent
  // set_range calls can never both return true.
  bool set_range_exclusive(uintptr_t from, uintptr_t to);
  // Clears every bit of [from, to) (non-atomic words in the middle are fine:
  // callers use it with no concurrent writer).
  void clear_range(uintptr_t from, uintptr_t to);
  // Clears every bit of [from, to) with atomic fetch_and on every word, for
  // use while other threads set bits in the same words.
  void clear_range_atomic(uintptr_t from, uintptr_t to);
  // Zeroes the whole bitmap (madvise when big, else memset).
  void clear_all();

  // Address of the first set bit in [from, limit), or limit if none.
  uintptr_t find_next_set(uintptr_t from, uintptr_t limit) const;
  // Calls f(address) for every set bit in [from, to), in address order.
  template <typename F>
  void for_each_set(uintptr_t from, uintptr_t to, F&& f) const {
    for (uintptr_t a = find_next_set(from, to); a < to; a = find_next_set(a + 8, to)) f(a);
  }
  // Address of the first clear bit in [from, limit), or limit if none.
  uintptr_t find_next_clear(uintptr_t from, uintptr_t limit) const;
  // Calls f(start, end) for every maximal run of set bits in [from, limit),
  // in address order (for the live bitmap: runs of adjacent live objects).
  template <typename F>
  void for_each_run(uintptr_t from, uintptr_t limit, F&& f) const {
    for (uintptr_t a = find_next_set(from, limit); a < limit;) {
      const uintptr_t e = find_next_clear(a + 8, limit);
      f(a, e);
      a = find_next_set(e, limit);
    }
  }
  // Address of the last set bit in [floor, at] (inclusive), or 0 if none.
  uintptr_t find_prev_set(uintptr_t at, uintptr_t floor) const;
  // Number of set bits in [from, to).
  size_t count(uintptr_t from, uintptr_t to) const;


 private:
  uintptr_t base_ = 0;
  size_t words_count_ = 0;
  uint64_t* words_ = nullptr;
  os::Mapping storage_;
};

}  // namespace remap

// arena_pool.h — fixed-size blocks ("arenas") for a runtime's own allocator,
// such as CPython's pymalloc, with freed arenas kept populated for reuse.
//
// One reserved range (os::reserve_aligned, MAP_NORESERVE: virtual only) is
// carved into `max_arenas` slots of `arena_size` bytes. Slots are handed out
// in three tiers, cheapest first:
//   1. cached: freed arenas that still hold their pages (reused without a
//      page fault and without clearing: the runtime's allocator does not
//      expect zeroed arenas beyond what it writes itself — pymalloc
//      initialises every pool header it carves);
//   2. clean: slots whose pages went back to the OS (they fault like fresh
//      memory);
//   3. fresh: the never-used tail of the range, bumped by an atomic counter.
// Blocks of any other size (CPython >= 3.11 allocates frame-stack chunks
// through the arena hook) and arenas that do not fit the range any more get
// an mmap of their own, kept in a map so that free() knows which is which.
//
// Invariants:
//   - Every slot below `fresh_` is in exactly one state: LIVE (held by the
//     caller), CACHED (on cached_, pages kept), CLEAN (on clean_, no pages),
//     or TRIMMING (out of both stacks inside trim()). A slot is pushed only
//     after its state is set, so whoever pops it owns it.
//   - free() of a slot moves it LIVE -> CACHED with one CAS: a second free of
//     the same arena fails that CAS and is reported, never handed out twice.
//   - cached_ holds at most cap_arenas slots once a free() returns: above the
//     cap, trim() drops the cache to 3/4 of the cap in one batch (one
//     MADV_DONTNEED per run of contiguous slots) so that a free/alloc
//     ping-pong at the cap does not madvise on every call.
//   - The range is not MADV_DONTFORK (unlike the page pool): a fork()ed
//     child of a runtime keeps using its arenas.
//   - alloc/free of arena slots are lock-free (SlotStack from pool.h); trim()
//     and the other-size map take mutexes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <map>

#include "base/status.h"
#include "heap/pool.h"
#include "os/vm.h"

namespace remap::heap {

struct ArenaConfig {
  size_t arena_size = size_t(1) << 20;
  size_t max_arenas = 16384;
  size_t cap_bytes = size_t(64) << 20;
  bool hugepages = false;
};

struct ArenaCounters {
  uint64_t live = 0, peak = 0, allocated = 0, freed = 0, recycled = 0, cached = 0;
  uint64_t pages_reused = 0, returned = 0, bytes_returned = 0, madvise_calls = 0;
  uint64_t other_live = 0, other_bytes_live = 0, other_allocated = 0, other_freed = 0;
};

class ArenaPool {
 public:
  static Status create(const ArenaConfig& config, std::unique_ptr<ArenaPool>* out);
  ~ArenaPool();
  ArenaPool(const ArenaPool&) = delete;
  ArenaPool& operator=(const ArenaPool&) = delete;

  // A block of `size` bytes. Arena-sized blocks come from the range.
  Status alloc(size_t size, void** out);
  // REMAP_ENOENT if the pool never handed out `p` (nothing done),
  // REMAP_EINVAL on a size mismatch or a second free.
  Status free(void* p, size_t size);
  // True if `p` lies inside a block that is handed out now.
  bool owns(const void* p) const;
  // Returns cached arenas above `keep` to the OS. Pages freed.
  size_t trim(size_t keep_arenas, Status* why = nullptr);

  ArenaCounters counters() const;
  size_t arena_size() const noexcept { return arena_; }
  size_t reserved_bytes() const noexcept { return range_.size(); }
  const ArenaConfig& config() const noexcept { return config_; }

 private:
  enum : uint8_t { kClean = 0, kLive = 1, kCached = 2, kTrimming = 3 };

  ArenaPool() = default;
  char* slot_addr(uint32_t s) const noexcept { return range_.data() + size_t(s) * arena_; }
  void* alloc_slot() noexcept;  // nullptr when the range is used up
  Status alloc_other(size_t size, void** out);
  Status free_other(void* p, size_t size);
  size_t trim_locked(size_t keep, Status* why);
  void note_live(uint64_t live) noexcept;

  ArenaConfig config_;
  os::Mapping range_;
  size_t arena_ = 0, page_ = 0;
  uint32_t max_ = 0;
  size_t cap_arenas_ = 0, low_arenas_ = 0;
  std::unique_ptr<std::atomic<uint32_t>[]> next_;
  std::unique_ptr<std::atomic<uint8_t>[]> state_;
  SlotStack cached_, clean_;
  std::atomic<uint64_t> fresh_{0};  // slots [0, fresh_) have been handed out once

  std::mutex trim_mutex_;
  std::unique_ptr<uint32_t[]> scratch_;  // trim's sort buffer (max_ entries), under trim_mutex_

  mutable std::mutex other_mutex_;
  std::map<uintptr_t, size_t> other_;  // start -> mapped bytes (ordered: owns() finds the block around p)

  std::atomic<uint64_t> live_{0}, peak_{0}, allocated_{0}, freed_{0}, recycled_{0},
      pages_reused_{0}, returned_{0}, bytes_returned_{0}, madvise_calls_{0};
  std::atomic<uint64_t> other_live_{0}, other_bytes_live_{0}, other_allocated_{0},
      other_freed_{0};
};

}  // namespace remap::heap

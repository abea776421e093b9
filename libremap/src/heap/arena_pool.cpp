// arena_pool.cpp — the arena pool; the tiers and invariants are in
// arena_pool.h.
#include "heap/arena_pool.h"

#include <algorithm>
#include <bit>

namespace remap::heap {

namespace {
size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
}  // namespace

Status ArenaPool::create(const ArenaConfig& config, std::unique_ptr<ArenaPool>* out) {
  const size_t ps = os::page_size();
  if (config.arena_size == 0 || config.arena_size % ps)
    return fail(REMAP_EINVAL, "arena_size %zu must be a non-zero multiple of the page size %zu",
                config.arena_size, ps);
  if (config.max_arenas == 0 || config.max_arenas >= SlotStack::kNil)
    return fail(REMAP_EINVAL, "max_arenas %zu: give 1 .. %u", config.max_arenas,
                SlotStack::kNil - 1);
  // Stay far below the 47-bit user address space.
  if (config.arena_size > (size_t(1) << 40) / config.max_arenas)
    return fail(REMAP_EINVAL, "max_arenas %zu * arena_size %zu exceeds 1 TiB of address space",
                config.max_arenas, config.arena_size);
  std::unique_ptr<ArenaPool> pool(new ArenaPool);
  pool->config_ = config;
  pool->arena_ = config.arena_size;
  pool->page_ = ps;
  pool->max_ = static_cast<uint32_t>(config.max_arenas);
  pool->cap_arenas_ = config.cap_bytes / config.arena_size;
  // Trimming to 3/4 of the cap leaves room for a quarter of the cap of
  // frees before the next madvise: batches, not one call per free.
  pool->low_arenas_ = pool->cap_arenas_ * 3 / 4;
  // Arenas aligned to their size: pymalloc then loses no pool to alignment
  // (it skips the first partial 16 KiB pool of an unaligned arena) and
  // its radix tree maps each arena to one leaf.
  const size_t align = std::has_single_bit(config.arena_size) ? config.arena_size : ps;
  if (Status s = os::reserve_aligned(size_t(pool->max_) * pool->arena_, align,
                                     PROT_READ | PROT_WRITE, &pool->range_);
      !s)
    return s;
  // THP: without the hint, THP "always" would back 2 MiB of two adjacent
  // arenas with one huge page, so RSS would no longer match what the
  // runtime uses and a trim of one arena would split the huge page. The
  // default arena allocator (1 MiB mmaps) rarely gets huge pages either.
  // Failure only means THP is not configured.
  (void)os::advise(pool->range_.data(), pool->range_.size(),
                   config.hugepages ? os::Advice::hugepage : os::Advice::nohugepage);
  pool->next_.reset(new std::atomic<uint32_t>[pool->max_]);
  pool->state_.reset(new std::atomic<uint8_t>[pool->max_]);
  for (uint32_t i = 0; i < pool->max_; ++i) pool->state_[i].store(kClean, std::memory_order_relaxed);
  pool->scratch_.reset(new uint32_t[pool->max_]);
  pool->cached_.bind(pool->next_.get());
  pool->clean_.bind(pool->next_.get());
  *out = std::move(pool);
  return Status::ok();
}

ArenaPool::~ArenaPool() {
  std::lock_guard<std::mutex> g(other_mutex_);
  for (auto& [start, len] : other_) os::Mapping(reinterpret_cast<void*>(start), len).reset();
  other_.clear();
  // range_ unmaps the slots, live ones included: destroy means the caller
  // holds no block any more.
}

void ArenaPool::note_live(uint64_t live) noexcept {
  uint64_t peak = peak_.load(std::memory_order_relaxed);
  while (live > peak && !peak_.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
  }
}

void* ArenaPool::alloc_slot() noexcept {
  uint32_t s = cached_.pop();
  if (s != SlotStack::kNil) {
    recycled_.fetch_add(1, std::memory_order_relaxed);
    pages_reused_.fetch_add(arena_ / page_, std::memory_order_relaxed);
  } else if ((s = clean_.pop()) == SlotStack::kNil) {
    // The load first keeps fresh_ from climbing forever once the range is
    // used up (every later call would otherwise add one).
    if (fresh_.load(std::memory_order_relaxed) >= max_) return nullptr;
    const uint64_t f = fresh_.fetch_add(1, std::memory_order_relaxed);
    if (f >= max_) return nullptr;
    s = static_cast<uint32_t>(f);
  }
  state_[s].store(kLive, std::memory_order_release);
  return slot_addr(s);
}

Status ArenaPool::alloc(size_t size, void** out) {
  if (size == arena_) {
    if (void* p = alloc_slot()) {
      allocated_.fetch_add(1, std::memory_order_relaxed);
      note_live(live_.fetch_add(1, std::memory_order_relaxed) + 1);
      *out = p;
      return Status::ok();
    }
    // The range is used up: the runtime still gets its arena, from mmap.
  }
  return alloc_other(size, out);
}

Status ArenaPool::alloc_other(size_t size, void** out) {
  const size_t len = round_up(size, page_);
  os::Mapping m;
  if (Status s = os::map_anonymous(len, &m); !s) return s;
  {
    std::lock_guard<std::mutex> g(other_mutex_);
    other_.emplace(reinterpret_cast<uintptr_t>(m.data()), len);  // may throw: m unmaps
  }
  *out = m.release();
  other_allocated_.fetch_add(1, std::memory_order_relaxed);
  other_live_.fetch_add(1, std::memory_order_relaxed);
  other_bytes_live_.fetch_add(len, std::memory_order_relaxed);
  return Status::ok();
}

Status ArenaPool::free(void* p, size_t size) {
  if (!range_.contains(p)) return free_other(p, size);
  const size_t off = static_cast<size_t>(static_cast<char*>(p) - range_.data());
  if (off % arena_)
    return fail(REMAP_EINVAL, "%p is inside arena slot %zu, not at its start", p, off / arena_);
  if (size != arena_)
    return fail(REMAP_EINVAL, "%p is an arena of %zu bytes, freed with size %zu", p, arena_, size);
  const uint32_t s = static_cast<uint32_t>(off / arena_);
  uint8_t expect = kLive;
  if (!state_[s].compare_exchange_strong(expect, kCached, std::memory_order_acq_rel))
    return fail(REMAP_EINVAL, "arena %p is not handed out (state %u): a second free?", p, expect);
  cached_.push(s);
  freed_.fetch_add(1, std::memory_order_relaxed);
  live_.fetch_sub(1, std::memory_order_relaxed);
  if (cached_.approx_size() > cap_arenas_) {
    std::lock_guard<std::mutex> g(trim_mutex_);
    // Another free may have trimmed while this one waited.
    if (cached_.approx_size() > cap_arenas_) {
      Status why;
      (void)trim_locked(low_arenas_, &why);
      // A failed madvise keeps the pages cached: the memory is still
      // correct, only over the cap; trim_locked counted nothing.
    }
  }
  return Status::ok();
}

Status ArenaPool::free_other(void* p, size_t size) {
  const size_t len = round_up(size, page_);
  {
    std::lock_guard<std::mutex> g(other_mutex_);
    auto it = other_.find(reinterpret_cast<uintptr_t>(p));
    if (it == other_.end())
      return fail(REMAP_ENOENT, "%p (%zu bytes) was not allocated by this arena pool", p, size);
    if (it->second != len)
      return fail(REMAP_EINVAL, "%p was allocated with %zu bytes (page-rounded), freed with %zu",
                  p, it->second, size);
    other_.erase(it);
  }
  os::Mapping(p, len).reset();
  other_freed_.fetch_add(1, std::memory_order_relaxed);
  other_live_.fetch_sub(1, std::memory_order_relaxed);
  other_bytes_live_.fetch_sub(len, std::memory_order_relaxed);
  return Status::ok();
}

bool ArenaPool::owns(const void* p) const {
  if (range_.contains(p)) {
    const size_t off = static_cast<size_t>(static_cast<const char*>(p) - range_.data());
    return state_[off / arena_].load(std::memory_order_acquire) == kLive;
  }
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> g(other_mutex_);
  auto it = other_.upper_bound(a);
  if (it == other_.begin()) return false;
  --it;
  return a < it->first + it->second;
}

size_t ArenaPool::trim(size_t keep_arenas, Status* why) {
  std::lock_guard<std::mutex> g(trim_mutex_);
  return trim_locked(keep_arenas, why);
}

size_t ArenaPool::trim_locked(size_t keep, Status* why) {
  size_t n = 0;
  for (uint32_t s; n < max_ && (s = cached_.pop()) != SlotStack::kNil;) {
    state_[s].store(kTrimming, std::memory_order_relaxed);
    scratch_[n++] = s;
  }
  // Keep the lowest slots: the used part of the range stays compact, and
  // runs of high slots leave together in few madvise calls.
  std::sort(scratch_.get(), scratch_.get() + n);
  const size_t kept = std::min(keep, n);
  for (size_t i = kept; i-- > 0;) {  // highest first: the lowest ends on top
    state_[scratch_[i]].store(kCached, std::memory_order_relaxed);
    cached_.push(scratch_[i]);
  }
  size_t dropped = 0;
  for (size_t i = kept; i < n;) {
    size_t j = i + 1;
    while (j < n && scratch_[j] == scratch_[j - 1] + 1) ++j;
    const size_t len = (j - i) * arena_;
    Status s = os::advise(slot_addr(scratch_[i]), len, os::Advice::dontneed);
    madvise_calls_.fetch_add(1, std::memory_order_relaxed);
    const uint8_t to = s ? kClean : kCached;
    if (!s && why) *why = s;
    for (size_t k = i; k < j; ++k) {
      state_[scratch_[k]].store(to, std::memory_order_relaxed);
      (s ? clean_ : cached_).push(scratch_[k]);
    }
    if (s) {
      dropped += j - i;
      returned_.fetch_add(j - i, std::memory_order_relaxed);
      bytes_returned_.fetch_add(len, std::memory_order_relaxed);
    }
    i = j;
  }
  return dropped * (arena_ / page_);
}

ArenaCounters ArenaPool::counters() const {
  ArenaCounters c;
  c.live = live_.load(std::memory_order_relaxed);
  c.peak = peak_.load(std::memory_order_relaxed);
  c.allocated = allocated_.load(std::memory_order_relaxed);
  c.freed = freed_.load(std::memory_order_relaxed);
  c.recycled = recycled_.load(std::memory_order_relaxed);
  c.cached = cached_.approx_size();
  c.pages_reused = pages_reused_.load(std::memory_order_relaxed);
  c.returned = returned_.load(std::memory_order_relaxed);
  c.bytes_returned = bytes_returned_.load(std::memory_order_relaxed);
  c.madvise_calls = madvise_calls_.load(std::memory_order_relaxed);
  c.other_live = other_live_.load(std::memory_order_relaxed);
  c.other_bytes_live = other_bytes_live_.load(std::memory_order_relaxed);
  c.other_allocated = other_allocated_.load(std::memory_order_relaxed);
  c.other_freed = other_freed_.load(std::memory_order_relaxed);
  return c;
}

}  // namespace remap::heap

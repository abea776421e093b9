// test_arena_pool.cpp — heap/arena_pool: recycled arenas keep their pages and
// contents (no faults, no clearing), the cap is kept with batched
// MADV_DONTNEED, other sizes get their own mapping, misuse is refused, and
// concurrent alloc/free never hands one arena to two owners.
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "check.h"
#include "heap/arena_pool.h"
#include "os/vm.h"

using namespace remap;
using heap::ArenaConfig;
using heap::ArenaPool;

namespace {

constexpr size_t kArena = size_t(1) << 20;

std::unique_ptr<ArenaPool> make_pool(size_t max_arenas, size_t cap_arenas) {
  ArenaConfig c;
  c.max_arenas = max_arenas;
  c.cap_bytes = cap_arenas * kArena;
  std::unique_ptr<ArenaPool> pool;
  Status s = ArenaPool::create(c, &pool);
  if (!s) {
    ::check::fail(__FILE__, __LINE__, "ArenaPool::create: " + s.message);
    throw ::check::Abort{};
  }
  return pool;
}

void* must_alloc(ArenaPool& p, size_t size) {
  void* out = nullptr;
  Status s = p.alloc(size, &out);
  if (!s || !out) {
    ::check::fail(__FILE__, __LINE__, "alloc: " + s.message);
    throw ::check::Abort{};
  }
  return out;
}

long minor_faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

void touch(void* p, size_t len, char v) {
  const size_t ps = os::page_size();
  for (size_t off = 0; off < len; off += ps) static_cast<volatile char*>(p)[off] = v;
}

// Pages of [p, p+len) that are resident (mincore).
size_t resident_pages(void* p, size_t len) {
  const size_t ps = os::page_size();
  std::vector<unsigned char> v(len / ps);
  if (mincore(p, len, v.data()) != 0) return SIZE_MAX;
  return static_cast<size_t>(std::count_if(v.begin(), v.end(), [](unsigned char c) { return c & 1; }));
}

}  // namespace

TEST(arena_pool_recycles_without_faults_or_clearing) {
  auto pool = make_pool(8, 8);
  char* a = static_cast<char*>(must_alloc(*pool, kArena));
  CHECK_EQ(reinterpret_cast<uintptr_t>(a) % kArena, uintptr_t(0));  // arena-aligned
  touch(a, kArena, 7);
  REQUIRE(pool->free(a, kArena));
  const long before = minor_faults();
  char* b = static_cast<char*>(must_alloc(*pool, kArena));
  CHECK(b == a);  // LIFO: the warm arena comes back first
  // Every page still holds what the last user wrote: not cleared, not faulted.
  bool kept = true;
  for (size_t off = 0; off < kArena; off += os::page_size()) kept = kept && b[off] == 7;
  CHECK(kept);
  touch(b, kArena, 8);
  CHECK(minor_faults() - before < 4);  // 256 pages: a fresh arena would fault on each
  auto c = pool->counters();
  CHECK_EQ(c.recycled, uint64_t(1));
  CHECK_EQ(c.pages_reused, uint64_t(kArena / os::page_size()));
  CHECK_EQ(c.live, uint64_t(1));
  REQUIRE(pool->free(b, kArena));
}

TEST(arena_pool_keeps_the_cap_with_batched_madvise) {
  const size_t n = 16, cap = 4;
  auto pool = make_pool(32, cap);
  std::vector<void*> arenas;
  for (size_t i = 0; i < n; ++i) {
    arenas.push_back(must_alloc(*pool, kArena));
    touch(arenas.back(), kArena, 1);
  }
  for (void* a : arenas) REQUIRE(pool->free(a, kArena));
  auto c = pool->counters();
  CHECK(c.cached <= cap);
  CHECK_EQ(c.cached + c.returned, uint64_t(n));
  CHECK_EQ(c.bytes_returned, c.returned * kArena);
  // Trimming to 3/4 of the cap: 16 frees over a cap of 4 need a handful of
  // calls, not one per arena.
  CHECK(c.madvise_calls > 0);
  CHECK(c.madvise_calls < n / 2);
  // Returned arenas hold no pages; cached ones all of theirs.
  size_t resident = 0;
  for (void* a : arenas) resident += resident_pages(a, kArena);
  CHECK_EQ(resident, c.cached * (kArena / os::page_size()));
  // Explicit trim empties the cache in one batch.
  pool->trim(0);
  CHECK_EQ(pool->counters().cached, uint64_t(0));
  CHECK_EQ(pool->counters().returned, uint64_t(n));
}

TEST(arena_pool_cap_zero_returns_every_free) {
  auto pool = make_pool(4, 0);
  void* a = must_alloc(*pool, kArena);
  touch(a, kArena, 1);
  REQUIRE(pool->free(a, kArena));
  CHECK_EQ(resident_pages(a, kArena), size_t(0));
  CHECK_EQ(pool->counters().returned, uint64_t(1));
  void* b = must_alloc(*pool, kArena);  // a clean slot: valid, reads zero
  CHECK(static_cast<char*>(b)[0] == 0);
  REQUIRE(pool->free(b, kArena));
}

TEST(arena_pool_refuses_misuse) {
  auto pool = make_pool(4, 4);
  char* a = static_cast<char*>(must_alloc(*pool, kArena));
  CHECK(pool->owns(a));
  CHECK(pool->owns(a + kArena - 1));
  CHECK_EQ(pool->free(a + 4096, kArena).code, REMAP_EINVAL);    // not a slot start
  CHECK_EQ(pool->free(a, kArena / 2).code, REMAP_EINVAL);       // wrong size
  CHECK_EQ(pool->free(a + kArena, kArena).code, REMAP_EINVAL);  // never handed out
  REQUIRE(pool->free(a, kArena));
  CHECK(!pool->owns(a));
  CHECK_EQ(pool->free(a, kArena).code, REMAP_EINVAL);  // second free
  int x = 0;
  CHECK_EQ(pool->free(&x, sizeof x).code, REMAP_ENOENT);  // not the pool's at all
  CHECK_EQ(pool->counters().freed, uint64_t(1));
  std::unique_ptr<ArenaPool> none;
  ArenaConfig bad;
  bad.arena_size = 1000;
  CHECK_EQ(ArenaPool::create(bad, &none).code, REMAP_EINVAL);
  bad = ArenaConfig{};
  bad.max_arenas = 0;
  CHECK_EQ(ArenaPool::create(bad, &none).code, REMAP_EINVAL);
}

TEST(arena_pool_serves_other_sizes_and_overflow_by_mmap) {
  auto pool = make_pool(2, 2);
  // A CPython >= 3.11 frame-stack chunk: not arena-sized.
  char* chunk = static_cast<char*>(must_alloc(*pool, 16384 + 100));
  CHECK(pool->owns(chunk));
  CHECK(pool->owns(chunk + 16384 + 99));
  touch(chunk, 16384 + 100, 3);
  CHECK_EQ(pool->free(chunk, 4096).code, REMAP_EINVAL);  // wrong size: kept
  REQUIRE(pool->free(chunk, 16384 + 100));
  CHECK(!pool->owns(chunk));
  CHECK_EQ(pool->free(chunk, 16384 + 100).code, REMAP_ENOENT);
  // Two slots; the third arena overflows to its own mapping, and still works.
  void* a = must_alloc(*pool, kArena);
  void* b = must_alloc(*pool, kArena);
  char* c = static_cast<char*>(must_alloc(*pool, kArena));
  touch(c, kArena, 5);
  auto k = pool->counters();
  CHECK_EQ(k.live, uint64_t(2));
  CHECK_EQ(k.other_live, uint64_t(1));
  CHECK_EQ(k.other_allocated, uint64_t(2));
  REQUIRE(pool->free(c, kArena));
  REQUIRE(pool->free(b, kArena));
  REQUIRE(pool->free(a, kArena));
  k = pool->counters();
  CHECK_EQ(k.other_live, uint64_t(0));
  CHECK_EQ(k.other_bytes_live, uint64_t(0));
  CHECK_EQ(k.live, uint64_t(0));
  CHECK_EQ(k.peak, uint64_t(2));
}

TEST(arena_pool_threads_never_share_an_arena) {
  const int threads = 4, rounds = 4000;
  auto pool = make_pool(64, 8);
  std::atomic<int> overlaps{0}, errors{0};
  auto worker = [&](int id) {
    std::mt19937 rng(id);
    std::vector<uint64_t*> held;
    for (int r = 0; r < rounds; ++r) {
      if (held.size() < 6 && (held.empty() || rng() % 2)) {
        void* p = nullptr;
        if (!pool->alloc(kArena, &p)) {
          errors++;
          continue;
        }
        auto* w = static_cast<uint64_t*>(p);
        // Stamp the first and last word: another owner would overwrite them.
        w[0] = w[kArena / 8 - 1] = (uint64_t(id) << 32) | uint64_t(r);
        held.push_back(w);
      } else {
        const size_t i = rng() % held.size();
        uint64_t* w = held[i];
        if (w[0] != w[kArena / 8 - 1] || (w[0] >> 32) != uint64_t(id)) overlaps++;
        if (!pool->free(w, kArena)) errors++;
        held[i] = held.back();
        held.pop_back();
      }
    }
    for (uint64_t* w : held) {
      if ((w[0] >> 32) != uint64_t(id)) overlaps++;
      if (!pool->free(w, kArena)) errors++;
    }
  };
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i) ts.emplace_back(worker, i);
  for (auto& t : ts) t.join();
  CHECK_EQ(overlaps.load(), 0);
  CHECK_EQ(errors.load(), 0);
  auto c = pool->counters();
  CHECK_EQ(c.live, uint64_t(0));
  CHECK_EQ(c.allocated, c.freed);
  CHECK(c.cached <= 8);
  CHECK(c.peak <= uint64_t(threads * 6));
  CHECK_EQ(c.other_allocated, uint64_t(0));  // 24 at most held: the 64 slots sufficed
}

// test_pool.cpp — heap/pool: recycled pages, no faults in the steady state,
// batched trim, DONTFORK, and receiving pages by MOVE into a registered pool.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <thread>
#include <vector>

#include "check.h"
#include "heap/pool.h"
#include "os/uffd_ops.h"
#include "os/vm.h"
#include "test_uffd_util.h"

using namespace remap;
using heap::PagePool;

namespace {

std::unique_ptr<PagePool> make_pool(size_t pages, int uffd = -1) {
  std::unique_ptr<PagePool> pool;
  Status s = PagePool::create(pages, uffd, &pool);
  if (!s) {
    ::check::fail(__FILE__, __LINE__, "PagePool::create: " + s.message);
    throw ::check::Abort{};
  }
  return pool;
}

size_t slot_index(const PagePool& p, const void* page) {
  return static_cast<size_t>(static_cast<const char*>(page) - p.base()) / tu::ps();
}

}  // namespace

TEST(pool_starts_empty_and_rejects_foreign_pages) {
  auto pool = make_pool(8);
  CHECK(pool->acquire() == nullptr);
  CHECK_EQ(pool->empty_pages(), size_t(8));
  int x;
  CHECK(!pool->release(&x));
  CHECK(!pool->release(pool->base() + 1));  // not a page start
  CHECK(!pool->vacate(pool->base() + 8 * tu::ps()));
  std::unique_ptr<PagePool> none;
  CHECK_EQ(PagePool::create(0, -1, &none).code, REMAP_EINVAL);
}

TEST(pool_content_survives_release_acquire) {
  const size_t n = 64;
  auto pool = make_pool(n);
  CHECK_EQ(pool->prime(n), n);
  CHECK_EQ(pool->populated_pages(), n);
  std::vector<char*> pages;
  for (size_t i = 0; i < n; ++i) pages.push_back(static_cast<char*>(pool->acquire()));
  CHECK(pool->acquire() == nullptr);
  // Lowest slot first: primed pages come out in address order.
  for (size_t i = 0; i < n; ++i) CHECK_EQ(slot_index(*pool, pages[i]), i);
  for (size_t i = 0; i < n; ++i) tu::fill_pages(pages[i], 1, unsigned(i * 7));
  for (char* p : pages) CHECK(pool->release(p));
  for (size_t i = 0; i < n; ++i) {
    char* p = static_cast<char*>(pool->acquire());
    REQUIRE(p);
    // Never cleared: the content is what the last user left.
    CHECK(tu::page_matches(p, 0, unsigned(slot_index(*pool, p) * 7)));
  }
  auto c = pool->counters();
  CHECK_EQ(c.acquired, 2 * n);
  CHECK_EQ(c.released, n);
  CHECK_EQ(c.primed, n);
}

TEST(pool_steady_state_costs_no_faults) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizer's first write to a pool page's shadow (mapped on demand:
  // 1/8 of the page for ASan, 4x for TSan) is a minor fault of its own, not
  // the pool's (1 under ASan, 215 under TSan).
  SKIP("a sanitizer's shadow memory faults on first use; checked in the plain build");
#endif
  auto pool = make_pool(64);
  REQUIRE(pool->prime(64) == 64);
  void* held[8];
  for (int warm = 0; warm < 100; ++warm) {
    for (auto& h : held) h = pool->acquire();
    for (auto& h : held) pool->release(h);
  }
  const long before = tu::minor_faults();
  for (int i = 0; i < 10000; ++i) {
    char* p = static_cast<char*>(pool->acquire());
    if (!p) break;
    p[i % 4096] = static_cast<char>(i);  // a use of the buffer page
    pool->release(p);
  }
  const long after = tu::minor_faults();
  CHECK_EQ(after - before, 0L);
  CHECK_EQ(pool->counters().acquired, uint64_t(10000 + 800));
}

TEST(pool_trim_uses_one_madvise) {
  const size_t n = 64, keep = 16;
  auto pool = make_pool(n);
  REQUIRE(pool->prime(n) == n);
  for (size_t i = 0; i < n; ++i) CHECK(tu::pm_present(tu::pagemap(pool->base() + i * tu::ps())));
  Status why;
  CHECK_EQ(pool->trim(keep, &why), n - keep);
  CHECK(why.is_ok());
  auto c = pool->counters();
  CHECK_EQ(c.madvise_calls, uint64_t(1));
  CHECK_EQ(c.trimmed, uint64_t(n - keep));
  CHECK_EQ(pool->populated_pages(), keep);
  CHECK_EQ(pool->empty_pages(), n - keep);
  // The lowest slots keep their pages; the others went back to the OS.
  for (size_t i = 0; i < n; ++i)
    CHECK_EQ(tu::pm_present(tu::pagemap(pool->base() + i * tu::ps())), i < keep);
  // Nothing to do below the cap: no call at all.
  CHECK_EQ(pool->trim(keep), size_t(0));
  CHECK_EQ(pool->counters().madvise_calls, uint64_t(1));
  // Prime refills the holes, and then has nothing left to do.
  CHECK_EQ(pool->prime(n), n - keep);
  Status why2;
  CHECK_EQ(pool->prime(1, &why2), size_t(0));
  CHECK(why2.is_ok());
}

TEST(pool_trim_never_drops_a_held_page) {
  const size_t n = 64;
  auto pool = make_pool(n);
  REQUIRE(pool->prime(n) == n);
  std::vector<char*> pages;
  for (size_t i = 0; i < 40; ++i) pages.push_back(static_cast<char*>(pool->acquire()));
  char* held = pages[30];
  std::memset(held, 0x5a, tu::ps());
  for (size_t i = 0; i < 40; ++i)
    if (i != 30) pool->release(pages[i]);
  CHECK_EQ(pool->trim(8), size_t(n - 1 - 8));
  // Two runs around the held slot: [8, 30) and (30, 64).
  CHECK_EQ(pool->counters().madvise_calls, uint64_t(2));
  CHECK(tu::pm_present(tu::pagemap(held)));
  CHECK_EQ(held[0], 0x5a);
  CHECK_EQ(held[tu::ps() - 1], 0x5a);
  pool->release(held);
  CHECK_EQ(pool->populated_pages(), size_t(9));
}

// MADV_DONTFORK: a child has no pool range at all; touching it faults.
TEST(pool_is_not_inherited_by_fork) {
  auto pool = make_pool(16);
  REQUIRE(pool->prime(16) == 16);
  char* base = pool->base();
  CHECK(tu::mapped_in_maps(base));
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(tu::mapped_in_maps(base) ? 1 : 0);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK_EQ(WEXITSTATUS(status), 0);
  child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::signal(SIGSEGV, SIG_DFL);
    tu::touch_write(base);
    ::_exit(0);
  }
  ::waitpid(child, &status, 0);
  CHECK(WIFSIGNALED(status));
  if (WIFSIGNALED(status)) CHECK_EQ(WTERMSIG(status), SIGSEGV);
  // The parent's pages are still exclusive: MOVE can take them (see
  // pool_receive test); here, simply still readable.
  tu::touch_write(base);
}

// A registered pool is populated by UFFDIO_COPY (touching an unpopulated
// registered page would hang; the watchdog would catch that).
TEST(pool_prime_registered_without_touching) {
  auto uffd = tu::open_uffd();
  auto pool = make_pool(32, uffd.get());
  CHECK(pool->registered());
  Status why;
  CHECK_EQ(pool->prime(20, &why), size_t(20));
  CHECK(why.is_ok());
  for (size_t i = 0; i < 32; ++i)
    CHECK_EQ(tu::pm_present(tu::pagemap(pool->base() + i * tu::ps())), i < 20);
  for (int i = 0; i < 20; ++i) {
    char* p = static_cast<char*>(pool->acquire());
    REQUIRE(p);
    CHECK(tu::page_is_zero(p));
    p[0] = 1;  // populated: a write does not fault into the uffd
  }
  CHECK(pool->acquire() == nullptr);
  CHECK_EQ(pool->prime(100, &why), size_t(12));  // only 12 holes left
  CHECK(why.is_ok());
  CHECK_EQ(pool->prime(1, &why), size_t(0));
  CHECK(why.is_ok());
}

// From-space pages MOVE into the registered pool; a source hole stops the
// receive cleanly, with every received slot populated and no other.
TEST(pool_receive_by_move_stops_at_hole) {
  auto uffd = tu::open_uffd();
  const size_t n = 16, hole = 10;
  auto pool = make_pool(32, uffd.get());
  os::Mapping from = tu::anon(n * tu::ps());
  (void)os::advise(from.data(), from.size(), os::Advice::nohugepage);
  tu::fill_pages(from.data(), n, 120);
  REQUIRE(os::advise(from.data() + hole * tu::ps(), tu::ps(), os::Advice::dontneed).is_ok());
  Status why;
  CHECK_EQ(pool->receive(from.data(), n, &why), hole);
  CHECK_EQ(why.code, REMAP_ENOENT);
  CHECK_EQ(pool->populated_pages(), hole);
  CHECK_EQ(pool->counters().received, uint64_t(hole));
  for (size_t i = 0; i < 32; ++i)
    CHECK_EQ(tu::pm_present(tu::pagemap(pool->base() + i * tu::ps())), i < hole);
  for (size_t i = 0; i < hole; ++i) CHECK(tu::page_is_zero(from.data() + i * tu::ps()));
  // Skip the hole, take the rest.
  CHECK_EQ(pool->receive(from.data() + (hole + 1) * tu::ps(), n - hole - 1, &why), n - hole - 1);
  CHECK(why.is_ok());
  // Page i of from-space is in slot i (i < hole), i - 1 after the hole.
  std::vector<char*> got;
  for (char* p; (p = static_cast<char*>(pool->acquire()));) got.push_back(p);
  CHECK_EQ(got.size(), n - 1);
  for (char* p : got) {
    size_t slot = slot_index(*pool, p);
    CHECK(tu::page_matches(p, 0, unsigned(120 + (slot < hole ? slot : slot + 1))));
  }
  // A page moved out of the pool leaves a hole: vacate, then receive refills.
  os::Mapping out = tu::anon(tu::ps());
  tu::Registration reg_out(uffd.get(), out.data(), out.size());
  REQUIRE(reg_out.ok());
  REQUIRE(os::uffd_move(uffd.get(), out.data(), got[0], tu::ps(), 0).ok());
  CHECK(pool->vacate(got[0]));
  for (size_t i = 1; i < got.size(); ++i) pool->release(got[i]);
  const size_t empty_before = pool->empty_pages();
  os::Mapping more = tu::anon(tu::ps());
  tu::fill_pages(more.data(), 1, 7);
  CHECK_EQ(pool->receive(more.data(), 1), size_t(1));
  CHECK_EQ(pool->empty_pages(), empty_before - 1);
}

// A pool without a uffd cannot receive: MOVE's destination must be registered.
TEST(pool_receive_needs_registration) {
  auto pool = make_pool(4);
  os::Mapping from = tu::anon(tu::ps());
  tu::fill_pages(from.data(), 1, 1);
  Status why;
  CHECK_EQ(pool->receive(from.data(), 1, &why), size_t(0));
  CHECK_EQ(why.code, REMAP_EINVAL);
  CHECK(tu::page_matches(from.data(), 0, 1));
}

// Threads hammer acquire/release: a page is never handed to two holders at
// once (each holder stamps it and checks the stamp before release).
TEST(pool_concurrent_acquire_release) {
  const size_t n = 8;
  auto pool = make_pool(n);
  REQUIRE(pool->prime(n) == n);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100000; ++i) {
        auto* p = static_cast<volatile int*>(pool->acquire());
        if (!p) continue;
        p[0] = t * 1000000 + i;
        for (int k = 0; k < 4; ++k) (void)p[1];
        if (p[0] != t * 1000000 + i) errors.fetch_add(1);
        pool->release(const_cast<int*>(p));
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK_EQ(errors.load(), 0);
  CHECK_EQ(pool->populated_pages(), n);
  size_t count = 0;
  while (pool->acquire()) ++count;
  CHECK_EQ(count, n);
}

// trim/prime run while mutators acquire and release: a held page is never
// dropped (its stamp survives) and no slot is lost or duplicated.
TEST(pool_maintenance_concurrent_with_mutators) {
  const size_t n = 64;
  auto pool = make_pool(n);
  REQUIRE(pool->prime(n) == n);
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        auto* p = static_cast<volatile int*>(pool->acquire());
        if (!p) continue;
        const int stamp = (t + 1) * 10000000 + i;
        p[0] = stamp;
        p[1000] = stamp;
        for (int k = 0; k < 50; ++k) (void)p[k];
        if (p[0] != stamp || p[1000] != stamp) errors.fetch_add(1);
        pool->release(const_cast<int*>(p));
      }
    });
  }
  for (int round = 0; round < 300; ++round) {
    pool->trim(static_cast<size_t>(round % 16));
    pool->prime(n);
  }
  stop = true;
  for (auto& th : threads) th.join();
  CHECK_EQ(errors.load(), 0);
  CHECK_EQ(pool->populated_pages() + pool->empty_pages(), n);
  std::vector<int> seen(n, 0);
  for (void* p; (p = pool->acquire());) seen[slot_index(*pool, p)]++;
  for (size_t i = 0; i < n; ++i) CHECK(seen[i] <= 1);
  CHECK(pool->counters().madvise_calls > 0);
}

// KERNEL.md: a page MOVEd out of the DONTFORK pool into a normal mapping is a
// normal page: a forked child sees it like any other.
TEST(pool_page_moved_out_survives_fork) {
  auto uffd = tu::open_uffd();
  auto pool = make_pool(4, uffd.get());
  REQUIRE(pool->prime(4) == 4);
  char* buf = static_cast<char*>(pool->acquire());
  tu::fill_pages(buf, 1, 77);
  os::Mapping heap_range = tu::anon(tu::ps());
  tu::Registration reg(uffd.get(), heap_range.data(), heap_range.size());
  REQUIRE(reg.ok());
  REQUIRE(os::uffd_move(uffd.get(), heap_range.data(), buf, tu::ps(), 0).ok());
  pool->vacate(buf);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(tu::page_matches(heap_range.data(), 0, 77) ? 0 : 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// The pool never writes to a page: even a populated page filed as a hole
// (vacated without being moved away) keeps its bytes through prime().
TEST(pool_prime_never_writes_content) {
  auto pool = make_pool(4);
  REQUIRE(pool->prime(4) == 4);
  char* p = static_cast<char*>(pool->acquire());
  tu::fill_pages(p, 1, 99);
  pool->vacate(p);  // a lie: the page is still there
  CHECK_EQ(pool->prime(4), size_t(1));
  bool found = false;
  for (void* q; (q = pool->acquire());)
    if (q == p) found = true;
  CHECK(found);
  CHECK(tu::page_matches(p, 0, 99));
}

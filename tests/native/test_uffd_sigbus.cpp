// test_uffd_sigbus.cpp — the SIGBUS fault path in miniature: with
// UFFD_FEATURE_SIGBUS a touch of a registered, unpopulated page raises SIGBUS
// in the touching thread, whose handler takes a buffer page from the pool
// (acquire: lock-free), fills it, installs it with UFFDIO_MOVE, and vacates
// the slot; the access then retries and succeeds. This exercises the
// async-signal-safe claims of os/uffd_ops and heap/pool from a real handler,
// and EEXIST-as-success when two threads fault on the same page.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "check.h"
#include "heap/pool.h"
#include "os/uffd_ops.h"
#include "os/vm.h"
#include "test_uffd_util.h"

using namespace remap;

namespace {

struct FaultCtx {
  int uffd = -1;
  heap::PagePool* pool = nullptr;
  char* heap = nullptr;
  size_t len = 0;
  std::atomic<int> installed{0};
  std::atomic<int> lost_race{0};
};

// The one global a signal handler needs.
std::atomic<FaultCtx*> g_fault_ctx{nullptr};

void on_sigbus(int, siginfo_t* si, void*) {
  FaultCtx* c = g_fault_ctx.load(std::memory_order_acquire);
  char* addr = static_cast<char*>(si->si_addr);
  if (!c || addr < c->heap || addr >= c->heap + c->len) _exit(90);  // not ours: die loudly
  char* page = c->heap + (static_cast<size_t>(addr - c->heap) & ~(tu::ps() - 1));
  char* buf = static_cast<char*>(c->pool->acquire());
  if (!buf) _exit(91);
  const size_t index = static_cast<size_t>(page - c->heap) / tu::ps();
  tu::fill_pages(buf, 1, static_cast<unsigned>(200 + index));  // produce the page
  auto r = os::uffd_move(c->uffd, page, buf, tu::ps(), 0);
  if (r.ok()) {
    c->pool->vacate(buf);  // its page now lives in the heap
    c->installed.fetch_add(1);
  } else if (r.err == os::UffdErr::exists) {
    c->pool->release(buf);  // another thread installed it first: done
    c->lost_race.fetch_add(1);
  } else {
    _exit(92);
  }
}

}  // namespace

TEST(uffd_sigbus_handler_installs_pool_pages) {
  auto uffd = tu::open_uffd(UFFD_FEATURE_MOVE | UFFD_FEATURE_SIGBUS);
  REQUIRE(uffd.features & UFFD_FEATURE_SIGBUS);
  const size_t n = 64;
  // One spare buffer page per thread that can be mid-fault: two threads
  // racing on the last missing page both need a buffer (the loser gets
  // EEXIST and gives it back).
  const size_t threads = 2, cap = n + threads;
  std::unique_ptr<heap::PagePool> pool;
  REQUIRE(heap::PagePool::create(cap, uffd.get(), &pool).is_ok());
  REQUIRE(pool->prime(cap) == cap);
  os::Mapping heap_range = tu::anon(n * tu::ps());
  (void)os::advise(heap_range.data(), heap_range.size(), os::Advice::nohugepage);
  tu::Registration reg(uffd.get(), heap_range.data(), heap_range.size());
  REQUIRE(reg.ok());

  FaultCtx ctx;
  ctx.uffd = uffd.get();
  ctx.pool = pool.get();
  ctx.heap = heap_range.data();
  ctx.len = heap_range.size();
  g_fault_ctx.store(&ctx, std::memory_order_release);
  struct sigaction sa {}, old {};
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  REQUIRE(::sigaction(SIGBUS, &sa, &old) == 0);

  // Two mutators touch every page, in opposite orders, so some faults race.
  std::atomic<int> bad{0};
  auto mutator = [&](bool forward) {
    for (size_t k = 0; k < n; ++k) {
      const size_t i = forward ? k : n - 1 - k;
      const char* p = heap_range.data() + i * tu::ps();
      if (!tu::page_matches(p, 0, static_cast<unsigned>(200 + i))) bad.fetch_add(1);
    }
  };
  std::thread a(mutator, true), b(mutator, false);
  a.join();
  b.join();

  ::sigaction(SIGBUS, &old, nullptr);
  g_fault_ctx.store(nullptr);
  CHECK_EQ(bad.load(), 0);
  CHECK_EQ(ctx.installed.load(), static_cast<int>(n));
  auto c = pool->counters();
  CHECK_EQ(c.vacated, uint64_t(n));
  CHECK_EQ(c.acquired, uint64_t(n + ctx.lost_race.load()));
  CHECK_EQ(pool->empty_pages(), n);
  CHECK_EQ(pool->populated_pages(), threads);
  // The heap pages are plain populated memory now: writes do not fault.
  heap_range.data()[0] = 1;
}

// test_compactor.cpp — the concurrent engine against the stw reference, on the
// internal classes directly (Heap, Plan, Compactor, stw_compact).
//
// Two heaps are built from the same seed; one is compacted by stw, the other
// by the engine (move or copy; SIGBUS or handler threads; 1 or 2 GC
// threads; minor with SIGBUS or handler threads; sigsegv), with a mutator
// thread reading and writing through the roots while it runs. Both must hold
// the same bytes, up to their base address. Then the sigsegv backend's
// vm.max_map_count refusal and minor's MINOR faults delivered by SIGBUS.
#include <string.h>

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backends/stw.h"
#include "check.h"
#include "compact/compactor.h"
#include "compact/producer.h"
#include "heap/config.h"
#include "heap/heap.h"
#include "os/procfs.h"
#include "plan/plan.h"

namespace {

using namespace remap;

// Object: [u64 size][u64 nrefs][refs...][payload]
size_t obj_size(void*, const void* obj) { return static_cast<const uint64_t*>(obj)[0]; }
void obj_visit(void*, const void* obj, remap_visit_fn visit, void* vctx) {
  uint64_t n = static_cast<const uint64_t*>(obj)[1];
  for (uint64_t i = 0; i < n; i++) visit(vctx, 16 + 8 * i);
}

struct Built {
  std::unique_ptr<Heap> heap;
  std::vector<uintptr_t> roots;  // live objects (outside the heap)
  std::unique_ptr<Plan> plan;
};

Built build(uint64_t seed, int backend, int fault_mode, unsigned gc_threads, double live_ratio) {
  remap_heap_config cfg;
  config_defaults(&cfg);
  cfg.capacity = 64 * 65536;
  cfg.region_size = 65536;
  cfg.backend = backend;
  cfg.fault_mode = fault_mode;
  cfg.gc_threads = gc_threads;
  cfg.model.object_size = obj_size;
  cfg.model.visit_ref_offsets = obj_visit;
  Built b;
  Status s = Heap::create(cfg, &b.heap);
  if (!s) throw check::Skip{"heap create: " + s.message};
  Heap& h = *b.heap;
  std::mt19937_64 rng(seed);
  std::vector<uintptr_t> all;
  std::vector<bool> live;
  for (int r = 0; r < 48; r++) {
    uintptr_t start, end;
    REQUIRE(h.acquire_region(&start, &end).is_ok());
    // Some regions dense (all live), most fragmented.
    double ratio = (r % 5 == 0) ? 1.0 : live_ratio;
    uintptr_t cur = start;
    for (;;) {
      uint64_t nrefs = rng() % 4;
      uint64_t size = 16 + 8 * nrefs + 8 * (rng() % 64);
      if (cur + size > end) break;
      auto* o = reinterpret_cast<uint64_t*>(cur);
      o[0] = size;
      o[1] = nrefs;
      for (uint64_t i = 2; i < size / 8; i++) o[i] = rng();
      bool is_live = (rng() % 1000) < ratio * 1000;
      // References only to earlier live objects (or null), set below.
      for (uint64_t i = 0; i < nrefs; i++) o[2 + i] = 0;
      all.push_back(cur);
      live.push_back(is_live);
      cur += size;
    }
    REQUIRE(h.retire_region(start, cur).is_ok());
  }
  std::vector<uintptr_t> lives;
  for (size_t i = 0; i < all.size(); i++)
    if (live[i]) lives.push_back(all[i]);
  for (size_t i = 0; i < all.size(); i++) {
    auto* o = reinterpret_cast<uint64_t*>(all[i]);
    for (uint64_t k = 0; k < o[1]; k++)
      if (!lives.empty() && rng() % 4) o[2 + k] = lives[rng() % lives.size()];
  }
  for (uintptr_t o : lives) REQUIRE(h.mark(o).is_ok());
  b.roots = lives;
  s = Plan::build(h, &b.plan);
  REQUIRE(s.is_ok());
  return b;
}

// The heap's bytes with heap addresses made relative to its base.
std::vector<uint64_t> image(const Heap& h) {
  std::vector<uint64_t> out(h.capacity() / 8);
  memcpy(out.data(), reinterpret_cast<const void*>(h.base()), h.capacity());
  for (uint64_t& w : out)
    if (h.contains(w)) w -= h.base();
  return out;
}

void run_engine(uint64_t seed, int backend, int fault_mode, unsigned gc_threads, double ratio) {
  Built ref = build(seed, REMAP_BACKEND_STW, REMAP_FAULT_THREAD, 1, ratio);
  REQUIRE(stw_compact(*ref.heap, *ref.plan, nullptr).is_ok());
  ref.heap->complete_cycle(*ref.plan);

  Built b = build(seed, backend, fault_mode, gc_threads, ratio);
  std::unique_ptr<Compactor> c;
  Status s = Compactor::create(*b.heap, backend, fault_mode, &c);
  if (!s) SKIP("engine: " + s.message);
  REQUIRE(c->prepare(*b.plan).is_ok());
  REQUIRE(c->flip().is_ok());
  for (uintptr_t& r : b.roots) r = b.plan->forward(r);

  // A mutator: reads every root's header and bumps the last payload word of
  // objects with payload, while the workers run. Every access to an
  // unproduced page faults and is resolved by the engine.
  std::atomic<bool> go{true};
  std::vector<uint64_t> bumped(b.roots.size(), 0);
  std::thread mutator([&] {
    std::mt19937_64 rng(seed ^ 0x5eed);
    while (go.load()) {
      size_t i = rng() % b.roots.size();
      auto* o = reinterpret_cast<uint64_t*>(b.roots[i]);
      uint64_t size = o[0], nrefs = o[1];
      if (size / 8 > 2 + nrefs) {
        o[size / 8 - 1] += 1;
        bumped[i]++;
      }
    }
  });
  REQUIRE(c->run(gc_threads).is_ok());
  go = false;
  mutator.join();
  remap_cycle_stats st{};
  REQUIRE(c->finish(&st).is_ok());

  // Undo the mutator's writes, then compare with stw.
  for (size_t i = 0; i < b.roots.size(); i++) {
    auto* o = reinterpret_cast<uint64_t*>(b.roots[i]);
    o[o[0] / 8 - 1] -= bumped[i];
  }
  std::vector<uint64_t> a = image(*ref.heap), bb = image(*b.heap);
  size_t diff = 0, first = 0;
  for (size_t i = 0; i < a.size(); i++)
    if (a[i] != bb[i] && diff++ == 0) first = i;
  CHECK_EQ(diff, size_t(0));
  if (diff) fprintf(stderr, "first difference at byte offset %zu\n", first * 8);
  fprintf(stderr, "backend=%d mode=%d gc=%u pages=%llu by_gc=%llu by_mut=%llu faults=%llu p50=%llu p99=%llu moves=%llu copies=%llu recycled=%llu new=%llu madv=%llu vmas %llu->%llu\n", backend, fault_mode, gc_threads, (unsigned long long)st.pages_installed, (unsigned long long)st.pages_by_gc, (unsigned long long)st.pages_by_mutator, (unsigned long long)st.faults, (unsigned long long)st.fault_p50_ns, (unsigned long long)st.fault_p99_ns, (unsigned long long)st.ioctl_move, (unsigned long long)st.ioctl_copy, (unsigned long long)st.buffers_recycled, (unsigned long long)st.buffers_new, (unsigned long long)st.madvise_calls, (unsigned long long)st.vmas_before, (unsigned long long)st.vmas_after);
  CHECK(st.pages_installed > 0);
  // move: runs that faulting mutators cut short are copied (producer.h,
  // kCopyBelowPages); in a small heap a busy mutator may cut them all.
  if (backend == REMAP_BACKEND_MOVE)
    CHECK(st.ioctl_move > 0 || (st.pages_by_mutator > 0 && st.ioctl_copy > 0));
  if (backend == REMAP_BACKEND_COPY) CHECK(st.ioctl_copy > 0);
  if (backend == REMAP_BACKEND_MINOR) CHECK(st.ioctl_continue > 0);
  if (backend == REMAP_BACKEND_SIGSEGV) CHECK(st.mprotect_calls > 0);
}

}  // namespace

TEST(compactor_move_sigbus_matches_stw) {
  for (uint64_t seed = 1; seed <= 6; seed++)
    run_engine(seed, REMAP_BACKEND_MOVE, REMAP_FAULT_SIGBUS, 1, 0.05 + 0.15 * seed);
}
TEST(compactor_move_threads_matches_stw) {
  for (uint64_t seed = 1; seed <= 4; seed++)
    run_engine(seed, REMAP_BACKEND_MOVE, REMAP_FAULT_THREAD, 2, 0.2 * seed);
}
TEST(compactor_copy_sigbus_matches_stw) {
  for (uint64_t seed = 1; seed <= 4; seed++)
    run_engine(seed, REMAP_BACKEND_COPY, REMAP_FAULT_SIGBUS, 2, 0.2 * seed);
}
TEST(compactor_copy_threads_matches_stw) {
  for (uint64_t seed = 1; seed <= 4; seed++)
    run_engine(seed, REMAP_BACKEND_COPY, REMAP_FAULT_THREAD, 1, 0.2 * seed);
}
TEST(compactor_minor_sigbus_matches_stw) {
  for (uint64_t seed = 1; seed <= 5; seed++)
    run_engine(seed, REMAP_BACKEND_MINOR, REMAP_FAULT_SIGBUS, 1 + seed % 2, 0.05 + 0.18 * seed);
}
TEST(compactor_minor_threads_matches_stw) {
  for (uint64_t seed = 1; seed <= 4; seed++)
    run_engine(seed, REMAP_BACKEND_MINOR, REMAP_FAULT_THREAD, 1 + seed % 2, 0.2 * seed);
}
TEST(compactor_sigsegv_matches_stw) {
  for (uint64_t seed = 1; seed <= 5; seed++)
    run_engine(seed, REMAP_BACKEND_SIGSEGV, REMAP_FAULT_SIGBUS, 1 + seed % 2, 0.05 + 0.18 * seed);
}

namespace {

// A heap of `capacity` bytes with a few filled regions, marked and planned.
Built build_sized(uint64_t seed, size_t capacity, int backend) {
  remap_heap_config cfg;
  config_defaults(&cfg);
  cfg.capacity = capacity;
  cfg.region_size = 1 << 20;
  cfg.backend = backend;
  cfg.fault_mode = REMAP_FAULT_SIGBUS;
  cfg.model.object_size = obj_size;
  cfg.model.visit_ref_offsets = obj_visit;
  Built b;
  Status s = Heap::create(cfg, &b.heap);
  if (!s) throw check::Skip{"heap create: " + s.message};
  std::mt19937_64 rng(seed);
  for (int r = 0; r < 4; r++) {
    uintptr_t start, end;
    REQUIRE(b.heap->acquire_region(&start, &end).is_ok());
    uintptr_t cur = start;
    while (cur + 64 <= end) {
      auto* o = reinterpret_cast<uint64_t*>(cur);
      o[0] = 64;
      o[1] = 1;
      o[2] = b.roots.empty() ? 0 : b.roots[rng() % b.roots.size()];
      for (int i = 3; i < 8; i++) o[i] = rng();
      if (rng() % 2) b.roots.push_back(cur);
      cur += 64;
    }
    REQUIRE(b.heap->retire_region(start, cur).is_ok());
  }
  for (uintptr_t o : b.roots) REQUIRE(b.heap->mark(o).is_ok());
  REQUIRE(Plan::build(*b.heap, &b.plan).is_ok());
  return b;
}

}  // namespace

// A heap with more pages than vm.max_map_count: sigsegv refuses the flip
// (REMAP_ELIMIT, both numbers in the message) before changing anything; the
// heap keeps its bytes, stays writable, and the cycle can be planned again.
// (Raising the limit and flipping the same heap is tests/backends/test_shared_backends.py's,
// where a parent process restores the sysctl.)
TEST(compactor_sigsegv_refuses_past_max_map_count) {
  int64_t limit = os::read_sysctl_int("/proc/sys/vm/max_map_count");
  if (limit <= 0) SKIP("vm.max_map_count is not readable");
  const size_t mib = 1 << 20;
  size_t capacity = ((size_t(limit) + 1) * 4096 + mib - 1) / mib * mib;
  Built b = build_sized(7, capacity, REMAP_BACKEND_SIGSEGV);
  Heap& h = *b.heap;
  std::vector<char> before(4 * mib);
  memcpy(before.data(), reinterpret_cast<const void*>(h.base()), before.size());

  std::unique_ptr<Compactor> c;
  Status s = Compactor::create(h, REMAP_BACKEND_SIGSEGV, REMAP_FAULT_SIGBUS, &c);
  if (!s) SKIP("engine: " + s.message);
  REQUIRE(c->prepare(*b.plan).is_ok());
  s = c->flip();
  CHECK_EQ(int(s.code), int(REMAP_ELIMIT));
  CHECK(s.message.find("vm.max_map_count is " + std::to_string(limit)) != std::string::npos);
  CHECK(s.message.find(std::to_string(h.page_count()) + " heap pages") != std::string::npos);
  CHECK(!c->compacting());
  CHECK(memcmp(before.data(), reinterpret_cast<const void*>(h.base()), before.size()) == 0);
  // Still read-write everywhere (nothing was mapped PROT_NONE).
  auto* last = reinterpret_cast<volatile uint64_t*>(h.end() - 8);
  *last = 42;
  CHECK_EQ(uint64_t(*last), uint64_t(42));
  *last = 0;
  // The runtime may drop the cycle and plan another: same answer, same heap.
  b.plan.reset();
  h.clear_marks();
  for (uintptr_t o : b.roots) REQUIRE(h.mark(o).is_ok());
  REQUIRE(Plan::build(h, &b.plan).is_ok());
  REQUIRE(c->prepare(*b.plan).is_ok());
  CHECK_EQ(int(c->flip().code), int(REMAP_ELIMIT));
  CHECK(memcmp(before.data(), reinterpret_cast<const void*>(h.base()), before.size()) == 0);
}

// minor with SIGBUS delivery: UFFD_FEATURE_SIGBUS covers MINOR faults too
// (fs/userfaultfd.c handle_userfault checks the feature before the fault's
// reason): a dense region, whose pages are in the page cache and fault MINOR,
// is produced by the touching thread, not by a GC worker.
TEST(compactor_minor_sigbus_resolves_minor_faults) {
  Built b = build_sized(3, 16 << 20, REMAP_BACKEND_MINOR);
  Heap& h = *b.heap;
  // All objects live: every region dense.
  b.plan.reset();
  h.clear_marks();
  const uintptr_t start = h.region_base(h.region_count() - 4);  // build_sized's 4, at the top
  std::vector<uintptr_t> all;
  for (uintptr_t a = start; a < start + 4 * (1 << 20); a += 64) all.push_back(a);
  for (uintptr_t o : all) REQUIRE(h.mark(o).is_ok());
  REQUIRE(Plan::build(h, &b.plan).is_ok());
  CHECK_EQ(b.plan->regions_dense(), uint64_t(4));
  std::unique_ptr<Compactor> c;
  Status s = Compactor::create(h, REMAP_BACKEND_MINOR, REMAP_FAULT_SIGBUS, &c);
  if (!s) SKIP("engine: " + s.message);
  REQUIRE(c->prepare(*b.plan).is_ok());
  REQUIRE(c->flip().is_ok());
  // No GC worker runs: every touched page is a MINOR fault resolved here.
  volatile uint64_t sum = 0;
  for (size_t p = 0; p < 8; p++) sum += *reinterpret_cast<volatile uint64_t*>(start + p * 4096);
  (void)sum;
  CHECK(c->counters().pages_by_mutator.get() >= 8);
  CHECK(c->counters().ioctl_continue.get() >= 8);
  remap_cycle_stats st{};
  REQUIRE(c->finish(&st).is_ok());
  CHECK(st.pages_by_gc > 0);
}

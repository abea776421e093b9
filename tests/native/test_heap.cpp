// test_heap.cpp — heap/: config validation, the GiB-aligned reservation,
// region hand-out and retirement, large objects, marking (every rejection,
// re-marking, overlap detection under concurrency) and clear_marks.
//
// Objects use a tiny layout: word 0 = size in bytes (low 32 bits) | number of
// reference slots (high 32 bits); the slots follow the header.
#include <atomic>
#include <cstring>
#include <thread>

#include "check.h"
#include "heap/heap.h"

using namespace remap;

namespace {

size_t obj_size(void*, const void* obj) { return *static_cast<const uint64_t*>(obj) & 0xffffffffu; }

void obj_refs(void*, const void* obj, remap_visit_fn visit, void* vctx) {
  uint64_t n = *static_cast<const uint64_t*>(obj) >> 32;
  for (uint64_t i = 0; i < n; ++i) visit(vctx, 8 + 8 * i);
}

remap_heap_config small_config(size_t capacity = size_t(4) << 20) {
  remap_heap_config c;
  config_defaults(&c);
  c.capacity = capacity;
  c.region_size = size_t(256) << 10;
  c.backend = REMAP_BACKEND_STW;
  c.model.object_size = obj_size;
  c.model.visit_ref_offsets = obj_refs;
  return c;
}

std::unique_ptr<Heap> make_heap(const remap_heap_config& c) {
  std::unique_ptr<Heap> h;
  Status s = Heap::create(c, &h);
  if (!s) std::fprintf(stderr, "create: %s\n", s.message.c_str());
  REQUIRE(s.is_ok());
  return h;
}

void put(uintptr_t a, uint32_t size, uint32_t nrefs = 0) {
  *reinterpret_cast<uint64_t*>(a) = uint64_t(size) | (uint64_t(nrefs) << 32);
}

}  // namespace

TEST(heap_config_defaults_and_validation) {
  remap_heap_config d;
  config_defaults(&d);
  CHECK_EQ(d.struct_size, sizeof d);
  CHECK_EQ(d.model.struct_size, sizeof d.model);
  CHECK_EQ(d.region_size, size_t(256) << 10);
  CHECK(d.dense_threshold == 0.90);
  CHECK_EQ(d.pool_max_pages, size_t(4096));
  CHECK_EQ(d.gc_threads, 1u);

  remap_heap_config out;
  remap_heap_config ok = small_config();
  REQUIRE(validate_config(ok, 4096, &out).is_ok());
  CHECK_EQ(out.large_object_threshold, ok.region_size / 2);

  struct Bad {
    const char* what;
    void (*edit)(remap_heap_config&);
  } bad[] = {
      {"capacity 0", [](remap_heap_config& c) { c.capacity = 0; }},
      {"capacity not a multiple", [](remap_heap_config& c) { c.capacity += 4096; }},
      {"region not pow2", [](remap_heap_config& c) { c.region_size = 3 << 16; }},
      {"region small", [](remap_heap_config& c) { c.region_size = 32 << 10; }},
      {"region big", [](remap_heap_config& c) { c.region_size = size_t(2) << 30; }},
      {"dense 0", [](remap_heap_config& c) { c.dense_threshold = 0; }},
      {"dense > 1", [](remap_heap_config& c) { c.dense_threshold = 1.5; }},
      {"dense nan", [](remap_heap_config& c) { c.dense_threshold = 0.0 / 0.0; }},
      {"fault", [](remap_heap_config& c) { c.fault_mode = 3; }},
      {"gc 0", [](remap_heap_config& c) { c.gc_threads = 0; }},
      {"gc 65", [](remap_heap_config& c) { c.gc_threads = 65; }},
      {"handler 0", [](remap_heap_config& c) { c.handler_threads = 0; }},
      {"pool", [](remap_heap_config& c) { c.pool_max_pages = (size_t(1) << 24) + 1; }},
      {"large small", [](remap_heap_config& c) { c.large_object_threshold = 100; }},
      {"large big", [](remap_heap_config& c) { c.large_object_threshold = c.region_size + 8; }},
      {"no size cb", [](remap_heap_config& c) { c.model.object_size = nullptr; }},
      {"struct_size", [](remap_heap_config& c) { c.struct_size = 8; }},
      {"model struct_size", [](remap_heap_config& c) { c.model.struct_size = 0; }},
  };
  for (const Bad& b : bad) {
    remap_heap_config c = small_config();
    b.edit(c);
    Status s = validate_config(c, 4096, &out);
    if (s.code != REMAP_EINVAL) std::fprintf(stderr, "not rejected: %s\n", b.what);
    CHECK_EQ(s.code, REMAP_EINVAL);
    CHECK(!s.message.empty());
  }
}

TEST(heap_reservation_is_gib_aligned_whole_gib) {
  auto h = make_heap(small_config(size_t(3) << 20));
  const size_t gib = size_t(1) << 30;
  CHECK_EQ(h->map_base() % gib, uintptr_t(0));
  CHECK_EQ(h->map_size() % gib, size_t(0));
  CHECK_EQ(h->base(), h->map_base());
  CHECK_EQ(h->capacity(), size_t(3) << 20);
  CHECK_EQ(h->region_count(), size_t(12));
  CHECK_EQ(h->regions_free(), size_t(12));
}

TEST(heap_acquire_retire) {
  auto h = make_heap(small_config(size_t(1) << 20));  // 4 regions
  uintptr_t s0, e0, s1, e1;
  REQUIRE(h->acquire_region(&s0, &e0).is_ok());
  REQUIRE(h->acquire_region(&s1, &e1).is_ok());
  // Small-object regions come from the top of the heap down (large objects
  // take the bottom: test_region_placement.py).
  CHECK_EQ(s0, h->region_base(3));
  CHECK_EQ(e0 - s0, h->region_size());
  CHECK_EQ(e1, s0);
  // Wrong starts, cursors out of range or misaligned.
  CHECK_EQ(h->retire_region(s0 + 8, s0 + 64).code, REMAP_EINVAL);
  CHECK_EQ(h->retire_region(s0, s0 + 12).code, REMAP_EINVAL);
  CHECK_EQ(h->retire_region(s0, e0 + 8).code, REMAP_EINVAL);
  CHECK_EQ(h->retire_region(h->base() - 4096, s0).code, REMAP_EINVAL);
  CHECK_EQ(h->retire_region(h->base(), h->base() + 8).code, REMAP_EINVAL);  // region 0 not acquired
  REQUIRE(h->retire_region(s0, s0 + 4096).is_ok());
  CHECK_EQ(h->region(3).top.load(), size_t(4096));
  CHECK(h->region(3).get_state() == RegionState::RETIRED);
  CHECK_EQ(h->retire_region(s0, s0 + 8192).code, REMAP_EINVAL);  // already retired
  // Retiring with nothing allocated gives the region back.
  REQUIRE(h->retire_region(s1, s1).is_ok());
  CHECK(h->region(2).get_state() == RegionState::FREE);
  CHECK_EQ(h->bytes_allocated(), size_t(4096));
  uintptr_t s, e;
  REQUIRE(h->acquire_region(&s, &e).is_ok());
  CHECK_EQ(s, s1);
  REQUIRE(h->acquire_region(&s, &e).is_ok());
  REQUIRE(h->acquire_region(&s, &e).is_ok());
  CHECK_EQ(s, h->base());
  CHECK_EQ(h->acquire_region(&s, &e).code, REMAP_ENOMEM);
  CHECK_EQ(h->check_all_retired().code, REMAP_EPHASE);
}

TEST(heap_large_objects) {
  auto c = small_config(size_t(2) << 20);  // 8 regions
  auto h = make_heap(c);
  uintptr_t a;
  CHECK_EQ(h->alloc_large(1000, &a).code, REMAP_EINVAL);  // below the threshold
  CHECK_EQ(h->alloc_large(size_t(4) << 20, &a).code, REMAP_ENOMEM);
  uintptr_t s, e;
  REQUIRE(h->acquire_region(&s, &e).is_ok());  // region 7, the top
  CHECK_EQ(s, h->region_base(7));
  // 600 KiB + 1: 3 regions, page rounded, from the bottom.
  REQUIRE(h->alloc_large((size_t(600) << 10) + 1, &a).is_ok());
  CHECK_EQ(a, h->region_base(0));
  CHECK(h->region(0).get_state() == RegionState::LARGE_HEAD);
  CHECK_EQ(h->region(0).top.load(), (size_t(600) << 10) + 4096);
  CHECK_EQ(h->region(0).large_regions, 3u);
  CHECK(h->region(1).get_state() == RegionState::LARGE_TAIL);
  CHECK(h->region(2).get_state() == RegionState::LARGE_TAIL);
  CHECK_EQ(h->region(2).large_head, 0u);
  uintptr_t b;
  REQUIRE(h->alloc_large(h->region_size(), &b).is_ok());
  CHECK_EQ(b, h->region_base(3));
  CHECK_EQ(h->alloc_large(size_t(4) * h->region_size(), &b).code, REMAP_ENOMEM);  // 3 left
  // Marks on large objects: only the start, size within the pages.
  put(a, 600 << 10);
  CHECK(h->mark(a).is_ok());
  CHECK_EQ(h->region(0).live_bytes.load(), size_t(600) << 10);
  CHECK_EQ(h->mark(a + 4096).code, REMAP_EINVAL);
  CHECK_EQ(h->mark(h->region_base(1)).code, REMAP_EINVAL);
  put(b, uint32_t(h->region_size() + 8));
  CHECK_EQ(h->mark(b).code, REMAP_EOBJMODEL);
}

TEST(heap_mark_rejections) {
  auto h = make_heap(small_config(size_t(1) << 20));
  uintptr_t s, e;
  REQUIRE(h->acquire_region(&s, &e).is_ok());
  // Objects: 32 B at s, 64 B at s+32, 16 B at s+96; top = s+112.
  put(s, 32);
  put(s + 32, 64);
  put(s + 96, 16);
  REQUIRE(h->retire_region(s, s + 112).is_ok());
  CHECK_EQ(h->mark(s + 4).code, REMAP_EINVAL);                    // misaligned
  CHECK_EQ(h->mark(h->base() - 8).code, REMAP_EINVAL);            // outside
  CHECK_EQ(h->mark(h->base() + h->capacity()).code, REMAP_EINVAL);
  CHECK_EQ(h->mark(s + 112).code, REMAP_EINVAL);                  // at top
  CHECK_EQ(h->mark(h->region_base(0)).code, REMAP_EINVAL);        // free region
  put(s + 96, 0);
  CHECK_EQ(h->mark(s + 96).code, REMAP_EOBJMODEL);                // size 0
  put(s + 96, 12);
  CHECK_EQ(h->mark(s + 96).code, REMAP_EOBJMODEL);                // not a multiple of 8
  put(s + 96, 24);
  CHECK_EQ(h->mark(s + 96).code, REMAP_EOBJMODEL);                // past the top
  put(s + 96, 16);
  CHECK_EQ(h->region(h->region_index(s)).live_bytes.load(), size_t(0));
  CHECK_EQ(h->live_bits().count(s, s + 112), size_t(0));
  CHECK_EQ(h->begin_bits().count(s, s + 112), size_t(0));

  REQUIRE(h->mark(s + 32).is_ok());
  REQUIRE(h->mark(s + 32).is_ok());  // re-mark: no-op
  CHECK_EQ(h->region(h->region_index(s)).live_bytes.load(), size_t(64));
  // Overlaps: an address inside the marked object (its header says 16 B),
  // and an object before it running into it.
  put(s + 40, 16);
  CHECK_EQ(h->mark(s + 40).code, REMAP_EINVAL);
  put(s, 40);
  CHECK_EQ(h->mark(s).code, REMAP_EINVAL);
  put(s, 32);
  CHECK_EQ(h->region(h->region_index(s)).live_bytes.load(), size_t(64));
  CHECK_EQ(h->live_bits().count(s, s + 112), size_t(8));
  CHECK_EQ(h->begin_bits().count(s, s + 112), size_t(1));
  REQUIRE(h->mark(s).is_ok());
  REQUIRE(h->mark(s + 96).is_ok());
  CHECK_EQ(h->region(h->region_index(s)).live_bytes.load(), size_t(112));
  h->clear_marks();
  CHECK_EQ(h->region(h->region_index(s)).live_bytes.load(), size_t(0));
  CHECK_EQ(h->live_bits().count(h->base(), h->end()), size_t(0));
  CHECK_EQ(h->begin_bits().count(h->base(), h->end()), size_t(0));
}

TEST(heap_mark_overlap_race_never_both_succeed) {
  auto h = make_heap(small_config(size_t(1) << 20));
  uintptr_t s, e;
  REQUIRE(h->acquire_region(&s, &e).is_ok());
  // Pairs (A at x: 4 KiB, B at x+2 KiB: 4 KiB) overlap across many bitmap words.
  const size_t pairs = 30;
  for (size_t i = 0; i < pairs; ++i) {
    uintptr_t x = s + i * 8192;
    put(x, 4096);
    put(x + 2048, 4096);
  }
  REQUIRE(h->retire_region(s, s + pairs * 8192).is_ok());
  int both = 0, none = 0;
  for (int round = 0; round < 200; ++round) {
    std::atomic<int> go{0};
    Status ra[pairs], rb[pairs];
    std::thread ta([&] {
      while (!go.load()) {}
      for (size_t i = 0; i < pairs; ++i) ra[i] = h->mark(s + i * 8192);
    });
    std::thread tb([&] {
      while (!go.load()) {}
      for (size_t i = 0; i < pairs; ++i) rb[i] = h->mark(s + i * 8192 + 2048);
    });
    go = 1;
    ta.join();
    tb.join();
    size_t live = 0;
    for (size_t i = 0; i < pairs; ++i) {
      if (ra[i].is_ok() && rb[i].is_ok()) ++both;
      if (!ra[i].is_ok() && !rb[i].is_ok()) ++none;
      live += (ra[i].is_ok() ? 4096 : 0) + (rb[i].is_ok() ? 4096 : 0);
    }
    // The bitmaps agree with what succeeded: rolled-back marks left nothing.
    CHECK_EQ(h->region(h->region_index(s)).live_bytes.load(), live);
    CHECK_EQ(h->live_bits().count(s, e) * 8, live);
    h->clear_marks();
  }
  CHECK_EQ(both, 0);
  std::printf("overlap race: %d of %zu pairs had both marks rejected\n", none, 200 * pairs);
}

TEST(heap_concurrent_marking_disjoint) {
  auto h = make_heap(small_config(size_t(4) << 20));
  uintptr_t s, e;
  REQUIRE(h->acquire_region(&s, &e).is_ok());
  size_t n = (e - s) / 24;
  for (size_t i = 0; i < n; ++i) put(s + 24 * i, 24);
  REQUIRE(h->retire_region(s, s + 24 * n).is_ok());
  std::thread t[4];
  for (int k = 0; k < 4; ++k)
    t[k] = std::thread([&, k] {
      for (size_t i = size_t(k); i < n; i += 4) CHECK(h->mark(s + 24 * i).is_ok());
      for (size_t i = 0; i < n; i += 7) CHECK(h->mark(s + 24 * i).is_ok());  // re-marks
    });
  for (auto& th : t) th.join();
  CHECK_EQ(h->region(h->region_index(s)).live_bytes.load(), 24 * n);
  CHECK_EQ(h->begin_bits().count(s, e), n);
  CHECK_EQ(h->live_bits().count(s, e), 3 * n);
}

TEST(heap_bitmap_scans) {
  auto h = make_heap(small_config(size_t(1) << 20));
  // Exercise the scans over word boundaries with a hand-made pattern.
  uintptr_t s, e;
  REQUIRE(h->acquire_region(&s, &e).is_ok());
  put(s + 504, 16);    // crosses a 512-byte chunk
  put(s + 4096, 2048); // several whole words
  REQUIRE(h->retire_region(s, s + 8192).is_ok());
  REQUIRE(h->mark(s + 504).is_ok());
  REQUIRE(h->mark(s + 4096).is_ok());
  const LiveBitmap& lv = h->live_bits();
  const LiveBitmap& bg = h->begin_bits();
  CHECK_EQ(bg.find_next_set(s, e), s + 504);
  CHECK_EQ(bg.find_next_set(s + 512, e), s + 4096);
  CHECK_EQ(bg.find_next_set(s + 4104, e), e);
  CHECK_EQ(lv.find_next_clear(s + 504, e), s + 520);
  CHECK_EQ(lv.find_next_clear(s + 4096, e), s + 6144);
  CHECK_EQ(lv.find_prev_set(s + 4000, s), s + 512);
  CHECK_EQ(lv.find_prev_set(s + 500, s), uintptr_t(0));
  CHECK_EQ(bg.find_prev_set(s + 6000, s), s + 4096);
  CHECK_EQ(lv.count(s, e), size_t(2 + 256));
  CHECK_EQ(lv.count(s + 4104, s + 4112), size_t(1));
}

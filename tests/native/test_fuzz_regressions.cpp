// test_fuzz_regressions.cpp — defects the fuzzers of fuzz/ found, each
// reduced to the C ABI calls that show it (docs/FUZZING.md lists them with
// the input that found them, kept in fuzz/corpus/). The stw backend: no
// userfaultfd needed, so these run on every machine.
#include <cstring>
#include <string>

#include "check.h"
#include "libremap.h"

namespace {

// Objects are [size][id][...]: object_size reads the first word. The id
// word is odd, so an object "starting" at obj + 8 has an impossible size.
size_t header_size(void*, const void* obj) { return *static_cast<const uint64_t*>(obj); }

struct SmallHeap {
  remap_heap* h = nullptr;
  explicit SmallHeap(int backend = REMAP_BACKEND_STW) {
    remap_heap_config c;
    remap_heap_config_init(&c);
    c.backend = backend;
    c.region_size = size_t(64) << 10;
    c.capacity = 4 * c.region_size;
    c.model.object_size = &header_size;
    const remap_status s = remap_heap_create(&c, &h);
    if (s == REMAP_EUNSUPPORTED || s == REMAP_EPERM)
      SKIP(std::string("backend unavailable: ") + remap_last_error());
    REQUIRE(s == REMAP_OK);
  }
  int phase() {
    remap_heap_info i;
    std::memset(&i, 0, sizeof i);
    i.struct_size = sizeof i;
    REQUIRE(remap_heap_get_info(h, &i) == REMAP_OK);
    return i.phase;
  }
  ~SmallHeap() { remap_heap_destroy(h); }
  // n objects of 32 bytes at the start of a fresh region, retired.
  uint64_t* objects(int n) {
    void *s = nullptr, *e = nullptr;
    REQUIRE(remap_region_acquire(h, &s, &e) == REMAP_OK);
    auto* w = static_cast<uint64_t*>(s);
    for (int i = 0; i < n; ++i) {
      w[4 * i] = 32;
      w[4 * i + 1] = (uint64_t(i + 1) << 8) | 3;
    }
    REQUIRE(remap_region_retire(h, s, w + 4 * n) == REMAP_OK);
    return w;
  }
  remap_status cycle() {
    remap_status s = remap_prepare(h);
    return s == REMAP_OK ? remap_flip(h) : s;  // stw: the flip completes it
  }
};

}  // namespace

// c_abi/object_model fuzzers: a remap_try_mark mark is only a begin bit
// until prepare completes it; remap_clear_marks found marks by their
// regions' live bytes (none yet), so the mark survived into the next cycle
// and kept an object the runtime had not marked.
TEST(fuzz_try_mark_is_forgotten_by_clear_marks) {
  SmallHeap heap;
  uint64_t* w = heap.objects(2);
  void* a = w;
  void* b = w + 4;
  CHECK_EQ(remap_try_mark(heap.h, b), 1);
  REQUIRE(remap_clear_marks(heap.h) == REMAP_OK);
  REQUIRE(remap_mark(heap.h, a) == REMAP_OK);
  REQUIRE(heap.cycle() == REMAP_OK);
  void* out = nullptr;
  CHECK_EQ(remap_forward(heap.h, b, &out), REMAP_EINVAL);  // b was not marked this cycle
  remap_cycle_stats st;
  std::memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  REQUIRE(remap_heap_last_stats(heap.h, &st) == REMAP_OK);
  CHECK_EQ(st.live_bytes, uint64_t(32));
}

// c_abi fuzzer, after the fix above: a prepare refused because a region
// was still acquired had completed the try_mark marks of every other region
// and then taken the deferred ones for done, although marks below the top
// of the acquired region (a compacted region's tail taken as a TLAB) were
// not; remap_clear_marks then left those behind.
TEST(fuzz_try_mark_in_acquired_region_is_forgotten_by_clear_marks) {
  SmallHeap heap;
  uint64_t* w = heap.objects(8);
  REQUIRE(remap_mark(heap.h, w + 4 * 7) == REMAP_OK);  // one survivor: a tail opens
  REQUIRE(heap.cycle() == REMAP_OK);
  void* y = nullptr;
  REQUIRE(remap_forward(heap.h, w + 4 * 7, &y) == REMAP_OK);
  CHECK_EQ(remap_try_mark(heap.h, y), 1);
  void *s = nullptr, *e = nullptr;
  REQUIRE(remap_region_acquire(heap.h, &s, &e) == REMAP_OK);
  CHECK(static_cast<char*>(s) == static_cast<char*>(y) + 32);  // the tail, above y
  CHECK_EQ(remap_prepare(heap.h), REMAP_EPHASE);  // a region is still acquired
  REQUIRE(remap_clear_marks(heap.h) == REMAP_OK);
  REQUIRE(remap_region_retire(heap.h, s, s) == REMAP_OK);
  REQUIRE(heap.cycle() == REMAP_OK);  // nothing marked
  void* out = nullptr;
  CHECK_EQ(remap_forward(heap.h, y, &out), REMAP_EINVAL);
}

// object_model fuzzer: a prepare refused for a remap_try_mark of a
// non-object (obj + 8) says "remap_clear_marks to start over", but the bad
// mark survived the clear and refused every later prepare: the heap could
// never collect again.
TEST(fuzz_refused_try_mark_can_start_over) {
  SmallHeap heap;
  uint64_t* w = heap.objects(2);
  CHECK_EQ(remap_try_mark(heap.h, w + 1), 1);  // accepted on faith: no size read yet
  CHECK_EQ(remap_prepare(heap.h), REMAP_EOBJMODEL);
  REQUIRE(remap_clear_marks(heap.h) == REMAP_OK);
  REQUIRE(remap_mark(heap.h, w + 4) == REMAP_OK);
  CHECK_EQ(heap.cycle(), REMAP_OK);
}

// c_abi fuzzer: remap_mark took an address that remap_try_mark had accepted
// on faith (a begin bit, no size read until prepare) for "already marked"
// and returned REMAP_OK unchecked, an interior one (obj + 8) included. It
// checks such an address like any other now; a real object's deferred mark
// stands, and prepare still refuses the bad one.
TEST(fuzz_mark_checks_an_address_try_mark_took_on_faith) {
  SmallHeap heap;
  uint64_t* w = heap.objects(2);
  CHECK_EQ(remap_try_mark(heap.h, w + 1), 1);  // the id word: an impossible size
  CHECK_EQ(remap_mark(heap.h, w + 1), REMAP_EOBJMODEL);
  CHECK_EQ(remap_try_mark(heap.h, w + 4), 1);
  CHECK_EQ(remap_mark(heap.h, w + 4), REMAP_OK);
  CHECK_EQ(remap_prepare(heap.h), REMAP_EOBJMODEL);
  REQUIRE(remap_clear_marks(heap.h) == REMAP_OK);
  CHECK_EQ(remap_try_mark(heap.h, w + 4), 1);
  CHECK_EQ(remap_mark(heap.h, w + 4), REMAP_OK);
  REQUIRE(heap.cycle() == REMAP_OK);
  remap_cycle_stats st;
  std::memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  REQUIRE(remap_heap_last_stats(heap.h, &st) == REMAP_OK);
  CHECK_EQ(st.live_bytes, uint64_t(32));  // the object at w + 4, counted once
}

// c_abi fuzzer: in a region allocated black (after remap_cycle_begin),
// remap_try_mark returned 0 and remap_mark REMAP_OK for any address,
// misaligned or above the region's top included, where libremap.h promises
// a negative status for an address that cannot be an object start.
TEST(fuzz_black_region_refuses_impossible_marks) {
  SmallHeap heap;
  heap.objects(1);
  REQUIRE(remap_cycle_begin(heap.h) == REMAP_OK);
  uint64_t* black = heap.objects(2);  // allocated in the window: black
  auto* p = reinterpret_cast<char*>(black);
  CHECK_EQ(remap_try_mark(heap.h, black), 0);  // a black object: accepted, ignored
  CHECK_EQ(remap_mark(heap.h, black), REMAP_OK);
  CHECK_EQ(remap_try_mark(heap.h, p + 4), REMAP_EINVAL);   // misaligned
  CHECK_EQ(remap_mark(heap.h, p + 4), REMAP_EINVAL);
  CHECK_EQ(remap_try_mark(heap.h, p + 64), REMAP_EINVAL);  // above the region's top
  CHECK_EQ(remap_mark(heap.h, p + 64), REMAP_EINVAL);
  CHECK_EQ(remap_clear_marks(heap.h), REMAP_OK);
}

// c_abi fuzzer: remap_forward of a misaligned address in a black region came
// back unchanged with REMAP_OK; an in-heap address that is no object start
// is REMAP_EINVAL.
TEST(fuzz_forward_refuses_misaligned_black_address) {
  SmallHeap heap;
  REQUIRE(remap_cycle_begin(heap.h) == REMAP_OK);
  uint64_t* black = heap.objects(1);
  REQUIRE(remap_prepare(heap.h) == REMAP_OK);
  void* out = nullptr;
  CHECK_EQ(remap_forward(heap.h, black, &out), REMAP_OK);  // black: stays where it is
  CHECK(out == black);
  CHECK_EQ(remap_forward(heap.h, reinterpret_cast<char*>(black) + 4, &out), REMAP_EINVAL);
  CHECK_EQ(remap_clear_marks(heap.h), REMAP_OK);
}

// c_abi fuzzer: a cycle that moves nothing (move, copy) keeps the last
// layout until its finish and releases its dead regions' memory after the
// flip; remap_region_acquire still offered the free tail the last cycle
// left in such a region, and what the runtime allocated there read zero
// after the cycle.
static void trivial_cycle_keeps_what_is_allocated_in_it(int backend) {
  SmallHeap heap(backend);
  uint64_t* w = heap.objects(8);  // 8 objects of 32 bytes in one region
  REQUIRE(remap_mark(heap.h, w + 4 * 7) == REMAP_OK);  // the last survives: a tail opens
  REQUIRE(heap.cycle() == REMAP_OK);
  if (heap.phase() == REMAP_PHASE_COMPACTING) REQUIRE(remap_finish(heap.h) == REMAP_OK);
  // Nothing marked: the region dies, nothing moves.
  REQUIRE(heap.cycle() == REMAP_OK);
  REQUIRE(heap.phase() == REMAP_PHASE_COMPACTING);
  void *s = nullptr, *e = nullptr;
  REQUIRE(remap_region_acquire(heap.h, &s, &e) == REMAP_OK);
  auto* o = static_cast<uint64_t*>(s);
  o[0] = 32;
  o[1] = 0x5afe;
  REQUIRE(remap_region_retire(heap.h, s, o + 4) == REMAP_OK);
  REQUIRE(remap_compact_work(heap.h) == REMAP_OK);
  REQUIRE(remap_finish(heap.h) == REMAP_OK);
  CHECK_EQ(o[0], uint64_t(32));
  CHECK_EQ(o[1], uint64_t(0x5afe));
}

TEST(fuzz_trivial_cycle_keeps_allocation_move) {
  trivial_cycle_keeps_what_is_allocated_in_it(REMAP_BACKEND_MOVE);
}

TEST(fuzz_trivial_cycle_keeps_allocation_copy) {
  trivial_cycle_keeps_what_is_allocated_in_it(REMAP_BACKEND_COPY);
}

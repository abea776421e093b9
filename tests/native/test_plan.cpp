// test_plan.cpp — plan/ and backends/stw against an independent reference:
// random heaps (fragmented, dense, empty regions, live and dead large
// objects, references within and across regions, NULL and foreign values)
// are marked, planned and compacted; every forwarding address, region class,
// new top, page kind, first object and the final heap image (every byte) is
// compared with what a straightforward model computes. Also: the object
// model's nonsense caught by Plan::build, and the cost of build and of STW.
//
// Object layout: word 0 = size in bytes | nrefs << 32; nrefs slots follow.
#include <algorithm>
#include <ctime>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "backends/stw.h"
#include "check.h"
#include "heap/heap.h"
#include "plan/plan.h"

using namespace remap;

namespace {

struct ModelCtx {
  uintptr_t bad_obj = 0;  // visit reports a nonsense offset for this object
  size_t bad_offset = 0;
};

size_t obj_size(void*, const void* obj) { return *static_cast<const uint64_t*>(obj) & 0xffffffffu; }

void obj_refs(void* ctx, const void* obj, remap_visit_fn visit, void* vctx) {
  auto* m = static_cast<ModelCtx*>(ctx);
  uint64_t n = *static_cast<const uint64_t*>(obj) >> 32;
  for (uint64_t i = 0; i < n; ++i) visit(vctx, 8 + 8 * i);
  if (m && m->bad_obj == uintptr_t(obj)) visit(vctx, m->bad_offset);
}

void put(uintptr_t a, uint32_t size, uint32_t nrefs = 0) {
  *reinterpret_cast<uint64_t*>(a) = uint64_t(size) | (uint64_t(nrefs) << 32);
}
uint64_t& slot(uintptr_t obj, size_t i) { return reinterpret_cast<uint64_t*>(obj)[1 + i]; }

struct Obj {
  uintptr_t addr;
  uint32_t size;
  uint32_t nrefs;
  bool live;
};

// A random heap and what the reference model expects of it.
struct World {
  ModelCtx ctx;
  std::unique_ptr<Heap> heap;
  std::vector<Obj> objs;                  // address order
  std::vector<uintptr_t> live;            // live object addresses
  std::map<uintptr_t, uintptr_t> expect;  // old -> new
  std::vector<const Obj*> moved_large;  // live large objects that slide
  uint64_t foreign = 0;                   // a value outside the heap

  World(uint64_t seed, size_t regions, size_t region_size = size_t(64) << 10, double dense = 0.9,
        unsigned flags = 0) {
    std::mt19937_64 rng(seed);
    remap_heap_config c;
    config_defaults(&c);
    c.capacity = regions * region_size;
    c.region_size = region_size;
    c.dense_threshold = dense;
    c.backend = REMAP_BACKEND_STW;
    c.flags = flags;
    c.model.ctx = &ctx;
    c.model.object_size = obj_size;
    c.model.visit_ref_offsets = obj_refs;
    REQUIRE(Heap::create(c, &heap).is_ok());
    foreign = uint64_t(uintptr_t(&ctx));
    Heap& h = *heap;
    std::vector<size_t> large_heads;
    // Small-object regions come from the top and large objects from the
    // bottom (Heap::acquire_region): to interleave them in address order,
    // as a long-running heap does once it fills, every region is acquired
    // first, then each is filled, left free, or given back just before a
    // large object is allocated there (the lowest free run).
    std::vector<std::pair<uintptr_t, uintptr_t>> held(regions);
    for (size_t i = 0; i < regions; ++i) {
      uintptr_t s, e;
      REQUIRE(h.acquire_region(&s, &e).is_ok());
      held[h.region_index(s)] = {s, e};
    }
    std::vector<uintptr_t> left_free;  // given back at the end
    for (size_t r = 0; r < regions;) {
      uint64_t kind = rng() % 10;
      if (kind == 0 && r + 2 < regions) {  // a large object over 1-2 regions
        uintptr_t a;
        size_t sz = region_size / 2 + (rng() % region_size) / 8 * 8;
        const size_t need = (((sz + 4095) & ~size_t(4095)) + region_size - 1) / region_size;
        for (size_t t = r; t < r + need; ++t) REQUIRE(h.retire_region(held[t].first, held[t].first).is_ok());
        REQUIRE(h.alloc_large(sz, &a).is_ok());
        REQUIRE(a == h.region_base(r));
        uint32_t nr = uint32_t(rng() % 5);
        put(a, uint32_t(sz), nr);
        objs.push_back({a, uint32_t(sz), nr, rng() % 3 != 0});
        r += need;
        continue;
      }
      const uintptr_t s = held[r].first, e = held[r].second;
      ++r;
      if (kind == 1) {  // left free
        left_free.push_back(s);
        continue;
      }
      // Live probability per region: empty, fragmented, dense.
      double p = kind == 2 ? 0.0 : kind < 6 ? 0.97 + 0.03 * double(rng() % 2) : 0.1 + 0.6 * double(rng() % 100) / 100;
      size_t fill = e - s - (rng() % 3) * 4096 - (rng() % 64) * 8;
      uintptr_t cur = s;
      while (true) {
        uint32_t sz = uint32_t(16 + 8 * (rng() % (rng() % 4 == 0 ? 200 : 8)));
        if (cur + sz > s + fill) break;
        uint32_t nr = uint32_t(std::min<uint64_t>(rng() % 5, sz / 8 - 1));
        put(cur, sz, nr);
        for (uintptr_t w = cur + 8 + 8 * nr; w < cur + sz; w += 8)
          *reinterpret_cast<uint64_t*>(w) = rng();
        for (uint32_t i = 0; i < nr; ++i) slot(cur, i) = rng();  // garbage until wired
        objs.push_back({cur, sz, nr, double(rng() % 1000) / 1000 < p});
        cur += sz;
      }
      REQUIRE(h.retire_region(s, cur).is_ok());
    }
    for (uintptr_t s : left_free) REQUIRE(h.retire_region(s, s).is_ok());
    for (const Obj& o : objs)
      if (o.live) live.push_back(o.addr);
    // Wire reference slots of live objects: live targets, NULL or foreign.
    for (const Obj& o : objs) {
      if (!o.live) continue;
      for (uint32_t i = 0; i < o.nrefs; ++i) {
        uint64_t k = rng() % 10;
        slot(o.addr, i) = k == 0 ? 0 : k == 1 ? foreign : live[rng() % live.size()];
      }
    }
    for (uintptr_t a : live) REQUIRE(h.mark(a).is_ok());
    compute_expectations();
  }

  RegionClass expected_class(size_t r) const {
    const Heap& h = *heap;
    const Region& reg = h.region(r);
    RegionState st = reg.get_state();
    if (st == RegionState::LARGE_TAIL) return expected_class(reg.large_head);
    size_t lb = reg.live_bytes.load();
    if (st == RegionState::FREE || lb == 0) return RegionClass::EMPTY;
    if (st == RegionState::LARGE_HEAD) return RegionClass::LARGE;
    return double(lb) >= h.config().dense_threshold * double(reg.top.load()) ? RegionClass::DENSE
                                                                             : RegionClass::FRAGMENTED;
  }

  // The large-object slide, by brute force (DESIGN §8): each live large
  // object in address order takes the lowest start s, at or after the end of
  // the previous one's new place and not above its own head, such that every
  // region of [s, s + n) holds nothing that stays (class EMPTY or LARGE).
  void slide_large_objects() {
    const Heap& h = *heap;
    size_t floor = 0;
    for (const Obj& o : objs) {
      size_t head = h.region_index(o.addr);
      if (!o.live || h.region(head).get_state() != RegionState::LARGE_HEAD) continue;
      size_t n = h.region(head).large_regions;
      size_t s = floor;
      for (;; ++s) {
        bool fits = true;
        for (size_t t = s; t < s + n; ++t) {
          RegionClass c = expected_class(t);
          fits = fits && (c == RegionClass::EMPTY || c == RegionClass::LARGE);
        }
        if (fits) break;
      }
      REQUIRE(s <= head);
      expect[o.addr] = h.region_base(s);
      if (s != head) moved_large.push_back(&o);
      floor = s + n;
    }
  }

  void compute_expectations() {
    const Heap& h = *heap;
    if (!(h.config().flags & REMAP_HEAP_PIN_LARGE)) slide_large_objects();
    std::map<size_t, uintptr_t> next;  // region -> next new address
    for (const Obj& o : objs) {
      if (!o.live || expect.count(o.addr)) continue;
      size_t r = h.region_index(o.addr);
      if (expected_class(r) == RegionClass::FRAGMENTED) {
        auto it = next.emplace(r, h.region_base(r)).first;
        expect[o.addr] = it->second;
        it->second += o.size;
      } else {
        expect[o.addr] = o.addr;
      }
    }
  }

  uintptr_t fwd(uint64_t v) const {
    auto it = expect.find(uintptr_t(v));
    return it == expect.end() ? uintptr_t(v) : it->second;
  }

  // The heap every backend must leave: built from a snapshot, by the model.
  std::vector<uint8_t> expected_image() const {
    const Heap& h = *heap;
    const uint8_t* base = reinterpret_cast<const uint8_t*>(h.base());
    std::vector<uint8_t> img(base, base + h.capacity());
    for (size_t r = 0; r < h.region_count(); ++r) {
      RegionClass c = expected_class(r);
      if (c == RegionClass::FRAGMENTED || c == RegionClass::EMPTY)
        std::memset(img.data() + (r * h.region_size()), 0, h.region_size());
    }
    for (const Obj* o : moved_large) {  // vacated: free memory reads zero
      size_t head = h.region_index(o->addr);
      std::memset(img.data() + head * h.region_size(), 0,
                  h.region(head).large_regions * h.region_size());
    }
    for (const Obj& o : objs) {
      if (!o.live) continue;
      uint8_t* dst = img.data() + (expect.at(o.addr) - h.base());
      std::memcpy(dst, reinterpret_cast<const void*>(o.addr), o.size);
      for (uint32_t i = 0; i < o.nrefs; ++i) {
        uint64_t v = slot(o.addr, i);
        uint64_t nv = v == 0 ? 0 : fwd(v);
        std::memcpy(dst + 8 + 8 * i, &nv, 8);
      }
    }
    return img;
  }
};

// CPU time of this thread: the machine is shared, wall time is not the cost.
uint64_t cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

void check_plan(World& w, const Plan& p) {
  const Heap& h = *w.heap;
  // Classes, new tops, live ends.
  for (size_t r = 0; r < h.region_count(); ++r) {
    CHECK_EQ(p.region_class(r), w.expected_class(r));
    if (p.region_class(r) == RegionClass::FRAGMENTED)
      CHECK_EQ(p.new_top(r), h.region_base(r) + h.region(r).live_bytes.load());
    if (p.region_class(r) == RegionClass::DENSE)
      CHECK_EQ(p.new_top(r), h.region_base(r) + h.region(r).top.load());
    if (p.region_class(r) == RegionClass::LARGE) {
      // The head's new top / live end cover the whole object; a tail's, its part.
      size_t head = h.region(r).get_state() == RegionState::LARGE_HEAD ? r : h.region(r).large_head;
      uintptr_t hb = h.region_base(head), rb = h.region_base(r), re = rb + h.region_size();
      uintptr_t alloc_end = hb + h.region(head).top.load();
      uintptr_t obj_end = hb + h.region(head).live_bytes.load();
      CHECK_EQ(p.new_top(r), r == head ? alloc_end : std::clamp(alloc_end, rb, re));
      CHECK_EQ(p.live_end(r), r == head ? obj_end : std::clamp(obj_end, rb, re));
    }
    if (p.region_class(r) == RegionClass::FRAGMENTED || p.region_class(r) == RegionClass::DENSE) {
      uintptr_t last = h.region_base(r);
      for (const Obj& o : w.objs)
        if (o.live && h.region_index(o.addr) == r) last = o.addr + o.size;
      CHECK_EQ(p.live_end(r), last);
    }
  }
  // Forwarding: every live object, checked and unchecked.
  for (uintptr_t a : w.live) {
    CHECK_EQ(p.forward(a), w.expect.at(a));
    uintptr_t n = 0;
    CHECK(p.forward_checked(a, &n).is_ok());
    CHECK_EQ(n, w.expect.at(a));
  }
  uintptr_t n = 0;
  CHECK(p.forward_checked(w.foreign, &n).is_ok());
  CHECK_EQ(n, uintptr_t(w.foreign));
  CHECK_EQ(p.forward(h.base() - 8), h.base() - 8);
  CHECK_EQ(p.forward(h.end()), h.end());
  for (const Obj& o : w.objs)
    if (!o.live) {
      CHECK_EQ(p.forward_checked(o.addr, &n).code, REMAP_EINVAL);
      break;
    }
  // The cursor yields exactly the live objects, with their sizes.
  std::vector<LiveObject> seen;
  for (size_t r = 0; r < h.region_count(); ++r) {
    LiveObject o;
    for (LiveCursor c = p.objects(r); c.next(&o);) seen.push_back(o);
  }
  size_t k = 0;
  for (const Obj& o : w.objs) {
    if (!o.live) continue;
    REQUIRE(k < seen.size());
    CHECK_EQ(seen[k].old_addr, o.addr);
    CHECK_EQ(seen[k].size, size_t(o.size));
    CHECK_EQ(p.size_of_live(o.addr), size_t(o.size));
    ++k;
  }
  CHECK_EQ(k, seen.size());
  // Page tables against a brute-force look at the new layout.
  std::vector<std::pair<uintptr_t, const Obj*>> by_new;  // new start -> object
  for (const Obj& o : w.objs)
    if (o.live) by_new.push_back({w.expect.at(o.addr), &o});
  std::sort(by_new.begin(), by_new.end());
  size_t ps = h.page_size();
  for (size_t pg = 0; pg < h.page_count(); ++pg) {
    uintptr_t pa = h.page_addr(pg), pe = pa + ps;
    size_t r = h.region_index(pa);
    RegionClass c = p.region_class(r);
    uintptr_t first = 0;
    for (auto& [na, o] : by_new)
      if (na < pe && na + o->size > pa) {
        first = o->addr;
        break;
      }
    PageKind want = PageKind::EMPTY;
    if (c == RegionClass::FRAGMENTED && pa < p.new_top(r)) want = PageKind::FRAGMENTED;
    if (c == RegionClass::DENSE && pa < p.new_top(r)) want = PageKind::DENSE;
    // A live large object's pages, at its new place, whole pages.
    uintptr_t large = 0;
    for (auto& [na, o] : by_new) {
      size_t head = h.region_index(o->addr);
      if (h.region(head).get_state() != RegionState::LARGE_HEAD) continue;
      if (pa >= na && pa < na + h.region(head).top.load()) large = o->addr;
    }
    if (large) want = PageKind::LARGE;
    CHECK_EQ(p.page_kind(pg), want);
    if (large) {
      CHECK_EQ(p.first_object(pg), large);
    } else {
      if (p.first_object(pg) != first)
        std::fprintf(stderr, "page %zu kind %s: first %#zx want %#zx\n", pg,
                     page_kind_name(p.page_kind(pg)), size_t(p.first_object(pg)), size_t(first));
      CHECK_EQ(p.first_object(pg), first);
    }
  }
}

}  // namespace

TEST(plan_and_stw_match_the_reference_model) {
  size_t slid = 0;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    World w(seed, 24, size_t(64) << 10, seed % 3 == 0 ? 1.0 : 0.9);
    std::unique_ptr<Plan> p;
    Status s = Plan::build(*w.heap, &p);
    if (!s) std::fprintf(stderr, "build: %s\n", s.message.c_str());
    REQUIRE(s.is_ok());
    CHECK_EQ(p->objects_live(), uint64_t(w.live.size()));
    CHECK_EQ(p->large_objects_moved(), uint64_t(w.moved_large.size()));
    slid += w.moved_large.size();
    check_plan(w, *p);
    std::vector<uint8_t> want = w.expected_image();
    remap_cycle_stats st{};
    REQUIRE(stw_compact(*w.heap, *p, &st).is_ok());
    const uint8_t* got = reinterpret_cast<const uint8_t*>(w.heap->base());
    size_t bad = 0;
    for (size_t i = 0; i < want.size(); ++i)
      if (got[i] != want[i] && bad++ < 3)
        std::fprintf(stderr, "seed %zu: byte +%#zx is %02x, want %02x\n", size_t(seed), i, got[i],
                     want[i]);
    CHECK_EQ(bad, size_t(0));
    // The cycle's end: tops and states follow the new layout, marks are gone.
    w.heap->complete_cycle(*p);
    Heap& h = *w.heap;
    std::vector<uint8_t> large_now(h.region_count(), 0);  // regions of live large objects
    for (const Obj& o : w.objs) {
      size_t head = h.region_index(w.fwd(o.addr));
      if (!o.live || p->region_class(h.region_index(o.addr)) != RegionClass::LARGE) continue;
      CHECK(h.region(head).get_state() == RegionState::LARGE_HEAD);
      CHECK_EQ(h.region(head).top.load(), (size_t(o.size) + 4095) & ~size_t(4095));
      for (size_t t = head; t < head + h.region(head).large_regions; ++t) large_now[t] = 1;
      for (size_t t = head + 1; t < head + h.region(head).large_regions; ++t) {
        CHECK(h.region(t).get_state() == RegionState::LARGE_TAIL);
        CHECK_EQ(size_t(h.region(t).large_head), head);
      }
    }
    // The cycle's marks outlive it (forward() stays valid until the next
    // cycle starts); the next cycle's first mark discards them.
    CHECK(h.marks_stale());
    h.discard_stale_marks();
    CHECK(!h.marks_stale());
    for (size_t r = 0; r < h.region_count(); ++r) {
      RegionClass c = p->region_class(r);
      if (c == RegionClass::EMPTY && !large_now[r])
        CHECK(h.region(r).get_state() == RegionState::FREE);
      if (c == RegionClass::LARGE && !large_now[r])
        CHECK(h.region(r).get_state() == RegionState::FREE);  // vacated by a slide
      if (c == RegionClass::FRAGMENTED)
        CHECK_EQ(h.region(r).top.load(), p->new_top(r) - h.region_base(r));
      CHECK_EQ(h.region(r).live_bytes.load(), size_t(0));
    }
    CHECK_EQ(h.live_bits().count(h.base(), h.end()), size_t(0));
    CHECK_EQ(h.cycles(), uint64_t(1));
  }
  CHECK(slid > 0);  // the seeds do exercise the large-object slide
}

TEST(plan_second_cycle_on_compacted_heap) {
  // After a cycle, compacted tails are handed out first, then the heap is
  // collected again with every object live: nothing moves.
  World w(77, 16);
  std::unique_ptr<Plan> p;
  REQUIRE(Plan::build(*w.heap, &p).is_ok());
  REQUIRE(stw_compact(*w.heap, *p, nullptr).is_ok());
  w.heap->complete_cycle(*p);
  Heap& h = *w.heap;
  uintptr_t s, e;
  REQUIRE(h.acquire_region(&s, &e).is_ok());
  size_t r = h.region_index(s);
  bool tail = p->region_class(r) == RegionClass::FRAGMENTED;
  CHECK(tail || h.region(r).get_state() == RegionState::ALLOCATING);
  if (tail) {
    CHECK_EQ(s, p->new_top(r));
    // The tail reads zero.
    for (uintptr_t a = s; a < e; a += 8) REQUIRE(*reinterpret_cast<uint64_t*>(a) == 0);
  }
  put(s, 64);
  REQUIRE(h.retire_region(s, s + 64).is_ok());
  // Mark everything allocated.
  for (size_t q = 0; q < h.region_count(); ++q) {
    RegionState st = h.region(q).get_state();
    if (st == RegionState::LARGE_HEAD) REQUIRE(h.mark(h.region_base(q)).is_ok());
    if (st != RegionState::RETIRED) continue;
    for (uintptr_t a = h.region_base(q); a < h.region_base(q) + h.region(q).top.load();
         a += obj_size(nullptr, reinterpret_cast<void*>(a)))
      REQUIRE(h.mark(a).is_ok());
  }
  p.reset();
  REQUIRE(Plan::build(h, &p).is_ok());
  CHECK_EQ(p->regions_fragmented(), uint64_t(0));
}

TEST(mark_rejects_slot_offsets_outside_the_object) {
  World w(5, 8);
  REQUIRE(w.live.size() > 2);
  uintptr_t victim = w.live[w.live.size() / 2];
  size_t size = obj_size(nullptr, reinterpret_cast<void*>(victim));
  for (size_t bad : {size, size + 64, size_t(12)}) {
    w.heap->clear_marks();
    w.ctx.bad_obj = victim;
    w.ctx.bad_offset = bad;
    Status s = w.heap->mark(victim);
    CHECK_EQ(s.code, REMAP_EOBJMODEL);
    CHECK(s.message.find("offset") != std::string::npos);
    CHECK(!w.heap->begin_bits().test(victim));  // refused marks change nothing
  }
  w.ctx.bad_obj = 0;
  w.heap->clear_marks();
  for (uintptr_t a : w.live) REQUIRE(w.heap->mark(a).is_ok());
  std::unique_ptr<Plan> p;
  CHECK(Plan::build(*w.heap, &p).is_ok());
}

TEST(plan_verify_refs_rejects_object_model_nonsense) {
  World w(5, 8, size_t(64) << 10, 0.9, REMAP_HEAP_VERIFY_REFS);
  REQUIRE(w.live.size() > 2);
  uintptr_t victim = w.live[w.live.size() / 2];
  size_t size = obj_size(nullptr, reinterpret_cast<void*>(victim));
  std::unique_ptr<Plan> p;
  // A model that changes its answer after marking cannot matter: the
  // library calls it only at mark (where every answer is checked), and
  // prepare and every producer read the slots recorded then (issue 12.5).
  for (size_t bad : {size, size + 64, size_t(12)}) {
    w.ctx.bad_obj = victim;
    w.ctx.bad_offset = bad;
    CHECK(Plan::build(*w.heap, &p).is_ok());
  }
  w.ctx.bad_obj = 0;
  // A live object referring to a dead one: a missed mark.
  const Obj* dead = nullptr;
  const Obj* holder = nullptr;
  for (const Obj& o : w.objs) {
    if (!o.live && !dead) dead = &o;
    if (o.live && o.nrefs && !holder) holder = &o;
  }
  REQUIRE(dead && holder);
  uint64_t saved = slot(holder->addr, 0);
  slot(holder->addr, 0) = dead->addr;
  Status s = Plan::build(*w.heap, &p);
  CHECK_EQ(s.code, REMAP_EOBJMODEL);
  CHECK(s.message.find("missed mark") != std::string::npos);
  slot(holder->addr, 0) = saved;
  CHECK(Plan::build(*w.heap, &p).is_ok());
}

TEST(plan_build_and_stw_cost) {
  // 32 MiB, 256 KiB regions, objects 16-1600 B: the per-page costs reported
  // in the issue note come from here (printed, not asserted). Thread CPU time.
  // LIBREMAP_COST_MIB=<n> measures a bigger heap by hand.
  const char* env = std::getenv("LIBREMAP_COST_MIB");
  const size_t rs = size_t(256) << 10;
  const size_t regions = (env ? std::max<size_t>(4, std::strtoull(env, nullptr, 10)) : 32) * 4;
  World w(99, regions, rs);
  const size_t pages = w.heap->capacity() / w.heap->page_size();
  std::unique_ptr<Plan> p;
  uint64_t t0 = cpu_ns();
  REQUIRE(Plan::build(*w.heap, &p).is_ok());
  uint64_t build = cpu_ns() - t0;
  // The validation pass alone, again (build_ns/validate_ns are wall time).
  uint64_t best_build = build;
  for (int i = 0; i < 3; ++i) {
    t0 = cpu_ns();
    REQUIRE(Plan::build(*w.heap, &p).is_ok());
    best_build = std::min(best_build, cpu_ns() - t0);
  }
  double validate_share = double(p->validate_ns()) / double(p->build_ns());
  // forward() over every live object, 10 times.
  uint64_t sink = 0;
  t0 = cpu_ns();
  for (int i = 0; i < 10; ++i)
    for (uintptr_t a : w.live) sink += p->forward(a);
  uint64_t fwd = cpu_ns() - t0;
  CHECK(sink != 0);
  t0 = cpu_ns();
  remap_cycle_stats st{};
  REQUIRE(stw_compact(*w.heap, *p, &st).is_ok());
  uint64_t stw = cpu_ns() - t0;
  std::printf("heap %zu MiB, %zu live objects (%zu MiB live), %zu dense, %zu fragmented, %zu empty\n",
              w.heap->capacity() >> 20, w.live.size(), size_t(p->live_bytes_total() >> 20),
              size_t(p->regions_dense()), size_t(p->regions_fragmented()),
              size_t(p->regions_empty()));
  std::printf("Plan::build %.2f ms CPU (%.0f ns/page, %.0f ns/live object); validation ~%.0f%% of it\n",
              best_build / 1e6, double(best_build) / double(pages),
              double(best_build) / double(w.live.size()), 100 * validate_share);
  std::printf("forward %.1f ns/call\n", double(fwd) / double(10 * w.live.size()));
  std::printf("stw_compact %.2f ms CPU (%.0f ns/page), %zu MiB copied, %zu madvise\n", stw / 1e6,
              double(stw) / double(pages), size_t(st.bytes_copied >> 20),
              size_t(st.madvise_calls));
}

TEST(plan_pin_large_keeps_every_large_object_in_place) {
  // REMAP_HEAP_PIN_LARGE: the reference model then slides nothing, and the
  // plan and the STW pass must agree with it.
  size_t large_live = 0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    World w(seed, 24, size_t(64) << 10, 0.9, REMAP_HEAP_PIN_LARGE);
    std::unique_ptr<Plan> p;
    REQUIRE(Plan::build(*w.heap, &p).is_ok());
    CHECK_EQ(p->large_objects_moved(), uint64_t(0));
    large_live += p->regions_large();
    check_plan(w, *p);
    std::vector<uint8_t> want = w.expected_image();
    REQUIRE(stw_compact(*w.heap, *p, nullptr).is_ok());
    CHECK(std::memcmp(want.data(), reinterpret_cast<const void*>(w.heap->base()), want.size()) == 0);
  }
  CHECK(large_live > 0);
}

TEST(slid_large_object_leaves_no_marks_behind) {
  // Few regions marked, so complete_cycle clears marks region by region: the
  // marks of a large object that slid must go although its old regions are
  // FREE by then (a stale live bit there made the next cycle's marks of
  // small objects allocated in them fail as overlapping).
  ModelCtx ctx;
  remap_heap_config c;
  config_defaults(&c);
  c.region_size = size_t(64) << 10;
  c.capacity = 64 * c.region_size;
  c.backend = REMAP_BACKEND_STW;
  c.model.ctx = &ctx;
  c.model.object_size = obj_size;
  c.model.visit_ref_offsets = obj_refs;
  std::unique_ptr<Heap> heap;
  REQUIRE(Heap::create(c, &heap).is_ok());
  Heap& h = *heap;
  uintptr_t dead, live;
  REQUIRE(h.alloc_large(2 * c.region_size - 4096, &dead).is_ok());
  REQUIRE(h.alloc_large(2 * c.region_size + 4096, &live).is_ok());  // 3 regions
  put(dead, uint32_t(2 * c.region_size - 4096));
  put(live, uint32_t(2 * c.region_size + 4096), 1);
  slot(live, 0) = live;  // a reference to itself, forwarded with it
  REQUIRE(h.mark(live).is_ok());
  std::unique_ptr<Plan> p;
  REQUIRE(Plan::build(h, &p).is_ok());
  REQUIRE(p->large_objects_moved() == 1);
  CHECK_EQ(p->forward(live), dead);
  REQUIRE(stw_compact(h, *p, nullptr).is_ok());
  h.complete_cycle(*p);
  CHECK_EQ(slot(dead, 0), uint64_t(dead));
  CHECK(h.region(0).get_state() == RegionState::LARGE_HEAD);
  CHECK_EQ(h.region(0).large_regions, 3u);
  CHECK(h.region(3).get_state() == RegionState::FREE);
  CHECK(h.region(4).get_state() == RegionState::FREE);
  h.discard_stale_marks();  // what the next cycle's first mark does
  CHECK_EQ(h.begin_bits().count(h.base(), h.end()), size_t(0));
  CHECK_EQ(h.live_bits().count(h.base(), h.end()), size_t(0));
  CHECK_EQ(h.ref_bits().count(h.base(), h.end()), size_t(0));
  // The vacated regions take small objects that mark cleanly.
  uintptr_t s, e;
  do {  // regions come from the top down: take them until the vacated ones
    REQUIRE(h.acquire_region(&s, &e).is_ok());
  } while (h.region_index(s) > 4);
  CHECK_EQ(h.region_index(s), size_t(4));
  for (uintptr_t a = s; a < s + 4096; a += 64) put(a, 64);
  REQUIRE(h.retire_region(s, s + 4096).is_ok());
  for (uintptr_t a = s; a < s + 4096; a += 64) CHECK(h.mark(a).is_ok());
}

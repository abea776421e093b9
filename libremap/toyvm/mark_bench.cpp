// mark_bench.cpp — remap_mark per object against a plain bitmap set (see
// mark_bench.h). Only libremap.h and the toy VM's object layout.
#include "mark_bench.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "object.h"
#include "vm.h"

namespace toyvm {

namespace {

constexpr uint32_t kNodeBytes = kHeaderBytes + 2 * kSlotBytes + 8;  // GCBench.Node
constexpr int kMaxDepth = 16;                                       // GCBench's long-lived tree

uint64_t tree_size(int depth) { return (uint64_t(1) << (depth + 1)) - 1; }

// Owns the heap; destroy accepts a heap in any phase.
struct HeapGuard {
  remap_heap* heap = nullptr;
  ~HeapGuard() {
    if (heap) remap_heap_destroy(heap);
  }
};

class Builder {
 public:
  explicit Builder(remap_heap* heap) : heap_(heap) {}

  // Allocates one node (zeroed slots); 0 and status_ set on failure.
  uintptr_t node(int depth) {
    if (end_ - cursor_ < kNodeBytes) {
      if (start_ && !retire()) return 0;
      void *s = nullptr, *e = nullptr;
      status_ = remap_region_acquire(heap_, &s, &e);
      if (status_ != REMAP_OK) {
        call_ = "remap_region_acquire";
        return 0;
      }
      start_ = cursor_ = reinterpret_cast<uintptr_t>(s);
      end_ = reinterpret_cast<uintptr_t>(e);
    }
    uintptr_t p = cursor_;
    cursor_ += kNodeBytes;
    std::memset(reinterpret_cast<void*>(p), 0, kNodeBytes);
    ObjectHeader* h = header(reinterpret_cast<Ref>(p));
    h->size = kNodeBytes;
    h->nrefs = 2;
    h->klass = 0;
    h->aux = 1;
    reinterpret_cast<int32_t*>(payload(reinterpret_cast<Ref>(p)))[0] = depth;
    return p;
  }

  // GCBench's Populate: both children allocated, then each subtree.
  bool populate(uintptr_t n, int depth) {
    if (depth <= 0) return true;
    uintptr_t l = node(depth - 1), r = l ? node(depth - 1) : 0;
    if (!r) return false;
    set_ref(reinterpret_cast<Ref>(n), 0, reinterpret_cast<Ref>(l));
    set_ref(reinterpret_cast<Ref>(n), 1, reinterpret_cast<Ref>(r));
    return populate(l, depth - 1) && populate(r, depth - 1);
  }

  bool retire() {
    if (!start_) return true;
    status_ = remap_region_retire(heap_, reinterpret_cast<void*>(start_), reinterpret_cast<void*>(cursor_));
    start_ = cursor_ = end_ = 0;
    if (status_ != REMAP_OK) call_ = "remap_region_retire";
    return status_ == REMAP_OK;
  }

  remap_status status_ = REMAP_OK;
  const char* call_ = "";

 private:
  remap_heap* heap_;
  uintptr_t start_ = 0, cursor_ = 0, end_ = 0;
};

}  // namespace

MarkBenchResult run_mark_bench(const MarkBenchOptions& opt) {
  MarkBenchResult out;
  auto fail = [&](const char* call, remap_status s) {
    out.status = s;
    out.error = status_message(call, s);
    return out;
  };
  int depth = kMaxDepth;
  while (depth > 1 && tree_size(depth) > std::max<uint64_t>(opt.objects, 3)) --depth;
  const uint64_t trees = std::max<uint64_t>(1, opt.objects / tree_size(depth));
  const uint64_t want = trees * tree_size(depth);
  const size_t region = opt.region_size;
  const size_t per_region = region / kNodeBytes;
  const size_t regions = (want + per_region - 1) / per_region + 2;

  remap_heap_config cfg;
  std::memset(&cfg, 0, sizeof cfg);
  remap_heap_config_init(&cfg);
  cfg.capacity = regions * region;
  cfg.region_size = region;
  cfg.backend = opt.backend;
  install_model(cfg.model);
  HeapGuard g;
  remap_status s = remap_heap_create(&cfg, &g.heap);
  if (s != REMAP_OK) return fail("remap_heap_create", s);
  remap_heap_info info;
  std::memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  s = remap_heap_get_info(g.heap, &info);
  if (s != REMAP_OK) return fail("remap_heap_get_info", s);
  const uintptr_t base = reinterpret_cast<uintptr_t>(info.base);

  Builder b(g.heap);
  std::vector<uintptr_t> roots;
  for (uint64_t t = 0; t < trees; ++t) {
    uintptr_t root = b.node(depth);
    if (!root || !b.populate(root, depth)) return fail(b.call_, b.status_);
    roots.push_back(root);
  }
  if (!b.retire()) return fail(b.call_, b.status_);

  // The tracer's order: Collector::mark's depth-first walk.
  std::vector<uintptr_t> order;
  order.reserve(want);
  std::vector<uintptr_t> stack;
  for (uintptr_t r : roots) {
    order.push_back(r);
    stack.push_back(r);
    while (!stack.empty()) {
      uintptr_t o = stack.back();
      stack.pop_back();
      for (uint32_t i = 0; i < 2; ++i) {
        uintptr_t c = reinterpret_cast<uintptr_t>(get_ref(reinterpret_cast<Ref>(o), i));
        if (!c) continue;
        order.push_back(c);
        stack.push_back(c);
      }
    }
  }
  out.objects = order.size();
  out.object_bytes = out.objects * kNodeBytes;

  std::vector<uint64_t> bits(info.capacity / 8 / 64 + 1);
  uint64_t sink = 0;
  // One untimed round first: the library's mark bitmap and ours are
  // touched for the first time there, not in a timed pass.
  for (unsigned rep = 0; rep <= opt.reps; ++rep) {
    const bool timed = rep > 0;
    uint64_t t0 = now_ns();
    for (uintptr_t o : order) {
      s = remap_mark(g.heap, reinterpret_cast<const void*>(o));
      if (s != REMAP_OK) return fail("remap_mark", s);
    }
    uint64_t t1 = now_ns();
    if (timed) out.remap_mark_ns.push_back(t1 - t0);
    s = remap_clear_marks(g.heap);
    if (s != REMAP_OK) return fail("remap_clear_marks", s);

    t0 = now_ns();
    for (uintptr_t o : order) {
      const int r = remap_try_mark(g.heap, reinterpret_cast<const void*>(o));
      if (r < 0) return fail("remap_try_mark", r);
    }
    t1 = now_ns();
    s = remap_prepare(g.heap);
    if (s != REMAP_OK) return fail("remap_prepare", s);
    const uint64_t t2 = now_ns();
    if (timed) {
      out.try_mark_ns.push_back(t1 - t0);
      out.try_complete_ns.push_back(t2 - t1);
    }
    s = remap_clear_marks(g.heap);
    if (s != REMAP_OK) return fail("remap_clear_marks", s);

    std::fill(bits.begin(), bits.end(), 0);
    t0 = now_ns();
    for (uintptr_t o : order) {
      sink += header(reinterpret_cast<const void*>(o))->size;
      const size_t w = (o - base) / 8;
      bits[w / 64] |= uint64_t(1) << (w % 64);
    }
    t1 = now_ns();
    if (timed) out.bitmap_ns.push_back(t1 - t0);

    std::fill(bits.begin(), bits.end(), 0);
    t0 = now_ns();
    for (uintptr_t o : order) {
      sink += header(reinterpret_cast<const void*>(o))->size;
      const size_t w = (o - base) / 8;
      std::atomic_ref<uint64_t>(bits[w / 64]).fetch_or(uint64_t(1) << (w % 64), std::memory_order_relaxed);
    }
    t1 = now_ns();
    if (timed) out.bitmap_atomic_ns.push_back(t1 - t0);
  }
  // The header reads are the floor's work: keep them.
  if (sink != 2 * uint64_t(opt.reps + 1) * out.object_bytes) {
    out.status = REMAP_EINVAL;
    out.error = "toyvm: mark bench: the floor passes read wrong object sizes";
  }
  return out;
}

}  // namespace toyvm

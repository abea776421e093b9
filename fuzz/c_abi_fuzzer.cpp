// c_abi_fuzzer.cpp — the heap entry points of libremap.h, called in any
// order, in any phase, with hostile arguments, by an honest runtime.
//
// One input: maybe a hostile remap_heap_create (must fail cleanly or give a
// heap that works), then a small valid heap on the backend and fault mode
// the input picks, then up to 256 calls the input picks: allocation, slot
// writes, marks, every cycle call in every phase, forwarding, touch,
// resize, trim, info and stats with struct sizes of every length, an event
// callback, and the same calls with NULL, misaligned, interior and
// out-of-range pointers. The toy runtime (toy_runtime.h) checks after every
// call that the status is a status with a message, that a refused call
// changed nothing, and at the end of every cycle that every live object and
// every slot holds what the contract says. Last, the heap is destroyed in
// whatever phase it is, or a clean cycle is run and verified first.
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fuzz_input.h"
#include "heap_setup.h"
#include "libremap.h"
#include "toy_runtime.h"

using namespace fuzz;

namespace {

// ---- hostile remap_heap_create -------------------------------------------

// Each a config the library must refuse, or accept as a working heap
// without allocating for it (nothing here asks for more than a few MiB of
// tables; capacities of many GiB are refused by the size checks).
void hostile_create(Input& in) {
  remap_heap_config c = small_config(in);
  c.model.object_size = [](void*, const void*) -> size_t { return 16; };
  const size_t rs = c.region_size;
  const unsigned fields = in.u8() | 1u;
  for (unsigned bit = 0; bit < 8; ++bit) {
    if (!(fields & (1u << bit))) continue;
    switch (in.below(16)) {
      case 0: c.capacity = in.pick({size_t(0), rs - 1, rs + 8, size_t(1) << 45, SIZE_MAX,
                                    size_t(1) << 44, SIZE_MAX - rs + 1}); break;
      case 1: c.region_size = in.pick({size_t(0), size_t(4096), size_t(65535), size_t(3) << 16,
                                       size_t(1) << 31, SIZE_MAX, size_t(1) << 63}); break;
      case 2: c.max_capacity = in.pick({c.capacity - rs, c.capacity + 8, size_t(1) << 44,
                                        size_t(1) << 45, SIZE_MAX, size_t(1) << 40}); break;
      case 3: c.dense_threshold = in.pick({0.0, -1.0, 1.5, __builtin_nan(""), __builtin_inf(),
                                           -__builtin_inf(), 1e-300}); break;
      case 4: c.backend = in.pick({-1, 6, 1 << 30, -(1 << 30), 0}); break;
      case 5: c.fault_mode = in.pick({-1, 3, 1 << 30, 0}); break;
      case 6: c.gc_threads = in.pick({0u, 1000u, ~0u, 65u}); break;
      case 7: c.handler_threads = in.pick({0u, 1000u, ~0u, 65u}); break;
      case 8: c.pool_max_pages = in.pick({SIZE_MAX, size_t(1) << 40, size_t(1) << 20}); break;
      case 9: c.large_object_threshold = in.pick({size_t(1), size_t(4095), rs + 1, SIZE_MAX,
                                                  rs * 2}); break;
      case 10: c.flags = in.pick({8u, ~0u, 0x80000000u, 7u}); break;
      case 11:
        c.ref_tag_mask = in.pick({uint64_t(8), uint64_t(1) << 46, ~uint64_t(0), uint64_t(0xF0)});
        break;
      case 12:
        c.ref_check_mask = in.u64() & 0xFF;
        c.ref_check_value = in.u64() & 0x1FF;
        break;
      case 13: c.model.object_size = nullptr; break;
      case 14: c.model.struct_size = in.pick({size_t(0), size_t(8), sizeof c.model - 8,
                                              sizeof c.model + 8, SIZE_MAX}); break;
      default:
        c.struct_size = in.pick({size_t(0), size_t(8), offsetof(remap_heap_config, model),
                                 offsetof(remap_heap_config, flags) - 8,
                                 offsetof(remap_heap_config, flags),
                                 offsetof(remap_heap_config, ref_tag_mask),
                                 offsetof(remap_heap_config, max_capacity),
                                 sizeof c + 8, SIZE_MAX});
        break;
    }
  }
  // The struct in a buffer of exactly struct_size bytes (at least the size
  // field itself): a read past what the caller declared is ASan's to see.
  const size_t n = c.struct_size < sizeof(size_t)      ? sizeof(size_t)
                   : c.struct_size > sizeof c + 64 ? sizeof c + 64
                                                   : c.struct_size;
  void* buf = std::malloc(n);
  std::memcpy(buf, &c, n < sizeof c ? n : sizeof c);
  if (n > sizeof c) std::memset(static_cast<char*>(buf) + sizeof c, 0xAB, n - sizeof c);
  remap_heap* h = reinterpret_cast<remap_heap*>(uintptr_t(0xdead0));
  remap_status st = remap_heap_create(static_cast<remap_heap_config*>(buf), &h);
  std::free(buf);
  ToyRuntime probe;  // for check() only (no heap)
  probe.check("remap_heap_create (hostile config)", st, -1);
  if (st == REMAP_OK) {
    if (!h) finding("remap_heap_create returned OK and a NULL heap");
    remap_heap_info i;
    std::memset(&i, 0, sizeof i);
    i.struct_size = sizeof i;
    if (remap_heap_get_info(h, &i) != REMAP_OK) finding("info of an accepted hostile heap");
    remap_heap_destroy(h);
  } else if (h) {
    finding("remap_heap_create failed (%s) and left *out = %p", remap_status_name(st),
            static_cast<void*>(h));
  }
}

// ---- calls with a NULL heap or out pointer: REMAP_EINVAL, never a crash ----

void null_calls(ToyRuntime& rt) {
  void *a = nullptr, *b = nullptr;
  uint64_t v = 0;
  struct Call {
    const char* name;
    remap_status st;
  } calls[] = {
      {"remap_heap_create(NULL config)", remap_heap_create(nullptr, nullptr)},
      {"remap_heap_get_info(NULL)", remap_heap_get_info(nullptr, nullptr)},
      {"remap_region_acquire(NULL)", remap_region_acquire(nullptr, &a, &b)},
      {"remap_region_retire(NULL)", remap_region_retire(nullptr, a, b)},
      {"remap_alloc_large(NULL)", remap_alloc_large(nullptr, 1 << 20, &a)},
      {"remap_mark(NULL)", remap_mark(nullptr, &v)},
      {"remap_try_mark(NULL)", remap_try_mark(nullptr, &v)},
      {"remap_clear_marks(NULL)", remap_clear_marks(nullptr)},
      {"remap_cycle_begin(NULL)", remap_cycle_begin(nullptr)},
      {"remap_prepare(NULL)", remap_prepare(nullptr)},
      {"remap_flip(NULL)", remap_flip(nullptr)},
      {"remap_compact(NULL)", remap_compact(nullptr)},
      {"remap_compact_work(NULL)", remap_compact_work(nullptr)},
      {"remap_finish(NULL)", remap_finish(nullptr)},
      {"remap_forward(NULL)", remap_forward(nullptr, &v, &a)},
      {"remap_forward_value(NULL)", remap_forward_value(nullptr, 8, &v)},
      {"remap_touch(NULL)", remap_touch(nullptr, &v, 8)},
      {"remap_wait_idle(NULL)", remap_wait_idle(nullptr, 0)},
      {"remap_heap_resize(NULL)", remap_heap_resize(nullptr, 1 << 20)},
      {"remap_heap_trim(NULL)", remap_heap_trim(nullptr, 0)},
      {"remap_heap_set_event_callback(NULL)", remap_heap_set_event_callback(nullptr, nullptr, nullptr)},
      {"remap_heap_last_stats(NULL)", remap_heap_last_stats(nullptr, nullptr)},
      {"remap_probe(NULL)", remap_probe(nullptr)},
  };
  for (const Call& c : calls)
    if (c.st != REMAP_EINVAL)
      finding("%s returned %s, not REMAP_EINVAL", c.name, remap_status_name(c.st));
  remap_heap* h = rt.heap();
  const int ph = rt.phase();
  rt.check("remap_heap_get_info(out NULL)", remap_heap_get_info(h, nullptr), ph);
  rt.check("remap_region_acquire(start NULL)", remap_region_acquire(h, nullptr, &b), ph);
  rt.check("remap_alloc_large(out NULL)", remap_alloc_large(h, 1 << 20, nullptr), ph);
  rt.check("remap_forward(out NULL)", remap_forward(h, &v, nullptr), ph);
  rt.check("remap_forward_value(out NULL)", remap_forward_value(h, 8, nullptr), ph);
  rt.check("remap_heap_last_stats(out NULL)", remap_heap_last_stats(h, nullptr), ph);
  remap_heap_destroy(nullptr);
}

void names(Input& in) {
  const int x = int(in.u32());
  if (!remap_status_name(x)) finding("remap_status_name(%d) returned NULL", x);
  if (const char* s = remap_backend_name(x)) (void)std::strlen(s);
  if (const char* s = remap_fault_mode_name(x)) (void)std::strlen(s);
  if (const char* s = remap_uffd_feature_name(unsigned(x))) (void)std::strlen(s);
  if (!remap_version_string() || !remap_last_error()) finding("a version or error string is NULL");
}

// ---- hostile addresses -----------------------------------------------------

enum class Addr { kObject, kKnownBad, kUnknown };

// An address for mark/forward/touch: a real object start, or one the
// library can tell is not (kKnownBad), or anything (kUnknown).
uintptr_t hostile_addr(ToyRuntime& rt, Input& in, Addr* kind) {
  const uintptr_t base = uintptr_t(rt.info().base), cap = rt.info().capacity;
  auto& objs = rt.objects();
  const Obj* o = objs.empty() ? nullptr : &objs[in.below(objs.size())];
  *kind = Addr::kKnownBad;
  switch (in.below(12)) {
    case 0: return 0;
    case 1: return o ? o->addr + 4 : base + 4;   // misaligned
    case 2: return base - 8;
    case 3: return base + cap;                   // one past the end (the reservation)
    case 4: return base + cap - 8;
    // The id word: never a valid size. A black object's mark reads no size,
    // and a black region still acquired has no top, so there the library
    // cannot tell (it accepts and ignores marks of black objects).
    case 5:
      if (o && o->black) *kind = Addr::kUnknown;
      return o ? o->addr + 8 : 8;
    case 6:
      if (rt.begun()) *kind = Addr::kUnknown;
      return rt.tlab_start() ? rt.tlab_cursor() : base + cap + (64 << 10);
    case 7: return o && o->large ? o->addr + 4096 : ~uintptr_t(7);
    case 8: *kind = Addr::kUnknown; return uintptr_t(in.u64());
    case 9: *kind = Addr::kUnknown; return base + 8 * in.below(cap / 8);
    default:
      if (!o) return 0;
      *kind = Addr::kObject;
      return o->addr;
  }
}

void hostile_mark(ToyRuntime& rt, Input& in) {
  Addr kind;
  const uintptr_t a = hostile_addr(rt, in, &kind);
  const bool use_try = in.flag();
  const int ph = rt.phase();
  Obj* o = nullptr;
  for (Obj& x : rt.objects())
    if (x.addr == a) o = &x;
  if (use_try) {
    const int r = remap_try_mark(rt.heap(), reinterpret_cast<void*>(a));
    if (r < 0) {
      rt.check("remap_try_mark (hostile)", r, ph);
      return;
    }
    if (r > 1) finding("remap_try_mark returned %d", r);
    if (o && !o->black) o->marked = true;
    if ((a & 7) || a - uintptr_t(rt.info().base) >= rt.info().capacity)
      finding("remap_try_mark(%#zx) returned %d for a misaligned or out-of-heap address",
              size_t(a), r);
    // Accepted on faith (it reads no size): prepare must refuse it.
    if (!o && r == 1 && kind == Addr::kKnownBad) rt.set_poisoned();
    return;
  }
  remap_status st = rt.check("remap_mark (hostile)", remap_mark(rt.heap(), reinterpret_cast<void*>(a)), ph);
  if (st != REMAP_OK) return;
  // A black region still acquired has no top: any aligned address in it
  // may be a black object the tracer reached, accepted and ignored.
  const uintptr_t base = uintptr_t(rt.info().base), rs = rt.info().region_size;
  const uintptr_t tlab_region = rt.tlab_start() ? base + (rt.tlab_start() - base) / rs * rs : 0;
  if (rt.begun() && tlab_region && a >= tlab_region && a < tlab_region + rs && !(a & 7)) return;
  if (o) {
    if (!o->black) o->marked = true;
  } else if (kind == Addr::kKnownBad) {
    finding("remap_mark accepted %#zx, which is not an object start", size_t(a));
  }
}

void hostile_forward(ToyRuntime& rt, Input& in) {
  Addr kind;
  const uintptr_t a = hostile_addr(rt, in, &kind);
  const int ph = rt.phase();
  void* out = reinterpret_cast<void*>(uintptr_t(1));
  remap_status st = rt.check("remap_forward", remap_forward(rt.heap(), reinterpret_cast<void*>(a), &out), ph);
  const bool in_heap = a - uintptr_t(rt.info().base) < rt.info().capacity;
  if (st == REMAP_OK && !in_heap && uintptr_t(out) != a)
    finding("remap_forward(%#zx), outside the heap, gave %p", size_t(a), out);
  // In IDLE the kept plan answers for the last cycle's heap, which a grow
  // since may have extended: what is past its end comes back unchanged.
  const bool plan_is_current = ph == REMAP_PHASE_PREPARED || ph == REMAP_PHASE_COMPACTING;
  if (st == REMAP_OK && kind == Addr::kKnownBad && in_heap && (a & 7) && plan_is_current)
    finding("remap_forward accepted the misaligned %#zx", size_t(a));
  uint64_t v = 0;
  rt.check("remap_forward_value", remap_forward_value(rt.heap(), in.flag() ? a : in.u64(), &v), ph);
}

void hostile_touch(ToyRuntime& rt, Input& in) {
  const uintptr_t base = uintptr_t(rt.info().base), cap = rt.info().capacity;
  uintptr_t a;
  size_t len;
  auto& objs = rt.objects();
  switch (in.below(8)) {
    case 0:
      if (objs.empty()) return;
      a = objs[in.below(objs.size())].addr;
      len = 8 + in.below(4096);
      break;
    case 1: a = base; len = cap; break;
    case 2: a = base; len = cap + 4096; break;
    case 3: a = base - 4096; len = 8192; break;
    case 4: a = ~uintptr_t(4095); len = 8192; break;
    case 5: a = base + 8; len = SIZE_MAX; break;
    case 6: a = 0; len = 0; break;
    default: a = base + cap; len = 4096; break;
  }
  const int ph = rt.phase();
  rt.check("remap_touch", remap_touch(rt.heap(), reinterpret_cast<void*>(a), len), ph);
}

// ---- structs of every size -------------------------------------------------

template <typename T, size_t MinField>
void sized_struct_call(ToyRuntime& rt, Input& in, const char* name,
                       remap_status (*fn)(const remap_heap*, T*)) {
  const size_t sizes[] = {0, 8, MinField - 8, MinField, MinField + 8, sizeof(T) - 8, sizeof(T),
                          sizeof(T) + 8, SIZE_MAX};
  const size_t want = in.pick(sizes);
  const size_t n = want < 8 ? 8 : want > sizeof(T) + 64 ? sizeof(T) + 64 : want;
  std::vector<unsigned char> buf(n, 0xCD);
  std::memcpy(buf.data(), &want, sizeof want);
  const int ph = rt.phase();
  remap_status st = rt.check(name, fn(rt.heap(), reinterpret_cast<T*>(buf.data())), ph);
  size_t back;
  std::memcpy(&back, buf.data(), sizeof back);
  if (st == REMAP_OK && back != want)
    finding("%s: struct_size %zu came back as %zu", name, want, back);
  if (st == REMAP_OK && (want > sizeof(T) || want < 8))
    finding("%s accepted struct_size %zu", name, want);
}

void info_and_stats(ToyRuntime& rt, Input& in) {
  if (in.flag())
    sized_struct_call<remap_heap_info, offsetof(remap_heap_info, phase)>(
        rt, in, "remap_heap_get_info", &remap_heap_get_info);
  else
    sized_struct_call<remap_cycle_stats, offsetof(remap_cycle_stats, prepare_ns)>(
        rt, in, "remap_heap_last_stats", &remap_heap_last_stats);
}

// ---- events ------------------------------------------------------------------

struct EventLog {
  remap_heap* heap = nullptr;
  unsigned count = 0;
};

void on_event(void* ctx, const remap_event* e) {
  auto* log = static_cast<EventLog*>(ctx);
  ++log->count;
  if (!e || e->struct_size < offsetof(remap_event, call) + sizeof(void*) || !e->call ||
      e->kind < REMAP_EVENT_CYCLE_BEGIN || e->kind > REMAP_EVENT_RESIZE || e->phase < 0 ||
      e->phase > REMAP_PHASE_BROKEN)
    finding("a malformed event (kind %d, phase %d)", e ? e->kind : -1, e ? e->phase : -1);
  (void)std::strlen(e->call);
  // Allowed from the callback: info and stats of this heap.
  remap_heap_info i;
  std::memset(&i, 0, sizeof i);
  i.struct_size = sizeof i;
  if (remap_heap_get_info(log->heap, &i) != REMAP_OK)
    finding("remap_heap_get_info from an event callback: %s", remap_last_error());
}

// ---- allocation with hostile arguments ---------------------------------------

void hostile_retire(ToyRuntime& rt, Input& in) {
  const int ph = rt.phase();
  uintptr_t s = rt.tlab_start(), c = rt.tlab_cursor(), e = rt.tlab_end();
  if (!s) {  // nothing acquired: no region may be retired
    const uintptr_t r = uintptr_t(rt.info().base) + rt.info().region_size * in.below(rt.info().region_count);
    remap_status st = rt.check("remap_region_retire (none acquired)",
                               remap_region_retire(rt.heap(), reinterpret_cast<void*>(r),
                                                   reinterpret_cast<void*>(r)), ph);
    if (st == REMAP_OK) finding("remap_region_retire accepted %#zx, never acquired", size_t(r));
    return;
  }
  uintptr_t bs = s, bc = c;
  switch (in.below(6)) {
    case 0: bs = s + 8; break;
    case 1: bs = 0; break;
    case 2: bc = e + 8; break;
    case 3: bc = c + 4; break;
    case 4: bc = s - 8; break;
    default: bs = s + rt.info().region_size; break;
  }
  remap_status st = rt.check("remap_region_retire (hostile)",
                             remap_region_retire(rt.heap(), reinterpret_cast<void*>(bs),
                                                 reinterpret_cast<void*>(bc)), ph);
  if (st == REMAP_OK)
    finding("remap_region_retire accepted start %#zx cursor %#zx for [%#zx, %#zx) at %#zx",
            size_t(bs), size_t(bc), size_t(s), size_t(e), size_t(c));
}

// A second region at once (another thread's TLAB), handed back empty.
void second_region(ToyRuntime& rt) {
  const int ph = rt.phase();
  void *s = nullptr, *e = nullptr;
  if (rt.check("remap_region_acquire (second)", remap_region_acquire(rt.heap(), &s, &e), ph) != REMAP_OK)
    return;
  if (s == reinterpret_cast<void*>(rt.tlab_start()))
    finding("remap_region_acquire handed out %p twice", s);
  rt.check("remap_region_retire (second, empty)", remap_region_retire(rt.heap(), s, s), ph);
}

void resize(ToyRuntime& rt, Input& in) {
  const remap_heap_info i = rt.info();
  const size_t rs = i.region_size;
  const size_t caps[] = {i.capacity + rs, i.capacity - rs, i.min_capacity, i.max_capacity,
                         i.max_capacity + rs, i.capacity + 8, 0, SIZE_MAX & ~(rs - 1),
                         rs * (1 + in.below(16))};
  const size_t cap = in.pick(caps);
  const int ph = rt.phase();
  remap_status st = rt.check("remap_heap_resize", remap_heap_resize(rt.heap(), cap), ph);
  (void)rt.phase();  // refresh info()
  if (st != REMAP_OK) return;
  if (rt.info().capacity != cap) finding("remap_heap_resize(%zu) left capacity %zu", cap, rt.info().capacity);
  const uintptr_t end = uintptr_t(rt.info().base) + cap;
  for (const Obj& o : rt.objects())
    if (o.addr + o.size > end)
      finding("remap_heap_resize(%zu) dropped live object %llu at %#zx", cap,
              (unsigned long long)o.id, size_t(o.addr));
  if (rt.tlab_end() > end) finding("remap_heap_resize(%zu) dropped an acquired region", cap);
}

void wait_idle(ToyRuntime& rt, Input& in) {
  const int ph = rt.phase();
  const int64_t timeout = in.flag() ? 0 : 1000;
  remap_status st = rt.check("remap_wait_idle", remap_wait_idle(rt.heap(), timeout), ph);
  const remap_status want = ph == REMAP_PHASE_IDLE ? REMAP_OK
                            : ph == REMAP_PHASE_BROKEN ? REMAP_EPHASE
                                                       : REMAP_EAGAIN;
  if (st != want)
    finding("remap_wait_idle in phase %d returned %s, expected %s", ph, remap_status_name(st),
            remap_status_name(want));
}

void step(ToyRuntime& rt, Input& in, EventLog& log) {
  remap_heap* h = rt.heap();
  switch (in.below(30)) {
    case 0: case 1: case 2: case 3: (void)rt.alloc_small(in); break;
    case 4: (void)rt.alloc_large(in); break;
    case 5: (void)rt.retire_tlab(); break;
    case 6: rt.write_slot(in); break;
    case 7:
      if (!rt.objects().empty()) (void)rt.mark(in.below(rt.objects().size()), in.flag());
      break;
    case 8: (void)rt.mark_all(in.flag()); break;
    case 9: hostile_mark(rt, in); break;
    case 10: (void)rt.prepare(); break;
    case 11: (void)rt.flip(); break;
    case 12: (void)rt.compact(in.flag()); break;
    case 13: (void)rt.finish(); break;
    case 14: (void)rt.clear_marks(); break;
    case 15: (void)rt.cycle_begin(); break;
    case 16: hostile_forward(rt, in); break;
    case 17: hostile_touch(rt, in); break;
    case 18: wait_idle(rt, in); break;
    case 19: resize(rt, in); break;
    case 20: {
      const size_t keeps[] = {0, SIZE_MAX, 4096, size_t(1) << 20, 1};
      const int ph = rt.phase();
      rt.check("remap_heap_trim", remap_heap_trim(h, in.pick(keeps)), ph);
      break;
    }
    case 21: info_and_stats(rt, in); break;
    case 22: {
      const int ph = rt.phase();
      rt.check("remap_heap_set_event_callback",
               remap_heap_set_event_callback(h, in.flag() ? &on_event : nullptr, &log), ph);
      break;
    }
    case 23: hostile_retire(rt, in); break;
    case 24: second_region(rt); break;
    case 25: rt.read_object(in); break;
    case 26: (void)rt.full_cycle(); break;
    case 27: null_calls(rt); break;
    case 28: names(in); break;
    default: (void)rt.alloc_small(in); break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  const uint8_t mode = in.u8();
  if (mode & 1) hostile_create(in);
  EventLog log;  // outlives the heap: its destroy may still send events
  ToyRuntime rt;
  remap_heap_config cfg = small_config(in);
  if (rt.create(cfg, Encoding::pick(in)) != REMAP_OK) return 0;
  log.heap = rt.heap();
  if (mode & 2) remap_heap_set_event_callback(rt.heap(), &on_event, &log);
  for (int n = 0; n < 256 && !in.empty(); ++n) step(rt, in, log);
  // End in a completed, verified cycle, or destroy in whatever phase.
  if (mode & 4) (void)rt.full_cycle();
  return 0;
}

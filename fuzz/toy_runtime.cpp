// toy_runtime.cpp — see toy_runtime.h.
#include "toy_runtime.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

namespace fuzz {

// FUZZ_TRACE=1: every checked call and its outcome on stderr (to read a
// crash input's story).
static const bool kTrace = std::getenv("FUZZ_TRACE") != nullptr;

void finding(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "\n=== libremap fuzz finding: ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
  std::abort();
}

const size_t kHostileSizes[] = {
    0, 1, 7, 8, 9, 4095, 4096, 4097, size_t(64) << 10, (size_t(64) << 10) + 8,
    size_t(1) << 20, size_t(1) << 31, size_t(1) << 40, size_t(1) << 47, size_t(1) << 63,
    SIZE_MAX, SIZE_MAX - 7, SIZE_MAX - 4095, SIZE_MAX / 2, size_t(-65536),
};
const size_t kHostileSizesCount = sizeof kHostileSizes / sizeof kHostileSizes[0];

// Payload words have bits above 47 set and at most 32 low bits, so that no
// reference encoding decodes them to an in-heap address.
uint64_t payload_word(uint64_t id, size_t i) {
  return 0xF00D000000000000ull | ((id * 0x9E3779B1u + i) & 0xFFFFFFFFull);
}

static uint64_t id_word(uint64_t id) { return (id << 8) | 3; }

Encoding Encoding::pick(Input& in) {
  Encoding e;
  switch (in.below(5)) {
    case 0: break;                                        // every value a candidate
    case 1: e.check_mask = 7; break;                      // Guile: pointers end in 000
    case 2: e.check_mask = 1; e.check_value = 1; e.tag_mask = 3; break;  // V8
    case 3: e.tag_mask = 7; break;                        // Lisp low tags
    case 4: e.tag_mask = 0xFFFF800000000000ull; break;    // NaN-boxing, top bits
  }
  return e;
}

uint64_t Encoding::ref(uintptr_t addr, uint8_t tag) const {
  uint64_t v = addr;
  if (check_mask == 1) return v | 1 | (tag & 2);
  if (tag_mask == 7) return v | (tag & 7);
  if (tag_mask == 0xFFFF800000000000ull) return v | (uint64_t(tag) << 56);
  return v;
}

ToyRuntime::~ToyRuntime() {
  if (heap_) remap_heap_destroy(heap_);
}

size_t ToyRuntime::model_size(void* ctx, const void* obj) {
  auto* rt = static_cast<ToyRuntime*>(ctx);
  const size_t honest = *static_cast<const uint64_t*>(obj) & 0xFFFFFFFFu;
  if (ModelLies* l = rt->lies_.load(std::memory_order_acquire)) return l->size(obj, honest);
  return honest;
}

void ToyRuntime::model_visit(void* ctx, const void* obj, remap_visit_fn visit, void* vctx) {
  auto* rt = static_cast<ToyRuntime*>(ctx);
  const uint64_t h = *static_cast<const uint64_t*>(obj);
  const uint32_t nrefs = uint32_t(h >> 32) & 0xFFFF;
  if (ModelLies* l = rt->lies_.load(std::memory_order_acquire))
    return l->offsets(obj, h & 0xFFFFFFFFu, nrefs, visit, vctx);
  for (uint32_t i = 0; i < nrefs; ++i) visit(vctx, 16 + 8 * size_t(i));
}

remap_status ToyRuntime::create(remap_heap_config cfg, const Encoding& enc) {
  enc_ = enc;
  cfg.model.struct_size = sizeof cfg.model;
  cfg.model.ctx = this;
  cfg.model.object_size = &model_size;
  cfg.model.visit_ref_offsets = &model_visit;
  cfg.ref_tag_mask = enc.tag_mask;
  cfg.ref_check_mask = enc.check_mask;
  cfg.ref_check_value = enc.check_value;
  remap_heap* h = nullptr;
  remap_status st = remap_heap_create(&cfg, &h);
  check("remap_heap_create", st, -1);
  if (st != REMAP_OK) {
    if (h) finding("remap_heap_create failed (%d) but set *out", st);
    return st;
  }
  heap_ = h;
  info_.struct_size = sizeof info_;
  st = remap_heap_get_info(heap_, &info_);
  if (st != REMAP_OK) finding("remap_heap_get_info on a new heap: %s", remap_last_error());
  if (kTrace)
    std::fprintf(stderr,
                 "[trace] heap: %s, %s, %zu regions of %zu bytes (max %zu), flags %#x, "
                 "dense %.2f, gc %u, handlers %u, pool %zu, large from %zu, refs %#llx/%#llx/%#llx\n",
                 remap_backend_name(info_.backend), remap_fault_mode_name(info_.fault_mode),
                 info_.region_count, info_.region_size, info_.max_capacity, cfg.flags,
                 cfg.dense_threshold, cfg.gc_threads, cfg.handler_threads, cfg.pool_max_pages,
                 info_.large_object_threshold, (unsigned long long)enc.tag_mask,
                 (unsigned long long)enc.check_mask, (unsigned long long)enc.check_value);
  return st;
}

int ToyRuntime::phase() {
  remap_heap_info i;
  std::memset(&i, 0, sizeof i);
  i.struct_size = sizeof i;
  if (remap_heap_get_info(heap_, &i) != REMAP_OK)
    finding("remap_heap_get_info failed: %s", remap_last_error());
  info_ = i;
  return i.phase;
}

remap_status ToyRuntime::check(const char* call, remap_status st, int before) {
  const char* msg = remap_last_error();
  if (kTrace) std::fprintf(stderr, "[trace] %s -> %s %s\n", call, remap_status_name(st), msg ? msg : "");
  if (!msg) finding("remap_last_error() returned NULL after %s", call);
  if (st > 0 || st < REMAP_EINTERNAL) finding("%s returned %d: not a remap_status", call, st);
  if (st == REMAP_EINTERNAL) finding("%s: REMAP_EINTERNAL: %s", call, msg);
  if (st != REMAP_OK && msg[0] == '\0')
    finding("%s failed with %s and left no message", call, remap_status_name(st));
  if (st != REMAP_OK && heap_ && before >= 0) {
    const std::string saved = msg;
    const int now = phase();
    // A liar may break a cycle that is past the point of no return: the
    // documented outcome is REMAP_EOBJMODEL and BROKEN (remap_cycle_stats
    // black_walk_errors). Nothing else may change the phase on refusal.
    const bool model_broke = now == REMAP_PHASE_BROKEN && st == REMAP_EOBJMODEL &&
                             lies_.load(std::memory_order_acquire) != nullptr;
    if (now != before && !model_broke)
      finding("%s refused (%s: %s) but the phase went %d -> %d", call, remap_status_name(st),
              saved.c_str(), before, now);
  }
  return st;
}

Obj* ToyRuntime::find(uintptr_t addr) {
  for (Obj& o : objs_)
    if (o.addr == addr) return &o;
  return nullptr;
}

// ---- the mutator -----------------------------------------------------------

uint64_t ToyRuntime::slot_value(Input& in) {
  const uint8_t kind = in.u8();
  const uint8_t tag = in.u8();
  switch (kind % 8) {
    case 0: return 0;
    case 1: case 2: case 3:
      if (objs_.empty()) return 0;
      return enc_.ref(objs_[in.below(objs_.size())].addr, tag);
    case 4: return in.u64();  // an immediate, or anything
    case 5:                   // an interior pointer
      if (objs_.empty()) return 0;
      return enc_.ref(objs_[in.below(objs_.size())].addr + 8 * (1 + tag % 4), 0);
    case 6:  // free memory inside the heap, or its last word
      return enc_.ref(uintptr_t(info_.base) + info_.capacity - 8 * (1 + tag), 0);
    default:  // outside the heap
      return enc_.ref(uintptr_t(info_.base) - 4096 * (1 + tag), 0);
  }
}

void ToyRuntime::write_object(const Obj& o, bool sparse) {
  auto* w = reinterpret_cast<uint64_t*>(o.addr);
  w[0] = o.size | (uint64_t(o.nrefs) << 32);
  w[1] = id_word(o.id);
  for (uint32_t k = 0; k < o.nrefs; ++k) w[2 + k] = o.slots[k];
  const size_t words = o.size / 8;
  for (size_t i = 2 + o.nrefs; i < words; ++i)
    if (!sparse || i % 512 == 0 || i == words - 1) w[i] = payload_word(o.id, i);
}

remap_status ToyRuntime::retire_tlab() {
  if (!tlab_start_) return REMAP_OK;
  const int before = phase();
  remap_status st = check("remap_region_retire",
                          remap_region_retire(heap_, reinterpret_cast<void*>(tlab_start_),
                                              reinterpret_cast<void*>(tlab_cur_)),
                          before);
  if (st == REMAP_OK) tlab_start_ = tlab_cur_ = tlab_end_ = 0;
  return st;
}

remap_status ToyRuntime::alloc_small(Input& in) {
  const uint32_t nrefs = in.u8() % 9;
  const size_t size = 16 + 8 * (nrefs + in.u8() % 24);
  const int ph = phase();
  if (!tlab_start_ || tlab_end_ - tlab_cur_ < size) {
    if (tlab_start_ && retire_tlab() != REMAP_OK) return REMAP_EPHASE;
    void *s = nullptr, *e = nullptr;
    remap_status st = check("remap_region_acquire", remap_region_acquire(heap_, &s, &e), ph);
    if (st != REMAP_OK) return st;
    const uintptr_t a = uintptr_t(s), b = uintptr_t(e);
    if (a >= b || (a & 7) || (b & 7) || a < uintptr_t(info_.base) ||
        b > uintptr_t(info_.base) + info_.capacity)
      finding("remap_region_acquire gave [%#zx, %#zx) in a heap at %p of %zu bytes", size_t(a),
              size_t(b), info_.base, info_.capacity);
    if (kTrace) std::fprintf(stderr, "[trace] acquired [%#zx, %#zx)\n", size_t(a), size_t(b));
    tlab_start_ = tlab_cur_ = a;
    tlab_end_ = b;
    if (b - a < size) return retire_tlab();
  }
  add_object(in, tlab_cur_, size, nrefs, false);
  tlab_cur_ += size;
  return REMAP_OK;
}

void ToyRuntime::add_object(Input& in, uintptr_t addr, size_t size, uint32_t nrefs, bool large) {
  Obj o;
  o.addr = addr;
  o.size = size;
  o.nrefs = nrefs;
  o.id = next_id_++;
  o.large = large;
  o.black = begun_;
  for (uint32_t k = 0; k < nrefs; ++k) o.slots.push_back(slot_value(in));
  write_object(o, large);
  if (kTrace)
    std::fprintf(stderr, "[trace] new object %llu at %#zx, %zu bytes, %u refs%s\n",
                 (unsigned long long)o.id, size_t(o.addr), o.size, o.nrefs, o.black ? ", black" : "");
  objs_.push_back(std::move(o));
}

remap_status ToyRuntime::alloc_large(Input& in) {
  const int ph = phase();
  const size_t thr = info_.large_object_threshold;
  size_t size;
  bool hostile = false;
  switch (in.u8() % 6) {
    case 0: size = kHostileSizes[in.below(kHostileSizesCount)]; hostile = true; break;
    case 1: size = thr - 8; hostile = true; break;
    case 2: size = info_.capacity + 8; hostile = true; break;
    default: size = thr + 8 * (in.u16() % (info_.region_size / 4)); break;
  }
  void* out = nullptr;
  remap_status st = check("remap_alloc_large", remap_alloc_large(heap_, size, &out), ph);
  if (st != REMAP_OK) return st;
  const uintptr_t a = uintptr_t(out);
  if (size < thr || size > info_.capacity || (a & 4095) || a < uintptr_t(info_.base) ||
      a + size > uintptr_t(info_.base) + info_.capacity)
    finding("remap_alloc_large(%zu) accepted%s: %p in a heap at %p of %zu bytes, threshold %zu",
            size, hostile ? " a hostile size" : "", out, info_.base, info_.capacity, thr);
  // The library takes any size and rounds it to pages.
  const uint32_t nrefs = in.u8() % 9;
  add_object(in, a, (size + 7) & ~size_t(7), nrefs, true);
  return REMAP_OK;
}

void ToyRuntime::write_slot(Input& in) {
  if (objs_.empty()) return;
  const int ph = phase();
  // Mutators run in IDLE and COMPACTING, and beside a begun cycle until
  // the flip; a prepared heap must not change otherwise.
  if (!(ph == REMAP_PHASE_IDLE || ph == REMAP_PHASE_COMPACTING ||
        (ph == REMAP_PHASE_PREPARED && begun_)))
    return;
  Obj& o = objs_[in.below(objs_.size())];
  if (o.nrefs == 0) return;
  const uint32_t k = in.u8() % o.nrefs;
  const uint64_t v = slot_value(in);
  reinterpret_cast<uint64_t*>(o.addr)[2 + k] = v;
  o.slots[k] = v;
}

static void verify_object(const Obj& o, const char* when) {
  const auto* w = reinterpret_cast<const uint64_t*>(o.addr);
  const uint64_t head = o.size | (uint64_t(o.nrefs) << 32);
  if (w[0] != head || w[1] != id_word(o.id))
    finding("%s: object %llu at %#zx: header %#llx id %#llx, expected %#llx %#llx", when,
            (unsigned long long)o.id, size_t(o.addr), (unsigned long long)w[0],
            (unsigned long long)w[1], (unsigned long long)head,
            (unsigned long long)id_word(o.id));
  for (uint32_t k = 0; k < o.nrefs; ++k)
    if (w[2 + k] != o.slots[k])
      finding("%s: object %llu at %#zx slot %u holds %#llx, expected %#llx", when,
              (unsigned long long)o.id, size_t(o.addr), k, (unsigned long long)w[2 + k],
              (unsigned long long)o.slots[k]);
  const size_t words = o.size / 8;
  for (size_t i = 2 + o.nrefs; i < words; ++i) {
    if (o.large && !(i % 512 == 0 || i == words - 1)) continue;
    if (w[i] != payload_word(o.id, i))
      finding("%s: object %llu at %#zx word %zu holds %#llx, expected %#llx", when,
              (unsigned long long)o.id, size_t(o.addr), i, (unsigned long long)w[i],
              (unsigned long long)payload_word(o.id, i));
  }
}

void ToyRuntime::verify(const char* when) const {
  for (const Obj& o : objs_) verify_object(o, when);
}

void ToyRuntime::read_object(Input& in) {
  if (objs_.empty()) return;
  const int ph = phase();
  if (ph == REMAP_PHASE_BROKEN) return;
  verify_object(objs_[in.below(objs_.size())], "read");
}

// ---- the collector -----------------------------------------------------------

remap_status ToyRuntime::mark(size_t idx, bool try_mark) {
  Obj& o = objs_[idx];
  const int ph = phase();
  if (kTrace)
    std::fprintf(stderr, "[trace] %s object %llu at %#zx (%zu bytes%s)\n",
                 try_mark ? "try_mark" : "mark", (unsigned long long)o.id, size_t(o.addr), o.size,
                 o.black ? ", black" : "");
  if (try_mark) {
    const int r = remap_try_mark(heap_, reinterpret_cast<void*>(o.addr));
    if (r > 1) finding("remap_try_mark returned %d", r);
    if (r < 0) return check("remap_try_mark", r, ph);
    if (r == 1 && o.black) finding("remap_try_mark of a black object returned 1");
  } else {
    remap_status st = check("remap_mark", remap_mark(heap_, reinterpret_cast<void*>(o.addr)), ph);
    if (st != REMAP_OK) return st;
  }
  if (!o.black) o.marked = true;
  return REMAP_OK;
}

remap_status ToyRuntime::mark_all(bool try_mark) {
  remap_status worst = REMAP_OK;
  for (size_t i = 0; i < objs_.size(); ++i) {
    remap_status st = mark(i, try_mark);
    if (st != REMAP_OK) worst = st;
  }
  return worst;
}

void ToyRuntime::take_snapshot() {
  for (Obj& o : objs_) o.snap = true;
  prepared_ = true;
}

remap_status ToyRuntime::cycle_begin() {
  const int ph = phase();
  remap_status st = check("remap_cycle_begin", remap_cycle_begin(heap_), ph);
  if (st == REMAP_OK) {
    if (tlab_start_) finding("remap_cycle_begin accepted a heap with a region still acquired");
    begun_ = true;
    take_snapshot();
  }
  return st;
}

remap_status ToyRuntime::prepare() {
  const int ph = phase();
  remap_status st = check("remap_prepare", remap_prepare(heap_), ph);
  if (st == REMAP_OK) {
    if (poisoned_)
      finding("remap_prepare accepted a cycle in which remap_try_mark marked an object's "
              "second word");
    if (tlab_start_ && !begun_)
      finding("remap_prepare accepted a heap with a region still acquired");
    if (!begun_) take_snapshot();
  }
  return st;
}

// The flip succeeded: marked objects moved (remap_forward says where),
// unmarked ones of the snapshot died, slots are rewritten by the rule of
// libremap.h, which forward_value must agree with.
void ToyRuntime::after_flip() {
  std::unordered_map<uintptr_t, uintptr_t> moved;
  std::vector<Obj> live;
  for (Obj& o : objs_) {
    if (o.snap && o.marked) {
      void* n = nullptr;
      if (remap_forward(heap_, reinterpret_cast<void*>(o.addr), &n) != REMAP_OK)
        finding("remap_forward of marked object %llu at %#zx after the flip: %s",
                (unsigned long long)o.id, size_t(o.addr), remap_last_error());
      const uintptr_t na = uintptr_t(n);
      if ((na & 7) || na < uintptr_t(info_.base) || na >= uintptr_t(info_.base) + info_.capacity ||
          (o.large && (na & 4095)))
        finding("remap_forward moved object %llu to %p, outside the heap or misaligned",
                (unsigned long long)o.id, n);
      moved[o.addr] = na;
    } else if (o.snap && !o.black) {
      continue;  // dead
    }
    live.push_back(std::move(o));
  }
  for (Obj& o : live) {
    for (uint64_t& v : o.slots) {
      uint64_t want = v;
      const uintptr_t a = enc_.decode(v);
      if (a) {
        auto it = moved.find(a);
        if (it != moved.end()) want = uint64_t(it->second) | (v & enc_.tag_mask);
      }
      uint64_t got = 0;
      if (remap_forward_value(heap_, v, &got) != REMAP_OK)
        finding("remap_forward_value(%#llx) after the flip: %s", (unsigned long long)v,
                remap_last_error());
      if (got != want)
        finding("remap_forward_value(%#llx) = %#llx, expected %#llx", (unsigned long long)v,
                (unsigned long long)got, (unsigned long long)want);
      v = want;
    }
    auto it = moved.find(o.addr);
    if (it != moved.end()) o.addr = it->second;
    o.snap = o.marked = o.black = false;
  }
  // Two survivors in one place is a forwarding bug (unless the model lied
  // about their sizes: then the library packed what it was told).
  if (!lies_told()) std::sort(live.begin(), live.end(), [](const Obj& a, const Obj& b) { return a.addr < b.addr; });
  for (size_t i = 1; i < live.size() && !lies_told(); ++i)
    if (live[i - 1].addr + live[i - 1].size > live[i].addr)
      finding("objects %llu at %#zx (%zu bytes) and %llu at %#zx overlap after the flip",
              (unsigned long long)live[i - 1].id, size_t(live[i - 1].addr), live[i - 1].size,
              (unsigned long long)live[i].id, size_t(live[i].addr));
  objs_ = std::move(live);
  begun_ = prepared_ = false;
}

remap_status ToyRuntime::flip() {
  const int ph = phase();
  remap_status st = check("remap_flip", remap_flip(heap_), ph);
  if (st != REMAP_OK) return st;
  if (ph != REMAP_PHASE_PREPARED) finding("remap_flip succeeded in phase %d", ph);
  after_flip();
  if (phase() == REMAP_PHASE_IDLE) end_cycle();
  return st;
}

remap_status ToyRuntime::compact(bool work) {
  const int ph = phase();
  return work ? check("remap_compact_work", remap_compact_work(heap_), ph)
              : check("remap_compact", remap_compact(heap_), ph);
}

remap_status ToyRuntime::finish() {
  const int ph = phase();
  remap_status st = check("remap_finish", remap_finish(heap_), ph);
  if (st == REMAP_OK && ph == REMAP_PHASE_COMPACTING) {
    if (phase() != REMAP_PHASE_IDLE) finding("remap_finish returned OK, heap not IDLE");
    end_cycle();
  }
  return st;
}

void ToyRuntime::end_cycle() {
  ++cycles_;
  if (!lies_told()) verify("after the cycle");
}

remap_status ToyRuntime::clear_marks() {
  const int ph = phase();
  remap_status st = check("remap_clear_marks", remap_clear_marks(heap_), ph);
  if (st == REMAP_OK) {
    for (Obj& o : objs_) o.marked = o.snap = o.black = false;
    begun_ = prepared_ = poisoned_ = false;
  }
  return st;
}

remap_status ToyRuntime::full_cycle() {
  int ph = phase();
  if (ph == REMAP_PHASE_BROKEN) return REMAP_EPHASE;
  if (ph == REMAP_PHASE_COMPACTING) {
    remap_status st = finish();
    if (st != REMAP_OK) return st;
  }
  remap_status st = retire_tlab();
  if (st != REMAP_OK) return st;
  if (ph == REMAP_PHASE_PREPARED || poisoned_) {
    if ((st = clear_marks()) != REMAP_OK) return st;
  }
  for (size_t i = 0; i < objs_.size(); ++i)
    if (i % 3 != 2) (void)mark(i, i % 2);
  if ((st = prepare()) != REMAP_OK) return st;
  if ((st = flip()) != REMAP_OK) return st;
  if (phase() == REMAP_PHASE_COMPACTING) {
    if ((st = compact(false)) != REMAP_OK) return st;
    if ((st = finish()) != REMAP_OK) return st;
  }
  return REMAP_OK;
}

}  // namespace fuzz

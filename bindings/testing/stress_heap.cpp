// stress_heap.cpp — the stress driver's heap: creation, allocation (TLABs,
// large objects), the initial graph (stress_driver.h).
#include "stress_driver.h"

namespace libremap_py::stress_detail {

void Stress::fail(const std::string& why) {
  std::lock_guard<std::mutex> g(err_mu_);
  if (error_.empty()) error_ = why;
  failed_.store(true, std::memory_order_release);
}

void Stress::create_heap() {
  remap_heap_config cfg;
  std::memset(&cfg, 0, sizeof cfg);
  remap_heap_config_init(&cfg);
  cfg.capacity = p_.heap_mib << 20;
  cfg.max_capacity = std::max(p_.max_heap_mib, p_.heap_mib) << 20;
  cfg.region_size = p_.region_kib << 10;
  cfg.backend = p_.backend;
  cfg.fault_mode = p_.fault_mode;
  cfg.gc_threads = p_.gc_threads;
  cfg.ref_tag_mask = p_.tagged ? 7 : 0;
  if (p_.evacuate) cfg.flags |= REMAP_HEAP_EVACUATE;
  model_ctx_.region_size = cfg.region_size;
  install_model(cfg.model, &model_ctx_);
  check(remap_heap_create(&cfg, &heap_), "remap_heap_create");
  remap_heap_info hi;
  std::memset(&hi, 0, sizeof hi);
  hi.struct_size = sizeof hi;
  check(remap_heap_get_info(heap_, &hi), "remap_heap_get_info");
  base_ = reinterpret_cast<uintptr_t>(hi.base);
  capacity_ = hi.capacity;
  max_capacity_ = hi.max_capacity;
  res_.capacity_min = res_.capacity_max = capacity_;
  region_size_ = hi.region_size;
  page_size_ = hi.page_size;
  anon_ = hi.backend == REMAP_BACKEND_MOVE || hi.backend == REMAP_BACKEND_COPY;
  // remap_heap_config_init leaves it 0: the library's default.
  threshold_ = cfg.large_object_threshold ? cfg.large_object_threshold : region_size_ / 2;
  large_.reset(new LargeInfo[kMaxLarge]);
  // Ids are never reused: room for the heap full of the smallest objects
  // several times over; allocation stops when they run out.
  max_ids_ = uint32_t(std::min<size_t>(max_capacity_ / 8, size_t(1) << 24));
  table_.reset(new Obj[max_ids_]);
  model_.assign(max_ids_, ModelObj{});
  marked_.assign(max_ids_, 0);
}

void Stress::random_shape(std::mt19937_64& rng, size_t* size, unsigned* nrefs) {
  *nrefs = unsigned(rng() % (kMaxRefs + 1));
  size_t min = min_object_size(*nrefs) + 8;  // at least one payload word
  *size = std::min(kMaxObject, min + 8 * size_t(rng() % 20));
}

void Stress::random_large_shape(std::mt19937_64& rng, bool need_refs, size_t* size, unsigned* nrefs) {
  const size_t lo = (threshold_ + 8 + 7) & ~size_t(7), hi = 3 * region_size_;
  *size = lo + 8 * size_t(rng() % ((hi - lo) / 8 + 1));
  unsigned kind = unsigned(rng() % 8);  // 0: up to four slots; 1: a page and more of slots; else none
  if (need_refs && kind >= 2) kind = unsigned(rng() % 2);
  if (kind == 0)
    *nrefs = 1 + unsigned(rng() % kMaxRefs);
  else if (kind == 1)  // the last slot on page 1
    *nrefs = unsigned((page_size_ - kHeaderBytes) / kSlotBytes + 1 + rng() % 64);
  else
    *nrefs = 0;
  *size = std::max(*size, min_object_size(*nrefs) + 8);
}

uintptr_t Stress::alloc_large(size_t size, uint32_t* id_out, uint32_t* large_out) {
  if (next_large_.load(std::memory_order_relaxed) >= kMaxLarge) return 0;
  void* out = nullptr;
  remap_status s = remap_alloc_large(heap_, size, &out);
  if (s == REMAP_ENOMEM) return 0;  // no run of free regions until a cycle makes one
  if (s != REMAP_OK) {
    fail(std::string("remap_alloc_large: ") + remap_status_name(s) + ": " + remap_last_error());
    return 0;
  }
  // Past this point a failure leaves the object allocated and unreachable:
  // garbage for the next cycle, like any unlinked object. It gets a header
  // all the same (id 0, no slots): memory allocated in a concurrent cycle's
  // black window must be parseable by the object model (libremap.h).
  auto abandon = [&] {
    ObjectHeader h{uint32_t(size), 0, 1, 0};
    uint64_t hw[2];
    std::memcpy(hw, &h, sizeof h);
    store_word(reinterpret_cast<uintptr_t>(out), hw[0]);
    store_word(reinterpret_cast<uintptr_t>(out) + 8, hw[1]);
    return uintptr_t(0);
  };
  const uint32_t l = next_large_.fetch_add(1);
  if (l >= kMaxLarge) return abandon();
  const uint32_t id = next_id_.fetch_add(1);
  if (id >= max_ids_) {
    next_id_.store(max_ids_);
    return abandon();
  }
  *id_out = id;
  *large_out = l + 1;
  return reinterpret_cast<uintptr_t>(out);
}

void Stress::retire(Mutator& m) {
  if (!m.tlab_start) return;
  remap_status s = remap_region_retire(heap_, reinterpret_cast<void*>(m.tlab_start),
                                       reinterpret_cast<void*>(m.tlab_cur));
  if (s != REMAP_OK) fail(std::string("remap_region_retire: ") + remap_last_error());
  m.tlab_start = m.tlab_cur = m.tlab_end = 0;
}

uintptr_t Stress::alloc(Mutator& m, size_t size, uint32_t* id_out) {
  if (m.tlab_end - m.tlab_cur < size) {
    retire(m);
    void *s = nullptr, *e = nullptr;
    if (remap_region_acquire(heap_, &s, &e) != REMAP_OK) return 0;  // full until the next cycle
    m.tlab_start = m.tlab_cur = reinterpret_cast<uintptr_t>(s);
    m.tlab_end = reinterpret_cast<uintptr_t>(e);
    if (m.tlab_end - m.tlab_cur < size) return 0;
  }
  uint32_t id = next_id_.fetch_add(1);
  if (id >= max_ids_) {
    next_id_.store(max_ids_);
    return 0;
  }
  uintptr_t at = m.tlab_cur;
  m.tlab_cur += size;
  *id_out = id;
  return at;
}

void Stress::init_object(uintptr_t at, uint32_t id, size_t size, unsigned nrefs, uint32_t large) {
  Obj& o = table_[id];
  o.size = uint32_t(size);
  o.nrefs = uint16_t(nrefs);
  o.klass = uint16_t(1 + id % 1000);
  o.large = large;
  if (large) {
    LargeInfo& L = large_info(o);
    L.npages = uint32_t((size + page_size_ - 1) / page_size_);
    L.pv.reset(new std::atomic<uint32_t>[L.npages]);
    for (uint32_t p = 0; p < L.npages; p++) L.pv[p].store(1, std::memory_order_relaxed);
  }
  ObjectHeader h{uint32_t(size), uint16_t(nrefs), o.klass, id};
  uint64_t hw[2];
  std::memcpy(hw, &h, sizeof h);
  store_word(at, hw[0]);
  store_word(at + 8, hw[1]);
  for (unsigned i = 0; i < nrefs; i++)
    store_word(at + slot_offset(i), untracked_slot(o, i) ? filler_word(id, i) : 0);
  const size_t first = min_object_size(nrefs);
  for (size_t off = first; off < size; off += 8) store_word(at + off, payload_word(id, 1, (off - first) / 8));
  o.born = uint32_t(cycles_started_.load(std::memory_order_relaxed));
  o.version.store(1, std::memory_order_relaxed);
  for (auto& t : o.target) t.store(0, std::memory_order_relaxed);
  o.addr.store(at, std::memory_order_release);
}

void Stress::build() {
  std::mt19937_64 rng(p_.seed);
  std::vector<uint32_t> ids;
  const size_t want = size_t(double(capacity_) * p_.fill_fraction);
  // Large objects take this share of the bytes (whole regions counted),
  // interleaved with the small ones.
  double large_share = std::min(0.5, 5 * p_.large_fraction);
  size_t large_used = 0;
  for (size_t used = 0; used < want;) {
    size_t size;
    unsigned nrefs;
    uint32_t id, large = 0;
    uintptr_t at;
    if (large_share > 0 && double(large_used) < large_share * double(used)) {
      random_large_shape(rng, false, &size, &nrefs);
      at = alloc_large(size, &id, &large);
      if (!at) {
        large_share = 0;  // no room for more: small objects only
        continue;
      }
      const size_t bytes = (size + region_size_ - 1) / region_size_ * region_size_;
      used += bytes;
      large_used += bytes;
      res_.large_allocs++;
    } else {
      random_shape(rng, &size, &nrefs);
      used += size;
      at = alloc(driver_, size, &id);
      if (!at) break;
    }
    init_object(at, id, size, nrefs, large);
    model_[id].version = 1;
    if (large) model_pv_[id].assign(large_info(table_[id]).npages, 1);
    // Slots point to earlier objects (or null): some of the heap is garbage.
    for (unsigned k = 0; k < tracked(table_[id]) && !ids.empty(); k++) {
      if (rng() % 10 < 1) continue;
      uint32_t t = ids[rng() % ids.size()];
      store_word(at + slot_byte(table_[id], k), encode(table_[t].addr.load(), id, k));
      table_[id].target[k].store(t);
      model_[id].target[k] = t;
    }
    ids.push_back(id);
  }
  retire(driver_);
  if (ids.empty()) throw std::invalid_argument("run_stress: the heap is too small for any object");
  root_addr_.reset(new std::atomic<uintptr_t>[p_.roots]);
  for (unsigned r = 0; r < p_.roots; r++) {
    // Roots among the newer half: their descendants are most of the heap.
    uint32_t id = ids[ids.size() / 2 + rng() % (ids.size() - ids.size() / 2)];
    root_id_.push_back(id);
    root_addr_[r].store(table_[id].addr.load());
  }
}

bool Stress::resize_after(uint64_t cycle) {
  auto lib_failed = [&](const char* what, remap_status s) {
    std::string why = std::string(what) + ": " + remap_status_name(s) + ": " + remap_last_error();
    {
      std::lock_guard<std::mutex> g(err_mu_);
      if (lib_error_.empty()) lib_error_ = why;
    }
    fail(why);
    return false;
  };
  auto info = [&](remap_heap_info* hi) {
    std::memset(hi, 0, sizeof *hi);
    hi->struct_size = sizeof *hi;
    const remap_status s = remap_heap_get_info(heap_, hi);
    return s == REMAP_OK || lib_failed("remap_heap_get_info", s);
  };
  remap_heap_info hi;
  if (!info(&hi)) return false;
  const size_t floor = p_.heap_mib << 20;
  size_t want;
  if (cycle % 2) {
    const size_t step =
        std::max(region_size_, (max_capacity_ - hi.capacity) / 4 / region_size_ * region_size_);
    want = std::min(max_capacity_, hi.capacity + step);
  } else {
    want = std::max(floor, hi.min_capacity);
  }
  if (want == hi.capacity) return true;
  remap_status s = remap_heap_resize(heap_, want);
  if (s == REMAP_EBUSY && want < hi.capacity) {
    // A mutator took a region above `want` since min_capacity was read.
    res_.shrinks_busy++;
    if (!info(&hi)) return false;
    want = std::max(floor, hi.min_capacity);
    s = want < hi.capacity ? remap_heap_resize(heap_, want) : REMAP_OK;
    if (s == REMAP_EBUSY) {
      res_.shrinks_busy++;
      return true;
    }
  }
  if (s != REMAP_OK) return lib_failed("remap_heap_resize", s);
  if (!info(&hi)) return false;
  if (hi.capacity != want || hi.min_capacity > want) {
    fail("remap_heap_resize(" + std::to_string(want) + ") returned OK, but the capacity is " +
         std::to_string(hi.capacity) + " and min_capacity " + std::to_string(hi.min_capacity));
    return false;
  }
  (want > capacity_ ? res_.grows : res_.shrinks)++;
  capacity_ = want;
  res_.capacity_min = std::min<uint64_t>(res_.capacity_min, want);
  res_.capacity_max = std::max<uint64_t>(res_.capacity_max, want);
  return true;
}

}  // namespace libremap_py::stress_detail

// marking.cpp — the toy VM's tracer (see marking.h). Every object reached is
// checked against the class table before its slots are followed, so heap
// corruption is reported, never chased.
#include "marking.h"

#include <algorithm>

#include <cstdio>
#include <cstring>

#include "vm.h"

namespace toyvm {

namespace {

std::string hex(uintptr_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(v));
  return buf;
}

}  // namespace

Marker::Marker(Vm& vm) : vm_(vm) {
  base_ = reinterpret_cast<uintptr_t>(vm.info().base);
  // The side tables cover the heap's whole reservation: a growable heap
  // (VmConfig::max_heap_bytes) never outgrows them.
  capacity_ = vm.info().max_capacity;
  const size_t region = vm.info().region_size;
  while ((size_t(1) << region_shift_) < region) ++region_shift_;
  regions_ = capacity_ >> region_shift_;
  mark_words_ = capacity_ / 8 / 64 + 1;
  marks_.reset(new std::atomic<uint64_t>[mark_words_]);
  for (size_t i = 0; i < mark_words_; ++i) marks_[i].store(0, std::memory_order_relaxed);
  region_epoch_.reset(new std::atomic<uint32_t>[regions_ + 1]);
  for (size_t i = 0; i <= regions_; ++i) region_epoch_[i].store(0, std::memory_order_relaxed);
}

void Marker::reset(uint64_t gc_index) {
  gc_index_ = gc_index;
  // Nothing reads the bitmap between cycles (the barrier is off), so a
  // plain memset of the atomics' storage is race-free here.
  static_assert(sizeof(std::atomic<uint64_t>) == sizeof(uint64_t));
  // The capacity of the moment: no bit is set past it this cycle (marks
  // are of objects in the heap), and bits a shrink left behind are cleared
  // by the first cycle after the heap grows over them again.
  const size_t words = std::min(mark_words_, vm_.capacity() / 8 / 64 + 1);
  std::memset(static_cast<void*>(marks_.get()), 0, words * sizeof(uint64_t));
  stack_.clear();
  objects_marked = bytes_marked = satb_logged = black_skipped = 0;
  std::lock_guard<std::mutex> g(queue_mu_);
  for (auto& b : queue_) {
    b.clear();
    spare_.push_back(std::move(b));
  }
  queue_.clear();
}

void Marker::publish(std::vector<uintptr_t>& buf) {
  if (buf.empty()) return;
  std::lock_guard<std::mutex> g(queue_mu_);
  queue_.push_back(std::move(buf));
  if (!spare_.empty()) {
    buf = std::move(spare_.back());
    spare_.pop_back();
  } else {
    buf = std::vector<uintptr_t>();
    buf.reserve(kSatbBufferEntries);
  }
}

bool Marker::grey_entries(std::vector<uintptr_t>& buf) {
  satb_logged += buf.size();
  for (uintptr_t v : buf)
    if (!grey(v, 0)) return false;
  buf.clear();
  return true;
}

bool Marker::grey_published(bool* any) {
  std::vector<std::vector<uintptr_t>> q;
  {
    std::lock_guard<std::mutex> g(queue_mu_);
    q.swap(queue_);
  }
  *any = !q.empty();
  bool ok = true;
  for (auto& b : q) {
    ok = ok && grey_entries(b);
    b.clear();
  }
  std::lock_guard<std::mutex> g(queue_mu_);
  for (auto& b : q) spare_.push_back(std::move(b));
  return ok;
}

// The shape the class table says an object must have. `from` is the object
// (or 0 for a root or a logged value) whose slot led here, for the message.
bool Marker::check_object(uintptr_t obj, uintptr_t from) {
  auto bad = [&](const std::string& what) {
    vm_.fail(VmErrorKind::corrupt_heap, REMAP_OK,
             "toyvm: corrupt heap at GC " + std::to_string(gc_index_) + ": object base+" +
                 hex(obj - base_) + " (reached from " +
                 (from ? "base+" + hex(from - base_) : std::string("a root or a logged slot")) + "): " + what);
    return false;
  };
  if (obj - base_ >= capacity_ || (obj & 7) != 0) return bad("a reference outside the heap or misaligned");
  const ObjectHeader* h = header(reinterpret_cast<const void*>(obj));
  if (h->klass >= vm_.class_count()) return bad("class id " + std::to_string(h->klass) + " is not defined");
  const ClassInfo& c = vm_.klass(h->klass);
  size_t want = 0;
  uint32_t nrefs = 0;
  switch (c.kind) {
    case ClassKind::instance:
      want = kHeaderBytes + kSlotBytes * c.nrefs + c.payload_bytes;
      nrefs = c.nrefs;
      break;
    case ClassKind::ref_array:
      want = kHeaderBytes + kSlotBytes * size_t(h->aux);
      nrefs = h->aux;
      break;
    case ClassKind::prim_array:
      want = (kHeaderBytes + size_t(c.elem_size) * h->aux + 7) & ~size_t(7);
      break;
  }
  if (h->size != want || h->nrefs != nrefs)
    return bad("header (size " + std::to_string(h->size) + ", nrefs " + std::to_string(h->nrefs) +
               ") does not match class " + c.name + " (size " + std::to_string(want) + ", nrefs " +
               std::to_string(nrefs) + ")");
  const size_t region = vm_.info().region_size;
  if (h->size < vm_.large_threshold()) {
    if ((obj & (region - 1)) + h->size > region) return bad("crosses its region's end");
  } else if ((obj & (vm_.info().page_size - 1)) != 0) {
    return bad("a large object not at a page start");
  }
  if (obj - base_ + h->size > capacity_) return bad("runs past the heap");
  return true;
}

bool Marker::grey(uintptr_t v, uintptr_t from) {
  if (v == 0) return true;
  if (v - base_ >= capacity_ || (v & 7) != 0) return check_object(v, from);
  if (concurrent_ && is_black(v)) {
    ++black_skipped;
    return true;
  }
  const size_t w = (v - base_) / 8;
  const uint64_t bit = uint64_t(1) << (w % 64);
  std::atomic<uint64_t>& word = marks_[w / 64];
  if (word.load(std::memory_order_relaxed) & bit) return true;
  if (!check_object(v, from)) return false;
  if (word.fetch_or(bit, std::memory_order_relaxed) & bit) return true;  // another tracer won
  // The library's mark bit only (its sizes and slots are read at
  // remap_prepare, which runs beside the mutators): the cost of reporting a
  // live object is a bit set, not a visit.
  const int s = remap_try_mark(vm_.heap(), reinterpret_cast<const void*>(v));
  if (s < 0) {
    vm_.fail(VmErrorKind::library, s, status_message("remap_try_mark", s));
    return false;
  }
  const ObjectHeader* h = header(reinterpret_cast<const void*>(v));
  ++objects_marked;
  bytes_marked += model_object_size(const_cast<ModelContext*>(&vm_.model_context()), h);  // as libremap counts it
  if (h->nrefs) stack_.push_back(v);
  return true;
}

bool Marker::trace(uint64_t deadline_ns, bool* drained) {
  size_t n = 0;
  while (!stack_.empty()) {
    if (deadline_ns && (++n & 255) == 0 && now_ns() >= deadline_ns) {
      *drained = false;
      return true;
    }
    const uintptr_t obj = stack_.back();
    stack_.pop_back();
    const uint32_t nrefs = header(reinterpret_cast<const void*>(obj))->nrefs;
    for (uint32_t i = 0; i < nrefs; ++i)
      if (!grey(reinterpret_cast<uintptr_t>(get_ref(reinterpret_cast<Ref>(obj), i)), obj)) return false;
  }
  *drained = true;
  return true;
}

}  // namespace toyvm

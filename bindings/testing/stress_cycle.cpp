// stress_cycle.cpp — the stress driver's driver thread: safepoints,
// verification against the write logs, stale-page injection, cycles, the run
// (stress_driver.h).
#include "stress_driver.h"

namespace libremap_py::stress_detail {

bool Stress::safepoint_begin() {
  std::unique_lock<std::mutex> g(sp_mu_);
  request_.store(true, std::memory_order_release);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(p_.timeout_s);
  // A mutator that failed has returned from its loop and never parks.
  bool ok = sp_cv_.wait_until(g, deadline, [&] { return parked_ == muts_.size() || failed(); });
  if (!ok) fail("mutators did not reach the safepoint in time");
  return ok && !failed();
}

void Stress::safepoint_end() {
  {
    std::lock_guard<std::mutex> g(sp_mu_);
    request_.store(false, std::memory_order_release);
    epoch_++;
  }
  sp_cv_.notify_all();
  // Let the mutators leave the barrier before compaction starts, so that
  // they really run (and fault) while it does. Bounded: never a hang.
  std::unique_lock<std::mutex> g(sp_mu_);
  sp_cv_.wait_for(g, std::chrono::milliseconds(200), [&] { return parked_ == 0; });
}

void Stress::stop_threads() {
  {
    std::lock_guard<std::mutex> g(sp_mu_);
    stop_.store(true);
    request_.store(false);
    epoch_++;
  }
  sp_cv_.notify_all();
  for (auto& m : muts_)
    if (m->thread.joinable()) m->thread.join();
}

bool Stress::verify_and_mark(bool mark) {
  // Replay this epoch's writes: per object, the entries are totally ordered
  // by version (writes to one object hold its seqlock).
  std::vector<LogEntry> all;
  for (auto& m : muts_) {
    all.insert(all.end(), m->log.begin(), m->log.end());
    m->log.clear();
  }
  std::sort(all.begin(), all.end(), [](const LogEntry& x, const LogEntry& y) {
    return x.id != y.id ? x.id < y.id : x.version != y.version ? x.version < y.version : x.slot < y.slot;
  });
  for (const LogEntry& e : all) {
    ModelObj& mo = model_[e.id];
    const Obj& o = table_[e.id];
    if (e.slot == kSlotAlloc) {
      mo = ModelObj{};
      mo.version = 1;
      if (o.large) model_pv_[e.id].assign(large_info(o).npages, 1);
      continue;
    }
    if (e.version != mo.version + 1) {
      fail("write log: object " + std::to_string(e.id) + " goes from version " +
           std::to_string(mo.version) + " to " + std::to_string(e.version));
      return false;
    }
    mo.version = e.version;
    if (e.slot >= 0) mo.target[e.slot] = e.target;
    if (o.large) {
      std::vector<uint32_t>& pv = model_pv_[e.id];
      for (size_t p = 0; p < pv.size(); p++)
        if (page_written(e.id, e.version, pv.size(), p)) pv[p] = e.version;
    }
  }
  res_.log_entries += all.size();

  // The heap graph from the roots against the model; checksums of both.
  std::fill(marked_.begin(), marked_.end(), 0);
  std::vector<uint32_t> queue;
  Hasher heap_hash, model_hash;
  uint64_t large_live = 0;
  auto bad = [&](uint32_t id, const std::string& what) {
    fail("safepoint check: object " + std::to_string(id) + ": " + what);
    return false;
  };
  for (unsigned r = 0; r < p_.roots; r++) {
    uint32_t id = root_id_[r];
    uintptr_t a = root_addr_[r].load();
    if (a < base_ || a >= base_ + capacity_) return bad(id, "root outside the heap");
    ObjectHeader h;
    std::memcpy(&h, reinterpret_cast<const void*>(a), sizeof h);
    if (h.id != id) return bad(id, "root points to object " + std::to_string(h.id));
    heap_hash.add(h.id);
    model_hash.add(id);
    if (!marked_[id]) {
      marked_[id] = 1;
      queue.push_back(id);
    }
  }
  for (size_t qi = 0; qi < queue.size(); qi++) {
    const uint32_t id = queue[qi];
    const Obj& o = table_[id];
    const ModelObj& mo = model_[id];
    const uintptr_t a = o.addr.load();
    ObjectHeader h;
    std::memcpy(&h, reinterpret_cast<const void*>(a), sizeof h);
    if (h.id != id || h.size != o.size || h.nrefs != o.nrefs || h.klass != o.klass)
      return bad(id, "header differs from the table");
    if (o.version.load() != mo.version)
      return bad(id, "committed version " + std::to_string(o.version.load()) + ", the log says " +
                         std::to_string(mo.version));
    const size_t first = min_object_size(h.nrefs);
    uint32_t first_version = mo.version;  // of the first payload word
    if (o.large) {
      // Every payload word of every page, every untracked slot.
      const LargeInfo& L = large_info(o);
      auto it = model_pv_.find(id);
      if (it == model_pv_.end() || it->second.size() != L.npages) return bad(id, "no page versions in the model");
      const std::vector<uint32_t>& pv = it->second;
      for (size_t p = 0; p < L.npages; p++) {
        if (L.pv[p].load() != pv[p])
          return bad(id, "page " + std::to_string(p) + " committed version " + std::to_string(L.pv[p].load()) +
                             ", the log says " + std::to_string(pv[p]));
        size_t lo, hi;
        page_payload(o, p, &lo, &hi);
        for (size_t off = lo; off < hi; off += 8)
          if (load_word(a + off) != payload_word(id, pv[p], (off - first) / 8))
            return bad(id, "large object: payload word " + std::to_string((off - first) / 8) + " (page " +
                               std::to_string(p) + ") is not version " + std::to_string(pv[p]) +
                               " (a lost write, or a stale or misplaced page)");
      }
      for (size_t i = kMaxRefs - 1; i + 1 < h.nrefs; i++)
        if (load_word(a + slot_offset(i)) != filler_word(id, i))
          return bad(id, "large object: untracked slot " + std::to_string(i) + " was changed");
      first_version = pv[first / page_size_];
      large_live++;
    } else {
      for (size_t off = first; off < h.size; off += 8)
        if (load_word(a + off) != payload_word(id, mo.version, (off - first) / 8))
          return bad(id, "payload is not version " + std::to_string(mo.version) + " (a lost write)");
    }
    heap_hash.add(uint64_t(h.id) << 32 | load_word(a + first) >> 32);
    model_hash.add(uint64_t(id) << 32 | payload_word(id, first_version, 0) >> 32);
    for (unsigned k = 0; k < tracked(o); k++) {
      uint64_t v = load_word(a + slot_byte(o, k));
      const uint32_t t = mo.target[k];
      uint32_t got = 0;
      if (v && p_.tagged) {
        if ((v & 7) != (encode(8, id, k) & 7))
          return bad(id, "slot " + std::to_string(k) + " lost its tag bits");
        v &= ~uint64_t(7);
      }
      if (v) {
        if (v < base_ || v >= base_ + capacity_ || (v & 7)) return bad(id, "slot outside the heap");
        got = reinterpret_cast<const ObjectHeader*>(v)->id;
        if (got == 0 || got >= max_ids_ || table_[got].addr.load() != v)
          return bad(id, "slot " + std::to_string(k) + " does not point to an object start");
      }
      if (got != t)
        return bad(id, "slot " + std::to_string(k) + " names object " + std::to_string(got) +
                           ", the log says " + std::to_string(t) + " (a lost reference write)");
      heap_hash.add(got);
      model_hash.add(t);
      if (got && !marked_[got]) {
        marked_[got] = 1;
        queue.push_back(got);
      }
    }
  }
  heap_hash.add(queue.size());
  model_hash.add(queue.size());
  if (heap_hash.h != model_hash.h) {
    fail("graph checksum of the heap differs from the model's");
    return false;
  }
  res_.objects_verified += queue.size();
  res_.live_objects = queue.size();
  res_.large_verified += large_live;
  res_.large_live = large_live;
  if (!mark) return true;
  for (uint32_t id : queue) {
    remap_status s = remap_mark(heap_, reinterpret_cast<const void*>(table_[id].addr.load()));
    if (s != REMAP_OK) {
      fail(std::string("remap_mark: ") + remap_last_error());
      return false;
    }
  }
  return true;
}

void Stress::inject_stale() {
  if (p_.inject_stale_large) {
    // One page of a reachable large object goes back a version (the last
    // page of one never written: torn), what a page left behind by the
    // slide would show. Prefer one written since its allocation.
    uint32_t pick = 0;
    for (uint32_t id = 1; id < std::min(next_id_.load(), max_ids_); id++) {
      if (!marked_[id] || !table_[id].large) continue;
      if (!pick || table_[id].version.load() >= 2) pick = id;
      if (table_[id].version.load() >= 2) break;
    }
    // The page: one written since the allocation if any, else the last one
    // that holds payload at all (a page of slots only would roll nothing
    // back, and the checker would have nothing to catch).
    size_t p = SIZE_MAX, lo = 0, hi = 0;
    if (pick) {
      const Obj& o = table_[pick];
      const LargeInfo& L = large_info(o);
      for (size_t q = 0; q < L.npages; q++) {
        page_payload(o, q, &lo, &hi);
        if (lo < hi && (p == SIZE_MAX || L.pv[q].load() >= 2 || L.pv[p].load() < 2)) p = q;
      }
    }
    if (pick && p != SIZE_MAX) {
      const Obj& o = table_[pick];
      const LargeInfo& L = large_info(o);
      const uintptr_t a = o.addr.load();
      const size_t first = min_object_size(o.nrefs);
      page_payload(o, p, &lo, &hi);
      const uint32_t v = L.pv[p].load();
      for (size_t off = lo; off < hi; off += 8)
        store_word(a + off, v >= 2 ? payload_word(pick, v - 1, (off - first) / 8) : 0);
      return;
    }
  }
  // A root object written at least once: its payload goes back one version.
  for (unsigned r = 0; r < p_.roots; r++) {
    const uint32_t id = root_id_[r];
    const Obj& o = table_[id];
    const uint32_t v = o.version.load();
    if (v < 2) continue;
    const uintptr_t a = o.addr.load();
    const size_t first = min_object_size(o.nrefs);
    if (o.large) {  // its pages written since the allocation go back one version
      const LargeInfo& L = large_info(o);
      bool rolled = false;
      for (size_t p = 0; p < L.npages; p++) {
        const uint32_t pv = L.pv[p].load();
        size_t lo, hi;
        page_payload(o, p, &lo, &hi);
        if (pv < 2 || lo == hi) continue;
        for (size_t off = lo; off < hi; off += 8) store_word(a + off, payload_word(id, pv - 1, (off - first) / 8));
        rolled = true;
      }
      if (rolled) return;
      continue;  // only payload-less pages written (slots): no payload to roll back
    }
    for (size_t off = first; off < o.size; off += 8) store_word(a + off, payload_word(id, v - 1, (off - first) / 8));
    return;
  }
  // None written yet: tear the first root's first payload word instead.
  const Obj& o = table_[root_id_[0]];
  store_word(o.addr.load() + min_object_size(o.nrefs), 0);
}

bool Stress::cycle() {
  auto lib = [&](remap_status s, const char* what) {
    if (s != REMAP_OK) {
      std::string why = std::string(what) + ": " + remap_status_name(s) + ": " + remap_last_error();
      {
        std::lock_guard<std::mutex> g(err_mu_);
        if (lib_error_.empty()) lib_error_ = why;
      }
      fail(why);
    }
    return s == REMAP_OK;
  };
  if (!safepoint_begin()) return false;
  // Mutators parked with their TLABs retired: the initial mark's pause.
  if (p_.concurrent_prepare && !lib(remap_cycle_begin(heap_), "remap_cycle_begin")) return false;
  if (!verify_and_mark(true)) return false;
  if (p_.inject_stale_cycle == res_.cycles + 1) inject_stale();
  // Ids from here on are allocated after the marking: black when prepare
  // runs beside the mutators.
  const uint32_t ids_marked = std::min(next_id_.load(), max_ids_);
  if (p_.concurrent_prepare) {
    safepoint_end();  // the mutators run (and allocate) while prepare does
    if (!lib(remap_prepare(heap_), "remap_prepare")) return false;
    if (!safepoint_begin()) return false;  // the flip's pause: TLABs retired
  } else if (!lib(remap_prepare(heap_), "remap_prepare")) {
    return false;
  }
  // Forwarding is valid from prepare: take it now, apply it after the flip.
  const uint32_t ids = std::min(next_id_.load(), max_ids_);
  std::vector<uintptr_t> fwd(ids, 0);
  for (uint32_t id = 1; id < ids; id++) {
    if (id >= ids_marked && table_[id].addr.load()) {
      fwd[id] = table_[id].addr.load();  // black: stays (checked below)
      continue;
    }
    if (!marked_[id]) {
      if (table_[id].large && table_[id].addr.load()) res_.large_died++;
      continue;
    }
    void* nw = nullptr;
    if (!lib(remap_forward(heap_, reinterpret_cast<const void*>(table_[id].addr.load()), &nw), "remap_forward"))
      return false;
    fwd[id] = reinterpret_cast<uintptr_t>(nw);
  }
  if (!lib(remap_flip(heap_), "remap_flip")) return false;
  // The runtime's part of the pause: roots through remap_forward (while
  // COMPACTING; with stw the cycle is over and the recorded values hold).
  remap_heap_info hi;
  std::memset(&hi, 0, sizeof hi);
  hi.struct_size = sizeof hi;
  if (!lib(remap_heap_get_info(heap_, &hi), "remap_heap_get_info")) return false;
  const bool concurrent = hi.phase == REMAP_PHASE_COMPACTING;
  for (unsigned r = 0; r < p_.roots; r++) {
    uintptr_t nw = fwd[root_id_[r]];
    if (concurrent) {
      void* f = nullptr;
      if (!lib(remap_forward(heap_, reinterpret_cast<const void*>(root_addr_[r].load()), &f), "remap_forward"))
        return false;
      if (reinterpret_cast<uintptr_t>(f) != nw) {
        fail("remap_forward of a root changed between prepare and flip");
        return false;
      }
    }
    root_addr_[r].store(nw);
  }
  for (uint32_t id = 1; id < ids; id++) {
    if (id >= ids_marked && fwd[id]) {
      // A black object: remap_forward must answer its own address.
      void* f = nullptr;
      if (!lib(remap_forward(heap_, reinterpret_cast<const void*>(fwd[id]), &f), "remap_forward") ||
          reinterpret_cast<uintptr_t>(f) != fwd[id]) {
        fail("remap_forward moved a black object (allocated after the marking)");
        return false;
      }
      continue;
    }
    table_[id].addr.store(marked_[id] ? fwd[id] : 0);
  }
  cycles_started_.fetch_add(1);
  compacting_.store(concurrent);
  safepoint_end();
  if (concurrent) {
    if (!lib(remap_compact(heap_), "remap_compact")) return false;
    if (!lib(remap_finish(heap_), "remap_finish")) return false;
  }
  compacting_.store(false);
  remap_cycle_stats st;
  std::memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  if (!lib(remap_heap_last_stats(heap_, &st), "remap_heap_last_stats")) return false;
  res_.cycles++;
  res_.pages_by_mutator += st.pages_by_mutator;
  res_.pages_by_gc += st.pages_by_gc;
  res_.faults += st.faults;
  res_.fallback_ebusy += st.fallback_ebusy;
  res_.large_objects_moved += st.large_objects_moved;
  res_.large_pages_moved += st.large_pages_moved;
  res_.large_pages_copied += st.large_pages_copied;
  res_.large_pages_updated += st.large_pages_updated;
  if (st.large_objects_moved) res_.large_cycles_moved++;
  if (p_.keep_stats) res_.stats.push_back(st);
  if (p_.max_heap_mib && !resize_after(res_.cycles)) return false;
  // Mutators run in IDLE for a while before the next cycle.
  uint64_t start = 0;
  for (auto& m : muts_) start += m->ops.load();
  const uint64_t want = start + p_.idle_ops * muts_.size();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(p_.timeout_s);
  for (;;) {
    uint64_t now = 0;
    for (auto& m : muts_) now += m->ops.load();
    if (now >= want || failed() || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return !failed();
}

StressResult Stress::run() {
  create_heap();
  build();
  for (unsigned i = 0; i < p_.mutators; i++) {
    auto m = std::make_unique<Mutator>();
    m->rng.seed(mix(p_.seed * 1000 + i + 1));
    muts_.push_back(std::move(m));
  }
  for (auto& m : muts_) {
    Mutator* mp = m.get();
    mp->thread = std::thread([this, mp] { mutator_loop(*mp); });
  }
  for (unsigned c = 0; c < p_.cycles && !failed(); c++)
    if (!cycle()) break;
  // The last word: every write of the last epoch against the heap.
  if (!failed() && safepoint_begin()) verify_and_mark(false);
  // A failure may leave a cycle open: finish it so the heap can go.
  remap_heap_info hi;
  std::memset(&hi, 0, sizeof hi);
  hi.struct_size = sizeof hi;
  if (remap_heap_get_info(heap_, &hi) == REMAP_OK && hi.phase == REMAP_PHASE_COMPACTING) remap_finish(heap_);
  stop_threads();
  if (remap_heap_get_info(heap_, &hi) == REMAP_OK) res_.final_phase = hi.phase;
  res_.lib_error = lib_error_;
  if (!lib_error_.empty() && error_ == lib_error_ && res_.final_phase == REMAP_PHASE_PREPARED &&
      remap_clear_marks(heap_) == REMAP_OK) {
    // A refused flip leaves the cycle prepared; clearing the marks cancels it.
    res_.final_phase = REMAP_PHASE_IDLE;
  }
  if (!lib_error_.empty() && error_ == lib_error_ && res_.final_phase == REMAP_PHASE_IDLE) {
    // A refused cycle must leave the graph as the mutators last wrote it:
    // compare it with the logs (the mutators are joined, nothing races).
    failed_.store(false);
    error_.clear();
    res_.verified_after_refusal = verify_and_mark(false) && error_.empty();
    if (error_.empty()) error_ = lib_error_;
  }
  for (auto& m : muts_) {
    res_.reads += m->reads;
    res_.writes += m->writes;
    res_.allocs += m->allocs;
    res_.retries += m->retries;
    res_.large_reads += m->large_reads;
    res_.large_reads_compacting += m->large_reads_compacting;
    res_.large_writes += m->large_writes;
    res_.large_allocs += m->large_allocs;
    res_.large_pages_missing += m->large_pages_missing;
  }
  res_.error = error_;
  res_.verified = error_.empty() && res_.cycles == p_.cycles;
  if (error_.empty() && res_.cycles != p_.cycles)
    res_.error = "only " + std::to_string(res_.cycles) + " cycles ran";
  return res_;
}

}  // namespace libremap_py::stress_detail

// stress_mutator.cpp — the stress driver's mutator threads: seqlock snapshots,
// their checks, writes, unlinking large objects (stress_driver.h).
#include "stress_driver.h"

namespace libremap_py::stress_detail {

bool Stress::snapshot(Mutator& m, uint32_t id, uintptr_t a, Snapshot* s) {
  Obj& o = table_[id];
  if (o.large) return snapshot_large(m, o, a, s);
  const size_t n = o.size / 8;
  if (n == 0 || n > kMaxObject / 8) {
    fail("object " + std::to_string(id) + " has no valid size in the table");
    return false;
  }
  for (;;) {
    uint32_t s1 = o.seq.load(std::memory_order_acquire);
    if (s1 & 1) {
      m.retries++;
      sched_yield();
      continue;
    }
    for (size_t i = 0; i < n; i++) s->words[i] = load_word(a + 8 * i);  // may fault: produced first
    s->version = o.version.load(std::memory_order_relaxed);
    for (unsigned k = 0; k < kMaxRefs; k++) s->target[k] = o.target[k].load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (o.seq.load(std::memory_order_relaxed) == s1) break;
    m.retries++;
  }
  s->hdr[0] = s->words[0];
  s->hdr[1] = s->words[1];
  for (unsigned k = 0; k < tracked(o); k++) s->slot[k] = s->words[2 + k];
  return true;
}

bool Stress::snapshot_large(Mutator& m, Obj& o, uintptr_t a, Snapshot* s) {
  const LargeInfo& L = large_info(o);
  // The sample: the first and last payload word of every page (every page
  // is read: one left behind faults or fails), a random payload word, and
  // a random untracked slot.
  s->sample_off.clear();
  for (size_t p = 0; p < L.npages; p++) {
    size_t lo, hi;
    page_payload(o, p, &lo, &hi);
    if (lo == hi) continue;
    s->sample_off.push_back(uint32_t(lo));
    if (hi - 8 != lo) s->sample_off.push_back(uint32_t(hi - 8));
  }
  const size_t first = min_object_size(o.nrefs);
  s->sample_off.push_back(uint32_t(first + 8 * (m.rng() % ((o.size - first) / 8))));
  if (o.nrefs > kMaxRefs)
    s->sample_off.push_back(uint32_t(slot_offset(kMaxRefs - 1 + m.rng() % (o.nrefs - kMaxRefs))));
  s->sample_val.resize(s->sample_off.size());
  s->pv.resize(L.npages);
  if (anon_ && compacting_.load(std::memory_order_relaxed)) {
    // Pages this read is about to fault on (or the GC installs first).
    m.incore.resize(L.npages);
    if (mincore(reinterpret_cast<void*>(a), L.npages * page_size_, m.incore.data()) == 0)
      for (unsigned char c : m.incore) m.large_pages_missing += !(c & 1);
  }
  for (;;) {
    uint32_t s1 = o.seq.load(std::memory_order_acquire);
    if (s1 & 1) {
      m.retries++;
      sched_yield();
      continue;
    }
    s->hdr[0] = load_word(a);  // may fault: produced (moved) first
    s->hdr[1] = load_word(a + 8);
    for (unsigned k = 0; k < tracked(o); k++) s->slot[k] = load_word(a + slot_byte(o, k));
    for (size_t i = 0; i < s->sample_off.size(); i++) s->sample_val[i] = load_word(a + s->sample_off[i]);
    s->version = o.version.load(std::memory_order_relaxed);
    for (unsigned k = 0; k < kMaxRefs; k++) s->target[k] = o.target[k].load(std::memory_order_relaxed);
    for (size_t p = 0; p < L.npages; p++) s->pv[p] = L.pv[p].load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (o.seq.load(std::memory_order_relaxed) == s1) break;
    m.retries++;
  }
  m.large_reads++;
  if (compacting_.load(std::memory_order_relaxed)) m.large_reads_compacting++;
  return true;
}

bool Stress::check_snapshot(uint32_t id, uintptr_t a, const Snapshot& s) {
  const Obj& o = table_[id];
  auto bad = [&](const std::string& what) {
    const size_t off = a - base_;
    fail("mutator saw object " + std::to_string(id) + " at heap+" + std::to_string(off) +
         " (region " + std::to_string(off / (p_.region_kib << 10)) + " +" +
         std::to_string(off % (p_.region_kib << 10)) + ", page +" + std::to_string(off % 4096) +
         ", size " + std::to_string(o.size) +
         (o.large ? " large " + std::to_string(large_info(o).npages) + " pages" : std::string()) +
         ", version " + std::to_string(s.version) +
         ", allocated after flip " + std::to_string(o.born) + ", now after flip " +
         std::to_string(cycles_started_.load()) + (compacting_.load() ? ", compacting" : ", idle") +
         "): " + what);
    return false;
  };
  if (o.addr.load(std::memory_order_acquire) != a) return bad("it is not at the address the table says");
  ObjectHeader h;
  std::memcpy(&h, s.hdr, sizeof h);
  if (h.id != id) return bad("header id " + std::to_string(h.id));
  if (h.size != o.size || h.nrefs != o.nrefs || h.klass != o.klass)
    return bad("header size/nrefs/klass " + std::to_string(h.size) + "/" + std::to_string(h.nrefs) +
               "/" + std::to_string(h.klass));
  const size_t first = min_object_size(h.nrefs) / 8;
  if (o.large) {
    const std::string why = check_large(id, s);
    if (!why.empty()) return bad(why);
  } else for (size_t i = first; i < h.size / 8; i++)
    if (s.words[i] != payload_word(id, s.version, i - first)) {
      // Which version does the word encode? Helps tell stale from torn.
      for (uint32_t v = 1; v <= s.version + 1; v++)
        if (s.words[i] == payload_word(id, v, i - first))
          return bad("payload word " + std::to_string(i - first) + " is of version " +
                     std::to_string(v) + " (stale)");
      return bad("payload word " + std::to_string(i - first) + " matches no version (torn or foreign)");
    }
  for (unsigned k = 0; k < tracked(o); k++) {
    uint64_t want =
        encode(s.target[k] ? table_[s.target[k]].addr.load(std::memory_order_acquire) : 0, id, k);
    if (s.slot[k] != want)
      return bad("slot " + std::to_string(k) + " (at +" + std::to_string(slot_byte(o, k)) + ") holds heap+" +
                 std::to_string(s.slot[k] - base_) + ", its target " + std::to_string(s.target[k]) +
                 " is at heap+" + std::to_string(want - base_));
  }
  return true;
}

std::string Stress::check_large(uint32_t id, const Snapshot& s) const {
  const Obj& o = table_[id];
  const size_t first = min_object_size(o.nrefs);
  for (size_t p = 0; p < s.pv.size(); p++)
    if (s.pv[p] == 0 || s.pv[p] > s.version)
      return "page " + std::to_string(p) + " has version " + std::to_string(s.pv[p]) + " in the table";
  for (size_t j = 0; j < s.sample_off.size(); j++) {
    const size_t off = s.sample_off[j];
    const uint64_t got = s.sample_val[j];
    if (off < first) {  // an untracked slot
      const size_t i = (off - kHeaderBytes) / kSlotBytes;
      if (got != filler_word(id, i))
        return "untracked slot " + std::to_string(i) + " (at +" + std::to_string(off) +
               ") was changed: it holds " + std::to_string(got);
      continue;
    }
    const size_t p = off / page_size_, i = (off - first) / 8;
    const uint32_t pv = s.pv[p];
    if (got == payload_word(id, pv, i)) continue;
    const std::string where = "payload word " + std::to_string(i) + " (at +" + std::to_string(off) +
                              ", page " + std::to_string(p) + " of version " + std::to_string(pv) + ")";
    for (uint32_t v = 1; v <= s.version + 1; v++)
      if (got == payload_word(id, v, i))
        return where + " is of version " + std::to_string(v) + (v < pv ? " (stale)" : " (ahead of the table)");
    return where + " matches no version (torn or foreign)";
  }
  return "";
}

bool Stress::write(Mutator& m, uint32_t id, uintptr_t a, int slot, uint32_t target, uint32_t expect) {
  Obj& o = table_[id];
  uint32_t s;
  for (;;) {
    s = o.seq.load(std::memory_order_relaxed);
    if (!(s & 1) && o.seq.compare_exchange_weak(s, s + 1, std::memory_order_acquire)) break;
    sched_yield();
  }
  std::atomic_thread_fence(std::memory_order_release);
  if (expect != kAnyTarget && o.target[slot].load(std::memory_order_relaxed) != expect) {
    o.seq.store(s + 2, std::memory_order_release);
    return false;
  }
  const uint32_t v = o.version.load(std::memory_order_relaxed) + 1;
  const size_t first = min_object_size(o.nrefs);
  if (slot >= 0) {
    store_word(a + slot_byte(o, unsigned(slot)),
               encode(target ? table_[target].addr.load() : 0, id, unsigned(slot)));
    o.target[slot].store(target, std::memory_order_relaxed);
  }
  if (o.large) {
    // Some of its pages (page_written), each with the new version.
    LargeInfo& L = large_info(o);
    for (size_t p = 0; p < L.npages; p++) {
      if (!page_written(id, v, L.npages, p)) continue;
      size_t lo, hi;
      page_payload(o, p, &lo, &hi);
      for (size_t off = lo; off < hi; off += 8) store_word(a + off, payload_word(id, v, (off - first) / 8));
      L.pv[p].store(v, std::memory_order_relaxed);
    }
    m.large_writes++;
  } else {
    for (size_t off = first; off < o.size; off += 8) store_word(a + off, payload_word(id, v, (off - first) / 8));
  }
  o.version.store(v, std::memory_order_relaxed);
  o.seq.store(s + 2, std::memory_order_release);
  m.log.push_back({id, v, slot, target});
  m.writes++;
  return true;
}

void Stress::unlink_due(Mutator& m) {
  const uint64_t now = cycles_started_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < m.unlinks.size();) {
    const Mutator::Unlink u = m.unlinks[i];
    if (u.due > now) {
      i++;
      continue;
    }
    m.unlinks[i] = m.unlinks.back();
    m.unlinks.pop_back();
    // Addresses in the table hold from flip to the next safepoint, as the
    // walks' do: no safepoint can come between this load and the write.
    const uintptr_t a = table_[u.from].addr.load(std::memory_order_acquire);
    // On the spine a bypass (what the large object's slot 0 names now
    // takes its place), elsewhere a clear.
    const uint32_t t = u.slot == 0 ? table_[u.large].target[0].load(std::memory_order_relaxed) : 0;
    if (a) write(m, u.from, a, int(u.slot), t, u.large);
  }
}

void Stress::park(Mutator& m) {
  retire(m);
  m.seen_n = 0;
  std::unique_lock<std::mutex> g(sp_mu_);
  const uint64_t e = epoch_;
  parked_++;
  sp_cv_.notify_all();
  sp_cv_.wait(g, [&] { return epoch_ != e || stop_.load(); });
  parked_--;
  sp_cv_.notify_all();
}

void Stress::mutator_loop(Mutator& m) {
  std::mt19937_64& rng = m.rng;
  Snapshot snap;
  while (!stop_.load(std::memory_order_acquire)) {
    if (request_.load(std::memory_order_acquire)) {
      park(m);
      continue;
    }
    unlink_due(m);
    const unsigned r = unsigned(rng() % p_.roots);
    uint32_t id = root_id_[r];
    uintptr_t a = root_addr_[r].load(std::memory_order_acquire);
    uint32_t prev = 0;  // an object reached before on this walk: a target for new edges
    uintptr_t prev_a = 0;
    bool via_spine = false;  // reached through prev's slot 0
    for (int step = 0; step < 64; step++) {
      if (!snapshot(m, id, a, &snap) || !check_snapshot(id, a, snap)) return;
      m.reads++;
      m.ops.fetch_add(1, std::memory_order_relaxed);
      const Obj& o = table_[id];
      // Large objects become targets of redirected edges 4 times less
      // often: most have one referrer, and die when it lets go (unlink).
      if (rng() % 8 == 0 && (!o.large || rng() % 4 == 0)) m.seen[m.seen_n++ % kSeen] = id;
      if (double(rng() % 1000) < p_.write_fraction * 1000) {
        if (o.nrefs == 0 || rng() % 2 == 0) {
          write(m, id, a, kSlotPayload, 0);
        } else {
          // Slot 0 is the spine: inserting on it keeps everything
          // reachable; a bypass (prev's slot 0 skips this object) kills
          // about one object. Slots 1.. carry cross edges that are
          // redirected or cleared, and garbage falls out of those too.
          const int k = int(rng() % tracked(o));
          size_t size;
          unsigned nrefs;
          random_shape(rng, &size, &nrefs);
          if (k == 0 && nrefs == 0) {
            nrefs = 1;
            size = std::max(size, min_object_size(1) + 8);
          }
          uint32_t nid = 0, large = 0;
          uintptr_t at = 0;
          if (double(rng() % 1000) < p_.alloc_fraction * 1000) {
            // (No draw without large objects: the same run as before them.)
            if (p_.large_fraction > 0 && double(rng() % 1000000) < p_.large_fraction * 1e6) {
              random_large_shape(rng, k == 0, &size, &nrefs);
              at = alloc_large(size, &nid, &large);
            } else {
              at = alloc(m, size, &nid);
            }
          }
          if (at) {
            // On the edge it replaces (the old target stays reachable
            // through it), with a back edge: cycles in the graph.
            init_object(at, nid, size, nrefs, large);
            m.log.push_back({nid, 1, kSlotAlloc, 0});
            m.allocs++;
            if (large) m.large_allocs++;
            if (nrefs > 0 && snap.target[k]) write(m, nid, at, 0, snap.target[k]);
            if (nrefs > 1) write(m, nid, at, 1, id);
            // A slot on page 1 from the start.
            if (nrefs > kMaxRefs) write(m, nid, at, kMaxRefs - 1, prev ? prev : id);
            write(m, id, a, k, nid);
            if (large)
              m.unlinks.push_back({id, uint32_t(k), nid, cycles_started_.load() + 1 + rng() % 4});
          } else if (k == 0) {
            if (via_spine && snap.target[0]) write(m, prev, prev_a, 0, snap.target[0], id);
          } else {
            uint32_t t = 0;
            if (rng() % 4)  // redirected to an object seen on an earlier walk of this epoch
              t = m.seen_n ? m.seen[rng() % std::min<size_t>(m.seen_n, kSeen)] : (prev ? prev : id);
            write(m, id, a, k, t);
          }
          // Re-read after writing: the snapshot must show our own writes.
          if (!snapshot(m, id, a, &snap) || !check_snapshot(id, a, snap)) return;
        }
      }
      // Next: a random non-null slot of this object.
      unsigned live[kMaxRefs], nl = 0;
      for (unsigned k = 0; k < tracked(o); k++)
        if (snap.target[k]) live[nl++] = k;
      if (!nl || request_.load(std::memory_order_acquire) || failed()) break;
      unsigned k = live[rng() % nl];
      via_spine = k == 0;
      prev = id;
      prev_a = a;
      id = snap.target[k];
      a = snap.slot[k] & (p_.tagged ? ~uint64_t(7) : ~uint64_t(0));  // the tag off
    }
    if (failed()) return;
  }
}

}  // namespace libremap_py::stress_detail

// lru_cache.cpp — a cache per mutator thread, in the heap: a table
// (Entry[] of `size` slots) of entries {key, stamp, version, words} each
// holding a long[] value of a mixed size (log-uniform 16 B..max_value_bytes,
// and now and then a large object of 3/4 of a region). Keys are skewed (half
// the lookups go to a hot quarter). A miss allocates a value and an entry;
// a full cache evicts by sampled LRU (the oldest stamp among 5 random
// entries, as Redis does), so objects of every size die in random order and
// the heap fragments over time. A hit checks the value and sometimes
// rewrites it in place (payload writes during compaction).
//
// The index (key -> slot) and each slot's expected key, version and size
// live outside the heap: every hit and the final sweep check the heap
// against them; value word w is mix3(key, version, w).
#include <algorithm>
#include <cmath>
#include <mutex>
#include <unordered_map>

#include "workloads.h"

namespace toyvm {

namespace {

struct EntryFields {
  uint64_t key;
  uint64_t stamp;    // last use, for eviction
  uint64_t version;  // bumped by each in-place rewrite of the value
  uint64_t words;    // value length
};

constexpr uint64_t kFree = ~uint64_t(0);

class LruCache final : public Workload {
 public:
  void setup(Vm& vm, const WorkloadParams& p) override {
    p_ = p;
    if (p_.size == 0) p_.size = 1;
    entry_ = vm.define_instance("lru.Entry", 1, sizeof(EntryFields));
    table_ = vm.define_ref_array("lru.Entry[]");
    longs_ = vm.define_prim_array("long[]", 8);
    large_words_ = vm.info().region_size * 3 / 4 / 8;
  }

  void mutator(Mutator& m, unsigned tid) override {
    Rng rng(p_.seed * 1000003 + tid);
    const size_t n = p_.size;
    HandleScope scope(m);
    const size_t table = scope.make(m.alloc_ref_array(table_, uint32_t(n)));
    std::unordered_map<uint64_t, uint32_t> index;
    std::vector<uint64_t> key(n, kFree), version(n, 0), words(n, 0);
    std::vector<uint32_t> free_slots;
    for (size_t i = n; i-- > 0;) free_slots.push_back(uint32_t(i));
    uint64_t clock = 0, hits = 0, misses = 0, evictions = 0, rewrites = 0;
    const double log_lo = std::log(2.0), log_hi = std::log(double(std::max<size_t>(p_.max_value_bytes / 8, 3)));

    auto check_value = [&](uint32_t slot, bool full) {
      Ref e = get_ref(m.get(table), slot);
      if (!e || header(e)->klass != entry_) return fail(m, "a cache slot lost its entry");
      const auto* f = reinterpret_cast<const EntryFields*>(payload(e));
      if (f->key != key[slot] || f->version != version[slot] || f->words != words[slot])
        return fail(m, "entry fields changed (key " + std::to_string(f->key) + ", want " +
                           std::to_string(key[slot]) + ")");
      Ref v = get_ref(e, 0);
      if (!v || header(v)->klass != longs_ || array_length(v) != words[slot])
        return fail(m, "a value lost its class or length");
      const uint64_t* w = payload_words(v);
      const uint64_t len = words[slot];
      const uint64_t step = full || len <= 512 ? 1 : len / 61 + 1;
      for (uint64_t i = 0; i < len; i += step)
        if (w[i] != mix3(key[slot], version[slot], i))
          return fail(m, "value word " + std::to_string(i) + " of key " + std::to_string(key[slot]) +
                             " is wrong");
      if (len && w[len - 1] != mix3(key[slot], version[slot], len - 1))
        return fail(m, "the last value word is wrong");
    };

    for (unsigned round = 0; round < p_.rounds; ++round) {
      for (size_t op = 0; op < p_.ops; ++op) {
        m.poll();
        const uint64_t k = rng.unit() < 0.5 ? rng.below(std::max<size_t>(n / 4, 1)) : rng.below(2 * n);
        auto it = index.find(k);
        if (it != index.end()) {
          const uint32_t slot = it->second;
          check_value(slot, false);
          Ref e = get_ref(m.get(table), slot);
          auto* f = reinterpret_cast<EntryFields*>(payload(e));
          f->stamp = ++clock;
          ++hits;
          if (rng.unit() < 0.2) {  // rewrite the value in place
            f->version = ++version[slot];
            uint64_t* w = payload_words(get_ref(e, 0));
            for (uint64_t i = 0; i < words[slot]; ++i) w[i] = mix3(k, version[slot], i);
            ++rewrites;
          }
          continue;
        }
        ++misses;
        uint64_t len = rng.unit() < p_.large_fraction
                           ? large_words_
                           : uint64_t(std::exp(log_lo + (log_hi - log_lo) * rng.unit()));
        HandleScope s(m);
        size_t value = s.make(m.alloc_prim_array(longs_, uint32_t(len)));
        uint64_t* w = payload_words(m.get(value));
        for (uint64_t i = 0; i < len; ++i) w[i] = mix3(k, 0, i);
        Ref e = m.alloc_instance(entry_);
        m.write_ref(e, 0, m.get(value));
        *reinterpret_cast<EntryFields*>(payload(e)) = EntryFields{k, ++clock, 0, len};
        uint32_t slot;
        if (!free_slots.empty()) {
          slot = free_slots.back();
          free_slots.pop_back();
        } else {  // sampled LRU: the oldest of five random entries goes
          Ref t = m.get(table);
          slot = uint32_t(rng.below(n));
          uint64_t oldest = reinterpret_cast<EntryFields*>(payload(get_ref(t, slot)))->stamp;
          for (int i = 0; i < 4; ++i) {
            uint32_t c = uint32_t(rng.below(n));
            uint64_t st = reinterpret_cast<EntryFields*>(payload(get_ref(t, c)))->stamp;
            if (st < oldest) oldest = st, slot = c;
          }
          index.erase(key[slot]);
          ++evictions;
        }
        m.write_ref(m.get(table), slot, e);
        key[slot] = k;
        version[slot] = 0;
        words[slot] = len;
        index[k] = slot;
      }
    }
    size_t entries = 0;
    for (uint32_t slot = 0; slot < n; ++slot) {
      if (key[slot] == kFree) {
        if (get_ref(m.get(table), slot)) fail(m, "a free slot holds an entry");
        continue;
      }
      check_value(slot, true);
      ++entries;
    }
    std::lock_guard<std::mutex> g(mu_);
    hits_ += hits;
    misses_ += misses;
    evictions_ += evictions;
    rewrites_ += rewrites;
    entries_ += entries;
    ++threads_done_;
  }

  void finish(Vm&, WorkloadResult& out) override {
    std::lock_guard<std::mutex> g(mu_);
    out.operations = hits_ + misses_;
    out.checksum = out.operations;
    out.expected = uint64_t(p_.ops) * p_.rounds * p_.threads;
    out.verified = error_.empty() && threads_done_ == p_.threads && out.checksum == out.expected;
    out.detail = !error_.empty()
                     ? error_
                     : std::to_string(hits_) + " hits checked, " + std::to_string(misses_) + " misses, " +
                           std::to_string(evictions_) + " evictions, " + std::to_string(rewrites_) +
                           " in-place rewrites; " + std::to_string(entries_) + " entries intact at the end";
  }

 private:
  void fail(Mutator& m, const std::string& e) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (error_.empty()) error_ = e;
    }
    m.vm().fail(VmErrorKind::workload, REMAP_OK, "toyvm: lru_cache: " + e);
    throw VmAbort{};
  }

  WorkloadParams p_;
  ClassId entry_ = 0, table_ = 0, longs_ = 0;
  uint64_t large_words_ = 0;
  std::mutex mu_;
  uint64_t hits_ = 0, misses_ = 0, evictions_ = 0, rewrites_ = 0, entries_ = 0;
  unsigned threads_done_ = 0;
  std::string error_;
};

}  // namespace

std::unique_ptr<Workload> make_lru_cache() { return std::make_unique<LruCache>(); }

}  // namespace toyvm

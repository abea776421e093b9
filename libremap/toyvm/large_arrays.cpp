// large_arrays.cpp — a working set of large objects that turns over about
// half of itself between collections, so that every cycle has live large
// objects to slide down over dead ones (use case B) next to small objects
// to compact.
//
// Each mutator thread keeps `size` slots (a small Object[] in a global
// root) of large arrays:
//   - long[] and double[] of 3/4 of a region up to 3 regions; element 0 is
//     the array's id, element i the (exact) value of mix3(id, version, i);
//   - Object[] above the large-object threshold: slot 0 a Tag {id, length},
//     the other elements, by a pattern derived from (id, i), null, one of
//     the array's 256 Boxes {owner id, index, check} (small objects,
//     allocated between short-lived garbage so their regions fragment), or
//     one of up to 4 primitive arrays of the same thread's working set at
//     creation (which then outlive their slot while the Object[] lives).
// An array's id fixes its class and length. Each operation spot-checks a
// random slot (mutators read large objects while they are being slid) and
// then either replaces the next slot of a shuffled pass over the slots (the
// old array dies unless an Object[] holds it) or rewrites a primitive array
// in place under a new version (writes to a large object during
// compaction).
//
// The shadow model outside the heap (per thread: each slot's id, each id's
// version and Object[] targets) is checked against the heap after every
// collection, in a pause, and at the end: every array's class, length, id,
// and every word; every Object[] element's target, by its id fields; one
// address per id, so a copy left behind by a wrong slide is caught too.
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "workloads.h"

namespace toyvm {

namespace {

constexpr uint32_t kBoxes = 256;    // small objects per Object[]
constexpr uint32_t kTargets = 4;    // primitive arrays an Object[] may point to
constexpr double kRewrite = 0.15;   // share of operations that rewrite in place
constexpr uint64_t kKindSalt = 0x6b696e64ull, kLengthSalt = 0x6c656e67ull;
constexpr uint64_t kElementSalt = 0x656c656dull, kBoxSalt = 0xb0c5b0c5ull;
constexpr int kIdShift = 40;        // id = (thread + 1) << 40 | sequence number

enum class Kind { longs, doubles, refs };

struct TagFields {
  uint64_t id;
  uint64_t length;
};

struct BoxFields {
  uint64_t owner;  // the Object[]'s id
  uint64_t index;  // 0 .. kBoxes-1
  uint64_t check;  // mix3(owner, kBoxSalt, index)
};

// One thread's side of the shadow model. Written by its owner only, read
// by the checks in a pause (the safepoint protocol's mutex orders both).
struct ThreadShadow {
  size_t table_root = 0;                 // global slot of the thread's Object[] of slots
  std::vector<uint64_t> slot_id;         // 0: empty
  std::vector<uint32_t> version;         // by sequence number
  std::vector<std::array<uint64_t, kTargets>> targets;  // by sequence number; 0: none
  uint64_t created[3] = {0, 0, 0};       // by Kind
  uint64_t rewrites = 0, spot_checks = 0, ops = 0;
  bool done = false;
};

// Bit-exact doubles: 53 random bits scaled into [0, 1).
inline uint64_t as_double_bits(uint64_t word53) {
  double d = double(word53) * (1.0 / 9007199254740992.0);
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  return bits;
}
inline uint64_t id_double_bits(uint64_t id) {
  double d = double(id);
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  return bits;
}

class LargeArrays final : public Workload {
 public:
  void setup(Vm& vm, const WorkloadParams& p) override {
    p_ = p;
    const size_t region = vm.info().region_size;
    // Primitive arrays: 3/4 of a region (one region, a free tail behind it)
    // to 3 whole regions. Object[]: just above the threshold to 1.5 regions.
    prim_lo_ = region * 3 / 4 / 8 - 2;
    prim_hi_ = (3 * region - kHeaderBytes) / 8;
    ref_lo_ = vm.large_threshold() / 8 + 1;
    ref_hi_ = std::max<uint64_t>(ref_lo_, region * 3 / 2 / 8 - 2);
    // The working set takes at most ~45% of the heap's regions, counting
    // 2.5 regions a slot: a large object occupies whole regions (2.1 on
    // average here) and an Object[] keeps arrays alive after their slot
    // was replaced. More leaves too little room for the turnover.
    const double regions = double(vm.info().capacity / region);
    const size_t fit = size_t(0.45 * regions / (2.5 * p.threads));
    slots_ = std::max<size_t>(1, std::min(p.size, fit));
    longs_ = vm.define_prim_array("long[]", 8);
    doubles_ = vm.define_prim_array("double[]", 8);
    refs_ = vm.define_ref_array("Object[]");
    table_ = vm.define_ref_array("large.Slots");
    tag_ = vm.define_instance("large.Tag", 0, sizeof(TagFields));
    box_ = vm.define_instance("large.Box", 0, sizeof(BoxFields));
    shadow_.resize(p.threads);
    for (auto& s : shadow_) {
      s.table_root = vm.add_global(nullptr);
      s.slot_id.assign(slots_, 0);
    }
    vm.set_after_gc([this, &vm] { return verify(vm); });
  }

  void mutator(Mutator& m, unsigned tid) override {
    ThreadShadow& st = shadow_[tid];
    Rng rng(p_.seed * 2654435761u + tid + 1);
    m.vm().set_global(st.table_root, m.alloc_ref_array(table_, uint32_t(slots_)));
    std::vector<uint32_t> order(slots_);
    size_t next = slots_;  // position in the current shuffled pass
    for (unsigned round = 0; round < p_.rounds; ++round) {
      for (size_t op = 0; op < p_.ops; ++op) {
        m.poll();
        spot_check(m, st, rng);
        const size_t s = rng.below(slots_);
        if (st.slot_id[s] && kind_of(st.slot_id[s]) != Kind::refs && rng.unit() < kRewrite) {
          rewrite(m, st, s);
        } else {
          // A pass replaces every slot once, in random order: between two
          // collections the dead are the slots replaced since, not a random
          // sample with repeats.
          if (next == slots_) {
            for (uint32_t i = 0; i < slots_; ++i) order[i] = i;
            for (size_t i = slots_; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
            next = 0;
          }
          replace(m, st, tid, order[next++], rng);
        }
        ++st.ops;
      }
    }
    std::lock_guard<std::mutex> g(mu_);
    st.done = true;
  }

  void finish(Vm& vm, WorkloadResult& out) override {
    const std::string problem = verify(vm);
    std::lock_guard<std::mutex> g(mu_);
    uint64_t created[3] = {0, 0, 0}, rewrites = 0, spots = 0, ops = 0;
    bool all_done = true;
    for (const auto& s : shadow_) {
      for (int k = 0; k < 3; ++k) created[k] += s.created[k];
      rewrites += s.rewrites;
      spots += s.spot_checks;
      ops += s.ops;
      all_done = all_done && s.done;
    }
    out.operations = ops;
    out.checksum = heap_sum_;
    out.expected = shadow_sum_;
    out.verified = problem.empty() && error_.empty() && all_done && heap_sum_ == shadow_sum_ &&
                   ops == uint64_t(p_.ops) * p_.rounds * p_.threads;
    char died[32];
    std::snprintf(died, sizeof died, "%.0f%%", turnover_checks_ ? 100.0 * died_sum_ / turnover_checks_ : 0.0);
    out.detail = !error_.empty() ? error_
                 : !problem.empty()
                     ? problem
                     : std::to_string(created[0]) + " long[], " + std::to_string(created[1]) + " double[], " +
                           std::to_string(created[2]) + " Object[] created (" + std::to_string(slots_) +
                           " slots per thread), " + std::to_string(rewrites) + " in-place rewrites, " +
                           std::to_string(spots) + " spot checks; every array matched the shadow model in " +
                           std::to_string(checks_) + " checks; " + died +
                           " of the large objects died between collections";
  }

 private:
  Kind kind_of(uint64_t id) const {
    const uint64_t k = mix3(id, kKindSalt, 0) % 20;
    return k < 7 ? Kind::longs : k < 14 ? Kind::doubles : Kind::refs;
  }
  uint32_t length_of(uint64_t id) const {
    const uint64_t h = mix3(id, kLengthSalt, 0);
    return kind_of(id) == Kind::refs ? uint32_t(ref_lo_ + h % (ref_hi_ - ref_lo_ + 1))
                                     : uint32_t(prim_lo_ + h % (prim_hi_ - prim_lo_ + 1));
  }
  ClassId class_of(uint64_t id) const {
    switch (kind_of(id)) {
      case Kind::longs: return longs_;
      case Kind::doubles: return doubles_;
      case Kind::refs: return refs_;
    }
    return refs_;
  }
  ThreadShadow* owner_of(uint64_t id) {
    const uint64_t t = (id >> kIdShift) - 1;
    return t < shadow_.size() ? &shadow_[t] : nullptr;
  }
  static uint64_t sequence_of(uint64_t id) { return id & ((uint64_t(1) << kIdShift) - 1); }

  // Element i >= 1 of a primitive array, as stored (doubles as their bits).
  static uint64_t prim_word(bool doubles, uint64_t id, uint32_t version, uint64_t i) {
    const uint64_t w = mix3(id, version, i);
    return doubles ? as_double_bits(w >> 11) : w;
  }
  uint64_t prim_word0(uint64_t id) const { return kind_of(id) == Kind::doubles ? id_double_bits(id) : id; }

  // Object[] element i >= 1: -1 null, [0, kBoxes) a box, kBoxes + j target j.
  int64_t element_of(uint64_t id, uint64_t i, uint32_t ntargets) const {
    const uint64_t h = mix3(id, kElementSalt, i);
    const uint64_t sel = h & 7;
    if (sel < 4) return -1;
    if (sel < 7) return int64_t((h >> 3) % kBoxes);
    return ntargets ? int64_t(kBoxes + (h >> 3) % ntargets) : -1;
  }

  void fill_prim(Ref a, uint64_t id, uint32_t version) {
    uint64_t* w = payload_words(a);
    const uint32_t n = array_length(a);
    const bool doubles = kind_of(id) == Kind::doubles;
    w[0] = prim_word0(id);
    for (uint64_t i = 1; i < n; ++i) w[i] = prim_word(doubles, id, version, i);
  }

  // A new array in slot s; the old one dies unless an Object[] holds it.
  void replace(Mutator& m, ThreadShadow& st, unsigned tid, uint32_t s, Rng& rng) {
    const uint64_t seq = st.version.size();
    const uint64_t id = (uint64_t(tid + 1) << kIdShift) | seq;
    st.version.push_back(0);
    st.targets.push_back({0, 0, 0, 0});
    const Kind kind = kind_of(id);
    const uint32_t len = length_of(id);
    HandleScope scope(m);
    size_t a;
    if (kind != Kind::refs) {
      a = scope.make(m.alloc_prim_array(class_of(id), len));
      fill_prim(m.get(a), id, 0);
    } else {
      // Up to kTargets distinct primitive arrays of this thread's slots.
      size_t target_h[kTargets];
      uint32_t nt = 0;
      Ref t = table(m, st);
      for (int tries = 0; tries < 12 && nt < kTargets; ++tries) {
        const uint32_t c = uint32_t(rng.below(slots_));
        const uint64_t cid = st.slot_id[c];
        if (c == s || !cid || kind_of(cid) == Kind::refs) continue;
        if (std::find(st.targets[seq].begin(), st.targets[seq].begin() + nt, cid) != st.targets[seq].begin() + nt)
          continue;
        st.targets[seq][nt] = cid;
        target_h[nt++] = scope.make(get_ref(t, c));
      }
      a = scope.make(m.alloc_ref_array(refs_, len));
      Ref tag = m.alloc_instance(tag_);
      *reinterpret_cast<TagFields*>(payload(tag)) = TagFields{id, len};
      m.write_ref(m.get(a), 0, tag);
      // Each box between garbage of a random size: when the boxes' regions
      // are compacted, they are fragmented, not empty.
      size_t box_h[kBoxes];
      for (uint32_t j = 0; j < kBoxes; ++j) {
        (void)m.alloc_prim_array(longs_, uint32_t(1 + rng.below(48)));
        Ref b = m.alloc_instance(box_);
        *reinterpret_cast<BoxFields*>(payload(b)) = BoxFields{id, j, mix3(id, kBoxSalt, j)};
        box_h[j] = scope.make(b);
      }
      Ref arr = m.get(a);  // no safepoint from here to the publication
      for (uint32_t i = 1; i < len; ++i) {
        const int64_t e = element_of(id, i, nt);
        if (e < 0) continue;
        m.write_ref(arr, i, m.get(e < int64_t(kBoxes) ? box_h[e] : target_h[e - kBoxes]));
      }
    }
    m.write_ref(table(m, st), s, m.get(a));
    st.slot_id[s] = id;
    ++st.created[int(kind)];
  }

  // A new version of a primitive array, written where it is now.
  void rewrite(Mutator& m, ThreadShadow& st, uint32_t s) {
    const uint64_t id = st.slot_id[s];
    const uint32_t v = ++st.version[sequence_of(id)];
    fill_prim(get_ref(table(m, st), s), id, v);
    ++st.rewrites;
  }

  // A few elements of a random slot, read by the mutator (during
  // compaction, these reads fault pages of large objects in).
  void spot_check(Mutator& m, ThreadShadow& st, Rng& rng) {
    const uint32_t s = uint32_t(rng.below(slots_));
    const uint64_t id = st.slot_id[s];
    if (!id) return;
    ++st.spot_checks;
    Ref a = get_ref(table(m, st), s);
    const uint32_t len = length_of(id);
    if (!a || header(a)->klass != class_of(id) || array_length(a) != len)
      return fail(m, "slot " + std::to_string(s) + " lost array " + std::to_string(id) + " (class or length)");
    if (kind_of(id) != Kind::refs) {
      const uint64_t* w = payload_words(a);
      const uint32_t v = st.version[sequence_of(id)];
      if (w[0] != prim_word0(id)) return fail(m, "array " + std::to_string(id) + ": element 0 is not its id");
      for (int k = 0; k < 8; ++k) {
        const uint64_t i = k == 0 ? len - 1 : 1 + rng.below(len - 1);
        if (w[i] != prim_word(kind_of(id) == Kind::doubles, id, v, i))
          return fail(m, "array " + std::to_string(id) + ": element " + std::to_string(i) + " is wrong");
      }
      return;
    }
    Ref tag = get_ref(a, 0);
    if (!tag || header(tag)->klass != tag_ || reinterpret_cast<const TagFields*>(payload(tag))->id != id)
      return fail(m, "Object[] " + std::to_string(id) + ": its tag is wrong");
    const auto& tg = st.targets[sequence_of(id)];
    const uint32_t nt = uint32_t(std::count_if(tg.begin(), tg.end(), [](uint64_t x) { return x != 0; }));
    for (int k = 0; k < 8; ++k) {
      const uint64_t i = 1 + rng.below(len - 1);
      const std::string e = check_element(get_ref(a, uint32_t(i)), id, i, element_of(id, i, nt), tg);
      if (!e.empty()) return fail(m, e);
    }
  }

  // The identity of one Object[] element (not the content of a target).
  std::string check_element(Ref e, uint64_t id, uint64_t i, int64_t want,
                            const std::array<uint64_t, kTargets>& targets) const {
    // The message is built only on failure: this runs for every element.
    auto where = [&] { return "Object[] " + std::to_string(id) + " element " + std::to_string(i); };
    if (want < 0) return e ? where() + ": should be null" : std::string();
    if (!e) return where() + ": null";
    if (want < int64_t(kBoxes)) {
      const auto* f = reinterpret_cast<const BoxFields*>(payload(e));
      if (header(e)->klass != box_ || f->owner != id || f->index != uint64_t(want) ||
          f->check != mix3(id, kBoxSalt, uint64_t(want)))
        return where() + ": not box " + std::to_string(want);
      return std::string();
    }
    const uint64_t tid = targets[want - kBoxes];
    if (header(e)->klass != class_of(tid) || array_length(e) != length_of(tid) ||
        payload_words(e)[0] != prim_word0(tid))
      return where() + ": not array " + std::to_string(tid);
    return std::string();
  }

  Ref table(Mutator& m, ThreadShadow& st) { return m.vm().global(st.table_root); }

  void fail(Mutator& m, const std::string& e) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (error_.empty()) error_ = e;
    }
    m.vm().fail(VmErrorKind::workload, REMAP_OK, "toyvm: large_arrays: " + e);
    throw VmAbort{};
  }

  // ---- the full check, with every mutator stopped ----

  struct Pass {
    std::unordered_map<uint64_t, Ref> seen;  // id -> address: one copy per id
    uint64_t heap_sum = 0, shadow_sum = 0;
  };

  // Class, length, id and every word of the primitive array `id` at `a`.
  std::string check_prim(Pass& pass, Ref a, uint64_t id) {
    const std::string name = "array " + std::to_string(id);
    if (!a) return name + ": null";
    auto [it, fresh] = pass.seen.emplace(id, a);
    if (!fresh) return it->second == a ? "" : name + ": two addresses";
    ThreadShadow* owner = owner_of(id);
    if (!owner || sequence_of(id) >= owner->version.size()) return name + ": not an id this run made";
    const uint32_t len = length_of(id);
    if (header(a)->klass != class_of(id) || array_length(a) != len)
      return name + ": class or length changed";
    const uint64_t* w = payload_words(a);
    if (w[0] != prim_word0(id)) return name + ": element 0 is " + std::to_string(w[0]) + ", not its id";
    const uint32_t v = owner->version[sequence_of(id)];
    const bool doubles = kind_of(id) == Kind::doubles;
    for (uint64_t i = 1; i < len; ++i) {
      const uint64_t want = prim_word(doubles, id, v, i);
      pass.heap_sum += w[i];
      pass.shadow_sum += want;
      if (w[i] != want) return name + " (version " + std::to_string(v) + "): element " + std::to_string(i) + " is wrong";
    }
    return "";
  }

  std::string check_refs(Pass& pass, Ref a, uint64_t id, const ThreadShadow& st) {
    const std::string name = "Object[] " + std::to_string(id);
    if (!a) return name + ": null";
    if (!pass.seen.emplace(id, a).second) return name + ": in two slots";
    const uint32_t len = length_of(id);
    if (header(a)->klass != refs_ || array_length(a) != len) return name + ": class or length changed";
    Ref tag = get_ref(a, 0);
    if (!tag || header(tag)->klass != tag_) return name + ": tag missing";
    const auto* tf = reinterpret_cast<const TagFields*>(payload(tag));
    if (tf->id != id || tf->length != len) return name + ": the tag of " + std::to_string(tf->id);
    const auto& tg = st.targets[sequence_of(id)];
    const uint32_t nt = uint32_t(std::count_if(tg.begin(), tg.end(), [](uint64_t x) { return x != 0; }));
    Ref box_at[kBoxes] = {};
    for (uint64_t i = 1; i < len; ++i) {
      Ref e = get_ref(a, uint32_t(i));
      const int64_t want = element_of(id, i, nt);
      std::string err = check_element(e, id, i, want, tg);
      if (err.empty() && want >= 0 && want < int64_t(kBoxes)) {
        if (!box_at[want]) box_at[want] = e;
        else if (box_at[want] != e) err = name + ": two addresses for box " + std::to_string(want);
      } else if (err.empty() && want >= int64_t(kBoxes)) {
        err = check_prim(pass, e, tg[want - kBoxes]);
      }
      if (!err.empty()) return err;
      pass.heap_sum += reinterpret_cast<uintptr_t>(e) != 0;
      pass.shadow_sum += want >= 0;
    }
    return "";
  }

  std::string verify(Vm& vm) {
    Pass pass;
    uint64_t created = 0;
    for (size_t t = 0; t < shadow_.size(); ++t) {
      const ThreadShadow& st = shadow_[t];
      for (uint64_t c : st.created) created += c;
      Ref table = vm.global(st.table_root);
      if (!table) continue;  // the thread has not allocated it yet
      if (header(table)->klass != table_ || array_length(table) != slots_)
        return "thread " + std::to_string(t) + ": its slot table changed";
      for (uint32_t s = 0; s < slots_; ++s) {
        const uint64_t id = st.slot_id[s];
        Ref a = get_ref(table, s);
        std::string err;
        if (!id) err = a ? "an empty slot holds an object" : "";
        else if (kind_of(id) == Kind::refs) err = check_refs(pass, a, id, st);
        else err = check_prim(pass, a, id);
        if (!err.empty()) return "thread " + std::to_string(t) + " slot " + std::to_string(s) + ": " + err;
      }
    }
    std::lock_guard<std::mutex> g(mu_);
    heap_sum_ = pass.heap_sum;
    shadow_sum_ = pass.shadow_sum;
    ++checks_;
    // Turnover: the share of the last check's large objects gone by now,
    // over the checks that followed new allocation.
    size_t gone = 0;
    for (uint64_t id : live_)
      if (!pass.seen.count(id)) ++gone;
    if (created != created_at_check_ && !live_.empty()) {
      died_sum_ += double(gone) / double(live_.size());
      ++turnover_checks_;
    }
    created_at_check_ = created;
    live_.clear();
    for (const auto& kv : pass.seen) live_.insert(kv.first);
    return "";
  }

  WorkloadParams p_;
  size_t slots_ = 1;
  uint64_t prim_lo_ = 0, prim_hi_ = 0, ref_lo_ = 0, ref_hi_ = 0;
  ClassId longs_ = 0, doubles_ = 0, refs_ = 0, table_ = 0, tag_ = 0, box_ = 0;
  std::vector<ThreadShadow> shadow_;
  std::mutex mu_;
  std::string error_;
  uint64_t heap_sum_ = 0, shadow_sum_ = 0, checks_ = 0, created_at_check_ = 0;
  std::unordered_set<uint64_t> live_;
  double died_sum_ = 0;
  uint64_t turnover_checks_ = 0;
};

}  // namespace

std::unique_ptr<Workload> make_large_arrays() { return std::make_unique<LargeArrays>(); }

}  // namespace toyvm

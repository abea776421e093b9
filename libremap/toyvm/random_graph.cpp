// random_graph.cpp — a graph of `size` nodes shared by every mutator thread,
// mutated while libremap compacts: a table (Node[] in a global root) names
// each node's current object; thread t owns the nodes i with i % threads ==
// t and, on a random owned node, either
//   - rewrites its payload and its blob in place (new version),
//   - points one of its 3 edges at the current object of any node (read
//     from the table, which other threads update concurrently), or null,
//   - replaces it by a fresh object (new blob of a random size, edges
//     copied, version + 1) and publishes that in the table; the old object
//     (its edges cleared) lives on while some edge still points at it.
// A shadow model outside the heap (per node: version, edges as node ids,
// blob length) is written by the owner together with the heap, and checked
// against the heap after every collection (in a pause of its own) and at the
// end: every node's id, version, payload and blob, and every edge's target
// (right node id, self-consistent payload, not from the future).
#include <algorithm>
#include <mutex>

#include "workloads.h"

namespace toyvm {

namespace {

constexpr uint32_t kEdges = 3;
constexpr uint32_t kBlobSlot = 3;  // slot 3 holds the node's blob (long[])
constexpr size_t kDataWords = 6;
constexpr uint64_t kBlobSalt = 0xb10bb10bull;

struct NodeFields {
  uint64_t id;
  uint64_t version;
  uint64_t data[kDataWords];  // mix3(id, version, w)
};

struct Shadow {
  uint64_t version = 0;
  int64_t edge[kEdges] = {-1, -1, -1};
  uint64_t blob_words = 0;
};

class RandomGraph final : public Workload {
 public:
  void setup(Vm& vm, const WorkloadParams& p) override {
    p_ = p;
    n_ = std::max<size_t>(p.size, p.threads);
    node_ = vm.define_instance("graph.Node", kEdges + 1, sizeof(NodeFields));
    table_ = vm.define_ref_array("graph.Node[]");
    longs_ = vm.define_prim_array("long[]", 8);
    shadow_.assign(n_, Shadow{});
    vm.set_after_gc([this, &vm] { return verify(vm); });
    // The initial graph, built by this (the runner's) thread as a mutator.
    std::unique_ptr<Mutator> m = vm.attach();
    table_root_ = vm.add_global(nullptr);
    vm.set_global(table_root_, m->alloc_ref_array(table_, uint32_t(n_)));
    Rng rng(p.seed);
    for (size_t i = 0; i < n_; ++i) {
      replace(*m, i, rng);
      built_.store(i + 1, std::memory_order_release);
    }
  }

  void mutator(Mutator& m, unsigned tid) override {
    Rng rng(p_.seed * 7919 + tid + 1);
    const size_t owned = (n_ - tid + p_.threads - 1) / p_.threads;
    uint64_t ops = 0;
    for (unsigned round = 0; round < p_.rounds; ++round) {
      for (size_t op = 0; op < p_.ops; ++op) {
        m.poll();
        const size_t i = tid + p_.threads * rng.below(owned);
        const double r = rng.unit();
        if (r < 0.35) update_in_place(m, i);
        else if (r < 0.7) write_edge(m, i, rng);
        else replace(m, i, rng);
        ++ops;
      }
    }
    std::lock_guard<std::mutex> g(mu_);
    ops_ += ops;
    ++threads_done_;
  }

  void finish(Vm& vm, WorkloadResult& out) override {
    std::string problem = verify(vm);
    std::lock_guard<std::mutex> g(mu_);
    out.operations = ops_;
    out.checksum = heap_hash_;
    out.expected = shadow_hash_;
    out.verified = problem.empty() && threads_done_ == p_.threads && heap_hash_ == shadow_hash_;
    out.detail = problem.empty() ? std::to_string(ops_) + " mutations of " + std::to_string(n_) +
                                       " shared nodes; heap matched the shadow model after " +
                                       std::to_string(checks_) + " checks"
                                 : problem;
  }

 private:
  Ref table(Mutator& m) { return m.vm().global(table_root_); }

  void update_in_place(Mutator& m, size_t i) {
    Shadow& s = shadow_[i];
    Ref node = get_ref(table(m), uint32_t(i));
    const uint64_t v = s.version + 1;
    auto* f = reinterpret_cast<NodeFields*>(payload(node));
    for (size_t w = 0; w < kDataWords; ++w) f->data[w] = mix3(i, v, w);
    Ref blob = get_ref(node, kBlobSlot);
    uint64_t* bw = payload_words(blob);
    for (uint64_t w = 0; w < s.blob_words; ++w) bw[w] = mix3(i ^ kBlobSalt, v, w);
    f->version = v;
    s.version = v;
  }

  void write_edge(Mutator& m, size_t i, Rng& rng) {
    const uint32_t k = uint32_t(rng.below(kEdges));
    Ref node = get_ref(table(m), uint32_t(i));
    if (rng.unit() < 0.1) {
      m.write_ref(node, k, nullptr);
      shadow_[i].edge[k] = -1;
      return;
    }
    const size_t j = rng.below(n_);
    m.write_ref(node, k, get_ref(table(m), uint32_t(j)));
    shadow_[i].edge[k] = int64_t(j);
  }

  // A fresh object for node i: new blob, edges of the old one, version + 1.
  void replace(Mutator& m, size_t i, Rng& rng) {
    Shadow& s = shadow_[i];
    const uint64_t blob_words = 2 + rng.below(127);
    const uint64_t v = s.version + 1;
    HandleScope scope(m);
    size_t blob = scope.make(m.alloc_prim_array(longs_, uint32_t(blob_words)));
    uint64_t* bw = payload_words(m.get(blob));
    for (uint64_t w = 0; w < blob_words; ++w) bw[w] = mix3(i ^ kBlobSalt, v, w);
    Ref node = m.alloc_instance(node_);
    Ref old = get_ref(table(m), uint32_t(i));  // after the last safepoint
    for (uint32_t k = 0; k < kEdges; ++k) m.write_ref(node, k, old ? get_ref(old, k) : nullptr);
    // The old object lives on while edges point at it; its own edges are
    // dropped so that old versions do not retain chains of older ones.
    if (old)
      for (uint32_t k = 0; k < kEdges; ++k) m.write_ref(old, k, nullptr);
    m.write_ref(node, kBlobSlot, m.get(blob));
    auto* f = reinterpret_cast<NodeFields*>(payload(node));
    f->id = i;
    f->version = v;
    for (size_t w = 0; w < kDataWords; ++w) f->data[w] = mix3(i, v, w);
    m.write_ref(table(m), uint32_t(i), node);
    s.version = v;
    s.blob_words = blob_words;
  }

  // "" if object `obj` is a consistent version of node `id` (not newer than
  // the shadow's); blob_words == 0 skips the blob length check.
  std::string check_node(Ref obj, size_t id, uint64_t version_max, uint64_t blob_words, bool exact) {
    if (!obj) return "node " + std::to_string(id) + ": null";
    if (header(obj)->klass != node_) return "node " + std::to_string(id) + ": wrong class";
    const auto* f = reinterpret_cast<const NodeFields*>(payload(obj));
    if (f->id != id) return "an object of node " + std::to_string(f->id) + " where node " + std::to_string(id) + " belongs";
    if (exact ? f->version != version_max : f->version > version_max)
      return "node " + std::to_string(id) + ": version " + std::to_string(f->version) + ", shadow " +
             std::to_string(version_max);
    for (size_t w = 0; w < kDataWords; ++w)
      if (f->data[w] != mix3(id, f->version, w)) return "node " + std::to_string(id) + ": payload word " + std::to_string(w);
    Ref blob = get_ref(obj, kBlobSlot);
    if (!blob || header(blob)->klass != longs_) return "node " + std::to_string(id) + ": blob missing";
    if (blob_words && array_length(blob) != blob_words) return "node " + std::to_string(id) + ": blob length";
    const uint64_t* bw = payload_words(blob);
    for (uint64_t w = 0; w < array_length(blob); ++w)
      if (bw[w] != mix3(id ^ kBlobSalt, f->version, w)) return "node " + std::to_string(id) + ": blob word " + std::to_string(w);
    return "";
  }

  // Runs with every mutator stopped (after-GC pause, or the end).
  std::string verify(Vm& vm) {
    Ref t = vm.global(table_root_);
    const size_t built = built_.load(std::memory_order_acquire);
    uint64_t hh = 0x6a09e667f3bcc908ull, sh = hh;
    auto add = [](uint64_t& h, uint64_t w) { h = mix3(h, w, 0x51); };
    for (size_t i = 0; i < built; ++i) {
      const Shadow& s = shadow_[i];
      Ref n = get_ref(t, uint32_t(i));
      std::string e = check_node(n, i, s.version, s.blob_words, true);
      if (!e.empty()) return e;
      add(hh, reinterpret_cast<const NodeFields*>(payload(n))->version);
      add(sh, s.version);
      for (uint32_t k = 0; k < kEdges; ++k) {
        Ref target = get_ref(n, k);
        const int64_t want = s.edge[k];
        if (want < 0) {
          if (target) return "node " + std::to_string(i) + " edge " + std::to_string(k) + ": should be null";
          add(hh, ~0ull);
        } else {
          e = check_node(target, size_t(want), shadow_[want].version, 0, false);
          if (!e.empty()) return "edge " + std::to_string(k) + " of node " + std::to_string(i) + ": " + e;
          add(hh, reinterpret_cast<const NodeFields*>(payload(target))->id);
        }
        add(sh, uint64_t(want));
      }
    }
    std::lock_guard<std::mutex> g(mu_);
    heap_hash_ = hh;
    shadow_hash_ = sh;
    ++checks_;
    return "";
  }

  WorkloadParams p_;
  size_t n_ = 0;
  ClassId node_ = 0, table_ = 0, longs_ = 0;
  size_t table_root_ = 0;
  std::vector<Shadow> shadow_;
  std::atomic<size_t> built_{0};
  std::mutex mu_;
  uint64_t ops_ = 0, checks_ = 0, heap_hash_ = 0, shadow_hash_ = 0;
  unsigned threads_done_ = 0;
};

}  // namespace

std::unique_ptr<Workload> make_random_graph() { return std::make_unique<RandomGraph>(); }

}  // namespace toyvm

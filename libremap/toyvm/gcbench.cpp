// gcbench.cpp — the GCBench shape (Boehm's, after Ellis and Kovac), per
// mutator thread: a stretch tree is built and dropped; a long-lived tree of
// `depth` and a large double[] stay live while trees of min_depth..depth
// (step 2) are built top-down (Populate) and bottom-up (MakeTree) and
// dropped.
//
// Checks (what the original leaves out): every tree built has the exact
// shape and per-node fields; at the end the long-lived tree and every element
// of the array are intact. Each node records its depth in `i` and a
// per-thread tag in `j`, so that a node moved to the wrong place, a lost
// reference update or a stale page is caught.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

#include "workloads.h"

namespace toyvm {

namespace {

struct NodeFields {
  int32_t i;  // depth below this node
  int32_t j;  // the owning thread's tag
};

uint64_t tree_size(int depth) { return (uint64_t(1) << (depth + 1)) - 1; }

// Nodes or array elements between two safepoint polls of a long loop.
constexpr uint32_t kPollEvery = 4096;

class GcBench final : public Workload {
 public:
  void setup(Vm& vm, const WorkloadParams& p) override {
    p_ = p;
    node_ = vm.define_instance("GCBench.Node", 2, sizeof(NodeFields));
    doubles_ = vm.define_prim_array("double[]", 8);
  }

  void mutator(Mutator& m, unsigned tid) override {
    const int32_t tag = int32_t(0x6c00 + tid);
    const int depth = p_.depth, stretch = depth + 2;
    uint64_t checked = 0;
    for (unsigned round = 0; round < p_.rounds; ++round) {
      HandleScope scope(m);
      // Stretch the heap.
      {
        HandleScope s(m);
        size_t t = s.make(make_tree(m, stretch, tag));
        checked += check_tree(m, t, stretch, tag);
      }
      // The long-lived data.
      size_t long_lived = scope.make(new_node(m, depth, tag));
      populate(m, depth, long_lived, tag);
      size_t array = scope.make(m.alloc_prim_array(doubles_, uint32_t(p_.array_size)));
      // In chunks with a safepoint between (the array may move there).
      for (size_t k = 1; k < p_.array_size / 2; m.poll()) {
        double* a = reinterpret_cast<double*>(payload(m.get(array)));
        for (const size_t e = std::min(k + kPollEvery, p_.array_size / 2); k < e; ++k) a[k] = 1.0 / double(k);
      }
      for (int d = p_.min_depth; d <= depth; d += 2) {
        uint64_t iters = std::max<uint64_t>(
            1, uint64_t(p_.iteration_scale * 2.0 * double(tree_size(stretch)) / double(tree_size(d))));
        for (uint64_t k = 0; k < iters; ++k) {
          HandleScope s(m);
          size_t t = s.make(new_node(m, d, tag));
          populate(m, d, t, tag);
          checked += check_tree(m, t, d, tag);
        }
        for (uint64_t k = 0; k < iters; ++k) {
          HandleScope s(m);
          size_t t = s.make(make_tree(m, d, tag));
          checked += check_tree(m, t, d, tag);
        }
      }
      checked += check_tree(m, long_lived, depth, tag);
      for (size_t k = 1; k < p_.array_size; m.poll()) {
        const double* a = reinterpret_cast<const double*>(payload(m.get(array)));
        for (const size_t e = std::min(k + kPollEvery, p_.array_size); k < e; ++k) {
          if (k < p_.array_size / 2 ? a[k] != 1.0 / double(k) : a[k] != 0.0)
            fail(m, "long-lived array element " + std::to_string(k) +
                        (k < p_.array_size / 2 ? " changed" : " is not 0"));
        }
      }
      if (array_length(m.get(array)) != p_.array_size) fail(m, "long-lived array length changed");
    }
    std::lock_guard<std::mutex> g(mu_);
    nodes_checked_ += checked;
    threads_done_ += 1;
  }

  void finish(Vm&, WorkloadResult& out) override {
    std::lock_guard<std::mutex> g(mu_);
    out.checksum = nodes_checked_;
    out.expected = expected_nodes();
    out.operations = nodes_checked_;
    out.verified = error_.empty() && threads_done_ == p_.threads && out.checksum == out.expected;
    out.detail = !error_.empty() ? error_
                 : out.verified  ? "every tree and the long-lived array intact (" +
                                      std::to_string(out.checksum) + " nodes checked)"
                                 : "checked " + std::to_string(out.checksum) + " nodes, expected " +
                                      std::to_string(out.expected);
  }

 private:
  uint64_t expected_nodes() const {
    const int depth = p_.depth, stretch = depth + 2;
    uint64_t per_round = tree_size(stretch) + tree_size(depth);
    for (int d = p_.min_depth; d <= depth; d += 2) {
      uint64_t iters = std::max<uint64_t>(
          1, uint64_t(p_.iteration_scale * 2.0 * double(tree_size(stretch)) / double(tree_size(d))));
      per_round += 2 * iters * tree_size(d);
    }
    return per_round * p_.rounds * p_.threads;
  }

  Ref new_node(Mutator& m, int depth, int32_t tag) {
    Ref n = m.alloc_instance(node_);
    auto* f = reinterpret_cast<NodeFields*>(payload(n));
    f->i = depth;
    f->j = tag;
    return n;
  }

  // Top-down: the node in handle `node` gets two children, recursively.
  void populate(Mutator& m, int depth, size_t node, int32_t tag) {
    if (depth <= 0) return;
    HandleScope s(m);
    size_t l = s.make(new_node(m, depth - 1, tag));
    m.write_ref(m.get(node), 0, m.get(l));
    size_t r = s.make(new_node(m, depth - 1, tag));
    m.write_ref(m.get(node), 1, m.get(r));
    populate(m, depth - 1, l, tag);
    populate(m, depth - 1, r, tag);
  }

  // Bottom-up: children first, then the parent.
  Ref make_tree(Mutator& m, int depth, int32_t tag) {
    if (depth <= 0) return new_node(m, 0, tag);
    HandleScope s(m);
    size_t l = s.make(make_tree(m, depth - 1, tag));
    size_t r = s.make(make_tree(m, depth - 1, tag));
    Ref n = new_node(m, depth, tag);
    m.write_ref(n, 0, m.get(l));
    m.write_ref(n, 1, m.get(r));
    return n;
  }

  // Returns the node count. Polls every kPollEvery nodes (a long check
  // would otherwise hold every pause back for milliseconds), so the walk
  // keeps its path in handles.
  uint64_t check_tree(Mutator& m, size_t tree, int depth, int32_t tag) {
    uint32_t budget = kPollEvery;
    return check_node(m, tree, depth, tag, budget);
  }
  uint64_t check_node(Mutator& m, size_t h, int depth, int32_t tag, uint32_t& budget) {
    if (--budget == 0) {
      budget = kPollEvery;
      m.poll();
    }
    Ref n = m.get(h);
    const auto* f = reinterpret_cast<const NodeFields*>(payload(n));
    if (header(n)->klass != node_ || f->i != depth || f->j != tag) {
      record_error("a tree node has the wrong class or fields (depth " + std::to_string(f->i) +
                   ", want " + std::to_string(depth) + ")");
      return 0;
    }
    Ref l = get_ref(n, 0), r = get_ref(n, 1);
    if (depth == 0) {
      if (l || r) record_error("a leaf has children");
      return 1;
    }
    if (!l || !r) {
      record_error("an inner node lost a child");
      return 1;
    }
    HandleScope s(m);
    const size_t hl = s.make(l), hr = s.make(r);
    const uint64_t left = check_node(m, hl, depth - 1, tag, budget);
    return 1 + left + check_node(m, hr, depth - 1, tag, budget);
  }

  void record_error(const std::string& e) {
    std::lock_guard<std::mutex> g(mu_);
    if (error_.empty()) error_ = e;
  }
  [[noreturn]] void fail(Mutator& m, const std::string& e) {
    record_error(e);
    m.vm().fail(VmErrorKind::workload, REMAP_OK, "toyvm: gcbench: " + e);
    throw VmAbort{};
  }

  WorkloadParams p_;
  ClassId node_ = 0, doubles_ = 0;
  std::mutex mu_;
  uint64_t nodes_checked_ = 0;
  unsigned threads_done_ = 0;
  std::string error_;
};

}  // namespace

std::unique_ptr<Workload> make_gcbench() { return std::make_unique<GcBench>(); }

}  // namespace toyvm

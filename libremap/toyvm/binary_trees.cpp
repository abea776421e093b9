// binary_trees.cpp — the benchmarks game's binary-trees shape: a stretch
// tree of depth+1, a long-lived tree of `depth`, and for each d in
// min_depth..depth (step 2) 2^(depth - d + min_depth) trees of depth d built
// bottom-up, walked (item check: node count) and dropped. Mutator threads
// share the iterations of each depth (i % threads == tid).
//
// The checksum is the sum of every item check; it must equal the count
// computed from the shapes, and the long-lived tree must still count right
// at the end.
#include <mutex>

#include "workloads.h"

namespace toyvm {

namespace {

uint64_t tree_size(int depth) { return (uint64_t(1) << (depth + 1)) - 1; }

class BinaryTrees final : public Workload {
 public:
  void setup(Vm& vm, const WorkloadParams& p) override {
    p_ = p;
    node_ = vm.define_instance("binarytrees.TreeNode", 2, 0);
  }

  void mutator(Mutator& m, unsigned tid) override {
    uint64_t sum = 0, bad = 0;
    for (unsigned round = 0; round < p_.rounds; ++round) {
      HandleScope scope(m);
      {
        HandleScope s(m);
        size_t t = s.make(bottom_up(m, p_.depth + 1));
        sum += item_check(m.get(t), bad);
      }
      size_t long_lived = scope.make(bottom_up(m, p_.depth));
      for (int d = p_.min_depth; d <= p_.depth; d += 2) {
        uint64_t iters = iterations(d);
        for (uint64_t i = tid; i < iters; i += p_.threads) {
          HandleScope s(m);
          size_t t = s.make(bottom_up(m, d));
          sum += item_check(m.get(t), bad);
        }
      }
      sum += item_check(m.get(long_lived), bad);
    }
    std::lock_guard<std::mutex> g(mu_);
    checksum_ += sum;
    bad_ += bad;
    ++threads_done_;
  }

  void finish(Vm&, WorkloadResult& out) override {
    std::lock_guard<std::mutex> g(mu_);
    uint64_t per_round = p_.threads * (tree_size(p_.depth + 1) + tree_size(p_.depth));
    for (int d = p_.min_depth; d <= p_.depth; d += 2) per_round += iterations(d) * tree_size(d);
    out.checksum = checksum_;
    out.expected = per_round * p_.rounds;
    out.operations = checksum_;
    out.verified = bad_ == 0 && threads_done_ == p_.threads && out.checksum == out.expected;
    out.detail = out.verified ? "item-check checksum " + std::to_string(out.checksum) + " as expected"
                              : "checksum " + std::to_string(out.checksum) + ", expected " +
                                    std::to_string(out.expected) + "; " + std::to_string(bad_) +
                                    " malformed nodes";
  }

 private:
  uint64_t iterations(int d) const { return uint64_t(1) << (p_.depth - d + p_.min_depth); }

  Ref bottom_up(Mutator& m, int depth) {
    if (depth <= 0) return m.alloc_instance(node_);
    HandleScope s(m);
    size_t l = s.make(bottom_up(m, depth - 1));
    size_t r = s.make(bottom_up(m, depth - 1));
    Ref n = m.alloc_instance(node_);
    m.write_ref(n, 0, m.get(l));
    m.write_ref(n, 1, m.get(r));
    return n;
  }

  // Node count; a node with one child or the wrong class counts as bad.
  uint64_t item_check(Ref n, uint64_t& bad) const {
    if (header(n)->klass != node_) {
      ++bad;
      return 0;
    }
    Ref l = get_ref(n, 0), r = get_ref(n, 1);
    if (!l && !r) return 1;
    if (!l || !r) {
      ++bad;
      return 1;
    }
    return 1 + item_check(l, bad) + item_check(r, bad);
  }

  WorkloadParams p_;
  ClassId node_ = 0;
  std::mutex mu_;
  uint64_t checksum_ = 0, bad_ = 0;
  unsigned threads_done_ = 0;
};

}  // namespace

std::unique_ptr<Workload> make_binary_trees() { return std::make_unique<BinaryTrees>(); }

}  // namespace toyvm

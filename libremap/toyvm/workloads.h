// workloads.h — the toy VM's workloads and the runner that plays one on a
// fresh VM with N mutator threads and reports what every collection did.
//
// Each workload checks its own results (tree shapes, checksums, cache
// contents, a shadow model of a shared graph) and says so in
// WorkloadResult::verified; a failed check also fails the VM, so the run's
// error tells what went wrong first.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vm.h"

namespace toyvm {

struct WorkloadParams {
  unsigned threads = 2;
  unsigned rounds = 1;       // repetitions of the workload's main loop
  uint64_t seed = 1;
  // gcbench: long-lived tree depth; binary-trees: max depth.
  int depth = 16;
  int min_depth = 4;
  // gcbench: trees built per depth, as a fraction of the classic count
  // (2 * size of the stretch tree / size of a tree of that depth).
  double iteration_scale = 1.0;
  size_t array_size = 500000;  // gcbench's long-lived double[]
  // lru: entries per thread's cache; graph: nodes shared by all threads;
  // large_arrays: large-array slots per thread (capped to fit the heap).
  size_t size = 4096;
  // lru, graph, large_arrays: operations per thread per round.
  size_t ops = 100000;
  size_t max_value_bytes = 8192;   // lru: value sizes are log-uniform 16 B .. this
  double large_fraction = 0.002;   // lru: values of 3/4 of a region (large objects)
};

struct WorkloadResult {
  bool verified = false;
  uint64_t checksum = 0;   // what the workload computed
  uint64_t expected = 0;   // what it should be (when known)
  uint64_t operations = 0;
  std::string detail;      // one line: what was checked, or what failed
};

class Workload {
 public:
  virtual ~Workload() = default;
  // Defines classes, globals and the after-GC check; before any mutator.
  virtual void setup(Vm& vm, const WorkloadParams& p) = 0;
  // Body of mutator thread `tid` (0 .. threads-1).
  virtual void mutator(Mutator& m, unsigned tid) = 0;
  // After every mutator has ended, a last collection, and quiesce (heap
  // IDLE, nothing running): the final checks.
  virtual void finish(Vm& vm, WorkloadResult& out) = 0;
};

std::unique_ptr<Workload> make_gcbench();
std::unique_ptr<Workload> make_binary_trees();
std::unique_ptr<Workload> make_lru_cache();
std::unique_ptr<Workload> make_random_graph();
std::unique_ptr<Workload> make_large_arrays();

// "gcbench", "binary_trees", "lru_cache", "random_graph", "large_arrays".
const std::vector<std::string>& workload_names();
std::unique_ptr<Workload> make_workload(const std::string& name);

struct RunOptions {
  std::string workload = "gcbench";
  VmConfig vm;
  WorkloadParams params;
};

struct RunResult {
  std::string workload;
  int backend = 0;     // resolved by the library (never AUTO)
  int fault_mode = 0;
  Marking marking = Marking::stw;  // how the VM marked (its config, or stw where the backend forced it)
  std::string marking_note;        // why marking is not what was asked ("" when it is)
  size_t capacity = 0;      // as created
  size_t max_capacity = 0;  // the reservation (VmConfig::max_heap_bytes)
  size_t region_size = 0;
  WorkloadResult result;
  std::vector<GcRecord> gcs;
  std::vector<PauseRecord> pauses;  // every stop-the-world pause, in order
  std::vector<EventRecord> events;  // libremap's events (VmConfig::record_events)
  uint64_t wall_ns = 0;           // mutators start to last mutator done
  uint64_t bytes_allocated = 0;   // TLABs and large objects handed out
  // Why the run failed; kind none when it did not.
  VmErrorKind error_kind = VmErrorKind::none;
  remap_status error_status = REMAP_OK;
  std::string error;
};

// Never throws for VM or library failures: they are in the result.
RunResult run_workload(const RunOptions& options);

// Deterministic per-thread randomness (splitmix64): no shared state.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
  double unit() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }
};

// A word of payload derived from (a, b, i): what the checks recompute.
inline uint64_t mix3(uint64_t a, uint64_t b, uint64_t i) {
  uint64_t z = a * 0x9e3779b97f4a7c15ull ^ (b + 0x7f4a7c159e3779b9ull) * 0xbf58476d1ce4e5b9ull ^ i;
  z = (z ^ (z >> 31)) * 0x94d049bb133111ebull;
  return z ^ (z >> 29);
}

}  // namespace toyvm

// runner.cpp — plays one workload on a fresh VM: N mutator threads, a last
// collection once they are done, the workload's final checks, and
// everything the VM recorded.
#include <exception>
#include <thread>

#include "workloads.h"

namespace toyvm {

const std::vector<std::string>& workload_names() {
  static const std::vector<std::string> names = {"gcbench", "binary_trees", "lru_cache",
                                                 "random_graph", "large_arrays"};
  return names;
}

std::unique_ptr<Workload> make_workload(const std::string& name) {
  if (name == "gcbench") return make_gcbench();
  if (name == "binary_trees") return make_binary_trees();
  if (name == "lru_cache") return make_lru_cache();
  if (name == "random_graph") return make_random_graph();
  if (name == "large_arrays") return make_large_arrays();
  return nullptr;
}

RunResult run_workload(const RunOptions& opt) {
  RunResult out;
  out.workload = opt.workload;
  std::unique_ptr<Workload> w = make_workload(opt.workload);
  if (!w) {
    out.error_kind = VmErrorKind::workload;
    out.error_status = REMAP_EINVAL;
    out.error = "toyvm: unknown workload '" + opt.workload + "'";
    return out;
  }
  std::unique_ptr<Vm> vm;
  try {
    vm = std::make_unique<Vm>(opt.vm);
  } catch (const VmStartError& e) {
    out.error_kind = VmErrorKind::library;
    out.error_status = e.status;
    out.error = e.what();
    return out;
  }
  out.backend = vm->info().backend;
  out.fault_mode = vm->info().fault_mode;
  out.capacity = vm->info().capacity;
  out.max_capacity = vm->info().max_capacity;
  out.region_size = vm->info().region_size;

  WorkloadParams p = opt.params;
  if (p.threads == 0) p.threads = 1;
  try {
    w->setup(*vm, p);
  } catch (const std::exception& e) {
    vm->fail(VmErrorKind::workload, REMAP_EINVAL, std::string("toyvm: setup: ") + e.what());
  }

  const uint64_t t0 = now_ns();
  if (!vm->failed()) {
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < p.threads; ++t) {
      threads.emplace_back([&, t] {
        try {
          std::unique_ptr<Mutator> m = vm->attach();
          try {
            w->mutator(*m, t);
          } catch (const VmAbort&) {
          }
        } catch (const VmAbort&) {
        } catch (const std::exception& e) {
          vm->fail(VmErrorKind::workload, REMAP_OK, std::string("toyvm: mutator: ") + e.what());
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  out.wall_ns = now_ns() - t0;

  if (!vm->failed()) vm->collect_now();
  vm->quiesce();
  if (!vm->failed()) {
    try {
      w->finish(*vm, out.result);
    } catch (const std::exception& e) {
      out.result.verified = false;
      out.result.detail = std::string("final check threw: ") + e.what();
    }
    if (!out.result.verified && !vm->failed())
      vm->fail(VmErrorKind::workload, REMAP_OK, "toyvm: " + opt.workload + ": " + out.result.detail);
  }
  if (vm->failed()) {
    out.result.verified = false;
    out.error_kind = vm->error_kind();
    out.error_status = vm->error_status();
    out.error = vm->error_message();
  }
  out.marking = vm->marking();
  out.marking_note = vm->marking_note();
  out.gcs = vm->records();
  out.pauses = vm->pauses();
  out.events = vm->events();
  out.bytes_allocated = vm->bytes_allocated_total();
  return out;
}

}  // namespace toyvm

// toyvm_main.cpp — a tiny runtime program embedding libremap: the toy VM
// (libremap/toyvm/) running one workload with mutator threads, printing one
// line per collection and the verdict. Built against the installed package
// with find_package(libremap CONFIG) by tests/runtimes/test_toyvm_embed.py.
//
//   toyvm_main [workload] [--backend stw|move|copy|auto] [--fault sigbus|thread|auto]
//              [--heap-mib N] [--threads N] [--rounds N] [--depth N] [--scale X]
//              [--ops N] [--size N]
// Exit status: 0 verified, 1 the run failed or did not verify, 2 usage,
// 3 the backend is unsupported here (REMAP_EUNSUPPORTED).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "toyvm.h"

namespace {

int parse_backend(const char* s) {
  for (int b = 0; b <= REMAP_BACKEND_STW; ++b)
    if (std::strcmp(s, remap_backend_name(b)) == 0) return b;
  return -1;
}

int parse_fault(const char* s) {
  for (int f = 0; f <= REMAP_FAULT_THREAD; ++f)
    if (std::strcmp(s, remap_fault_mode_name(f)) == 0) return f;
  return -1;
}

double ms(uint64_t ns) { return double(ns) / 1e6; }

}  // namespace

int main(int argc, char** argv) {
  if (remap_abi_version() != REMAP_ABI_VERSION) {
    std::fprintf(stderr, "libremap ABI mismatch: built for %d, loaded %u\n", REMAP_ABI_VERSION,
                 remap_abi_version());
    return 2;
  }
  toyvm::RunOptions o;
  o.vm.heap_bytes = size_t(32) << 20;
  o.params.depth = 12;
  o.params.iteration_scale = 0.1;
  o.params.array_size = 100000;  // 800 KiB: a large object over 4 regions
  o.params.ops = 20000;
  o.params.size = 2048;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    auto need = [&]() -> const char* {
      if (!v) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      ++i;
      return v;
    };
    if (a == "--backend") {
      o.vm.backend = parse_backend(need());
    } else if (a == "--fault") {
      o.vm.fault_mode = parse_fault(need());
    } else if (a == "--heap-mib") {
      o.vm.heap_bytes = size_t(std::atol(need())) << 20;
    } else if (a == "--threads") {
      o.params.threads = unsigned(std::atoi(need()));
    } else if (a == "--rounds") {
      o.params.rounds = unsigned(std::atoi(need()));
    } else if (a == "--depth") {
      o.params.depth = std::atoi(need());
    } else if (a == "--scale") {
      o.params.iteration_scale = std::atof(need());
    } else if (a == "--ops") {
      o.params.ops = size_t(std::atol(need()));
    } else if (a == "--size") {
      o.params.size = size_t(std::atol(need()));
    } else if (!a.empty() && a[0] != '-') {
      o.workload = a;
    } else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
    if (o.vm.backend < 0 || o.vm.fault_mode < 0) {
      std::fprintf(stderr, "unknown backend or fault mode\n");
      return 2;
    }
  }

  toyvm::RunResult r = toyvm::run_workload(o);
  std::printf("toyvm %s on libremap %s: backend %s, fault mode %s, %zu MiB heap, %u threads\n",
              o.workload.c_str(), remap_version_string(), remap_backend_name(r.backend),
              remap_fault_mode_name(r.fault_mode), r.capacity >> 20, o.params.threads);
  for (const toyvm::GcRecord& g : r.gcs) {
    std::printf("gc %3llu: pause %.2f ms (mark %.2f, flip %.2f), concurrent %.2f ms, "
                "pages gc/mutator %llu/%llu, heap %.1f -> %.1f MiB\n",
                (unsigned long long)g.index, ms(g.pause_ns), ms(g.mark_ns), ms(g.flip_ns),
                ms(g.concurrent_ns), (unsigned long long)g.lib.pages_by_gc,
                (unsigned long long)g.lib.pages_by_mutator, double(g.heap_before) / 1048576.0,
                double(g.heap_after) / 1048576.0);
  }
  if (r.error_kind != toyvm::VmErrorKind::none) {
    std::printf("error (%s, %s): %s\n", toyvm::error_kind_name(r.error_kind),
                remap_status_name(r.error_status), r.error.c_str());
    return r.error_status == REMAP_EUNSUPPORTED ? 3 : 1;
  }
  std::printf("collections %zu\n", r.gcs.size());
  std::printf("%s: %s\n", r.result.verified ? "verified" : "NOT VERIFIED", r.result.detail.c_str());
  return r.result.verified ? 0 : 1;
}

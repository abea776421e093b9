// stress.cpp — libremap._testing.run_stress: the binding of the C++ stress
// driver (stress_driver.h; stress.h says what it checks and why).
#include "stress.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "errors_py.h"
#include "stats_py.h"
#include "stress_driver.h"
#include "testing_parts.h"

namespace py = pybind11;

namespace libremap_py {

namespace {

int parse_enum(const py::object& v, const char* const* names, int n, const char* what) {
  if (py::isinstance<py::str>(v)) {
    std::string s = v.cast<std::string>();
    for (int i = 0; i < n; i++)
      if (names[i] && s == names[i]) return i;
    throw py::value_error(std::string("unknown ") + what + " '" + s + "'");
  }
  return v.cast<int>();
}

}  // namespace

StressResult run_stress(const StressParams& params) {
  if (params.mutators == 0 || params.roots == 0 || params.heap_mib == 0)
    throw std::invalid_argument("run_stress: mutators, roots and heap_mib must be positive");
  if (!(params.large_fraction >= 0 && params.large_fraction <= 1))
    throw std::invalid_argument("run_stress: large_fraction must be in [0, 1]");
  stress_detail::Stress s(params);
  return s.run();
}

void register_stress(py::module_& m) {
  m.def(
      "run_stress",
      [](const py::object& backend, const py::object& fault_mode, unsigned gc_threads,
         unsigned mutators, unsigned cycles, size_t heap_mib, uint64_t seed, size_t idle_ops,
         double write_fraction, double alloc_fraction, size_t region_kib, double timeout_s,
         bool keep_stats, unsigned inject_stale_cycle, double large_fraction,
         bool inject_stale_large, bool tagged, bool concurrent_prepare, bool evacuate,
         size_t max_heap_mib) {
        std::vector<const char*> backends(static_cast<size_t>(remap_backend_count()));  // the registry's names
        for (size_t b = 0; b < backends.size(); b++) backends[b] = remap_backend_name(int(b));
        static const char* const modes[] = {"auto", "sigbus", "thread"};
        StressParams p;
        p.backend = parse_enum(backend, backends.data(), int(backends.size()), "backend");
        p.fault_mode = parse_enum(fault_mode, modes, 3, "fault mode");
        p.gc_threads = gc_threads;
        p.mutators = mutators;
        p.cycles = cycles;
        p.heap_mib = heap_mib;
        p.seed = seed;
        p.idle_ops = idle_ops;
        p.write_fraction = write_fraction;
        p.alloc_fraction = alloc_fraction;
        p.region_kib = region_kib;
        p.timeout_s = timeout_s;
        p.keep_stats = keep_stats;
        p.inject_stale_cycle = inject_stale_cycle;
        p.large_fraction = large_fraction;
        p.inject_stale_large = inject_stale_large;
        p.tagged = tagged;
        p.concurrent_prepare = concurrent_prepare;
        p.evacuate = evacuate;
        p.max_heap_mib = max_heap_mib;
        StressResult r;
        {
          py::gil_scoped_release nogil;
          r = run_stress(p);
        }
        py::dict d;
#define F(name) d[#name] = r.name;
        F(cycles) F(reads) F(writes) F(allocs) F(retries) F(objects_verified) F(live_objects)
        F(pages_by_mutator) F(pages_by_gc) F(faults) F(fallback_ebusy) F(log_entries) F(verified)
        F(error) F(large_allocs) F(large_reads) F(large_reads_compacting) F(large_writes)
        F(large_died) F(large_live) F(large_verified) F(large_cycles_moved) F(large_objects_moved)
        F(large_pages_moved) F(large_pages_copied) F(large_pages_updated) F(large_pages_missing)
        F(grows) F(shrinks) F(shrinks_busy) F(capacity_min) F(capacity_max)
        F(lib_error) F(final_phase) F(verified_after_refusal)
#undef F
        py::list stats;
        for (const remap_cycle_stats& s : r.stats) stats.append(stats_dict(s));
        d["stats"] = stats;
        return d;
      },
      py::arg("backend"), py::arg("fault_mode"), py::arg("gc_threads") = 1, py::arg("mutators") = 2,
      py::arg("cycles") = 10, py::arg("heap_mib") = 4, py::arg("seed") = 0, py::kw_only(),
      py::arg("idle_ops") = 500, py::arg("write_fraction") = 0.1, py::arg("alloc_fraction") = 0.6,
      py::arg("region_kib") = 64, py::arg("timeout_s") = 60.0, py::arg("keep_stats") = false,
      py::arg("inject_stale_cycle") = 0, py::arg("large_fraction") = StressParams{}.large_fraction,
      py::arg("inject_stale_large") = false, py::arg("tagged") = false,
      py::arg("concurrent_prepare") = false, py::arg("evacuate") = false,
      py::arg("max_heap_mib") = 0,
      "C++ mutator threads reading, writing and allocating while compaction cycles run "
      "(bindings/testing/stress.h). Returns counts, `verified` and the first `error`.");
}

}  // namespace libremap_py

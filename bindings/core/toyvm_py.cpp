// toyvm_py.cpp — libremap._core.toyvm_run: one toy-VM workload run (see
// libremap/toyvm/), its per-GC records, its pause log and result as plain
// Python data; libremap._core.toyvm_mark_bench: remap_mark per object
// against a plain bitmap (libremap/toyvm/mark_bench.h).
//
// The VM and its mutator threads run with the GIL released; the C++ side
// never calls back into Python. Options come as a dict of known keys (the
// typed signature lives in python/libremap/toyvm.py); an unknown key is a
// ValueError, so a typo never silently runs the default.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <functional>
#include <map>
#include <string>

#include "toyvm/toyvm.h"
#include "module_parts.h"
#include "event_log.h"
#include "stats_py.h"

namespace py = pybind11;

namespace libremap_py {

namespace {

py::dict gc_dict(const toyvm::GcRecord& r) {
  py::dict d;
#define F(name) d[#name] = r.name;
  F(index) F(pause_ns) F(ttsp_ns) F(mark_ns) F(prepare_ns) F(flip_ns) F(concurrent_ns) F(verify_ns)
  F(initial_mark_ns) F(remark_ns) F(remarks) F(satb_logged)
  F(roots) F(objects_marked) F(bytes_marked) F(heap_before) F(heap_after) F(capacity)
  F(capacity_after) F(committed_after)
#undef F
  d["cause"] = r.cause;
  d["marking"] = r.marking;
  d["lib"] = stats_dict(r.lib);
  return d;
}

py::dict pause_dict(const toyvm::PauseRecord& p) {
  py::dict d;
  d["kind"] = toyvm::pause_kind_name(p.kind);
#define F(name) d[#name] = p.name;
  F(gc_index) F(start_ns) F(ttsp_ns) F(resume_ns) F(duration_ns) F(mutators_stopped)
#undef F
  return d;
}

// Option name -> how to store it.
using Setter = std::function<void(toyvm::RunOptions&, const py::handle&)>;

const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> s = [] {
    std::map<std::string, Setter> m;
#define VM(name) m[#name] = [](toyvm::RunOptions& o, const py::handle& v) { o.vm.name = v.cast<decltype(o.vm.name)>(); };
#define WL(name) m[#name] = [](toyvm::RunOptions& o, const py::handle& v) { o.params.name = v.cast<decltype(o.params.name)>(); };
    VM(heap_bytes) VM(max_heap_bytes) VM(min_free_ratio) VM(max_free_ratio) VM(region_size) VM(backend) VM(fault_mode) VM(gc_threads) VM(handler_threads)
    VM(dense_threshold) VM(trigger_fraction) VM(trigger_min_bytes) VM(exhausted_retries)
    VM(verify_refs) VM(evacuate) VM(satb_barrier) VM(mark_delay_us) VM(record_events)
    m["marking"] = [](toyvm::RunOptions& o, const py::handle& v) {
      const std::string s = v.cast<std::string>();
      if (s == "stw") o.vm.marking = toyvm::Marking::stw;
      else if (s == "concurrent") o.vm.marking = toyvm::Marking::concurrent;
      else throw py::value_error("toyvm: marking must be 'stw' or 'concurrent', not '" + s + "'");
    };
    WL(threads) WL(rounds) WL(seed) WL(depth) WL(min_depth) WL(iteration_scale) WL(array_size)
    WL(size) WL(ops) WL(max_value_bytes) WL(large_fraction)
#undef VM
#undef WL
    return m;
  }();
  return s;
}

py::dict run(const std::string& workload, const py::dict& options) {
  toyvm::RunOptions o;
  o.workload = workload;
  for (auto item : options) {
    std::string key = py::str(item.first);
    auto it = setters().find(key);
    if (it == setters().end()) throw py::value_error("toyvm: unknown option '" + key + "'");
    it->second(o, item.second);
  }
  toyvm::RunResult r;
  {
    py::gil_scoped_release nogil;
    r = toyvm::run_workload(o);
  }
  py::dict d;
  d["workload"] = r.workload;
  d["backend"] = remap_backend_name(r.backend);
  d["fault_mode"] = remap_fault_mode_name(r.fault_mode);
  d["marking"] = toyvm::marking_name(r.marking);
  d["marking_note"] = r.marking_note.empty() ? py::object(py::none()) : py::object(py::str(r.marking_note));
  d["capacity"] = r.capacity;
  d["max_capacity"] = r.max_capacity;
  d["region_size"] = r.region_size;
  d["wall_ns"] = r.wall_ns;
  d["bytes_allocated"] = r.bytes_allocated;
  py::dict res;
  res["verified"] = r.result.verified;
  res["checksum"] = r.result.checksum;
  res["expected"] = r.result.expected;
  res["operations"] = r.result.operations;
  res["detail"] = r.result.detail;
  d["result"] = res;
  py::list gcs;
  for (const auto& g : r.gcs) gcs.append(gc_dict(g));
  d["gcs"] = gcs;
  py::list pauses;
  for (const auto& p : r.pauses) pauses.append(pause_dict(p));
  d["pauses"] = pauses;
  py::list events;
  for (const auto& e : r.events)
    events.append(event_dict(e.kind, e.phase, e.time_ns, e.cycle, e.value, e.status, e.call));
  d["events"] = events;
  if (r.error_kind == toyvm::VmErrorKind::none) {
    d["error"] = py::none();
  } else {
    py::dict e;
    e["kind"] = toyvm::error_kind_name(r.error_kind);
    e["status"] = r.error_status;
    e["status_name"] = remap_status_name(r.error_status);
    e["message"] = r.error;
    d["error"] = e;
  }
  return d;
}

py::dict mark_bench(uint64_t objects, unsigned reps, int backend) {
  toyvm::MarkBenchOptions o;
  o.objects = objects;
  o.reps = reps;
  o.backend = backend;
  toyvm::MarkBenchResult r;
  {
    py::gil_scoped_release nogil;
    r = toyvm::run_mark_bench(o);
  }
  py::dict d;
  d["objects"] = r.objects;
  d["object_bytes"] = r.object_bytes;
  d["remap_mark_ns"] = r.remap_mark_ns;
  d["try_mark_ns"] = r.try_mark_ns;
  d["try_complete_ns"] = r.try_complete_ns;
  d["bitmap_ns"] = r.bitmap_ns;
  d["bitmap_atomic_ns"] = r.bitmap_atomic_ns;
  d["status"] = r.status;
  d["status_name"] = remap_status_name(r.status);
  d["error"] = r.error.empty() ? py::object(py::none()) : py::object(py::str(r.error));
  return d;
}

}  // namespace

void register_toyvm(py::module_& m) {
  m.def("toyvm_run", &run, py::arg("workload"), py::arg("options") = py::dict(),
        "Run one toy-VM workload on a fresh heap (GIL released); returns a dict "
        "(workload, backend, fault_mode, result, gcs, error, ...).");
  m.def("toyvm_mark_bench", &mark_bench, py::arg("objects"), py::arg("reps"), py::arg("backend"),
        "remap_mark over `objects` GCBench nodes of a built heap against a plain (and an "
        "atomic) bitmap set, alternating, `reps` timed passes each (GIL released); ns per pass.");
  m.attr("TOYVM_WORKLOADS") = py::cast(toyvm::workload_names());
  py::list opts;
  for (const auto& kv : setters()) opts.append(kv.first);
  m.attr("TOYVM_OPTIONS") = opts;
}

}  // namespace libremap_py

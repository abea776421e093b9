// heap_py.cpp — the Python face of heaps: remap_cycle_stats / remap_heap_info
// as dicts, and libremap._core.SyntheticHeap (synthetic.h).
//
// Every call that may take long (building, marking, the cycle's phases,
// hashing and imaging the heap) runs with the GIL released; calls on one
// SyntheticHeap are ordered by its shared_mutex (see locked/shared below),
// taken after the GIL is released so that a waiting thread never holds it.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "errors_py.h"
#include "stats_py.h"
#include "synthetic.h"

namespace py = pybind11;

namespace libremap_py {

namespace {

py::dict info_dict(const remap_heap_info& i) {
  py::dict d;
#define F(name) d[#name] = i.name;
  F(struct_size) F(capacity) F(region_size) F(region_count) F(page_size) F(phase) F(backend)
  F(fault_mode) F(cycles) F(regions_free) F(bytes_allocated) F(max_capacity) F(min_capacity)
  F(committed_bytes) F(pool_bytes)
#undef F
  d["base"] = reinterpret_cast<uintptr_t>(i.base);
  return d;
}

// Runs fn on the heap with the GIL released and the heap's mutex held:
// exclusively by calls that change the object table or the roots, shared by
// the others (compact() on one thread, checksum() as a mutator on another).
template <typename Fn>
auto locked(SyntheticHeap& h, Fn&& fn) {
  py::gil_scoped_release nogil;
  std::unique_lock<std::shared_mutex> g(h.mutex());
  return fn();
}
template <typename Fn>
auto shared(SyntheticHeap& h, Fn&& fn) {
  py::gil_scoped_release nogil;
  std::shared_lock<std::shared_mutex> g(h.mutex());
  return fn();
}

}  // namespace

void register_synthetic(py::module_& m) {
  py::class_<SyntheticHeap>(m, "SyntheticHeap",
                            "A libremap heap filled with a deterministic synthetic object graph "
                            "(see python/libremap/synthetic.py for the documented wrapper).")
      .def(py::init([](size_t capacity, size_t region_size, uint64_t seed, double live_ratio,
                       double dense_fraction, double fill_fraction, size_t min_object_size,
                       size_t max_object_size, unsigned max_refs, double ref_fraction,
                       double root_fraction, double foreign_ref_fraction, size_t large_objects,
                       size_t large_object_size, double large_live_fraction, int large_max_refs,
                       int backend,
                       int fault_mode, unsigned gc_threads, unsigned handler_threads,
                       double dense_threshold, int tagging, double immediate_fraction,
                       unsigned flags) {
             SyntheticParams p;
             p.capacity = capacity;
             p.region_size = region_size;
             p.seed = seed;
             p.live_ratio = live_ratio;
             p.dense_fraction = dense_fraction;
             p.fill_fraction = fill_fraction;
             p.min_object_size = min_object_size;
             p.max_object_size = max_object_size;
             p.max_refs = max_refs;
             p.ref_fraction = ref_fraction;
             p.root_fraction = root_fraction;
             p.foreign_ref_fraction = foreign_ref_fraction;
             p.large_objects = large_objects;
             p.large_object_size = large_object_size;
             p.large_live_fraction = large_live_fraction;
             p.large_max_refs = large_max_refs;
             p.backend = backend;
             p.fault_mode = fault_mode;
             p.gc_threads = gc_threads;
             p.handler_threads = handler_threads;
             p.dense_threshold = dense_threshold;
             p.tagging = tagging;
             p.immediate_fraction = immediate_fraction;
             p.flags = flags;
             py::gil_scoped_release nogil;
             return std::make_unique<SyntheticHeap>(p);
           }),
           py::kw_only(), py::arg("capacity") = SyntheticParams{}.capacity,
           py::arg("region_size") = SyntheticParams{}.region_size, py::arg("seed") = 0,
           py::arg("live_ratio") = 0.5, py::arg("dense_fraction") = 0.25,
           py::arg("fill_fraction") = 0.75, py::arg("min_object_size") = 16,
           py::arg("max_object_size") = 2048, py::arg("max_refs") = 4, py::arg("ref_fraction") = 0.5,
           py::arg("root_fraction") = 0.02, py::arg("foreign_ref_fraction") = 0.01,
           py::arg("large_objects") = 0, py::arg("large_object_size") = 0,
           py::arg("large_live_fraction") = 0.5, py::arg("large_max_refs") = -1,
           py::arg("backend") = int(REMAP_BACKEND_AUTO),
           py::arg("fault_mode") = int(REMAP_FAULT_AUTO), py::arg("gc_threads") = 1,
           py::arg("handler_threads") = 1, py::arg("dense_threshold") = 0.90,
           py::arg("tagging") = 0, py::arg("immediate_fraction") = 0.0, py::arg("flags") = 0u)
      .def("mutate",
           [](SyntheticHeap& h, double kill, size_t grow, double ratio, double dense) {
             locked(h, [&] { h.mutate(kill, grow, ratio, dense); });
           },
           py::kw_only(), py::arg("kill_fraction") = 0.3, py::arg("grow_bytes") = 0,
           py::arg("live_ratio") = 0.5, py::arg("dense_fraction") = 0.25)
      .def("begin_cycle", [](SyntheticHeap& h) { locked(h, [&] { h.begin_cycle(); }); })
      .def("allocate_black",
           [](SyntheticHeap& h, size_t bytes) { locked(h, [&] { h.allocate_black(bytes); }); },
           py::arg("bytes"))
      .def("mark",
           [](SyntheticHeap& h, bool deferred) { return shared(h, [&] { return h.mark(deferred); }); },
           py::arg("deferred") = false)
      .def("clear_marks", [](SyntheticHeap& h) { locked(h, [&] { h.clear_marks(); }); })
      .def("prepare", [](SyntheticHeap& h) { locked(h, [&] { h.prepare(); }); })
      .def("flip", [](SyntheticHeap& h) { locked(h, [&] { h.flip(); }); })
      .def("compact", [](SyntheticHeap& h) { shared(h, [&] { h.compact(); }); })
      .def("compact_work", [](SyntheticHeap& h) { shared(h, [&] { h.compact_work(); }); })
      .def("finish", [](SyntheticHeap& h) { shared(h, [&] { h.finish(); }); })
      .def("collect",
           [](SyntheticHeap& h) {
             remap_cycle_stats s = locked(h, [&] {
               h.collect();
               return h.stats();
             });
             return stats_dict(s);
           })
      .def("checksum", [](SyntheticHeap& h) { return shared(h, [&] { return h.checksum(); }); })
      .def("verify", [](SyntheticHeap& h) { return shared(h, [&] { return h.verify(); }); })
      .def("image",
           [](SyntheticHeap& h) {
             PyObject* b = PyBytes_FromStringAndSize(nullptr, Py_ssize_t(h.capacity()));
             if (!b) throw py::error_already_set();
             auto out = py::reinterpret_steal<py::bytes>(b);
             char* buf = PyBytes_AS_STRING(b);  // not shared yet: safe to fill without the GIL
             shared(h, [&] { h.image(buf); });
             return out;
           })
      .def("image_hash", [](SyntheticHeap& h) { return shared(h, [&] { return h.image_hash(); }); })
      .def("stats", [](SyntheticHeap& h) { return stats_dict(shared(h, [&] { return h.stats(); })); })
      .def("info", [](SyntheticHeap& h) { return info_dict(shared(h, [&] { return h.info(); })); })
      .def("record_events", [](SyntheticHeap& h) { h.event_log().attach(h.handle()); },
           "Keep libremap's events from now on (remap_heap_set_event_callback).")
      .def("events", [](SyntheticHeap& h) { return h.event_log().take(); },
           "The events kept since the last call: {origin_ns, events: [dict]} (times since "
           "the first).")
      .def("forward",
           [](SyntheticHeap& h, uintptr_t old) { return h.forward(old); },  // O(1), lock-free
           py::arg("old"))
      .def("objects",
           [](SyntheticHeap& h) {
             std::vector<ObjectView> v = shared(h, [&] { return h.objects(); });
             py::list out;
             for (const ObjectView& o : v) out.append(py::make_tuple(o.addr, o.size, o.id, o.live, o.large));
             return out;
           },
           "Present objects as (address, size, id, live, large), in id order.")
      .def("roots", [](SyntheticHeap& h) { return shared(h, [&] { return h.roots(); }); })
      .def("region_tops", [](SyntheticHeap& h) { return shared(h, [&] { return h.region_tops(); }); })
      .def_property_readonly("base", &SyntheticHeap::base)
      .def_property_readonly("capacity", &SyntheticHeap::capacity)
      .def_property_readonly("region_size", &SyntheticHeap::region_size)
      .def_property_readonly("live_count", &SyntheticHeap::live_count)
      .def_property_readonly("live_bytes", &SyntheticHeap::live_bytes);
}

}  // namespace libremap_py

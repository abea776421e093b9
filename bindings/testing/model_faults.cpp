// model_faults.cpp — libremap._testing.set_model_fault: make a synthetic
// heap's object model lie about one object (object_layout.h's fault knob),
// so that a test can watch libremap refuse it with REMAP_EOBJMODEL and
// leave the heap usable. A runtime never wants this, so it is not a method
// of libremap._core.SyntheticHeap.
#include <pybind11/pybind11.h>

#include <string>

#include "object_layout.h"
#include "synthetic.h"
#include "testing_parts.h"

namespace py = pybind11;

namespace libremap_py {

namespace {

using libremap_layout::ModelFault;

// A fault by name (MODEL_FAULTS), by number, or None for none.
ModelFault parse_fault(const py::object& kind) {
  if (kind.is_none()) return ModelFault::none;
  if (py::isinstance<py::str>(kind)) {
    std::string s = kind.cast<std::string>();
    for (int k = 0; k < libremap_layout::kModelFaultCount; ++k)
      if (s == libremap_layout::model_fault_name(ModelFault(k))) return ModelFault(k);
    throw py::value_error("unknown model fault '" + s + "'");
  }
  int k = kind.cast<int>();
  if (k < 0 || k >= libremap_layout::kModelFaultCount)
    throw py::value_error("unknown model fault number");
  return ModelFault(k);
}

}  // namespace

void register_model_faults(py::module_& m) {
  // The knob is two atomics the fault handler reads: no heap lock, and the
  // GIL is enough to order it against this thread's own calls.
  m.def(
      "set_model_fault",
      [](SyntheticHeap& h, const py::object& kind, uint64_t object_id) {
        h.set_fault(parse_fault(kind), object_id);
      },
      py::arg("heap"), py::arg("kind"), py::arg("object_id") = 0,
      "Make the heap's object model lie about object `object_id` in the way `kind` "
      "(one of MODEL_FAULTS; 'none' or None stops it).");
  py::list faults;
  for (int k = 0; k < libremap_layout::kModelFaultCount; ++k)
    faults.append(libremap_layout::model_fault_name(ModelFault(k)));
  m.attr("MODEL_FAULTS") = faults;
}

}  // namespace libremap_py

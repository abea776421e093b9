// testing_module.cpp — the pybind11 module libremap._testing: what exists to
// test libremap, kept out of the module `import libremap` loads.
//
// It holds the C++ stress driver (run_stress; `python -m libremap soak`
// runs it in child processes), the synthetic heap's lying object model
// (set_model_fault), direct calls into the installed pymalloc arena hooks,
// and the conformance kit's built-in runtimes, which the kit reaches by
// dlopen and a C symbol, never by importing this module.
//
// The SyntheticHeap it takes, RemapError and the translator that raises it
// belong to libremap._core; importing _core first registers them, and
// pybind11 shares registered types and translators between modules built
// with the same pybind11.
#include <pybind11/pybind11.h>

#include "testing_parts.h"

namespace py = pybind11;

PYBIND11_MODULE(_testing, m) {
  m.doc() = "libremap's test fixtures (not loaded by `import libremap`)";
  py::module_::import("libremap._core");
  libremap_py::register_stress(m);
  libremap_py::register_model_faults(m);
  libremap_py::register_arena_hooks(m);
}

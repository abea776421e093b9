// testing_parts.h — the parts of libremap._testing (testing_module.cpp), one
// register_<name> per file. _core lists its parts in module_parts.def; this
// module is small enough to call its three by name.
#pragma once
#include <pybind11/pybind11.h>

namespace libremap_py {
void register_stress(pybind11::module_& m);        // stress.cpp
void register_model_faults(pybind11::module_& m);  // model_faults.cpp
void register_arena_hooks(pybind11::module_& m);   // arena_hooks.cpp
}  // namespace libremap_py

// module_parts.h — each bindings/core/*.cpp adds its part of libremap._core.
// A part defines `void register_<name>(pybind11::module_&)` and lists itself
// in module_parts.cpp.
#pragma once
#include <pybind11/pybind11.h>

namespace libremap_py {
void register_all(pybind11::module_& m);
}

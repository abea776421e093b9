// core_module.cpp — the pybind11 module libremap._core.
//
// The module links the same libremap.so that cffi opens, and uses only the
// public C ABI (libremap.h), as any embedding runtime would. Each concern
// registers its own part of the module from its own file.
#include <pybind11/pybind11.h>

#include "libremap.h"
#include "module_parts.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "libremap's native core (pybind11 over the C ABI)";
  m.def("version", &remap_version);
  m.def("version_string", &remap_version_string);
  m.def("abi_version", &remap_abi_version);
  libremap_py::register_all(m);
}

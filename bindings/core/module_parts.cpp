// module_parts.cpp — the list of module parts. Every part listed in
// module_parts.def must be linked in: a missing one is a link error, never a
// module that silently lacks a capability.
#include "module_parts.h"

namespace libremap_py {

#define LIBREMAP_PART(name) void register_##name(pybind11::module_&);
#include "module_parts.def"
#undef LIBREMAP_PART

void register_all(pybind11::module_& m) {
#define LIBREMAP_PART(name) register_##name(m);
#include "module_parts.def"
#undef LIBREMAP_PART
}

}  // namespace libremap_py

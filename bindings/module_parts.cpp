// module_parts.cpp — the list of module parts. Parts are weak so that a part
// under construction can be absent without breaking the build.
#include "module_parts.h"

namespace libremap_py {

#define LIBREMAP_PART(name) void register_##name(pybind11::module_&) __attribute__((weak));
#include "module_parts.def"
#undef LIBREMAP_PART

void register_all(pybind11::module_& m) {
#define LIBREMAP_PART(name) \
  if (register_##name) register_##name(m);
#include "module_parts.def"
#undef LIBREMAP_PART
}

}  // namespace libremap_py

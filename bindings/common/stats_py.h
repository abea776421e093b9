// stats_py.h — remap_cycle_stats as a Python dict (every field, by name),
// shared by the parts that return a cycle's stats.
#pragma once

#include <pybind11/pybind11.h>

#include "libremap.h"

namespace libremap_py {

pybind11::dict stats_dict(const remap_cycle_stats& s);

}  // namespace libremap_py

// arena_hooks.cpp — libremap._testing.arena_alloc / arena_free: the
// interpreter's current arena allocator called directly, exactly as
// pymalloc calls it, so that a test can hand out and take back blocks it
// controls. They go through PyObject_GetArenaAllocator, not through
// libremap.cpython's adapter, so they test whatever is installed.
#include <Python.h>
#include <pybind11/pybind11.h>

#include <cstddef>

#include "testing_parts.h"

namespace py = pybind11;

namespace libremap_py {

void register_arena_hooks(py::module_& m) {
  m.def(
      "arena_alloc",
      [](size_t size) {
        PyObjectArenaAllocator cur;
        PyObject_GetArenaAllocator(&cur);
        return reinterpret_cast<size_t>(cur.alloc(cur.ctx, size));
      },
      py::arg("size"), "Call the installed arena allocator's alloc; the address (0: refused).");
  m.def(
      "arena_free",
      [](size_t addr, size_t size) {
        PyObjectArenaAllocator cur;
        PyObject_GetArenaAllocator(&cur);
        cur.free(cur.ctx, reinterpret_cast<void*>(addr), size);
      },
      py::arg("addr"), py::arg("size"), "Call the installed arena allocator's free.");
}

}  // namespace libremap_py

// errors_py.cpp — libremap._core.RemapError and the StatusError translator.
//
// RemapError subclasses RuntimeError and carries
//   .status       the remap_status (negative int)
//   .status_name  "REMAP_EOBJMODEL", ...
//   .message      the full message (also str(exc))
// Every part of the module raises library failures through check() /
// StatusError so that Python code catches one type and reads one shape.
#include "errors_py.h"

#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace libremap_py {

void check(remap_status s, const char* what) {
  if (s == REMAP_OK) return;
  throw StatusError(s, std::string(what) + ": " + remap_status_name(s) + ": " + remap_last_error());
}

void raise_status(remap_status s, const std::string& message) {
  throw StatusError(s, message);
}

namespace {

// Owned by the module for the life of the process (never released: the
// translator may run until interpreter shutdown).
PyObject* g_remap_error = nullptr;

void set_remap_error(const StatusError& e) {
  py::handle type(g_remap_error);
  py::object exc = type(py::str(e.what()));
  exc.attr("status") = py::int_(e.status());
  exc.attr("status_name") = py::str(remap_status_name(e.status()));
  exc.attr("message") = py::str(e.what());
  PyErr_SetObject(g_remap_error, exc.ptr());
}

constexpr remap_status kAllStatuses[] = {
    REMAP_OK,     REMAP_EINVAL, REMAP_EUNSUPPORTED, REMAP_EPERM,  REMAP_ENOMEM,
    REMAP_EPHASE, REMAP_EKERNEL, REMAP_EBUSY,       REMAP_EEXIST, REMAP_ENOENT,
    REMAP_EAGAIN, REMAP_ELIMIT, REMAP_EOBJMODEL,   REMAP_EINTERNAL};

}  // namespace

void register_errors(py::module_& m) {
  g_remap_error = PyErr_NewExceptionWithDoc(
      "libremap._core.RemapError",
      "A libremap call failed. .status is the remap_status (negative int), "
      ".status_name its constant name (e.g. 'REMAP_EOBJMODEL'), .message the "
      "library's message (remap_last_error()).",
      PyExc_RuntimeError, nullptr);
  if (!g_remap_error) throw py::error_already_set();
  m.add_object("RemapError", py::handle(g_remap_error));

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      set_remap_error(e);
    }
  });

  py::dict codes;
  for (remap_status s : kAllStatuses) codes[py::str(remap_status_name(s))] = py::int_(s);
  m.attr("STATUS_CODES") = codes;
  m.def("status_name", &remap_status_name, py::arg("status"),
        "The constant name of a remap_status, e.g. 'REMAP_EINVAL'.");
}

}  // namespace libremap_py

// probe_py.cpp — libremap._core.probe(): the raw remap_probe_info as a dict,
// for callers that want the probe without cffi. libremap.probe() (cffi) is
// the typed front end.
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "libremap.h"
#include "module_parts.h"

namespace py = pybind11;

namespace libremap_py {

void register_probe(py::module_& m) {
  m.def(
      "probe",
      [] {
        remap_probe_info i{};
        i.struct_size = sizeof i;
        remap_status st = remap_probe(&i);
        if (st != REMAP_OK)
          throw std::runtime_error(std::string("remap_probe: ") + remap_last_error());
        py::dict d;
        d["kernel_release"] = std::string(i.kernel_release);
        d["uffd_available"] = bool(i.uffd_available);
        d["uffd_path"] = i.uffd_path;
        d["uffd_syscall_errno"] = i.uffd_syscall_errno;
        d["uffd_dev_errno"] = i.uffd_dev_errno;
        d["uffd_user_mode_errno"] = i.uffd_user_mode_errno;
        d["uffd_features"] = i.uffd_features;
        d["uffd_ioctls"] = i.uffd_ioctls;
        d["mremap_dontunmap"] = bool(i.mremap_dontunmap);
        d["thp_mode"] = i.thp_mode;
        d["max_map_count"] = i.max_map_count;
        d["unprivileged_userfaultfd"] = i.unprivileged_userfaultfd;
        d["swap_present"] = bool(i.swap_present);
        d["page_size"] = i.page_size;
        d["euid"] = i.euid;
        d["cap_sys_ptrace"] = bool(i.cap_sys_ptrace);
        d["auto_backend"] = i.auto_backend;
        d["auto_reason"] = std::string(i.auto_reason);
        return d;
      },
      "remap_probe() as a dict of the raw remap_probe_info fields");
}

}  // namespace libremap_py

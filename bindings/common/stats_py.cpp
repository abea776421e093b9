// stats_py.cpp — remap_cycle_stats -> dict (see stats_py.h).
#include "stats_py.h"

namespace py = pybind11;

namespace libremap_py {

py::dict stats_dict(const remap_cycle_stats& s) {
  py::dict d;
#define F(name) d[#name] = s.name;
  F(struct_size) F(cycle) F(backend) F(fault_mode)
  F(prepare_ns) F(flip_pause_ns) F(compaction_ns) F(finish_ns) F(produce_ns) F(install_ns)
  F(wait_ns) F(fault_alloc_ns) F(madvise_ns)
  F(live_bytes) F(regions_dense) F(regions_fragmented) F(regions_empty) F(regions_large)
  F(pages_installed) F(pages_by_gc) F(pages_by_mutator) F(pages_zero) F(pages_in_place)
  F(ioctl_move) F(ioctl_copy) F(ioctl_zeropage) F(ioctl_continue) F(ioctl_wake)
  F(pages_moved) F(pages_copied) F(mprotect_calls) F(madvise_calls) F(bytes_copied)
  F(buffers_recycled) F(buffers_new) F(fallback_ebusy) F(fallback_other)
  F(faults) F(fault_p50_ns) F(fault_p99_ns) F(fault_max_ns)
  F(vmas_before) F(vmas_after)
  F(large_objects_moved) F(large_pages_moved) F(large_pages_copied) F(large_pages_updated)
  F(large_pages_by_mutator)
  F(slots_stray)
  F(regions_black)
  F(black_walk_errors)
  F(regions_evacuated)
  F(helper_wait_ns)
#undef F
  py::list hist;
  for (uint64_t v : s.fault_hist) hist.append(v);
  d["fault_hist"] = hist;
  return d;
}

}  // namespace libremap_py

// event_log.h — libremap's events (remap_heap_set_event_callback) as Python
// data, for `python -m libremap bench --trace` (python/libremap/bench/
// trace.py): the toy VM logs them itself (VmConfig::record_events); other
// heaps the bindings drive (SyntheticHeap) keep them in an EventLog.
//
// The callback only appends under a mutex: it runs on the thread of the
// libremap call, inside the flip's pause for PAUSE_*, with the GIL released
// (no Python may run there).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <mutex>
#include <vector>

#include "libremap.h"

namespace libremap_py {

// One event as a dict: kind and phase by name (REMAP_EVENT_PAUSE_BEGIN ->
// "pause_begin"), time_ns as given, and cycle, value, status, status_name,
// call.
pybind11::dict event_dict(int kind, int phase, uint64_t time_ns, uint64_t cycle, uint64_t value,
                          remap_status status, const char* call);

class EventLog {
 public:
  // Sets the heap's callback to this log (the log must outlive the heap or
  // be detached first).
  void attach(remap_heap* heap);
  static void detach(remap_heap* heap);
  // Every event so far, times since the first one (time_ns), and that
  // first one's CLOCK_MONOTONIC time (origin_ns).
  pybind11::dict take();

 private:
  static void on_event(void* ctx, const remap_event* ev);
  std::mutex mu_;
  std::vector<remap_event> events_;
};

}  // namespace libremap_py

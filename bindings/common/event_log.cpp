// event_log.cpp — see event_log.h.
#include "event_log.h"

#include "errors_py.h"

namespace py = pybind11;

namespace libremap_py {

namespace {

const char* kind_name(int kind) {
  switch (kind) {
    case REMAP_EVENT_CYCLE_BEGIN: return "cycle_begin";
    case REMAP_EVENT_CYCLE_END: return "cycle_end";
    case REMAP_EVENT_PAUSE_BEGIN: return "pause_begin";
    case REMAP_EVENT_PAUSE_END: return "pause_end";
    case REMAP_EVENT_PHASE: return "phase";
    case REMAP_EVENT_CALL_BEGIN: return "call_begin";
    case REMAP_EVENT_CALL_END: return "call_end";
    case REMAP_EVENT_RESIZE: return "resize";
  }
  return "unknown";
}

const char* phase_name(int phase) {
  switch (phase) {
    case REMAP_PHASE_IDLE: return "IDLE";
    case REMAP_PHASE_PREPARED: return "PREPARED";
    case REMAP_PHASE_COMPACTING: return "COMPACTING";
    case REMAP_PHASE_BROKEN: return "BROKEN";
  }
  return "UNKNOWN";
}

}  // namespace

py::dict event_dict(int kind, int phase, uint64_t time_ns, uint64_t cycle, uint64_t value,
                    remap_status status, const char* call) {
  py::dict d;
  d["kind"] = kind_name(kind);
  d["phase"] = phase_name(phase);
  d["time_ns"] = time_ns;
  d["cycle"] = cycle;
  // A PHASE event's value is the phase before.
  if (kind == REMAP_EVENT_PHASE) d["value"] = phase_name(int(value));
  else d["value"] = value;
  d["status"] = status;
  d["status_name"] = remap_status_name(status);
  d["call"] = call ? call : "";
  return d;
}

void EventLog::on_event(void* ctx, const remap_event* ev) {
  auto* log = static_cast<EventLog*>(ctx);
  std::lock_guard<std::mutex> g(log->mu_);
  log->events_.push_back(*ev);
}

void EventLog::attach(remap_heap* heap) {
  check(remap_heap_set_event_callback(heap, &EventLog::on_event, this),
        "remap_heap_set_event_callback");
}

void EventLog::detach(remap_heap* heap) {
  (void)remap_heap_set_event_callback(heap, nullptr, nullptr);
}

py::dict EventLog::take() {
  std::vector<remap_event> evs;
  {
    std::lock_guard<std::mutex> g(mu_);
    evs.swap(events_);
  }
  const uint64_t origin = evs.empty() ? 0 : evs.front().time_ns;
  py::list out;
  for (const remap_event& e : evs)
    out.append(event_dict(e.kind, e.phase, e.time_ns - origin, e.cycle, e.value, e.status, e.call));
  py::dict d;
  d["origin_ns"] = origin;
  d["events"] = out;
  return d;
}

}  // namespace libremap_py

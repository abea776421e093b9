// events.cpp — building and sending remap_event (see events.h), and
// remap_heap_set_event_callback.
#include "api/events.h"

#include <cstring>

#include "api/api_call.h"
#include "os/clock.h"

namespace remap::api {

void emit(const remap_heap& h, int kind, const char* call, uint64_t value, remap_status status,
          uint64_t time_ns) {
  const EventSink* sink = h.events.load(std::memory_order_acquire);
  if (!sink) return;
  remap_event ev;
  std::memset(&ev, 0, sizeof ev);
  ev.struct_size = sizeof ev;
  ev.kind = kind;
  ev.phase = h.phase.load(std::memory_order_acquire);
  ev.time_ns = time_ns ? time_ns : os::now_ns();
  // The running cycle's number from its begin to its end (the heap counts
  // it completed a little before CYCLE_END), else the cycles completed.
  ev.cycle = h.cycle_open.load(std::memory_order_acquire)
                 ? h.cycle_number.load(std::memory_order_acquire)
                 : h.heap->cycles();
  ev.value = value;
  ev.status = status;
  ev.call = call ? call : t_entry_point ? t_entry_point : "libremap";
  // The runtime reads remap_last_error after the call that sent this; a
  // library call the callback makes must not replace it.
  LastErrorKeeper keep;
  sink->fn(sink->ctx, &ev);
}

void open_cycle(remap_heap& h) {
  if (h.cycle_open.load(std::memory_order_acquire)) return;
  h.cycle_number.store(h.heap->cycles() + 1, std::memory_order_release);
  h.cycle_open.store(true, std::memory_order_release);
  emit(h, REMAP_EVENT_CYCLE_BEGIN, nullptr);
}

void close_cycle(remap_heap& h, uint64_t value, remap_status status) {
  if (!h.cycle_open.load(std::memory_order_acquire)) return;
  const uint64_t number = h.cycle_number.load(std::memory_order_acquire);
  // Sent while still open, so that it carries the cycle's number.
  emit(h, REMAP_EVENT_CYCLE_END, nullptr, value ? number : 0, status);
  h.cycle_open.store(false, std::memory_order_release);
}

uint64_t call_begin(const remap_heap& h, int kind, const char* call) {
  if (!events_on(h)) return 0;
  const uint64_t t0 = os::now_ns();
  emit(h, kind, call, 0, REMAP_OK, t0);
  return t0;
}

void call_end(remap_heap* h, int kind, const char* call, uint64_t t0, remap_status status) {
  if (!h) return;
  EntryPoint entry(call);  // api_call has returned: name the call for close_cycle
  if (h->phase.load(std::memory_order_acquire) == REMAP_PHASE_BROKEN) close_cycle(*h, 0, status);
  if (!events_on(*h)) return;
  const uint64_t t1 = os::now_ns();
  emit(*h, kind, call, t0 ? t1 - t0 : 0, status, t1);
}

}  // namespace remap::api

extern "C" REMAP_API remap_status remap_heap_set_event_callback(remap_heap* heap,
                                                                remap_event_fn fn, void* ctx) {
  return remap::api_call("remap_heap_set_event_callback", [&]() -> remap::Status {
    if (!heap) return remap::fail(REMAP_EINVAL, "heap is NULL");
    if (!fn) {
      heap->events.store(nullptr, std::memory_order_release);
      return remap::Status::ok();
    }
    std::lock_guard<std::mutex> g(heap->events_mutex);
    // A runtime that sets and clears the same callback around each run
    // reuses its sink: the list grows only with distinct (fn, ctx) pairs.
    for (const auto& old : heap->event_sinks)
      if (old->fn == fn && old->ctx == ctx) {
        heap->events.store(old.get(), std::memory_order_release);
        return remap::Status::ok();
      }
    auto sink = std::make_unique<remap::api::EventSink>(remap::api::EventSink{fn, ctx});
    heap->events.store(sink.get(), std::memory_order_release);
    heap->event_sinks.push_back(std::move(sink));
    return remap::Status::ok();
  });
}

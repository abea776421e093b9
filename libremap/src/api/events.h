// events.h — the runtime's event callback (libremap.h, remap_event).
//
// Every cycle entry point reports itself through these. With no callback set
// each costs one atomic load (no clock read, nothing recorded); with one,
// the event is built on the stack and handed over synchronously on the
// calling thread, the thread's last error kept across it. No event is sent
// from a fault handler or a GC worker: only from the runtime's own calls.
//
// Cycles are counted whether or not a callback is set (cycle_open), so that
// a callback set in the middle of a run numbers them right.
#pragma once

#include <cstdint>

#include "api/handle.h"

namespace remap::api {

// Sends one event (nothing if no callback is set). call NULL: the entry
// point this thread is in (api_call records it). time_ns 0: now.
void emit(const remap_heap& h, int kind, const char* call, uint64_t value = 0,
          remap_status status = REMAP_OK, uint64_t time_ns = 0);

inline bool events_on(const remap_heap& h) {
  return h.events.load(std::memory_order_acquire) != nullptr;
}

// A cycle starts (remap_cycle_begin, or the first remap_prepare since the
// last one ended): CYCLE_BEGIN, once. Its number is cycles() + 1.
void open_cycle(remap_heap& h);
// The cycle ends: CYCLE_END with value (its number, or 0 if it did not
// complete) and status, once.
void close_cycle(remap_heap& h, uint64_t value, remap_status status);

// CALL_BEGIN / CALL_END around an entry point (and PAUSE_* for remap_flip).
// begin returns the start time, 0 when no callback is set; end sends the
// duration and status and, if the call left the heap BROKEN, ends the cycle
// with that status.
uint64_t call_begin(const remap_heap& h, int kind, const char* call);
void call_end(remap_heap* h, int kind, const char* call, uint64_t t0, remap_status status);

}  // namespace remap::api

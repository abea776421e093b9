// concurrent_cycle.h — the engine's side of the cycle API (see .cpp).
// Callers hold the handle's cycle_mutex for attach/prepare/flip/finish and
// have checked the phase.
#pragma once

#include "api/handle.h"

namespace remap::api {

bool is_concurrent(int backend);
// At create: the engine of a concurrent backend's heap (nothing for stw).
Status engine_attach(remap_heap& h);
// At prepare, after the plan is built: page states (outside the pause).
Status engine_prepare(remap_heap& h);
// PREPARED -> COMPACTING; on failure the heap stays PREPARED and intact.
Status flip_concurrent(remap_heap& h, uint64_t pause_start_ns);
Status compact_concurrent(remap_heap& h);
Status work_concurrent(remap_heap& h);
Status touch_concurrent(remap_heap& h, const void* addr, size_t len);
// COMPACTING -> IDLE, last_stats filled.
Status finish_concurrent(remap_heap& h);
// The engine's page pool (move, copy; 0 otherwise, and in a fork child,
// where the parent's pool is not mapped): bytes it holds, and
// remap_heap_trim's trim to keep_bytes (IDLE, cycle_mutex held).
size_t engine_pool_bytes(const remap_heap& h);
void engine_trim_pool(remap_heap& h, size_t keep_bytes);

}  // namespace remap::api

// heap_setup.h — a small, valid heap config chosen by the input (every
// backend, fault mode, region size, flag and reference encoding), so that a
// fuzz execution is one small heap and a few cycles.
#pragma once

#include "fuzz_input.h"
#include "libremap.h"

namespace fuzz {

inline remap_heap_config small_config(Input& in) {
  remap_heap_config c;
  remap_heap_config_init(&c);
  c.backend = REMAP_BACKEND_MOVE + in.below(5);  // move, copy, minor, sigsegv, stw
  c.fault_mode = in.below(3);                    // auto, sigbus, thread
  c.region_size = size_t(64) << 10 << in.below(3);
  const size_t regions = 2 + in.below(11);
  c.capacity = regions * c.region_size;
  if (in.flag()) c.max_capacity = c.capacity + in.below(5) * c.region_size;
  static const double kDense[] = {0.9, 0.5, 0.75, 1.0, 0.01};
  c.dense_threshold = in.pick(kDense);
  c.gc_threads = 1 + in.below(2);
  c.handler_threads = 1 + in.below(2);
  static const size_t kPool[] = {4096, 0, 1, 16, 256};
  c.pool_max_pages = in.pick(kPool);
  switch (in.below(4)) {
    case 0: c.large_object_threshold = 0; break;
    case 1: c.large_object_threshold = 4096; break;
    case 2: c.large_object_threshold = c.region_size / 4; break;
    default: c.large_object_threshold = c.region_size; break;
  }
  c.flags = in.u8() & (REMAP_HEAP_VERIFY_REFS | REMAP_HEAP_PIN_LARGE | REMAP_HEAP_EVACUATE);
  return c;
}

}  // namespace fuzz

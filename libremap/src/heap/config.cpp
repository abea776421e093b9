// config.cpp — defaults and validation of remap_heap_config (see config.h).
//
// Both structs the caller passes (the config and its nested object model)
// are checked with check_struct_size. remap_object_model is the last field of
// the first released config and its callbacks are required, so the config
// must reach at least the end of `model`; fields added after it (flags)
// default to 0 for older callers.
#include "heap/config.h"

#include <bit>
#include <cstddef>
#include <cmath>
#include <cstring>

namespace remap {

void config_defaults(remap_heap_config* c) {
  std::memset(c, 0, sizeof *c);
  c->struct_size = sizeof *c;
  c->capacity = 0;  // the caller must choose
  c->region_size = size_t(256) << 10;
  c->dense_threshold = 0.90;
  c->backend = REMAP_BACKEND_AUTO;
  c->fault_mode = REMAP_FAULT_AUTO;
  c->gc_threads = 1;
  c->handler_threads = 1;
  c->pool_max_pages = 4096;
  c->large_object_threshold = 0;  // region_size / 2 once region_size is known
  c->model.struct_size = sizeof c->model;
}

Status validate_config(const remap_heap_config& in, size_t page_size, remap_heap_config* out) {
  // The first released layout ends with `model`; later fields default to 0
  // for a caller that was built before them.
  Status s = check_struct_size("remap_heap_config", in.struct_size,
                               offsetof(remap_heap_config, flags), sizeof(remap_heap_config));
  if (!s) return s;
  s = check_struct_size("remap_object_model", in.model.struct_size, sizeof(remap_object_model),
                        sizeof(remap_object_model));
  if (!s) return s;
  remap_heap_config c;
  std::memset(&c, 0, sizeof c);
  std::memcpy(&c, &in, in.struct_size);
  c.struct_size = sizeof c;
  if (c.flags & ~unsigned(REMAP_HEAP_VERIFY_REFS | REMAP_HEAP_PIN_LARGE | REMAP_HEAP_EVACUATE))
    return fail(REMAP_EINVAL, "flags %#x has bits this library does not know (REMAP_HEAP_*)",
                c.flags);
  if (c.ref_tag_mask & ~kTagBitsAllowed)
    return fail(REMAP_EINVAL,
                "ref_tag_mask %#llx has bits inside the address (bits 3..46): tags may only use "
                "bits 0..2 and 47..63",
                (unsigned long long)c.ref_tag_mask);
  if (c.ref_check_value & ~c.ref_check_mask)
    return fail(REMAP_EINVAL,
                "ref_check_value %#llx has bits outside ref_check_mask %#llx: no value could "
                "be a reference",
                (unsigned long long)c.ref_check_value, (unsigned long long)c.ref_check_mask);

  if (c.region_size < kMinRegionSize || c.region_size > kMaxRegionSize ||
      !std::has_single_bit(c.region_size))
    return fail(REMAP_EINVAL,
                "region_size %zu must be a power of two in [64 KiB, 1 GiB] (default 256 KiB)",
                c.region_size);
  if (c.region_size < page_size)
    return fail(REMAP_EINVAL, "region_size %zu is smaller than the page size %zu", c.region_size,
                page_size);
  if (c.capacity == 0 || c.capacity % c.region_size != 0)
    return fail(REMAP_EINVAL, "capacity %zu must be > 0 and a multiple of region_size %zu",
                c.capacity, c.region_size);
  // Region indices are uint32 and the reservation is rounded up to GiB: keep
  // far from the 47-bit user address space.
  if (c.capacity > (size_t(1) << 44) || c.capacity / c.region_size > UINT32_MAX)
    return fail(REMAP_EINVAL, "capacity %zu is too large (at most 16 TiB)", c.capacity);
  // A fixed heap unless the caller reserves more (remap_heap_resize).
  if (c.max_capacity == 0) c.max_capacity = c.capacity;
  if (c.max_capacity < c.capacity || c.max_capacity % c.region_size != 0)
    return fail(REMAP_EINVAL,
                "max_capacity %zu must be 0 (= capacity) or a multiple of region_size %zu that "
                "is at least capacity %zu",
                c.max_capacity, c.region_size, c.capacity);
  if (c.max_capacity > (size_t(1) << 44) || c.max_capacity / c.region_size > UINT32_MAX)
    return fail(REMAP_EINVAL, "max_capacity %zu is too large (at most 16 TiB)", c.max_capacity);
  if (!(c.dense_threshold > 0.0 && c.dense_threshold <= 1.0) || std::isnan(c.dense_threshold))
    return fail(REMAP_EINVAL, "dense_threshold %g must be in (0, 1] (default 0.90)",
                c.dense_threshold);
  if (c.fault_mode < REMAP_FAULT_AUTO || c.fault_mode > REMAP_FAULT_THREAD)
    return fail(REMAP_EINVAL, "fault_mode %d is not a remap_fault_mode (0..2)", c.fault_mode);
  if (c.gc_threads < 1 || c.gc_threads > kMaxThreads)
    return fail(REMAP_EINVAL, "gc_threads %u must be in 1..%u", c.gc_threads, kMaxThreads);
  if (c.handler_threads < 1 || c.handler_threads > kMaxThreads)
    return fail(REMAP_EINVAL, "handler_threads %u must be in 1..%u", c.handler_threads,
                kMaxThreads);
  if (c.pool_max_pages > kMaxPoolPages)
    return fail(REMAP_EINVAL, "pool_max_pages %zu exceeds %zu", c.pool_max_pages, kMaxPoolPages);
  if (c.large_object_threshold == 0) c.large_object_threshold = c.region_size / 2;
  if (c.large_object_threshold < page_size || c.large_object_threshold > c.region_size)
    return fail(REMAP_EINVAL,
                "large_object_threshold %zu must be in [page size %zu, region_size %zu] "
                "(0 means region_size / 2)",
                c.large_object_threshold, page_size, c.region_size);
  if (c.model.object_size == nullptr)
    return fail(REMAP_EINVAL, "model.object_size is NULL: the library needs object sizes");
  *out = c;
  return Status::ok();
}

size_t table_bytes(size_t capacity, size_t region_size, size_t page_size) {
  const size_t regions = capacity / region_size, pages = capacity / page_size;
  // Region (~40 B) + the plan's eight per-region vectors (~50 B);
  // per page: the plan's kind (1 B) and first object (8 B), the engine's
  // state (1 B); per 512-byte chunk: a ChunkForward (32 B) where the region
  // is fragmented, counted for all.
  return regions * 96 + pages * 10 + (capacity >> 9) * 32;
}

}  // namespace remap

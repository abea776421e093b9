// config.h — defaults and validation of remap_heap_config.
//
// A heap keeps a validated copy: every field in range, large_object_threshold
// resolved (0 means region_size / 2), struct_size fields set to this
// library's sizes (a caller's smaller struct is copied over the defaults).
#pragma once

#include "base/status.h"
#include "libremap.h"

namespace remap {

// Limits the validation enforces.
inline constexpr size_t kMinRegionSize = size_t(64) << 10;
inline constexpr size_t kMaxRegionSize = size_t(1) << 30;
inline constexpr unsigned kMaxThreads = 64;
inline constexpr size_t kMaxPoolPages = size_t(1) << 24;
inline constexpr size_t kMapAlign = size_t(1) << 30;  // the reservation's alignment (heap.h)

// Bits a reference tag may use (remap_heap_config.ref_tag_mask): the low 3
// (objects are 8-aligned) and 47..63 (above every user address on x86-64
// and arm64 with 48-bit VAs). A tag bit inside the address bits would make
// two different objects' references decode to one address.
inline constexpr uint64_t kTagBitsAllowed = 7 | ~((uint64_t(1) << 47) - 1);

// Bytes of tables a heap of this geometry allocates and touches per cycle,
// O(capacity): the region table, the plan's per-region and per-page tables
// and the engine's page states (the bitmaps are address space touched only
// where objects are marked, and are not counted). Heap::create refuses a
// capacity whose tables would not fit (REMAP_ENOMEM) before allocating any.
size_t table_bytes(size_t capacity, size_t region_size, size_t page_size);

// The defaults remap_heap_config_init writes.
void config_defaults(remap_heap_config* c);

// Checks `in` and writes the validated copy to *out (REMAP_EINVAL with a
// message naming the field otherwise).
Status validate_config(const remap_heap_config& in, size_t page_size, remap_heap_config* out);

}  // namespace remap

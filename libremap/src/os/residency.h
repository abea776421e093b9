// residency.h — which pages of a range hold memory (mincore(2)).
//
// For private anonymous memory mincore reports a page resident when its PTE
// is present (a real page or the shared zero page) and not resident for a
// hole or a swapped-out page. The engine uses it once per cycle to find the
// from-space pages worth recycling, instead of tracking every page it did
// not consume.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/status.h"

namespace remap::os {

// out->size() == len / page; (*out)[i] & 1 if page i is resident.
Status resident_pages(void* addr, size_t len, std::vector<uint8_t>* out);

}  // namespace remap::os

// probe.h — what this kernel and this process allow, measured rather than
// guessed from the version: each capability is tried on a small mapping.
// Also decides what REMAP_BACKEND_AUTO resolves to, so heaps and the probe
// agree.
#pragma once

#include "libremap.h"

namespace remap::os {

// Fills every field of *out (struct_size = sizeof). Never fails: a missing
// capability is a value in the struct.
void probe_kernel(remap_probe_info* out);

// What REMAP_BACKEND_AUTO means given a probe: move if the kernel has
// UFFDIO_MOVE, else copy if a userfaultfd can serve heap faults, else stw.
// Writes one sentence into reason (NUL-terminated, truncated to reason_len).
int resolve_auto_backend(const remap_probe_info& info, char* reason, size_t reason_len);

// Name of UFFD_FEATURE bit `bit` ("move", "sigbus"), nullptr if unknown.
const char* uffd_feature_name(unsigned bit);

}  // namespace remap::os

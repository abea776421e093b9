// sigsafe_vm.h — the memory calls a signal handler may make.
//
// os/vm.h classifies failures into a Status with a formatted message, which
// allocates: fine at the flip, not inside a SIGSEGV/SIGBUS handler. These
// return the raw errno (0 on success) and leave errno as they found it; the
// caller reports a failure after the fact (it is fatal there anyway).
#pragma once

#include <cstddef>

namespace remap::os {

// mprotect(addr, len, prot): 0 or errno (ENOMEM: unmapped, or the split would
// exceed vm.max_map_count).
int protect_nothrow(void* addr, size_t len, int prot) noexcept;

// mmap(addr, len, read-write, private anonymous, MAP_FIXED): a range of zero
// pages replaces whatever was mapped there. 0 or errno.
int map_zero_fixed_nothrow(void* addr, size_t len) noexcept;

}  // namespace remap::os

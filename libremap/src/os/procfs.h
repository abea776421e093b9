// procfs.h — small readers of /proc and /sys facts that the probe and the
// statistics report. None of them fails loudly: an unreadable file (a
// container that hides /proc/sys, an old kernel) yields -1 / UNKNOWN, and the
// caller reports that value as is.
#pragma once

#include <cstdint>
#include <string>

namespace remap::os {

// The integer in a /proc/sys file such as "/proc/sys/vm/max_map_count"; -1 if
// the file cannot be read or does not hold an integer.
int64_t read_sysctl_int(const char* path);

// /sys/kernel/mm/transparent_hugepage/enabled, as a remap_thp_mode.
int read_thp_mode();

// 1 if /proc/swaps lists at least one active area, 0 if none, -1 if unreadable.
int swap_active();

// Number of VMAs of this process (lines of /proc/self/maps); -1 if unreadable.
int64_t count_vmas();

// VmRSS and VmSwap of /proc/self/status, in bytes; -1 where missing.
struct MemStatus {
  int64_t rss_bytes = -1;
  int64_t swap_bytes = -1;
};
MemStatus read_mem_status();

// The hex CapEff mask of /proc/self/status; 0 if unreadable.
uint64_t read_cap_eff();

// uname -r.
std::string kernel_release();

// Whole small file (at most max_bytes) into *out; false on any error.
bool read_small_file(const char* path, std::string* out, size_t max_bytes = 1 << 16);

}  // namespace remap::os

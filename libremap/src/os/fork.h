// fork.h — what the library needs from the OS around fork(): the atfork
// registration, the process and thread ids, and the raw memory calls that
// make a private snapshot of a shared (memfd) heap for a child.
//
// The snapshot calls run inside pthread_atfork handlers, so like
// os/sigsafe_vm.h they return the raw errno (0 on success) and never build a
// Status (which formats a message): the caller reports after the fact.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <mutex>

#include "base/status.h"

namespace remap::os {

// pthread_atfork(prepare, parent, child). Registered handlers cannot be
// removed: call once per process (the library's lifetime is the process's).
Status atfork_install(void (*prepare)(), void (*parent)(), void (*child)());

pid_t current_pid() noexcept;

// True if the calling thread holds `m` (glibc records the owner's tid in
// every locked mutex); false when unknown (other C libraries): callers then
// assume another thread holds it.
bool held_by_this_thread(std::mutex& m) noexcept;

// A private anonymous, read-write, MAP_NORESERVE mapping of len bytes
// (nothing touched): *out, or errno.
int map_private_nothrow(size_t len, void** out) noexcept;
int unmap_nothrow(void* addr, size_t len) noexcept;
// Copies the data extents of the file range [off, off+len) (lseek SEEK_DATA /
// SEEK_HOLE: holes are skipped, so they stay untouched, zero pages in `dst`)
// into dst with pread. Swapped-out shmem pages count as data.
int copy_file_data_nothrow(int fd, off_t off, size_t len, char* dst) noexcept;
// mremap(src, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst): the pages of src
// now sit at dst, replacing whatever was mapped there.
int move_mapping_nothrow(void* src, size_t len, void* dst) noexcept;
// mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED): any
// access to the range faults from now on.
int map_inaccessible_nothrow(void* addr, size_t len) noexcept;
// write(2, msg) without formatting.
void write_stderr(const char* msg) noexcept;

}  // namespace remap::os

// vm.h — virtual memory primitives: aligned reservations, the flip's mremap,
// madvise, mprotect, memfd and file mappings.
//
// Every call that fails returns a Status classified here, with a message that
// says what to do; nothing above os/ calls mmap/mremap/madvise itself.
// Mapping is the RAII owner of a range: it munmaps the whole range on
// destruction, whatever was later mremapped onto or out of it.
#pragma once

#include <sys/mman.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "base/status.h"
#include "os/fd.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4  // Linux 5.7 (anonymous), 5.13 (any mapping)
#endif
#ifndef MADV_COLD
#define MADV_COLD 20  // Linux 5.4
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21  // Linux 5.4
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif

namespace remap::os {

// The base page size (cached; async-signal-safe after the first call, which
// happens at library load).
size_t page_size() noexcept;
// Physical memory of the machine in bytes (sysconf), 0 if unknown.
size_t physical_memory() noexcept;

class Mapping {
 public:
  Mapping() = default;
  // Adopts [addr, addr+size): munmapped by the destructor.
  Mapping(void* addr, size_t size) : addr_(static_cast<char*>(addr)), size_(size) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping(Mapping&& o) noexcept
      : addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  Mapping& operator=(Mapping&& o) noexcept {
    if (this != &o) {
      reset();
      addr_ = std::exchange(o.addr_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~Mapping() { reset(); }

  char* data() const { return addr_; }
  void* addr() const { return addr_; }
  size_t size() const { return size_; }
  bool valid() const { return addr_ != nullptr; }
  bool contains(const void* p) const {
    auto* c = static_cast<const char*>(p);
    return c >= addr_ && c < addr_ + size_;
  }
  // Gives up ownership without unmapping.
  void* release() {
    size_ = 0;
    return std::exchange(addr_, nullptr);
  }
  void reset();

 private:
  char* addr_ = nullptr;
  size_t size_ = 0;
};

// A private anonymous mapping of `size` bytes whose start is a multiple of
// `align` (a power of two >= the page size): over-reserves size + align and
// trims both ends. MAP_NORESERVE: only touched pages cost memory.
Status reserve_aligned(size_t size, size_t align, int prot, Mapping* out);
// A private anonymous mapping of `size` bytes (page aligned), read-write.
Status map_anonymous(size_t size, Mapping* out);

// mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
// MAP_NORESERVE | MAP_FIXED): replaces [addr, addr+len) (inside a Mapping the
// caller owns) with a fresh, empty mapping — its pages and page tables are
// freed now rather than by whoever maps over the range later.
Status renew_anonymous(void* addr, size_t len);

// mremap(old, len, len, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP,
// new_addr): the pages of [old, old+len) move to new_addr (replacing
// whatever was mapped there); the old range stays mapped, empty, and faults
// afresh. Page tables move at PUD level when both ranges are 1 GiB aligned.
Status remap_dontunmap(void* old_addr, size_t len, void* new_addr);

enum class Advice {
  dontneed,    // MADV_DONTNEED: drop pages; anonymous ranges read zero afterwards
  dontfork,    // MADV_DONTFORK: a fork()ed child does not get this range
  dofork,      // MADV_DOFORK
  hugepage,    // MADV_HUGEPAGE
  nohugepage,  // MADV_NOHUGEPAGE
  pageout,     // MADV_PAGEOUT (5.4): reclaim now (to swap, if any)
  cold,        // MADV_COLD (5.4): deactivate
  remove,      // MADV_REMOVE: free shmem backing store
  populate_write,  // MADV_POPULATE_WRITE (5.14): fault pages in writable, content kept;
                   // never on a uffd-registered range (it would raise uffd faults)
};
const char* advice_name(Advice a);
Status advise(void* addr, size_t len, Advice a);

Status protect(void* addr, size_t len, int prot);

// memfd_create(name, MFD_CLOEXEC) + ftruncate(size).
Status memfd_create_sized(const char* name, size_t size, UniqueFd* out);
// fallocate(PUNCH_HOLE | KEEP_SIZE): frees the file's pages in the range.
Status punch_hole(int fd, off_t offset, size_t len);
// mmap(addr, len, prot, MAP_SHARED | MAP_FIXED, fd, offset): replaces
// whatever was at [addr, addr+len). The caller's Mapping still owns the range.
Status map_file_fixed(void* addr, size_t len, int prot, int fd, off_t offset);
// mmap(NULL, len, prot, MAP_SHARED, fd, offset).
Status map_file(size_t len, int prot, int fd, off_t offset, Mapping* out);

}  // namespace remap::os

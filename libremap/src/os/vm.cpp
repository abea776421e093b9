// vm.cpp — virtual memory primitives; see vm.h.
#include "os/vm.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "os/failure_injection.h"

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif

namespace remap::os {
namespace {

size_t g_page_size = static_cast<size_t>(::sysconf(_SC_PAGESIZE));

bool is_pow2(size_t x) { return x && (x & (x - 1)) == 0; }
bool page_aligned(const void* p) { return (reinterpret_cast<uintptr_t>(p) & (page_size() - 1)) == 0; }

// ENOMEM from mmap/mremap/mprotect/madvise is either real memory or a limit
// on mappings; name both so the reader can tell.
Status mm_error(const char* call, int e, const void* addr, size_t len, const char* hint) {
  remap_status code = REMAP_EKERNEL;
  const char* what = hint;
  switch (e) {
    case ENOMEM:
      code = REMAP_ENOMEM;
      if (!what)
        what = "out of address space, memory, or mappings (vm.max_map_count): free memory, "
               "raise the limit, or use a smaller size";
      break;
    case EINVAL:
      code = REMAP_EINVAL;
      if (!what) what = "bad address, length, alignment or flags";
      break;
    case EPERM:
    case EACCES:
      code = REMAP_EPERM;
      if (!what) what = "permission denied (sealed memfd, locked pages, or a security policy)";
      break;
    case EAGAIN:
      code = REMAP_EAGAIN;
      if (!what) what = "resource temporarily unavailable (locked memory limit?); retry";
      break;
    case ENOSYS:
    case EOPNOTSUPP:
      code = REMAP_EUNSUPPORTED;
      if (!what) what = "the kernel does not support this";
      break;
    default:
      break;
  }
  if (!what) what = std::strerror(e);
  return fail(code, "%s(%p, %zu) failed: %s (errno %d, %s)", call, addr, len, what, e,
              std::strerror(e));
}

// The real call unless a test injects a failure (os/failure_injection.h):
// then -1 (MAP_FAILED) with that errno, and nothing done.
void* mmap_call(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (int e = injected_failure(InjectSite::mmap)) return errno = e, MAP_FAILED;
  return ::mmap(addr, len, prot, flags, fd, off);
}
int madvise_call(void* addr, size_t len, int advice) {
  if (int e = injected_failure(InjectSite::madvise)) return errno = e, -1;
  return ::madvise(addr, len, advice);
}
int mprotect_call(void* addr, size_t len, int prot) {
  if (int e = injected_failure(InjectSite::mprotect)) return errno = e, -1;
  return ::mprotect(addr, len, prot);
}

}  // namespace

size_t page_size() noexcept {
  if (g_page_size == 0 || g_page_size == static_cast<size_t>(-1)) g_page_size = 4096;
  return g_page_size;
}

size_t physical_memory() noexcept {
  long pages = sysconf(_SC_PHYS_PAGES);
  return pages > 0 ? size_t(pages) * page_size() : 0;
}

void Mapping::reset() {
  if (addr_) ::munmap(addr_, size_);
  addr_ = nullptr;
  size_ = 0;
}

Status reserve_aligned(size_t size, size_t align, int prot, Mapping* out) {
  const size_t ps = page_size();
  if (size == 0 || size % ps)
    return fail(REMAP_EINVAL, "reserve of %zu bytes: the size must be a non-zero multiple of %zu",
                size, ps);
  if (align < ps) align = ps;
  if (!is_pow2(align))
    return fail(REMAP_EINVAL, "reserve: alignment %zu is not a power of two", align);
  if (size > SIZE_MAX - align)
    return fail(REMAP_EINVAL, "reserve: %zu bytes aligned to %zu overflows", size, align);
  const size_t span = size + (align > ps ? align - ps : 0);
  void* p = mmap_call(nullptr, span, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    return mm_error("mmap", e, nullptr, span,
                    e == ENOMEM ? "out of virtual address space (RLIMIT_AS, ulimit -v; or "
                                  "vm.overcommit_memory=2; or vm.max_map_count): a heap "
                                  "reserves whole GiB, and move and copy as much again for "
                                  "from-space; raise the limit or reserve less"
                                : nullptr);
  }
  const uintptr_t base = reinterpret_cast<uintptr_t>(p);
  const uintptr_t start = (base + align - 1) & ~(uintptr_t)(align - 1);
  const size_t head = start - base;
  const size_t tail = span - head - size;
  // Trimming cannot fail short of a kernel bug; a leftover would only waste
  // address space, so failures here are ignored.
  if (head) ::munmap(p, head);
  if (tail) ::munmap(reinterpret_cast<void*>(start + size), tail);
  *out = Mapping(reinterpret_cast<void*>(start), size);
  return Status::ok();
}

Status map_anonymous(size_t size, Mapping* out) {
  return reserve_aligned(size, page_size(), PROT_READ | PROT_WRITE, out);
}

Status renew_anonymous(void* addr, size_t len) {
  if (!page_aligned(addr) || len == 0 || len % page_size())
    return fail(REMAP_EINVAL, "renew_anonymous(%p, %zu): address and length must be page aligned",
                addr, len);
  void* p = mmap_call(addr, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  if (p == MAP_FAILED)
    return fail(errno == ENOMEM ? REMAP_ENOMEM : REMAP_EKERNEL,
                "mmap(MAP_FIXED) over %p, %zu bytes failed: %s", addr, len, strerror(errno));
  return Status::ok();
}

Status remap_dontunmap(void* old_addr, size_t len, void* new_addr) {
  if (!page_aligned(old_addr) || !page_aligned(new_addr) || len == 0 || len % page_size())
    return fail(REMAP_EINVAL, "mremap(DONTUNMAP) of %p -> %p, %zu bytes: addresses and length "
                "must be page aligned and non-zero", old_addr, new_addr, len);
  const int injected = injected_failure(InjectSite::mremap);
  void* p = injected ? (errno = injected, MAP_FAILED)
                     : ::mremap(old_addr, len, len,
                                MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, new_addr);
  if (p == MAP_FAILED) {
    int e = errno;
    const char* hint = nullptr;
    if (e == EINVAL)
      hint = "MREMAP_DONTUNMAP needs Linux 5.7 for private anonymous memory (5.13 for other "
             "mappings), the range inside one mapping, and non-overlapping ranges";
    else if (e == EFAULT)
      hint = "the old range is not fully mapped by one mapping";
    else if (e == ENOMEM)
      hint = "the mapping count would exceed vm.max_map_count, or memory is short "
             "(VM_ACCOUNT): raise the limit or free memory";
    if (e == EFAULT) {
      return fail(REMAP_EINVAL, "mremap(%p -> %p, %zu, DONTUNMAP) failed: %s (errno %d)",
                  old_addr, new_addr, len, hint, e);
    }
    return mm_error("mremap(DONTUNMAP)", e, old_addr, len, hint);
  }
  if (p != new_addr)
    return fail(REMAP_EINTERNAL, "mremap(MREMAP_FIXED) returned %p, not %p", p, new_addr);
  return Status::ok();
}

const char* advice_name(Advice a) {
  switch (a) {
    case Advice::dontneed: return "MADV_DONTNEED";
    case Advice::dontfork: return "MADV_DONTFORK";
    case Advice::dofork: return "MADV_DOFORK";
    case Advice::hugepage: return "MADV_HUGEPAGE";
    case Advice::nohugepage: return "MADV_NOHUGEPAGE";
    case Advice::pageout: return "MADV_PAGEOUT";
    case Advice::cold: return "MADV_COLD";
    case Advice::remove: return "MADV_REMOVE";
    case Advice::populate_write: return "MADV_POPULATE_WRITE";
  }
  return "MADV_?";
}

Status advise(void* addr, size_t len, Advice a) {
  int advice = 0;
  switch (a) {
    case Advice::dontneed: advice = MADV_DONTNEED; break;
    case Advice::dontfork: advice = MADV_DONTFORK; break;
    case Advice::dofork: advice = MADV_DOFORK; break;
    case Advice::hugepage: advice = MADV_HUGEPAGE; break;
    case Advice::nohugepage: advice = MADV_NOHUGEPAGE; break;
    case Advice::pageout: advice = MADV_PAGEOUT; break;
    case Advice::cold: advice = MADV_COLD; break;
    case Advice::remove: advice = MADV_REMOVE; break;
    case Advice::populate_write: advice = MADV_POPULATE_WRITE; break;
  }
  if (madvise_call(addr, len, advice) == 0) return Status::ok();
  int e = errno;
  const char* hint = nullptr;
  if (e == EINVAL) {
    if (a == Advice::hugepage || a == Advice::nohugepage)
      hint = "transparent huge pages are not available (CONFIG_TRANSPARENT_HUGEPAGE) or the "
             "range is not page aligned";
    else if (a == Advice::pageout || a == Advice::cold)
      hint = "needs Linux 5.4+, and the range must be page aligned";
    else if (a == Advice::populate_write)
      hint = "needs Linux 5.14+, and the range must be page aligned";
    else if (a == Advice::dontneed)
      hint = "the range is locked (mlock), or not page aligned";
  } else if (e == ENOMEM) {
    hint = "part of the range is not mapped, or splitting it would exceed vm.max_map_count";
  }
  char call[48];
  std::snprintf(call, sizeof call, "madvise(%s)", advice_name(a));
  return mm_error(call, e, addr, len, hint);
}

Status protect(void* addr, size_t len, int prot) {
  if (mprotect_call(addr, len, prot) == 0) return Status::ok();
  int e = errno;
  return mm_error("mprotect", e, addr, len,
                  e == ENOMEM ? "part of the range is not mapped, or splitting it would exceed "
                                "vm.max_map_count (a VMA per protection run): raise the limit"
                              : nullptr);
}

Status memfd_create_sized(const char* name, size_t size, UniqueFd* out) {
  int fd = static_cast<int>(::syscall(SYS_memfd_create, name, MFD_CLOEXEC));
  if (fd < 0) {
    int e = errno;
    return fail(e == ENOSYS ? REMAP_EUNSUPPORTED : e == EMFILE || e == ENFILE ? REMAP_ELIMIT
                                                                                : REMAP_EKERNEL,
                "memfd_create(\"%s\") failed: %s (errno %d)%s", name, std::strerror(e), e,
                e == EMFILE || e == ENFILE ? ": too many open files, raise ulimit -n" : "");
  }
  UniqueFd owned(fd);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int e = errno;
    return fail(e == EFBIG || e == ENOSPC ? REMAP_ENOMEM : REMAP_EKERNEL,
                "ftruncate(memfd \"%s\", %zu) failed: %s (errno %d)%s", name, size,
                std::strerror(e), e,
                e == EFBIG || e == ENOSPC ? ": shmem is limited (size of /dev/shm, memory cgroup)"
                                          : "");
  }
  *out = std::move(owned);
  return Status::ok();
}

Status punch_hole(int fd, off_t offset, size_t len) {
  if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset,
                  static_cast<off_t>(len)) == 0)
    return Status::ok();
  int e = errno;
  return fail(e == EOPNOTSUPP ? REMAP_EUNSUPPORTED : e == EINVAL ? REMAP_EINVAL : REMAP_EKERNEL,
              "fallocate(PUNCH_HOLE, fd %d, offset %lld, %zu) failed: %s (errno %d)%s", fd,
              static_cast<long long>(offset), len, std::strerror(e), e,
              e == EOPNOTSUPP ? ": the file system cannot punch holes (use a memfd)" : "");
}

Status map_file_fixed(void* addr, size_t len, int prot, int fd, off_t offset) {
  if (!page_aligned(addr) || len == 0 || len % page_size() || offset % page_size())
    return fail(REMAP_EINVAL, "mmap(MAP_FIXED, %p, %zu, offset %lld): address, length and "
                "offset must be page aligned", addr, len, static_cast<long long>(offset));
  void* p = mmap_call(addr, len, prot, MAP_SHARED | MAP_FIXED, fd, offset);
  if (p == MAP_FAILED) return mm_error("mmap(MAP_SHARED|MAP_FIXED)", errno, addr, len, nullptr);
  return Status::ok();
}

Status map_file(size_t len, int prot, int fd, off_t offset, Mapping* out) {
  if (len == 0 || len % page_size() || offset % page_size())
    return fail(REMAP_EINVAL, "mmap(%zu, offset %lld): length and offset must be page aligned "
                "and non-zero", len, static_cast<long long>(offset));
  void* p = mmap_call(nullptr, len, prot, MAP_SHARED, fd, offset);
  if (p == MAP_FAILED) return mm_error("mmap(MAP_SHARED)", errno, nullptr, len, nullptr);
  *out = Mapping(p, len);
  return Status::ok();
}

}  // namespace remap::os

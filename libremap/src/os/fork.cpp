// fork.cpp — see fork.h.
#include "os/fork.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#ifndef SEEK_DATA
#define SEEK_DATA 3
#define SEEK_HOLE 4
#endif

namespace remap::os {

Status atfork_install(void (*prepare)(), void (*parent)(), void (*child)()) {
  int e = ::pthread_atfork(prepare, parent, child);
  if (e == 0) return Status::ok();
  return fail(REMAP_ENOMEM, "pthread_atfork failed: %s (errno %d)", std::strerror(e), e);
}

pid_t current_pid() noexcept { return ::getpid(); }

bool held_by_this_thread(std::mutex& m) noexcept {
#if defined(__GLIBC__)
  // pthread_mutex_lock stores the owner's kernel tid in __data.__owner for
  // every mutex kind (and clears it on unlock); it is part of the public
  // pthread_mutex_t layout glibc keeps stable.
  pthread_mutex_t* pm = m.native_handle();
  return pm->__data.__owner == static_cast<int>(::syscall(SYS_gettid));
#else
  (void)m;
  return false;
#endif
}

int map_private_nothrow(size_t len, void** out) noexcept {
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return errno;
  *out = p;
  return 0;
}

int unmap_nothrow(void* addr, size_t len) noexcept {
  return ::munmap(addr, len) == 0 ? 0 : errno;
}

int copy_file_data_nothrow(int fd, off_t off, size_t len, char* dst) noexcept {
  const off_t end = off + off_t(len);
  off_t pos = off;
  while (pos < end) {
    off_t data = ::lseek(fd, pos, SEEK_DATA);
    if (data < 0) return errno == ENXIO ? 0 : errno;  // ENXIO: no data past pos
    if (data >= end) return 0;
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return errno;
    if (hole > end) hole = end;
    while (data < hole) {
      ssize_t n = ::pread(fd, dst + (data - off), size_t(hole - data), data);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      if (n == 0) return EIO;  // the file shrank under us: never for our memfd
      data += n;
    }
    pos = hole;
  }
  return 0;
}

int move_mapping_nothrow(void* src, size_t len, void* dst) noexcept {
  void* p = ::mremap(src, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
  return p == MAP_FAILED ? errno : 0;
}

int map_inaccessible_nothrow(void* addr, size_t len) noexcept {
  void* p = ::mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
                   -1, 0);
  return p == MAP_FAILED ? errno : 0;
}

void write_stderr(const char* msg) noexcept {
  size_t n = std::strlen(msg);
  while (n) {
    ssize_t w = ::write(2, msg, n);
    if (w <= 0) return;
    msg += w;
    n -= size_t(w);
  }
}

}  // namespace remap::os

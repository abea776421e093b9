// test_uffd_util.h — helpers shared by the native uffd/pool/vm tests:
// opening a uffd through the library, registrations that always unregister,
// and readers of /proc facts (pagemap, smaps, status) that the kernel-rule
// tests assert on.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "check.h"
#include "os/uffd_abi.h"
#include "os/uffd_open.h"
#include "os/uffd_ops.h"
#include "os/vm.h"

namespace tu {

inline size_t ps() { return remap::os::page_size(); }
constexpr size_t kHuge = size_t(2) << 20;

struct Uffd {
  remap::os::UniqueFd fd;
  uint64_t features = 0;
  int get() const { return fd.get(); }
};

// A userfaultfd with `features` (UFFD_FEATURE_MOVE unless told otherwise),
// through the library's own open path. Skips the test when the machine has none.
inline Uffd open_uffd(uint64_t features = UFFD_FEATURE_MOVE) {
  remap::os::UffdOpenResult r;
  remap::Status s = remap::os::uffd_open(false, false, &r);
  if (!s) SKIP("no userfaultfd here: " + s.message);
  uint64_t granted = 0, ioctls = 0;
  s = remap::os::uffd_api(r.fd.get(), features, false, &granted, &ioctls);
  if (!s) SKIP("UFFDIO_API refused the features: " + s.message);
  return Uffd{std::move(r.fd), granted};
}

// Registered for as long as it lives: every error path unregisters, so a
// failing check never leaves a range that blocks whoever touches it.
class Registration {
 public:
  Registration(int fd, void* addr, size_t len, uint64_t mode = UFFDIO_REGISTER_MODE_MISSING)
      : fd_(fd), addr_(addr), len_(len) {
    result_ = remap::os::uffd_register(fd, addr, len, mode, &ioctls_);
  }
  ~Registration() {
    if (result_.ok()) remap::os::uffd_unregister(fd_, addr_, len_);
  }
  bool ok() const { return result_.ok(); }
  const remap::os::UffdResult& result() const { return result_; }
  uint64_t ioctls() const { return ioctls_; }

 private:
  int fd_;
  void* addr_;
  size_t len_;
  uint64_t ioctls_ = 0;
  remap::os::UffdResult result_;
};

inline remap::os::Mapping anon(size_t bytes, size_t align = 0) {
  remap::os::Mapping m;
  remap::Status s = remap::os::reserve_aligned(bytes, align ? align : ps(),
                                               PROT_READ | PROT_WRITE, &m);
  if (!s) {
    ::check::fail(__FILE__, __LINE__, "reserve: " + s.message);
    throw ::check::Abort{};
  }
  return m;
}

// Distinct bytes per page: page i of a buffer seeded `seed` reads seed+i at
// offset 0 and a pattern after, so a misplaced page is caught.
inline void fill_pages(char* p, size_t pages, unsigned seed) {
  for (size_t i = 0; i < pages; ++i) {
    char* q = p + i * ps();
    for (size_t j = 0; j < ps(); j += 64) q[j] = static_cast<char>(seed + i + j / 64);
    q[0] = static_cast<char>(seed + i);
  }
}
inline bool page_matches(const char* q, size_t i, unsigned seed) {
  if (q[0] != static_cast<char>(seed + i)) return false;
  for (size_t j = 64; j < ps(); j += 64)
    if (q[j] != static_cast<char>(seed + i + j / 64)) return false;
  return true;
}
inline bool page_is_zero(const char* q) {
  for (size_t j = 0; j < ps(); ++j)
    if (q[j]) return false;
  return true;
}

// The /proc/self/pagemap entry of addr (bit 63 present, 62 swapped,
// 0..54 PFN for root). Reading it never faults the page in.
inline uint64_t pagemap(const void* addr) {
  int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  uint64_t e = 0;
  off_t off = static_cast<off_t>(reinterpret_cast<uintptr_t>(addr) / ps() * 8);
  if (::pread(fd, &e, 8, off) != 8) e = 0;
  ::close(fd);
  return e;
}
inline bool pm_present(uint64_t e) { return e >> 63 & 1; }
inline bool pm_swapped(uint64_t e) { return e >> 62 & 1; }
inline uint64_t pm_pfn(uint64_t e) { return e & ((uint64_t(1) << 55) - 1); }

// /proc/kpageflags bits of a PFN (root only); ~0 if unreadable.
inline uint64_t kpageflags(uint64_t pfn) {
  int fd = ::open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ~uint64_t(0);
  uint64_t f = ~uint64_t(0);
  if (::pread(fd, &f, 8, static_cast<off_t>(pfn * 8)) != 8) f = ~uint64_t(0);
  ::close(fd);
  return f;
}
constexpr int kKpfThp = 22;

// AnonHugePages (kB) of the VMA that contains addr; -1 if not found.
inline long anon_huge_kb(const void* addr) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  bool inside = false;
  while (std::getline(in, line)) {
    unsigned long lo, hi;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      inside = a >= lo && a < hi;
      continue;
    }
    if (inside && line.rfind("AnonHugePages:", 0) == 0) return std::atol(line.c_str() + 14);
  }
  return -1;
}

// A field of /proc/self/status in kB ("VmSwap"); -1 if missing.
inline long status_kb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line))
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':')
      return std::atol(line.c_str() + n + 1);
  return -1;
}

// True if some line of /proc/self/maps covers addr.
inline bool mapped_in_maps(const void* addr) {
  std::ifstream in("/proc/self/maps");
  std::string line;
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  while (std::getline(in, line)) {
    unsigned long lo, hi;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi) return true;
  }
  return false;
}

inline long minor_faults() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

// A volatile write: a plain p[0] = p[0] is dropped by the compiler.
inline void touch_write(void* p) {
  volatile char* v = static_cast<volatile char*>(p);
  v[0] = v[0];
}

}  // namespace tu

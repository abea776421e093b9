// procfs.cpp — /proc and /sys readers (see procfs.h). Plain open/read: these
// files are generated per read, so one read loop to EOF sees a consistent
// snapshot only line by line, which is all the callers need.
#include "os/procfs.h"

#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "libremap.h"
#include "os/fd.h"

namespace remap::os {

bool read_small_file(const char* path, std::string* out, size_t max_bytes) {
  out->clear();
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  char buf[4096];
  while (out->size() < max_bytes) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) break;
    out->append(buf, size_t(n));
  }
  return true;
}

int64_t read_sysctl_int(const char* path) {
  std::string text;
  if (!read_small_file(path, &text, 256)) return -1;
  const char* s = text.c_str();
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s, &end, 10);
  if (end == s || errno != 0) return -1;
  return v;
}

int read_thp_mode() {
  std::string text;
  if (!read_small_file("/sys/kernel/mm/transparent_hugepage/enabled", &text, 256))
    return REMAP_THP_UNKNOWN;
  // The active mode is the bracketed word: "always [madvise] never".
  if (text.find("[always]") != std::string::npos) return REMAP_THP_ALWAYS;
  if (text.find("[madvise]") != std::string::npos) return REMAP_THP_MADVISE;
  if (text.find("[never]") != std::string::npos) return REMAP_THP_NEVER;
  return REMAP_THP_UNKNOWN;
}

int swap_active() {
  std::string text;
  if (!read_small_file("/proc/swaps", &text)) return -1;
  // The first line is the column header; every further non-empty line is an
  // active swap area.
  size_t nl = text.find('\n');
  if (nl == std::string::npos) return 0;
  for (size_t i = nl + 1; i < text.size(); ++i)
    if (text[i] != '\n' && text[i] != ' ' && text[i] != '\t') return 1;
  return 0;
}

int64_t count_vmas() {
  UniqueFd fd(::open("/proc/self/maps", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return -1;
  // Counted while streaming: a large heap split by mprotect can have tens of
  // thousands of VMAs, far more than a fixed buffer holds.
  char buf[16384];
  int64_t lines = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) break;
    for (ssize_t i = 0; i < n; ++i) lines += buf[i] == '\n';
  }
  return lines;
}

namespace {
// Value of "Key:\t<value>" in /proc/self/status text, or nullptr.
const char* status_field(const std::string& text, const char* key) {
  size_t pos = 0;
  size_t klen = std::strlen(key);
  while (pos < text.size()) {
    if (text.compare(pos, klen, key) == 0 && pos + klen < text.size() && text[pos + klen] == ':')
      return text.c_str() + pos + klen + 1;
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return nullptr;
}

int64_t status_kb(const std::string& text, const char* key) {
  const char* v = status_field(text, key);
  if (!v) return -1;
  char* end = nullptr;
  long long kb = std::strtoll(v, &end, 10);
  if (end == v) return -1;
  return kb * 1024;
}
}  // namespace

MemStatus read_mem_status() {
  MemStatus m;
  std::string text;
  if (!read_small_file("/proc/self/status", &text)) return m;
  m.rss_bytes = status_kb(text, "VmRSS");
  m.swap_bytes = status_kb(text, "VmSwap");
  return m;
}

uint64_t read_cap_eff() {
  std::string text;
  if (!read_small_file("/proc/self/status", &text)) return 0;
  const char* v = status_field(text, "CapEff");
  if (!v) return 0;
  return std::strtoull(v, nullptr, 16);
}

std::string kernel_release() {
  struct utsname u {};
  if (::uname(&u) != 0) return "unknown";
  return u.release;
}

}  // namespace remap::os

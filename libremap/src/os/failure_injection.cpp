// failure_injection.cpp — see failure_injection.h.
#include "os/failure_injection.h"

#include "os/probe.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace remap::os {
namespace detail {
// 0: off; 1: counting; 2: counting and failing the configured calls.
std::atomic<int> g_inject_armed{0};
}  // namespace detail

namespace {

constexpr int kSites = static_cast<int>(InjectSite::count_);
constexpr const char* kEnv = "LIBREMAP_INJECT_FAILURE";

const char* const kSiteNames[kSites] = {
    "uffd_move",       "uffd_copy", "uffd_zeropage", "uffd_continue", "uffd_wake", "uffd_register",
    "uffd_unregister", "mremap",    "madvise",       "mprotect",      "mmap",
};

struct ErrnoName {
  const char* name;
  int value;
};
const ErrnoName kErrnos[] = {
    {"EAGAIN", EAGAIN}, {"ENOMEM", ENOMEM}, {"EFAULT", EFAULT}, {"EINVAL", EINVAL},
    {"ESRCH", ESRCH},   {"EBUSY", EBUSY},   {"EEXIST", EEXIST}, {"ENOENT", ENOENT},
    {"EINTR", EINTR},   {"EPERM", EPERM},
};

// Atomics: a heap created on one thread re-arms while another heap's
// threads may be inside a wrapper.
std::atomic<uint64_t> g_counts[kSites];
// Up to kSpecs specs, one per site at most (a failure whose undo fails too
// needs two sites: uffd_register, then the mremap that puts pages back).
constexpr int kSpecs = 4;
std::atomic<int> g_nspecs{0};
std::atomic<int> g_site[kSpecs];
std::atomic<uint64_t> g_nth[kSpecs];
std::atomic<uint64_t> g_times[kSpecs];
std::atomic<int> g_errno[kSpecs];
std::atomic<bool> g_report_registered{false};

const char* errno_text(int e) {
  for (const ErrnoName& n : kErrnos)
    if (n.value == e) return n.name;
  return nullptr;
}

// write(2) of a NUL-terminated string; async-signal-safe.
void put(const char* s) {
  size_t n = std::strlen(s);
  while (n) {
    ssize_t w = ::write(2, s, n);
    if (w <= 0) return;
    s += w;
    n -= size_t(w);
  }
}

// Decimal of v into buf (>= 21 bytes); async-signal-safe.
const char* decimal(uint64_t v, char* buf) {
  char* p = buf + 20;
  *p = 0;
  do *--p = char('0' + v % 10);
  while (v /= 10);
  return p;
}

void report_counts() {
  if (detail::g_inject_armed.load() == 0) return;
  char line[512];
  size_t at = std::snprintf(line, sizeof line, "libremap: inject counts:");
  for (int i = 0; i < kSites && at < sizeof line; i++)
    at += std::snprintf(line + at, sizeof line - at, " %s=%llu", kSiteNames[i],
                        static_cast<unsigned long long>(g_counts[i].load()));
  put(line);
  put("\n");
}

bool parse_u64(const char* s, size_t len, uint64_t* out) {
  if (len == 0 || len > 18) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + uint64_t(s[i] - '0');
  }
  *out = v;
  return true;
}

// "<site>:<nth>:<errno>[:<times>]" (up to the end or a ',') into spec slot
// i; false if malformed.
bool parse_spec(const char* spec, int i) {
  const char* field[4] = {};
  size_t flen[4] = {};
  int nf = 0;
  const char* p = spec;
  const char* comma = std::strchr(spec, ',');
  const char* end = comma ? comma : spec + std::strlen(spec);
  while (nf < 4) {
    const char* colon = std::strchr(p, ':');
    if (colon && colon > end) colon = nullptr;
    field[nf] = p;
    flen[nf] = colon ? size_t(colon - p) : size_t(end - p);
    nf++;
    if (!colon) break;
    p = colon + 1;
  }
  if (nf < 3 || (nf == 4 && field[3] + flen[3] != end)) return false;  // 3 or 4 fields
  int site = -1;
  for (int i = 0; i < kSites; i++)
    if (std::strlen(kSiteNames[i]) == flen[0] && std::strncmp(kSiteNames[i], field[0], flen[0]) == 0)
      site = i;
  uint64_t nth = 0, times = 1, e = 0;
  if (site < 0 || !parse_u64(field[1], flen[1], &nth) || nth == 0) return false;
  bool named = false;
  for (const ErrnoName& n : kErrnos)
    if (std::strlen(n.name) == flen[2] && std::strncmp(n.name, field[2], flen[2]) == 0) {
      e = uint64_t(n.value);
      named = true;
    }
  if (!named && (!parse_u64(field[2], flen[2], &e) || e == 0 || e > 4095)) return false;
  if (nf == 4 && !parse_u64(field[3], flen[3], &times)) return false;
  g_site[i].store(site);
  g_nth[i].store(nth);
  g_times[i].store(times);
  g_errno[i].store(int(e));
  return true;
}

// Specs separated by ','; false if any is malformed or there are too many.
bool parse_specs(const char* v) {
  int n = 0;
  for (const char* p = v;; n++) {
    if (n == kSpecs || !parse_spec(p, n)) return false;
    const char* comma = std::strchr(p, ',');
    if (!comma) break;
    p = comma + 1;
  }
  g_nspecs.store(n + 1);
  return true;
}

}  // namespace

namespace detail {

int inject_slow(InjectSite site) noexcept {
  const int s = static_cast<int>(site);
  const uint64_t n = g_counts[s].fetch_add(1, std::memory_order_relaxed) + 1;
  if (g_inject_armed.load(std::memory_order_relaxed) != 2) return 0;
  int i = 0;
  const int specs = g_nspecs.load();
  while (i < specs && g_site[i].load() != s) i++;
  if (i == specs) return 0;
  const uint64_t nth = g_nth[i].load(), times = g_times[i].load();
  if (n < nth || (times != 0 && n - nth >= times)) return 0;
  const int e = g_errno[i].load();
  // One write(2), so lines of threads failing at once do not interleave.
  char line[128], nb[21], eb[21];  // the longest line is ~100 bytes
  const char* en = errno_text(e);
  const char* parts[] = {"libremap: injected failure: ", kSiteNames[s], " call ", decimal(n, nb),
                         " fails with ", en ? en : decimal(uint64_t(e), eb), "\n"};
  size_t at = 0;
  for (const char* p : parts)
    for (; *p && at < sizeof line; p++) line[at++] = *p;
  [[maybe_unused]] ssize_t w = ::write(2, line, at);  // best effort: only a test reads it
  return e;
}

}  // namespace detail

void inject_arm_from_env() noexcept {
  const char* v = std::getenv(kEnv);
  detail::g_inject_armed.store(0);
  for (auto& c : g_counts) c.store(0);
  if (!v || !*v) return;
  int mode = 0;
  if (std::strcmp(v, "count") == 0) {
    mode = 1;
  } else if (parse_specs(v)) {
    mode = 2;
  } else {
    put("libremap: ignoring ");
    put(kEnv);
    put("=");
    put(v);
    put(": expected <site>:<nth>:<errno>[:<times>][,...] or count (see os/failure_injection.h)\n");
    return;
  }
  if (!g_report_registered.exchange(true)) std::atexit(report_counts);
  detail::g_inject_armed.store(mode);
}

uint64_t masked_uffd_features() noexcept {
  const char* v = std::getenv("LIBREMAP_MASK_UFFD_FEATURES");
  if (!v || !*v) return 0;
  uint64_t mask = 0;
  for (const char* p = v; *p;) {
    const char* comma = std::strchr(p, ',');
    const size_t len = comma ? size_t(comma - p) : std::strlen(p);
    uint64_t bits = 0;
    bool known = parse_u64(p, len, &bits);
    for (unsigned b = 0; !known && uffd_feature_name(b); b++)
      if (std::strlen(uffd_feature_name(b)) == len && std::strncmp(uffd_feature_name(b), p, len) == 0) {
        bits = uint64_t(1) << b;
        known = true;
      }
    if (known) {
      mask |= bits;
    } else if (len) {
      put("libremap: LIBREMAP_MASK_UFFD_FEATURES: ignoring an unknown feature name (see the "
          "probe's feature names)\n");
    }
    p += len + (comma ? 1 : 0);
  }
  return mask;
}

}  // namespace remap::os

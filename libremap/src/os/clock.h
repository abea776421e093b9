// clock.h — the monotonic clock every timer in the library reads.
// clock_gettime(CLOCK_MONOTONIC) goes through the vDSO: cheap, and
// async-signal-safe, so fault handlers may time themselves.
#pragma once

#include <time.h>

#include <cstdint>

namespace remap::os {

inline uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

}  // namespace remap::os

// counters.h — what one compaction cycle did, counted as it happens.
//
// GC workers and faulting mutators (inside a SIGBUS handler) add to the same
// counters, so every field is an atomic bumped with relaxed fetch_add once per
// page run or per fault, never per byte. Times are summed over threads.
// fill() copies them into the public remap_cycle_stats.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "libremap.h"
#include "os/clock.h"

namespace remap {

using os::now_ns;  // async-signal-safe (vDSO): fault handlers time themselves

struct Counter {
  std::atomic<uint64_t> v{0};
  void add(uint64_t n) { v.fetch_add(n, std::memory_order_relaxed); }
  uint64_t get() const { return v.load(std::memory_order_relaxed); }
  void reset() { v.store(0, std::memory_order_relaxed); }
};

// Mutator fault latencies: a log2 histogram plus a bounded array of exact
// samples for p50/p99 (recording is one fetch_add and one store: signal-safe).
class FaultLatency {
 public:
  static constexpr size_t kMaxSamples = 1 << 16;
  FaultLatency() : samples_(new uint64_t[kMaxSamples]) {}

  void reset() {
    count_.reset();
    max_.store(0, std::memory_order_relaxed);
    for (auto& b : hist_) b.reset();
  }
  void record(uint64_t ns) {
    uint64_t i = count_.v.fetch_add(1, std::memory_order_relaxed);
    if (i < kMaxSamples) samples_[i] = ns;
    hist_[ns ? 63 - __builtin_clzll(ns) : 0].add(1);
    uint64_t m = max_.load(std::memory_order_relaxed);
    while (ns > m && !max_.compare_exchange_weak(m, ns, std::memory_order_relaxed)) {
    }
  }
  // Not signal-safe; called at finish when no fault can be in flight.
  void fill(remap_cycle_stats* s) const {
    uint64_t n = count_.get();
    s->faults = n;
    s->fault_max_ns = max_.load(std::memory_order_relaxed);
    for (int i = 0; i < REMAP_LATENCY_BUCKETS; i++) s->fault_hist[i] = hist_[i].get();
    size_t kept = size_t(std::min<uint64_t>(n, kMaxSamples));
    if (kept == 0) {
      s->fault_p50_ns = s->fault_p99_ns = 0;
      return;
    }
    std::vector<uint64_t> v(samples_.get(), samples_.get() + kept);
    std::sort(v.begin(), v.end());
    s->fault_p50_ns = v[(kept - 1) / 2];
    s->fault_p99_ns = v[std::min(kept - 1, size_t(double(kept) * 0.99))];
  }

 private:
  Counter count_;
  std::atomic<uint64_t> max_{0};
  Counter hist_[REMAP_LATENCY_BUCKETS];
  std::unique_ptr<uint64_t[]> samples_;
};

struct CycleCounters {
  Counter produce_ns, install_ns, wait_ns, fault_alloc_ns, madvise_ns;
  Counter pages_installed, pages_by_gc, pages_by_mutator, pages_zero, pages_in_place;
  Counter ioctl_move, ioctl_copy, ioctl_zeropage, ioctl_continue, ioctl_wake;
  Counter pages_moved, pages_copied, mprotect_calls, madvise_calls, bytes_copied;
  Counter buffers_recycled, buffers_new, fallback_ebusy, fallback_other;
  Counter large_pages_moved, large_pages_copied, large_pages_updated, large_pages_by_mutator;
  Counter slots_stray, black_walk_errors, helper_wait_ns;
  FaultLatency latency;

  void reset();
  void fill(remap_cycle_stats* s) const;
};

}  // namespace remap

// stats.h — what the toy VM records: each garbage collection (its own
// timers, the pause split into its parts, joined with the library's
// remap_cycle_stats of the same cycle), and each stop-the-world pause, of
// whatever kind, as a mutator experiences it (the pause log).
#pragma once

#include <cstdint>
#include <vector>

#include "libremap.h"

namespace toyvm {

struct GcRecord {
  uint64_t index = 0;          // 1 for the first collection of this VM
  const char* cause = "";      // "allocation", "exhausted", "explicit"
  const char* marking = "";    // "stw" or "concurrent" (vm.h, Marking)
  // The collection's stop-the-world time, ns: with stw marking its one
  // pause (= ttsp + mark + prepare + flip); with concurrent marking the sum
  // of its initial-mark, remark and flip pauses (each in the pause log).
  uint64_t pause_ns = 0;
  uint64_t ttsp_ns = 0;        // safepoint request to every mutator stopped (summed over pauses)
  // stw: tracing from the roots, remap_mark per live object, in the pause.
  // concurrent: the marking phase from the initial mark's end to the last
  // remark's end, mutators running except in the remarks.
  uint64_t mark_ns = 0;
  // remap_prepare (+ forwarding the roots with stw marking); with
  // concurrent marking it runs beside the mutators.
  uint64_t prepare_ns = 0;
  uint64_t flip_ns = 0;        // remap_flip + rewriting the roots (+ retiring TLABs: concurrent)
  // Concurrent marking only: its pauses and what the barrier logged.
  uint64_t initial_mark_ns = 0;  // the initial-mark pause, collector's view
  uint64_t remark_ns = 0;        // all remark pauses, collector's view
  uint64_t remarks = 0;          // remark pauses (more than one: work left over the budget)
  uint64_t satb_logged = 0;      // old values taken from the mutators' SATB buffers
  // After the pause, with mutators running: remap_compact + remap_finish
  // (0 with stw, which compacts inside the flip).
  uint64_t concurrent_ns = 0;
  uint64_t verify_ns = 0;      // the workload's after-GC check (its own pause)
  // Tracing.
  uint64_t roots = 0;
  uint64_t objects_marked = 0;
  uint64_t bytes_marked = 0;
  // Heap occupancy (sum of region tops) before the pause and right after
  // the flip (the compacted layout), and the capacity.
  uint64_t heap_before = 0;
  uint64_t heap_after = 0;
  uint64_t capacity = 0;
  // A growable heap (VmConfig::max_heap_bytes): the capacity the collector
  // chose after this collection (= capacity when it kept it), and the
  // heap's committed bytes then (remap_heap_info.committed_bytes).
  uint64_t capacity_after = 0;
  uint64_t committed_after = 0;
  // The library's view of the same cycle.
  remap_cycle_stats lib{};
};

// Why the world was stopped. With stw marking a collection's pause is
// `collection` (mark + prepare + flip in one stop); with concurrent marking
// it stops for `initial_mark`, `remark` (one or more) and `flip` instead. `check` is the
// workloads' after-GC verification, a pause of the test harness that a
// production runtime would not make: reports leave it out of the VM's pause
// statistics and show it on its own.
enum class PauseKind : uint8_t { collection, initial_mark, remark, flip, check, other };
const char* pause_kind_name(PauseKind k);

// One stop-the-world pause, from "every mutator asked to stop" (the
// safepoint request, so time-to-safepoint is in it) to "every mutator that
// stopped for it runs again" (the last one to wake from the safepoint), the
// pause a mutator experiences. Times are ns; start_ns is since the VM's birth.
struct PauseRecord {
  PauseKind kind = PauseKind::other;
  uint64_t gc_index = 0;       // the collection it belongs to (GcRecord::index)
  uint64_t start_ns = 0;       // safepoint requested, since the VM was created
  uint64_t ttsp_ns = 0;        // request to every running mutator stopped
  uint64_t resume_ns = 0;      // request to the resume (the collector's end)
  uint64_t duration_ns = 0;    // request to the last stopped mutator running
  uint32_t mutators_stopped = 0;  // mutators that waited at a safepoint
};

}  // namespace toyvm

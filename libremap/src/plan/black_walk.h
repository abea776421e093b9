// black_walk.h — walking the objects of a black region (allocated since
// remap_cycle_begin): they were never marked, so their sizes and reference
// slots come from the object model, at the time their pages are produced.
//
// A black region holds objects back to back from its base to the cursor it
// was retired with (libremap.h's contract); a black large object is one
// object from its head region's base. Every answer of the model is checked:
// a size of 0, not a multiple of 8, or running past the end, and a slot
// offset outside the object or unaligned, stop the walk (returns false):
// the caller counts a walk error and the cycle fails at its end, with the
// slots past that point left as they were.
//
// Async-signal-safe as long as the runtime's callbacks are (they run inside
// the SIGBUS handler when a mutator faults on a black page).
#pragma once

#include <cstddef>
#include <cstdint>

#include "libremap.h"

namespace remap {

// Calls slot(a) for every reference slot at old address a in [lo, hi) of
// the objects of [from, end), reading each object at its old address +
// read_delta. Objects entirely below lo are only sized; the walk stops at
// the first object starting at or after hi. one_object: [from, end) is a
// large object (end page-rounded past its size): the walk ends after it.
template <typename F>
bool walk_black(const remap_object_model& m, uintptr_t from, uintptr_t end, intptr_t read_delta,
                uintptr_t lo, uintptr_t hi, bool one_object, F&& slot) noexcept {
  struct Visit {
    F* slot;
    uintptr_t obj;
    size_t size;
    uintptr_t lo, hi;
    bool bad;
    static void on(void* v, size_t off) {
      auto* c = static_cast<Visit*>(v);
      if (c->bad) return;
      if (off >= c->size || c->size - off < 8 || (off & 7)) {
        c->bad = true;
        return;
      }
      const uintptr_t a = c->obj + off;
      if (a >= c->lo && a < c->hi) (*c->slot)(a);
    }
  };
  for (uintptr_t obj = from; obj < end && obj < hi;) {
    const void* readable = reinterpret_cast<const void*>(obj + read_delta);
    const size_t size = m.object_size(m.ctx, readable);
    if (size == 0 || (size & 7) || size > end - obj) return false;
    if (obj + size > lo && m.visit_ref_offsets) {
      Visit v{&slot, obj, size, lo, hi, false};
      m.visit_ref_offsets(m.ctx, readable, &Visit::on, &v);
      if (v.bad) return false;
    }
    if (one_object) break;
    obj += size;
  }
  return true;
}

}  // namespace remap

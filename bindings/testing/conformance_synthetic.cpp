// conformance_synthetic.cpp — the synthetic heap as a conformance-kit
// runtime: the table of libremap_conformance.h over SyntheticHeap.
//
// libremap._testing exports it as remap_conformance_synthetic_v1 (a
// runtime library exports remap_conformance_runtime_v1; _testing holds
// several runtimes, so each gets its own name). The kit loads it with dlopen like any runtime
// library: the synthetic heap passes the kit through the same C table a
// third-party runtime implements, not through the Python bindings.
//
// SyntheticHeap reports failures as C++ exceptions; every callback here
// catches them, since none may cross the C boundary, and keeps the message
// for last_error.
#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include "errors_py.h"
#include "libremap_conformance.h"
#include "synthetic.h"

namespace libremap_py {
namespace {

struct SyntheticRuntime {
  std::unique_ptr<SyntheticHeap> heap;
  std::string error;
};

thread_local std::string create_error;

// Runs f, turning an exception into a status and the runtime's message.
template <typename F>
remap_status guarded(std::string& error, F&& f) {
  try {
    f();
    return REMAP_OK;
  } catch (const StatusError& e) {
    error = e.what();
    return e.status();
  } catch (const std::exception& e) {
    error = e.what();
    return REMAP_CONFORMANCE_EFAILED;
  }
}

SyntheticRuntime* of(void* rt) { return static_cast<SyntheticRuntime*>(rt); }

remap_status create(const remap_heap_config* kit, uint64_t seed, void** out) {
  *out = nullptr;
  auto rt = std::make_unique<SyntheticRuntime>();
  remap_status s = guarded(create_error, [&] {
    SyntheticParams p;
    p.capacity = kit->capacity;
    p.region_size = kit->region_size;
    p.backend = kit->backend;
    p.fault_mode = kit->fault_mode;
    p.gc_threads = kit->gc_threads;
    p.handler_threads = kit->handler_threads;
    p.flags = kit->flags;
    p.seed = seed;
    p.fill_fraction = 0.5;
    // Two large objects (one region each at 3/4 of a region), half of them
    // live, and Guile-like tagged slots with in-heap fixnums: what the
    // table's capabilities declare.
    p.large_objects = 2;
    p.tagging = kTagGuile;
    p.immediate_fraction = 0.1;
    rt->heap = std::make_unique<SyntheticHeap>(p);
  });
  if (s == REMAP_OK) *out = rt.release();
  return s;
}

void destroy(void* rt) { delete of(rt); }

remap_heap* heap(void* rt) { return of(rt)->heap->handle(); }

remap_status mark(void* rt) {
  return guarded(of(rt)->error, [&] { of(rt)->heap->mark(); });
}

remap_status forward_roots(void* rt) {
  return guarded(of(rt)->error, [&] { of(rt)->heap->adopt_flip(); });
}

size_t roots(void* rt, uint64_t* out, size_t cap) {
  const auto& r = of(rt)->heap->roots();
  for (size_t i = 0; i < r.size() && i < cap; ++i) out[i] = r[i];
  return r.size();
}

remap_status checksum(void* rt, uint64_t* out) {
  return guarded(of(rt)->error, [&] { *out = of(rt)->heap->checksum(); });
}

remap_status verify(void* rt) {
  return guarded(of(rt)->error, [&] { of(rt)->heap->verify(); });
}

// The synthetic heap draws every decision from its own generator, seeded at
// create: the same sequence of calls is the same mutation, so `seed` is not
// needed for determinism. Kills a quarter of the live objects, allocates a
// sixteenth of the heap, and redraws the reference graph.
remap_status mutate(void* rt, uint64_t) {
  return guarded(of(rt)->error, [&] {
    SyntheticHeap& h = *of(rt)->heap;
    h.mutate(0.25, h.capacity() / 16, h.params().live_ratio, h.params().dense_fraction);
  });
}

remap_status inject_fault(void* rt, int fault) {
  SyntheticHeap& h = *of(rt)->heap;
  libremap_layout::ModelFault kind;
  switch (fault) {
    case REMAP_CONFORMANCE_FAULT_NONE: kind = libremap_layout::ModelFault::none; break;
    case REMAP_CONFORMANCE_FAULT_SIZE_UNALIGNED: kind = libremap_layout::ModelFault::size_unaligned; break;
    case REMAP_CONFORMANCE_FAULT_SLOT_OUTSIDE: kind = libremap_layout::ModelFault::ref_outside_object; break;
    default:
      of(rt)->error = "synthetic cannot tell lie " + std::to_string(fault);
      return REMAP_EUNSUPPORTED;
  }
  if (h.roots().empty()) {
    of(rt)->error = "synthetic: no root to lie about";
    return REMAP_CONFORMANCE_EFAILED;
  }
  // The first root's object: the tracer reaches it for sure.
  const auto* obj = reinterpret_cast<const libremap_layout::ObjectHeader*>(h.roots()[0]);
  h.set_fault(kind, obj->id);
  return REMAP_OK;
}

const char* last_error(void* rt) {
  return rt ? of(rt)->error.c_str() : create_error.c_str();
}

const remap_conformance_runtime table = {
    sizeof(remap_conformance_runtime),
    REMAP_CONFORMANCE_ABI_VERSION,
    REMAP_CONFORMANCE_LARGE_OBJECTS | REMAP_CONFORMANCE_TAGGED_SLOTS,
    "synthetic",
    create,
    destroy,
    heap,
    mark,
    forward_roots,
    roots,
    checksum,
    verify,
    mutate,
    inject_fault,
    last_error,
    nullptr,  // syscalls: it hands no heap memory to the kernel
    nullptr,  // concurrent_mark: not through this table (yet)
};

}  // namespace
}  // namespace libremap_py

extern "C" __attribute__((visibility("default"))) const remap_conformance_runtime*
remap_conformance_synthetic_v1(void) {
  return &libremap_py::table;
}

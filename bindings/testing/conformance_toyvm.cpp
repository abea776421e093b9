// conformance_toyvm.cpp — the toy VM as a conformance-kit runtime: the
// table of libremap_conformance.h over toyvm::Vm, exported from _testing
// as remap_conformance_toyvm_v1 (see conformance_synthetic.cpp for why the
// name differs from remap_conformance_runtime_v1).
//
// What the kit exercises here is the VM's own integration: its object
// layout and model (object.h), its TLABs (retired before marking), its
// tracer (Marker: class-checked, remap_try_mark) and its root set (globals
// and handles), through Collector::mark_for_driver and
// forward_roots_for_driver. The kit drives libremap's cycle, so the VM's
// collector thread must never start one of its own: the trigger is set out
// of reach, and the graph never fills more than about half of the heap.
//
// The graph lives in kRoots globals. One thread (the kit's) is the only
// mutator; it holds raw Refs across allocations, which the VM's rules allow
// only because no collection can happen in between (none is ever triggered).
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "libremap_conformance.h"
#include "toyvm/vm.h"

namespace toyvm {
namespace {

constexpr size_t kRoots = 32;
constexpr size_t kLargeRoot = kRoots - 1;  // the one global holding a large array

struct ToyRuntime {
  std::unique_ptr<Vm> vm;
  std::unique_ptr<Mutator> m;
  ClassId node = 0, refs = 0, longs = 0;
  size_t first_global = 0;
  std::mt19937_64 rng;
  std::string error;
};

thread_local std::string create_error;

ToyRuntime* of(void* rt) { return static_cast<ToyRuntime*>(rt); }

Ref root(ToyRuntime& t, size_t i) { return t.vm->global(t.first_global + i); }
void set_root(ToyRuntime& t, size_t i, Ref r) { t.vm->set_global(t.first_global + i, r); }

// Only the generator's raw output is used (std distributions differ across
// standard libraries): the graph must be the same for the same seed.
uint64_t next(ToyRuntime& t) { return t.rng(); }

// One new object on a random root: a Node (slot 0 links the root's old
// object, slot 1 shares another root's object or a new long[]), or an
// Object[] of 4 roots. Now and then slot 0 drops the old object: garbage.
void push_random(ToyRuntime& t) {
  const uint64_t r = next(t);
  const size_t at = (r >> 8) % (kRoots - 1);
  Ref obj;
  if (r % 16 == 0) {
    obj = t.m->alloc_ref_array(t.refs, 4);
    for (uint32_t i = 0; i < 4; ++i) set_ref(obj, i, root(t, (r >> (16 + 4 * i)) % kRoots));
  } else {
    obj = t.m->alloc_instance(t.node);
    payload_words(obj)[0] = r;
    payload_words(obj)[1] = next(t);
    set_ref(obj, 0, (r >> 40) % 8 == 0 ? nullptr : root(t, at));
    if ((r >> 44) % 4 == 0) {
      Ref arr = t.m->alloc_prim_array(t.longs, uint32_t((r >> 48) % 32 + 1));
      for (uint32_t i = 0; i < array_length(arr); ++i) payload_words(arr)[i] = r * (i + 1);
      set_ref(obj, 1, arr);
    } else {
      set_ref(obj, 1, root(t, (r >> 52) % kRoots));
    }
  }
  set_root(t, at, obj);
}

// A long[] just over the large-object threshold in the large root (the old
// one becomes garbage): its pages move whole in a cycle.
void replace_large(ToyRuntime& t) {
  const size_t words = t.vm->large_threshold() / 8 + 64;
  Ref arr = t.m->alloc_prim_array(t.longs, uint32_t(words));
  const uint64_t r = next(t);
  for (size_t i = 0; i < words; i += 509) payload_words(arr)[i] = r + i;
  set_root(t, kLargeRoot, arr);
}

template <typename F>
remap_status guarded(std::string& error, F&& f) {
  try {
    return f();
  } catch (const VmStartError& e) {
    error = e.what();
    return e.status;
  } catch (const std::exception& e) {
    error = e.what();
    return REMAP_CONFORMANCE_EFAILED;
  } catch (...) {  // VmAbort: the VM failed and says why
    error = "toyvm aborted";
    return REMAP_CONFORMANCE_EFAILED;
  }
}

remap_status vm_failure(ToyRuntime& t) {
  t.error = t.vm->error_message();
  const remap_status s = t.vm->error_status();
  return s != REMAP_OK ? s : REMAP_CONFORMANCE_EFAILED;
}

// Breadth-first from the globals. A value is followed only if it is a
// plausible object (in the heap, aligned, a defined class, a size that
// fits); else it hashes as a bad value. strict: the first bad value fails.
remap_status walk(ToyRuntime& t, bool strict, uint64_t* hash_out) {
  const remap_heap_info& hi = t.vm->info();
  const uintptr_t base = reinterpret_cast<uintptr_t>(hi.base);
  std::unordered_map<uintptr_t, uint64_t> order;
  std::vector<uintptr_t> queue;
  uint64_t h = 0x6a09e667f3bcc908ull;
  auto mix = [&](uint64_t w) {
    h ^= w;
    h = (h << 23 | h >> 41) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
  };
  std::string bad;
  auto value = [&](uintptr_t v, const char* where) {
    if (v == 0) return mix(0);
    // The header is read only once the address is known to be heap memory.
    const auto* oh = v - base < hi.capacity && (v & 7) == 0
                         ? header(reinterpret_cast<const void*>(v))
                         : nullptr;
    const bool plausible = oh && oh->klass < t.vm->class_count() && oh->size >= kHeaderBytes &&
                           oh->size % 8 == 0 && v - base + oh->size <= hi.capacity;
    if (!plausible) {
      if (bad.empty())
        bad = std::string(where) + " holds " + std::to_string(v) + ", which is not an object";
      mix(1);
      return mix(v - base);
    }
    auto [it, fresh] = order.emplace(v, order.size());
    if (fresh) queue.push_back(v);
    mix(2);
    mix(it->second);
  };
  for (size_t i = 0; i < kRoots; ++i) value(reinterpret_cast<uintptr_t>(root(t, i)), "a global");
  for (size_t qi = 0; qi < queue.size(); ++qi) {
    Ref obj = reinterpret_cast<Ref>(queue[qi]);
    const ObjectHeader* oh = header(obj);
    mix(uint64_t(oh->size) << 32 | oh->nrefs);
    mix(uint64_t(oh->klass) << 32 | oh->aux);
    for (uint32_t i = 0; i < oh->nrefs; ++i) value(reinterpret_cast<uintptr_t>(get_ref(obj, i)), "a slot");
    const uint64_t* w = payload_words(obj);
    for (size_t i = 0; i < payload_size(obj) / 8; ++i) mix(w[i]);
  }
  mix(queue.size());
  if (hash_out) *hash_out = h;
  if (strict && !bad.empty()) {
    t.error = "toyvm verify: " + bad;
    return REMAP_CONFORMANCE_EFAILED;
  }
  return REMAP_OK;
}

remap_status create(const remap_heap_config* kit, uint64_t seed, void** out) {
  *out = nullptr;
  auto t = std::make_unique<ToyRuntime>();
  remap_status s = guarded(create_error, [&] {
    VmConfig c;
    c.heap_bytes = kit->capacity;
    c.region_size = kit->region_size;
    c.backend = kit->backend;
    c.fault_mode = kit->fault_mode;
    c.gc_threads = kit->gc_threads;
    c.handler_threads = kit->handler_threads;
    c.verify_refs = (kit->flags & REMAP_HEAP_VERIFY_REFS) != 0;
    c.marking = Marking::stw;
    // Out of reach: only the kit starts cycles.
    c.trigger_fraction = 1e6;
    c.trigger_min_bytes = ~size_t(0) / 4;
    t->vm = std::make_unique<Vm>(c);
    t->node = t->vm->define_instance("kit.Node", 2, 16);
    t->refs = t->vm->define_ref_array("Object[]");
    t->longs = t->vm->define_prim_array("long[]", 8);
    t->first_global = t->vm->add_global(nullptr);
    for (size_t i = 1; i < kRoots; ++i) t->vm->add_global(nullptr);
    t->m = t->vm->attach();
    t->rng.seed(seed);
    replace_large(*t);
    replace_large(*t);  // the first one is garbage
    while (t->vm->bytes_allocated_total() < kit->capacity / 2) push_random(*t);
    return REMAP_OK;
  });
  if (s == REMAP_OK) *out = t.release();
  return s;
}

void destroy(void* rt) {
  if (!rt) return;
  of(rt)->m.reset();  // detach before the VM goes
  delete of(rt);
}

remap_heap* heap(void* rt) { return of(rt)->vm->heap(); }

remap_status mark(void* rt) {
  ToyRuntime& t = *of(rt);
  return guarded(t.error, [&] { return t.vm->driver_mark() ? REMAP_OK : vm_failure(t); });
}

remap_status forward_roots(void* rt) {
  ToyRuntime& t = *of(rt);
  return guarded(t.error, [&] { return t.vm->driver_forward_roots() ? REMAP_OK : vm_failure(t); });
}

size_t roots(void* rt, uint64_t* out, size_t cap) {
  for (size_t i = 0; i < kRoots && i < cap; ++i)
    out[i] = reinterpret_cast<uint64_t>(root(*of(rt), i));
  return kRoots;
}

remap_status checksum(void* rt, uint64_t* out) {
  ToyRuntime& t = *of(rt);
  return guarded(t.error, [&] { return walk(t, false, out); });
}

remap_status verify(void* rt) {
  ToyRuntime& t = *of(rt);
  return guarded(t.error, [&] { return walk(t, true, nullptr); });
}

remap_status mutate(void* rt, uint64_t seed) {
  ToyRuntime& t = *of(rt);
  return guarded(t.error, [&] {
    t.rng.seed(seed);
    replace_large(t);
    // A number of objects, not of bytes: the VM counts bytes by TLAB, and
    // TLAB sizes depend on the heap's layout, which the kit requires the
    // mutation not to (a cycle must be invisible to the mutator).
    const size_t objects = t.vm->info().capacity / 512;
    for (size_t i = 0; i < objects; ++i) push_random(t);
    return REMAP_OK;
  });
}

const char* last_error(void* rt) { return rt ? of(rt)->error.c_str() : create_error.c_str(); }

const remap_conformance_runtime table = {
    sizeof(remap_conformance_runtime),
    REMAP_CONFORMANCE_ABI_VERSION,
    REMAP_CONFORMANCE_LARGE_OBJECTS,
    "toyvm",
    create,
    destroy,
    heap,
    mark,
    forward_roots,
    roots,
    checksum,
    verify,
    mutate,
    nullptr,  // inject_fault: the VM's object model has no lie to tell
    last_error,
    nullptr,  // syscalls: it hands no heap memory to the kernel
    nullptr,  // concurrent_mark: not through this table (yet)
};

}  // namespace
}  // namespace toyvm

extern "C" __attribute__((visibility("default"))) const remap_conformance_runtime*
remap_conformance_toyvm_v1(void) {
  return &toyvm::table;
}

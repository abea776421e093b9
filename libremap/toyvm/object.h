// object.h — the toy VM's object layout, its class table, and the
// remap_object_model that describes both to libremap.
//
// An object is laid out like a small JVM/ART object:
//     { uint32 size; uint32 nrefs; uint32 klass; uint32 aux; }     16 B header
//     nrefs reference slots, 8 B each: an object start or 0
//     payload up to `size` (a multiple of 8)
// `aux` is the element count of arrays and an identity hash of instances.
//
// The header carries size and nrefs itself (not only the class) so that the
// model callbacks, which run inside libremap's SIGBUS handler and on its GC
// threads, are two loads with no pointer chasing and no lock. The class
// table (names, kinds, instance shapes, element sizes) lives outside the
// moving heap, in the VM: allocation builds headers from it and the marker
// checks every header against it, so a corrupted object is reported instead
// of followed.
//
// Reference slots are read and written with relaxed/acquire-release atomic
// accesses (std::atomic_ref): several mutators may publish and read the same
// slot (the random-graph workload), and the GC reads them only in a pause.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "libremap.h"

namespace toyvm {

// A raw object address. Valid only until the mutator's next safepoint (an
// allocation or a poll): everything that must survive one lives in a handle.
using Ref = void*;

struct ObjectHeader {
  uint32_t size;   // bytes, a multiple of 8, >= 16 + 8 * nrefs
  uint32_t nrefs;  // reference slots right after the header
  uint32_t klass;  // index into the VM's class table
  uint32_t aux;    // arrays: element count; instances: identity hash
};
static_assert(sizeof(ObjectHeader) == 16, "the header is two words");

inline constexpr size_t kHeaderBytes = sizeof(ObjectHeader);
inline constexpr size_t kSlotBytes = 8;

enum class ClassKind : uint8_t { instance, ref_array, prim_array };

using ClassId = uint32_t;

// Class metadata: never in the heap, never freed while the VM lives.
struct ClassInfo {
  std::string name;
  ClassKind kind = ClassKind::instance;
  uint32_t nrefs = 0;          // instances: reference slots
  uint32_t payload_bytes = 0;  // instances: payload after the slots (rounded to 8)
  uint32_t elem_size = 0;      // primitive arrays: bytes per element (1, 2, 4, 8)
};

inline ObjectHeader* header(Ref obj) { return static_cast<ObjectHeader*>(obj); }
inline const ObjectHeader* header(const void* obj) { return static_cast<const ObjectHeader*>(obj); }

inline uintptr_t* slot_addr(Ref obj, uint32_t i) {
  return reinterpret_cast<uintptr_t*>(static_cast<char*>(obj) + kHeaderBytes + kSlotBytes * i);
}
// Slot accessors: acquire/release so that a reference published by one
// mutator to another carries the initialised object with it.
inline Ref get_ref(Ref obj, uint32_t i) {
  return reinterpret_cast<Ref>(std::atomic_ref<uintptr_t>(*slot_addr(obj, i)).load(std::memory_order_acquire));
}
inline void set_ref(Ref obj, uint32_t i, Ref value) {
  std::atomic_ref<uintptr_t>(*slot_addr(obj, i)).store(reinterpret_cast<uintptr_t>(value),
                                                        std::memory_order_release);
}
// The payload after the reference slots.
inline char* payload(Ref obj) {
  return static_cast<char*>(obj) + kHeaderBytes + kSlotBytes * header(obj)->nrefs;
}
inline uint64_t* payload_words(Ref obj) { return reinterpret_cast<uint64_t*>(payload(obj)); }
inline size_t payload_size(Ref obj) {
  return header(obj)->size - kHeaderBytes - kSlotBytes * header(obj)->nrefs;
}
inline uint32_t array_length(Ref obj) { return header(obj)->aux; }

// ---- the object model handed to libremap ----------------------------------
// Both callbacks only read the header of the (possibly from-space) copy they
// are given: async-signal-safe, lock-free, independent of slot values.
// (A black large object whose size is not a page multiple used to trip
// libremap's walk of black memory; the library walks it as one object now,
// and tests/runtimes/test_toyvm_marking.py keeps the reproducer.)
struct ModelContext {};

inline size_t model_object_size(void*, const void* obj) { return header(obj)->size; }

inline void model_visit_ref_offsets(void*, const void* obj, remap_visit_fn visit, void* vctx) {
  const uint32_t n = header(obj)->nrefs;
  for (uint32_t i = 0; i < n; ++i) visit(vctx, kHeaderBytes + kSlotBytes * i);
}

// ctx (may be null: exact sizes) must outlive the heap.
inline void install_model(remap_object_model& model, const ModelContext* ctx = nullptr) {
  if (model.struct_size == 0) model.struct_size = sizeof(remap_object_model);
  model.ctx = const_cast<ModelContext*>(ctx);
  model.object_size = &model_object_size;
  model.visit_ref_offsets = &model_visit_ref_offsets;
}

}  // namespace toyvm

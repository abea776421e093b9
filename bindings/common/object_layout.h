// object_layout.h — the object layout shared by the synthetic heap and the
// toy VM, and the remap_object_model that describes it to libremap.
//
// An object is
//     { uint32_t size; uint16_t nrefs; uint16_t klass; uint64_t id; }   16 B
//     nrefs reference slots, 8 B each: an object start, 0, or a value
//         outside the heap (left alone by the library)
//     payload bytes up to `size`
// with size a multiple of 8 and >= 16 + 8 * nrefs.
//
// The model callbacks run on GC threads and inside libremap's SIGBUS
// handler: they only read the object header and the fault knob (relaxed
// atomic loads, plain movs on x86-64), never lock or allocate, and never
// look at reference slot values (libremap.h's contract).
//
// The fault knob makes the model lie about one object (chosen by id) so that
// tests can check the library rejects a broken object model cleanly
// (REMAP_EOBJMODEL) instead of corrupting the heap.
//
// Self-contained: include it with libremap.h only.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "libremap.h"

namespace libremap_layout {

struct ObjectHeader {
  uint32_t size;   // bytes, multiple of 8, >= 16 + 8 * nrefs
  uint16_t nrefs;  // reference slots right after the header
  uint16_t klass;  // opaque to the library; nonzero in the synthetic heap
  uint64_t id;     // stable identity across moves (checksums use it)
};
static_assert(sizeof(ObjectHeader) == 16, "the header is two words");

inline constexpr size_t kHeaderBytes = 16;
inline constexpr size_t kSlotBytes = 8;

inline constexpr size_t slot_offset(size_t i) { return kHeaderBytes + kSlotBytes * i; }
inline constexpr size_t min_object_size(size_t nrefs) { return kHeaderBytes + kSlotBytes * nrefs; }

inline const ObjectHeader* header(const void* obj) {
  return static_cast<const ObjectHeader*>(obj);
}
inline ObjectHeader* header(void* obj) { return static_cast<ObjectHeader*>(obj); }
inline uint64_t* slots(void* obj) {
  return reinterpret_cast<uint64_t*>(static_cast<char*>(obj) + kHeaderBytes);
}
inline const uint64_t* slots(const void* obj) {
  return reinterpret_cast<const uint64_t*>(static_cast<const char*>(obj) + kHeaderBytes);
}

// Ways the model can lie about the object whose id is ModelCtx::fault_id.
enum class ModelFault : int {
  none = 0,
  size_zero = 1,            // object_size returns 0
  size_crosses_region = 2,  // a size that runs 8 bytes past the region's end
  ref_outside_object = 3,   // visits offset == size (first byte after the object)
  size_unaligned = 4,       // object_size returns size + 4
  ref_unaligned = 5,        // visits offset 12 (inside the header, not 8-aligned)
};
inline constexpr int kModelFaultCount = 6;

inline const char* model_fault_name(ModelFault f) {
  switch (f) {
    case ModelFault::none: return "none";
    case ModelFault::size_zero: return "size_zero";
    case ModelFault::size_crosses_region: return "size_crosses_region";
    case ModelFault::ref_outside_object: return "ref_outside_object";
    case ModelFault::size_unaligned: return "size_unaligned";
    case ModelFault::ref_unaligned: return "ref_unaligned";
  }
  return "?";
}

// The model's ctx. Must outlive the heap and must not move (the library
// keeps the pointer).
struct ModelCtx {
  // Needed only to make size_crosses_region cross exactly: objects are read
  // at their heap address or at the same offset of a from-space that is
  // aligned at least to region_size (DESIGN §3), so obj % region_size is the
  // object's offset in its region in both cases.
  size_t region_size = 0;
  std::atomic<int> fault_kind{0};
  std::atomic<uint64_t> fault_id{0};

  void set_fault(ModelFault kind, uint64_t id) {
    fault_id.store(id, std::memory_order_relaxed);
    fault_kind.store(static_cast<int>(kind), std::memory_order_release);
  }
  ModelFault fault_for(const ObjectHeader* h) const {
    int k = fault_kind.load(std::memory_order_relaxed);
    if (k == 0 || h->id != fault_id.load(std::memory_order_relaxed)) return ModelFault::none;
    return static_cast<ModelFault>(k);
  }
};

inline size_t model_object_size(void* vctx, const void* obj) {
  const ObjectHeader* h = header(obj);
  const auto* ctx = static_cast<const ModelCtx*>(vctx);
  switch (ctx->fault_for(h)) {
    case ModelFault::size_zero: return 0;
    case ModelFault::size_crosses_region: {
      size_t off = reinterpret_cast<uintptr_t>(obj) & (ctx->region_size - 1);
      return ctx->region_size - off + 8;
    }
    case ModelFault::size_unaligned: return size_t(h->size) + 4;
    default: return h->size;
  }
}

inline void model_visit_ref_offsets(void* vctx, const void* obj, remap_visit_fn visit, void* vvctx) {
  const ObjectHeader* h = header(obj);
  const auto* ctx = static_cast<const ModelCtx*>(vctx);
  const unsigned n = h->nrefs;
  for (unsigned i = 0; i < n; ++i) visit(vvctx, slot_offset(i));
  switch (ctx->fault_for(h)) {
    case ModelFault::ref_outside_object: visit(vvctx, h->size); break;
    case ModelFault::ref_unaligned: visit(vvctx, 12); break;
    default: break;
  }
}

// Fills the model part of a heap config (struct_size already set by
// remap_heap_config_init).
inline void install_model(remap_object_model& model, ModelCtx* ctx) {
  if (model.struct_size == 0) model.struct_size = sizeof(remap_object_model);
  model.ctx = ctx;
  model.object_size = &model_object_size;
  model.visit_ref_offsets = &model_visit_ref_offsets;
}

}  // namespace libremap_layout

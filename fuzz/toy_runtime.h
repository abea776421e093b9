// toy_runtime.h — the runtime the heap fuzzers play: a bump allocator on
// remap regions, objects that describe themselves, and a shadow copy of
// every object the library must keep intact.
//
// Object layout (8-byte words):
//   word 0   size in bytes | nrefs << 32     (what the object model reads)
//   word 1   the object's id word: id << 8 | 3 (never a valid size, so a
//            mark of obj + 8 is refused by the model's own answer)
//   word 2.. nrefs reference slots, any value
//   rest     payload: payload_word(id, i), never an in-heap address
//
// The shadow holds each live object's address, size, id and expected slot
// values. At a flip the runtime computes, by its own reading of the
// contract (libremap.h, remap_object_model), what every slot must hold
// afterwards and where every marked object went (remap_forward); verify()
// then reads the heap and stops the fuzzer on the first difference.
//
// Every call goes through check(): a status outside the enum, a message
// missing, REMAP_EINTERNAL, or a refused call that changed the phase or
// broke the heap is a finding.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_input.h"
#include "libremap.h"

namespace fuzz {

// How slots encode references (remap_heap_config.ref_*): the documented
// schemes of libremap.h.
struct Encoding {
  uint64_t tag_mask = 0, check_mask = 0, check_value = 0;
  static Encoding pick(Input& in);
  // A reference to addr with some tag bits the scheme allows.
  uint64_t ref(uintptr_t addr, uint8_t tag_choice) const;
  // The address a value refers to, or 0 if it is not a reference.
  uintptr_t decode(uint64_t v) const {
    if ((v & check_mask) != check_value) return 0;
    return uintptr_t(v & ~tag_mask);
  }
};

// The object-model fuzzer's liar: consulted on every callback while set.
struct ModelLies {
  virtual ~ModelLies() = default;
  virtual size_t size(const void* obj, size_t honest) = 0;
  virtual void offsets(const void* obj, size_t honest_size, uint32_t nrefs, remap_visit_fn visit,
                       void* vctx) = 0;
  // Whether any answer so far differed from the honest one: a plausible lie
  // (a smaller size, a dropped slot) is accepted and corrupts objects, which
  // is the runtime's fault, so the shadow cannot be checked after one.
  virtual bool lied() const = 0;
};

struct Obj {
  uintptr_t addr;
  size_t size;
  uint32_t nrefs;
  uint64_t id;
  std::vector<uint64_t> slots;  // expected values
  bool large = false;
  bool marked = false;  // marked (or try_marked) this cycle and the library said yes
  bool black = false;   // allocated between remap_cycle_begin and the flip
  bool snap = false;    // existed when the cycle's snapshot was taken
};

uint64_t payload_word(uint64_t id, size_t i);

class ToyRuntime {
 public:
  ToyRuntime() = default;
  ~ToyRuntime();
  ToyRuntime(const ToyRuntime&) = delete;
  ToyRuntime& operator=(const ToyRuntime&) = delete;

  // cfg without its model: the runtime's own is filled in.
  remap_status create(remap_heap_config cfg, const Encoding& enc);
  remap_heap* heap() const { return heap_; }
  const remap_heap_info& info() const { return info_; }
  int phase();  // remap_heap_get_info's

  // Checks one call's outcome (see the file comment). `refusable`: the
  // phase must not change when it fails. Returns st.
  remap_status check(const char* call, remap_status st, int phase_before);

  // --- the mutator --------------------------------------------------------
  remap_status alloc_small(Input& in);
  remap_status alloc_large(Input& in);
  remap_status retire_tlab();
  void write_slot(Input& in);
  void read_object(Input& in);  // verify one object (a fault while COMPACTING)
  // A slot value: NULL, a reference, an immediate, an interior pointer...
  uint64_t slot_value(Input& in);

  // --- the collector -------------------------------------------------------
  remap_status mark(size_t idx, bool try_mark);
  remap_status mark_all(bool try_mark);
  remap_status cycle_begin();
  remap_status prepare();
  remap_status flip();
  remap_status compact(bool work);
  remap_status finish();
  remap_status clear_marks();
  // The whole cycle, driven the way libremap.h says (for a clean ending).
  remap_status full_cycle();

  // Reads every live object and compares it with the shadow.
  void verify(const char* when) const;

  std::vector<Obj>& objects() { return objs_; }
  bool holds_tlab() const { return tlab_start_ != 0; }
  uintptr_t tlab_start() const { return tlab_start_; }
  uintptr_t tlab_cursor() const { return tlab_cur_; }
  uintptr_t tlab_end() const { return tlab_end_; }
  bool begun() const { return begun_; }
  // Set by a try_mark the library had to accept on faith (obj + 8): the
  // next prepare must refuse it.
  bool poisoned() const { return poisoned_; }
  void set_poisoned() { poisoned_ = true; }
  void set_lies(ModelLies* lies) { lies_.store(lies, std::memory_order_release); }
  const Encoding& encoding() const { return enc_; }
  bool lies_told() const {
    ModelLies* l = lies_.load(std::memory_order_acquire);
    return l && l->lied();
  }
  uint64_t cycles_completed() const { return cycles_; }

 private:
  static size_t model_size(void* ctx, const void* obj);
  static void model_visit(void* ctx, const void* obj, remap_visit_fn visit, void* vctx);
  void write_object(const Obj& o, bool sparse);
  // A new object at addr (allocated by the caller), its slots drawn from
  // `in`, written and recorded; large objects are written sparsely.
  void add_object(Input& in, uintptr_t addr, size_t size, uint32_t nrefs, bool large);
  void take_snapshot();
  void after_flip();
  void end_cycle();
  Obj* find(uintptr_t addr);

  remap_heap* heap_ = nullptr;
  remap_heap_info info_{};
  Encoding enc_;
  std::vector<Obj> objs_;
  uint64_t next_id_ = 1;
  uintptr_t tlab_start_ = 0, tlab_cur_ = 0, tlab_end_ = 0;
  bool begun_ = false;      // remap_cycle_begin succeeded, not flipped yet
  bool prepared_ = false;   // a snapshot is taken (prepare or begin)
  bool poisoned_ = false;
  uint64_t cycles_ = 0;
  std::atomic<ModelLies*> lies_{nullptr};
};

// Interesting hostile values.
extern const size_t kHostileSizes[];
extern const size_t kHostileSizesCount;

}  // namespace fuzz

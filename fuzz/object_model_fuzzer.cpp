// object_model_fuzzer.cpp — a runtime whose object model lies.
//
// remap_object_model's two callbacks answer from a script in the input:
// sizes of 0, misaligned, one word too many or too few, a region, 2^40,
// SIZE_MAX, sizes that wrap the address space; slot offsets outside the
// object, misaligned, far away, repeated a thousand times, or none at all.
// The script is read per call or per object (the same lie every time it is
// asked), at remap_mark, at prepare (remap_try_mark's deferred marks), and
// where black objects of a cycle begun with remap_cycle_begin are walked:
// on GC threads and inside a mutator's SIGBUS handler.
//
// What must hold (libremap.h, remap_object_model):
//   - every call returns a status; an answer that cannot be right fails
//     the call with REMAP_EOBJMODEL (or EINVAL for overlapping marks) and
//     changes nothing; past the flip, a black object's bad size may end the
//     cycle with REMAP_EOBJMODEL and a BROKEN heap, nothing worse;
//   - no crash, no hang, no out-of-bounds access in the library;
//   - after a refusal, the same heap with an honest model (marks cleared)
//     completes a cycle with every object intact.
// A lie the library cannot detect (a plausible, wrong size) is the
// runtime's own corruption: the shadow is not checked after one.
#include <atomic>
#include <cstddef>
#include <cstring>
#include <vector>

#include "fuzz_input.h"
#include "heap_setup.h"
#include "libremap.h"
#include "toy_runtime.h"

using namespace fuzz;

namespace {

class Liar : public ModelLies {
 public:
  Liar(Input& in, size_t region_size) : region_size_(region_size) {
    per_object_ = in.flag();
    const size_t n = 1 + in.below(32);
    for (size_t i = 0; i < n; ++i) script_.push_back(in.u8());
  }

  size_t size(const void* obj, size_t honest) override {
    const uint8_t b = next(obj);
    size_t r = honest;
    switch (b % 16) {
      case 6: r = 0; break;
      case 7: r = honest + 1 + (b >> 4) % 7; break;
      case 8: r = honest + 8; break;
      case 9: r = honest - 8; break;
      case 10: r = region_size_; break;
      case 11: r = region_size_ + 8; break;
      case 12: r = SIZE_MAX & ~size_t(7); break;
      case 13: r = size_t(1) << 40; break;
      case 14: r = honest * 2; break;
      case 15: r = size_t(0) - uintptr_t(obj) + 8; break;  // obj + size wraps to 8
      default: break;
    }
    if (r != honest) lied_.store(true, std::memory_order_relaxed);
    return r;
  }

  void offsets(const void* obj, size_t honest_size, uint32_t nrefs, remap_visit_fn visit,
               void* vctx) override {
    const uint8_t b = next(obj);
    const size_t bad[] = {honest_size, honest_size - 4, 4, SIZE_MAX & ~size_t(7),
                          size_t(1) << 40, region_size_, size_t(0) - 8, 0};
    const size_t pick = bad[(b >> 3) % 8];
    switch (b % 8) {
      case 4:  // the honest slots, and one more somewhere
        for (uint32_t i = 0; i < nrefs; ++i) visit(vctx, 16 + 8 * size_t(i));
        visit(vctx, pick);
        break;
      case 5:  // only the bad one
        visit(vctx, pick);
        break;
      case 6:  // one slot, a thousand times
        for (int i = 0; i < 1000; ++i) visit(vctx, nrefs ? 16 : pick);
        break;
      case 7:  // none
        break;
      default:
        for (uint32_t i = 0; i < nrefs; ++i) visit(vctx, 16 + 8 * size_t(i));
        return;
    }
    lied_.store(true, std::memory_order_relaxed);
  }

  bool lied() const override { return lied_.load(std::memory_order_relaxed); }

 private:
  // Called on the marking thread, GC threads and in SIGBUS handlers: no
  // allocation, one atomic.
  uint8_t next(const void* obj) {
    const size_t i = per_object_ ? size_t((uintptr_t(obj) >> 3) * 2654435761u)
                                 : pos_.fetch_add(1, std::memory_order_relaxed);
    return script_[i % script_.size()];
  }

  std::vector<uint8_t> script_;
  bool per_object_ = false;
  size_t region_size_;
  std::atomic<size_t> pos_{0};
  std::atomic<bool> lied_{false};
};

// Reads one word of every page of every object: makes a COMPACTING heap
// produce them (black objects are walked with the lying model then).
void touch_objects(ToyRuntime& rt) {
  for (const Obj& o : rt.objects())
    for (size_t off = 0; off < o.size; off += 4096)
      (void)*reinterpret_cast<volatile const uint64_t*>(o.addr + off);
}

void allocate(ToyRuntime& rt, Input& in, int n) {
  for (int i = 0; i < n; ++i)
    (void)(in.below(8) == 0 ? rt.alloc_large(in) : rt.alloc_small(in));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  ToyRuntime rt;
  const remap_heap_config cfg = small_config(in);
  if (rt.create(cfg, Encoding::pick(in)) != REMAP_OK) return 0;
  const int backend = rt.info().backend;
  allocate(rt, in, 1 + int(in.below(48)));
  // Sometimes an honest cycle first: compacted regions, tails, a kept plan.
  if (in.flag()) (void)rt.full_cycle();
  (void)rt.retire_tlab();

  Liar liar(in, rt.info().region_size);
  const bool concurrent_cycle =
      in.flag() && backend != REMAP_BACKEND_MINOR && backend != REMAP_BACKEND_SIGSEGV;
  if (concurrent_cycle && rt.cycle_begin() == REMAP_OK) {
    rt.set_lies(&liar);
    allocate(rt, in, int(in.below(16)));  // black: walked with the model later
    (void)rt.retire_tlab();
  }
  rt.set_lies(&liar);
  const uint64_t cycles_before = rt.cycles_completed();
  for (size_t i = 0; i < rt.objects().size(); ++i)
    if (in.below(4) != 0) (void)rt.mark(i, in.flag());

  remap_status st = rt.prepare();
  if (st == REMAP_OK) st = rt.flip();
  if (st == REMAP_OK && rt.phase() == REMAP_PHASE_COMPACTING) {
    if (in.flag()) touch_objects(rt);  // faults: the mutator produces pages
    st = rt.compact(in.flag());
    if (st == REMAP_OK || rt.phase() == REMAP_PHASE_COMPACTING) (void)rt.finish();
  }
  const int ph = rt.phase();
  if (ph == REMAP_PHASE_BROKEN) return 0;  // allowed only as check() let it: EOBJMODEL
  // A completed cycle was verified by end_cycle if the model never lied; a
  // lie it accepted is the runtime's own corruption.
  if (rt.cycles_completed() > cycles_before) return 0;
  // Refused: nothing may be lost. An honest model, the marks cleared (a lie
  // accepted before the refusal may have left a wrong size in them), and
  // the same heap must complete a cycle with every object intact.
  rt.set_lies(nullptr);
  if (ph == REMAP_PHASE_COMPACTING) return 0;  // a cycle that could not finish: destroy copes
  st = rt.clear_marks();
  if (st != REMAP_OK) finding("remap_clear_marks after a refused cycle: %s", remap_last_error());
  rt.verify("after a refused cycle");
  st = rt.full_cycle();
  if (st != REMAP_OK && !(cfg.flags & REMAP_HEAP_VERIFY_REFS))
    finding("an honest cycle after a refused one failed: %s: %s", remap_status_name(st),
            remap_last_error());
  return 0;
}

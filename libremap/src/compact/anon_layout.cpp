// anon_layout.cpp — private anonymous heap, from-space by mremap(DONTUNMAP).
//
// From-space has the heap mapping's size and 1 GiB alignment, so the flip's
// mremap moves page tables at PUD level and costs the same at any heap size
// (heap/heap.h). The whole mapping, not just `capacity`, is registered:
// registering part of a VMA would split it, and the VMA count must stay flat
// cycle after cycle.
#include "compact/anon_layout.h"

#include "os/uffd_abi.h"
#include "os/uffd_ops.h"

namespace remap {
namespace {

class AnonLayout final : public Layout {
 public:
  AnonLayout(Heap& heap, int uffd, Backend& backend)
      : heap_(heap), uffd_(uffd), backend_(backend) {}

  Status init() {
    return os::reserve_aligned(heap_.map_size(), size_t(1) << 30, PROT_READ | PROT_WRITE, &from_);
  }

  Status prepare(const Plan& plan, RegionSpaces* spaces) override {
    intptr_t delta = intptr_t(uintptr_t(from_.addr())) - intptr_t(heap_.base());
    spaces->read.assign(heap_.region_count(), delta);
    spaces->write.assign(heap_.region_count(), delta);
    return Status::ok();
  }

  Status flip(const Plan&, bool* lost) override {
    void* heap_map = reinterpret_cast<void*>(heap_.map_base());
    // The pages move to from-space; the heap range stays mapped, empty.
    Status s = os::remap_dontunmap(heap_map, heap_.map_size(), from_.addr());
    if (!s) return s;
    os::UffdResult r = os::uffd_register(uffd_, heap_map, heap_.map_size(),
                                         UFFDIO_REGISTER_MODE_MISSING, nullptr);
    if (r.ok()) {
      // From-space now holds the heap's old pages. A fork()ed child needs
      // none of them (every page is installed before a fork, see
      // api/fork_guard.cpp), and a copy-on-write share would make them
      // non-exclusive here: UFFDIO_MOVE out of them would then fail EBUSY.
      // The mremap replaced the VMA, so the advice is given per cycle (a
      // flag on one VMA: no page walk). Failing it only costs those copies.
      from_dontfork_ = os::advise(from_.addr(), from_.size(), os::Advice::dontfork).is_ok();
      return Status::ok();
    }
    Status why = os::uffd_status("UFFDIO_REGISTER", r, heap_map, heap_.map_size());
    // Put the pages back: the heap is as it was.
    Status back = os::remap_dontunmap(from_.addr(), heap_.map_size(), heap_map);
    if (!back) {
      // The heap range is unregistered and empty (it reads zero); its pages
      // are in from-space, which stays mapped until the heap is destroyed.
      *lost = true;
      return fail(why.code,
                  "%s; undoing the flip failed too (%s): the heap's pages are left in from-space "
                  "at %p and the heap range reads zero",
                  why.message.c_str(), back.message.c_str(), from_.addr());
    }
    return why;
  }

  Status stop_faults() override {
    void* heap_map = reinterpret_cast<void*>(heap_.map_base());
    // Unregistering wakes every thread parked on the range; its retry then
    // faults normally.
    os::UffdResult r = os::uffd_unregister(uffd_, heap_map, heap_.map_size());
    if (!r.ok()) return os::uffd_status("UFFDIO_UNREGISTER", r, heap_map, heap_.map_size());
    return Status::ok();
  }

  Status release_old(const Plan&) override {
    Status s = backend_.finish_from_space(uintptr_t(from_.addr()), heap_.capacity());
    if (!s) return s;
    // The pages moved out of from-space left their page tables behind. A
    // fresh mapping frees them here, outside any pause; otherwise the next
    // flip's mremap(MREMAP_FIXED) would tear them down inside it.
    from_dontfork_ = false;  // a fresh VMA
    return os::renew_anonymous(from_.addr(), from_.size());
  }

  bool clip() const override { return false; }

  void abandon_in_child() noexcept override {
    // A from-space the child inherited is its own mapping; one marked
    // MADV_DONTFORK was never copied here, and its range may hold the
    // child's own mappings by now: leave it alone.
    if (from_dontfork_) (void)from_.release();
    else from_.reset();
  }

 private:
  Heap& heap_;
  int uffd_;
  Backend& backend_;
  os::Mapping from_;
  bool from_dontfork_ = false;  // from-space is MADV_DONTFORK (flip .. release_old)
};

}  // namespace

Status make_anon_layout(Heap& heap, int uffd, Backend& backend, std::unique_ptr<Layout>* out) {
  auto l = std::make_unique<AnonLayout>(heap, uffd, backend);
  Status s = l->init();
  if (!s) return s;
  *out = std::move(l);
  return Status::ok();
}

}  // namespace remap

// shmem_layout.cpp — the heap on a memfd with two slots per region (see
// shmem_layout.h for the protocol).
#include "compact/shmem_layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "os/fd.h"
#include "os/fork.h"
#include "os/procfs.h"
#include "os/uffd_abi.h"
#include "os/uffd_ops.h"
#include "os/vm.h"

namespace remap {
namespace {

// VMAs the sigsegv check leaves for the rest of the process while a cycle
// runs (threads starting, the runtime's own mmaps).
constexpr int64_t kVmaSlack = 64;

class ShmemLayout final : public Layout {
 public:
  ShmemLayout(Heap& heap, bool protect, int uffd, CycleCounters& counters)
      : heap_(heap), sigsegv_(protect), uffd_(uffd), c_(counters) {}

  Status init() {
    // The file's geometry is the heap's maximum, fixed for its life: a
    // resize changes which regions are the heap, never where a slot is.
    const size_t cap = heap_.max_capacity();
    Status s = os::memfd_create_sized("libremap-heap", 2 * cap, &fd_);
    if (!s) return s;
    s = os::map_file(2 * cap, PROT_READ | PROT_WRITE, fd_.get(), 0, &alias_);
    if (!s) return s;
    // The alias writes the parent's file: a fork()ed child must never have
    // it (its copy of the heap is made private at the fork, see fork_child).
    s = os::advise(alias_.data(), alias_.size(), os::Advice::dontfork);
    if (!s) return s;
    // The engine is normally created with the heap; if the runtime already
    // allocated, its bytes move into slot 0 before the range is replaced.
    const size_t rs = heap_.region_size();
    for (size_t r = 0; r < heap_.region_count(); r++) {
      size_t top = heap_.region(r).top.load(std::memory_order_acquire);
      if (!top) continue;
      top = std::min(top, cap - r * rs);  // a large head's top spans its tails
      memcpy(alias_.data() + r * rs, reinterpret_cast<const void*>(heap_.region_base(r)), top);
    }
    // The whole maximum: regions a later resize adds are already mapped on
    // their slot (a flip re-maps only the capacity's runs).
    s = os::map_file_fixed(reinterpret_cast<void*>(heap_.base()), cap, PROT_READ | PROT_WRITE,
                           fd_.get(), 0);
    if (!s) return s;
    heap_.set_file_backed();
    slot_.assign(heap_.max_region_count(), 0);
    new_slot_ = slot_;
    dirty_.assign(heap_.max_region_count(), 0);
    heap_vmas_ = 1;
    return Status::ok();
  }

  Status prepare(const Plan& plan, RegionSpaces* spaces) override {
    const size_t n = heap_.region_count();
    const size_t rs = heap_.region_size();
    for (size_t r = 0; r < n; r++) {
      const RegionClass cls = plan.region_class(r);
      const RegionState st = plan.old_state(r);
      const bool held = st == RegionState::RETIRED || st == RegionState::LARGE_HEAD ||
                        st == RegionState::LARGE_TAIL;
      new_slot_[r] = slot_[r];
      if (cls == RegionClass::FRAGMENTED || (cls == RegionClass::EMPTY && held))
        new_slot_[r] = uint8_t(1 - slot_[r]);
    }
    // A sliding large object is copied from its old regions into its new
    // ones: every old region switches (its old slot is read while the new
    // layout's bytes for that region, if any, are written to the other), and
    // a new region is free or empty in the old layout (same slot, reading
    // zero, or switched). A staying one is updated in place, page by page
    // in each region's own slot (producer.cpp: large_page).
    for (const LargeMove& m : plan.large_moves())
      for (size_t r = m.old_head; r < size_t(m.old_head) + m.regions; r++)
        new_slot_[r] = uint8_t(1 - slot_[r]);
    // A region switching into a slot that may hold stale bytes (its punch
    // failed at an earlier release) gets a clean one first.
    for (size_t r = 0; r < n; r++) {
      if (!dirty_[r] || new_slot_[r] == slot_[r]) continue;
      Status s = os::punch_hole(fd_.get(), off_t(offset(new_slot_[r], r)), rs);
      if (!s) return s;
      dirty_[r] = 0;
    }
    const intptr_t alias = intptr_t(uintptr_t(alias_.data()));
    const intptr_t base = intptr_t(heap_.base());
    const intptr_t cap = intptr_t(heap_.max_capacity());
    spaces->read.resize(n);
    spaces->write.resize(n);
    for (size_t r = 0; r < n; r++) {
      spaces->read[r] = alias + intptr_t(slot_[r]) * cap - base;
      spaces->write[r] = alias + intptr_t(new_slot_[r]) * cap - base;
    }
    return Status::ok();
  }

  Status flip(const Plan&, bool* lost) override {
    if (sigsegv_) {
      Status s = check_vma_budget();
      if (!s) return s;
    }
    const int prot = sigsegv_ ? PROT_NONE : PROT_READ | PROT_WRITE;
    size_t runs = 0;
    Status s = map_runs(new_slot_, prot, &runs);
    if (s && !sigsegv_) {
      uint64_t ioctls = 0;
      os::UffdResult r = os::uffd_register(
          uffd_, reinterpret_cast<void*>(heap_.base()), heap_.capacity(),
          UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR, &ioctls);
      if (!r.ok())
        s = os::uffd_status("UFFDIO_REGISTER(MISSING|MINOR)", r,
                            reinterpret_cast<void*>(heap_.base()), heap_.capacity());
      else if (!(ioctls & (uint64_t(1) << _UFFDIO_CONTINUE))) {
        os::uffd_unregister(uffd_, reinterpret_cast<void*>(heap_.base()), heap_.capacity());
        s = fail(REMAP_EUNSUPPORTED, "UFFDIO_CONTINUE is not available on the heap's shmem range");
      }
    }
    if (s) {
      heap_vmas_ = runs;
      flipped_ = true;
      return s;
    }
    // Put the old layout back, read-write: the heap is as it was.
    size_t ignored;
    Status back = map_runs(slot_, PROT_READ | PROT_WRITE, &ignored);
    if (!back) {
      // Some regions map the new layout's slots (zero or stale bytes), or
      // are PROT_NONE (sigsegv); the old bytes are still in the file.
      *lost = true;
      return fail(s.code,
                  "%s; undoing the flip failed too (%s): part of the heap range maps the wrong "
                  "file slots",
                  s.message.c_str(), back.message.c_str());
    }
    return s;
  }

  Status stop_faults() override {
    void* base = reinterpret_cast<void*>(heap_.base());
    if (sigsegv_) return os::protect(base, heap_.capacity(), PROT_READ | PROT_WRITE);
    // Unregistering wakes every thread parked on the range; its retry then
    // faults normally (a page never installed is read from the file).
    os::UffdResult r = os::uffd_unregister(uffd_, base, heap_.capacity());
    if (!r.ok()) return os::uffd_status("UFFDIO_UNREGISTER", r, base, heap_.capacity());
    return Status::ok();
  }

  Status release_old(const Plan&) override {
    const size_t n = heap_.region_count();
    const size_t rs = heap_.region_size();
    Status first_error = Status::ok();
    for (size_t r = 0; r < n;) {
      if (new_slot_[r] == slot_[r]) {
        r++;
        continue;
      }
      size_t e = r + 1;
      while (e < n && new_slot_[e] != slot_[e] && slot_[e] == slot_[r]) e++;
      uint64_t t0 = now_ns();
      Status s = os::punch_hole(fd_.get(), off_t(offset(slot_[r], r)), (e - r) * rs);
      c_.madvise_calls.add(1);
      c_.madvise_ns.add(now_ns() - t0);
      if (!s && first_error) first_error = s;
      for (size_t k = r; k < e; k++) {
        slot_[k] = new_slot_[k];
        dirty_[k] = s ? 0 : 1;
      }
      r = e;
    }
    flipped_ = false;  // slot_ == new_slot_ for every region now
    return first_error;
  }

  bool clip() const override { return true; }

  // A MAP_SHARED heap is shared, not copied, by fork(): a child's stores
  // would land in the parent's heap and a child's cycle (which re-maps and
  // punches the file) would wreck it. The child gets a private snapshot
  // instead, taken here before the fork so that no store the parent makes
  // after fork() returns can reach it: the data extents of the slots the heap
  // maps, read with pread (a PROT_NONE sigsegv page or a MINOR-registered one
  // reads the same; holes are skipped and stay unallocated).
  void fork_prepare() noexcept override {
    snapshot_errno_ = 0;
    if (private_) return;  // already this process's own anonymous memory
    // The whole maximum: past the capacity the range still maps the file,
    // which a child that grows its heap would otherwise write.
    const size_t cap = heap_.max_capacity();
    const size_t rs = heap_.region_size();
    void* buf = nullptr;
    int e = os::map_private_nothrow(cap, &buf);
    if (e) {
      snapshot_errno_ = e;
      return;
    }
    const std::vector<uint8_t>& mapped = flipped_ ? new_slot_ : slot_;
    const size_t n = heap_.region_count();
    for (size_t r = 0; r < n && !e;) {
      size_t end = r + 1;
      while (end < n && mapped[end] == mapped[r]) end++;
      e = os::copy_file_data_nothrow(fd_.get(), off_t(offset(mapped[r], r)), (end - r) * rs,
                                     static_cast<char*>(buf) + r * rs);
      r = end;
    }
    if (e) {
      os::unmap_nothrow(buf, cap);
      snapshot_errno_ = e;
      return;
    }
    snapshot_ = static_cast<char*>(buf);
  }

  void fork_parent() noexcept override {
    if (snapshot_) os::unmap_nothrow(snapshot_, heap_.max_capacity());
    snapshot_ = nullptr;
  }

  bool fork_child() noexcept override {
    if (private_) return true;
    void* base = reinterpret_cast<void*>(heap_.base());
    const size_t cap = heap_.max_capacity();
    int e = snapshot_errno_;
    if (snapshot_) {
      e = os::move_mapping_nothrow(snapshot_, cap, base);
      if (!e) {
        snapshot_ = nullptr;
        private_ = true;
        return true;
      }
    }
    // No private copy: the child must not reach the parent's heap at all.
    os::map_inaccessible_nothrow(base, cap);
    char msg[200];
    snprintf(msg, sizeof msg,
             "libremap: fork: no private copy of a shared heap for the child (errno %d); the "
             "heap range is inaccessible in this process\n", e);
    os::write_stderr(msg);
    return false;
  }

  void abandon_in_child() noexcept override {
    fd_.reset();          // the child's reference only: the parent keeps its own
    (void)alias_.release();  // MADV_DONTFORK: not mapped here
  }

 private:
  size_t offset(uint8_t slot, size_t r) const {
    return size_t(slot) * heap_.max_capacity() + r * heap_.region_size();
  }
  char* slot_addr(uint8_t slot, size_t r) const { return alias_.data() + offset(slot, r); }

  // Maps the heap range onto `slots`, one mmap per run of regions whose file
  // offsets are contiguous.
  Status map_runs(const std::vector<uint8_t>& slots, int prot, size_t* runs) {
    const size_t n = heap_.region_count();
    const size_t rs = heap_.region_size();
    *runs = 0;
    for (size_t r = 0; r < n;) {
      size_t e = r + 1;
      while (e < n && slots[e] == slots[r]) e++;  // same slot <=> contiguous offsets
      Status s = os::map_file_fixed(reinterpret_cast<void*>(heap_.region_base(r)), (e - r) * rs,
                                    prot, fd_.get(), off_t(offset(slots[r], r)));
      if (!s) return s;
      ++*runs;
      r = e;
    }
    return Status::ok();
  }

  // sigsegv: before the flip changes anything, the worst case of the cycle
  // must fit under vm.max_map_count. Each range a producer opens can split
  // its VMA in three, but a VMA covers at least one page, so however the
  // opens fall the heap range holds at most one VMA per page: the cycle may
  // need (VMAs outside the heap now) + (heap pages). A limit or a count we
  // cannot read is not checked.
  Status check_vma_budget() const {
    const int64_t limit = os::read_sysctl_int("/proc/sys/vm/max_map_count");
    const int64_t now = os::count_vmas();
    if (limit <= 0 || now < 0) return Status::ok();
    const int64_t pages = int64_t(sigsegv_worst_vmas(heap_));
    const int64_t outside = now > int64_t(heap_vmas_) ? now - int64_t(heap_vmas_) : 0;
    const int64_t need = outside + pages + kVmaSlack;
    if (need <= limit) return Status::ok();
    return fail(REMAP_ELIMIT,
                "sigsegv backend: this cycle may need %lld VMAs (%lld heap pages, one VMA each "
                "in the worst case, + %lld the process has outside the heap + %lld spare) but "
                "vm.max_map_count is %lld. The heap is intact and still prepared: raise the "
                "limit (sysctl vm.max_map_count=%lld) and flip again, or use the minor or move "
                "backend",
                (long long)need, (long long)pages, (long long)outside, (long long)kVmaSlack,
                (long long)limit, (long long)need);
  }

  Heap& heap_;
  const bool sigsegv_;
  const int uffd_;
  CycleCounters& c_;
  os::UniqueFd fd_;
  os::Mapping alias_;
  std::vector<uint8_t> slot_;      // per region: the slot it is in
  std::vector<uint8_t> new_slot_;  // per region: the slot of this cycle's new layout
  std::vector<uint8_t> dirty_;     // per region: its other slot may hold bytes
  size_t heap_vmas_ = 1;           // VMAs covering the heap range between cycles
  bool flipped_ = false;           // the heap maps new_slot_ (flip to release_old), else slot_
  bool private_ = false;           // fork child: the heap range is private anonymous memory now
  char* snapshot_ = nullptr;       // fork_prepare .. fork_parent/child: the child's heap
  int snapshot_errno_ = 0;         // why fork_prepare made none
};

}  // namespace

Status make_shmem_layout(Heap& heap, bool protect, int uffd, CycleCounters& counters,
                         std::unique_ptr<Layout>* out) {
  auto l = std::make_unique<ShmemLayout>(heap, protect, uffd, counters);
  Status s = l->init();
  if (!s) return s;
  *out = std::move(l);
  return Status::ok();
}

}  // namespace remap

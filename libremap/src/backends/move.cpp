// move.cpp — the move backend: UFFDIO_MOVE of the built pages themselves.
//
// GC workers build to-space pages in place in from-space and move whole runs
// with one ioctl (no allocation, no copy, no clearing in the kernel). A
// mutator builds its page in a pool page and moves that. Per page, EBUSY
// (the page is shared after fork, KSM-merged, pinned or under writeback:
// MOVE needs PageAnonExclusive) falls back to UFFDIO_COPY of the same bytes
// and is counted; a source hole (a from-space page nobody ever touched) is
// skipped and left unmapped (it reads zero; fill_hole maps the zero page if
// it faults before the cycle ends). At the end,
// from-space pages that still hold memory are moved into the pool, up to its
// capacity; the rest goes back to the OS with one madvise.
#include <string.h>

#include "compact/backend.h"
#include "backends/uffd_install.h"
#include "os/residency.h"
#include "os/uffd_abi.h"
#include "os/uffd_ops.h"
#include "os/vm.h"

namespace remap {
namespace {

class MoveBackend final : public Backend {
 public:
  explicit MoveBackend(const BackendEnv& env) : env_(env), c_(*env.counters) {}

  InstallOutcome install_run(uintptr_t dst, uintptr_t src, size_t npages) noexcept override {
    const size_t len = npages * env_.page;
    size_t off = 0;
    uint64_t t0 = now_ns();
    while (off < len) {
      // A source hole (a page never touched: a dense page nobody wrote, an
      // untouched stretch of a large array) is skipped, not filled: its
      // destination stays unmapped and reads zero, so a sparse array stays
      // sparse, and the run stays one ioctl. A fault there later is served
      // by fill_hole.
      os::UffdResult r = os::uffd_move(env_.uffd, reinterpret_cast<void*>(dst + off),
                                       reinterpret_cast<void*>(src + off), len - off,
                                       os::kMoveModeAllowSrcHoles);
      c_.ioctl_move.add(1);
      c_.pages_moved.add(r.done / env_.page);
      // Each page moved from from-space is an old page reused as the buffer
      // its to-space page was built in: recycled, never allocated or cleared.
      c_.buffers_recycled.add(r.done / env_.page);
      off += r.done;
      if (r.ok()) break;
      InstallOutcome o = fix_page(dst + off, src + off, r);
      if (!o.ok) return o;
      off += env_.page;
    }
    c_.install_ns.add(now_ns() - t0);
    c_.pages_installed.add(npages);
    return {};
  }

  void* take_buffer(uintptr_t, intptr_t) noexcept override {
    return env_.pool ? env_.pool->acquire() : nullptr;
  }
  void return_buffer(void* b) noexcept override { env_.pool->release(b); }

  InstallOutcome install_buffer(uintptr_t dst, void* buf) noexcept override {
    uint64_t t0 = now_ns();
    os::UffdResult r = os::uffd_move(env_.uffd, reinterpret_cast<void*>(dst), buf, env_.page, 0);
    c_.ioctl_move.add(1);
    InstallOutcome o;
    if (r.ok()) {
      env_.pool->vacate(buf);  // its page now lives in the heap
      c_.pages_moved.add(1);
      c_.buffers_recycled.add(1);
    } else {
      o = fix_page(dst, reinterpret_cast<uintptr_t>(buf), r);
      env_.pool->release(buf);  // not moved: still populated
    }
    c_.install_ns.add(now_ns() - t0);
    if (o.ok) c_.pages_installed.add(1);
    return o;
  }

  InstallOutcome install_copy(uintptr_t dst, const void* bytes) noexcept override {
    InstallOutcome o = copy_pages(env_, dst, bytes, 1);
    if (o.ok) c_.buffers_new.add(1);  // the kernel allocated the page
    return o;
  }

  InstallOutcome install_zero(uintptr_t dst, size_t npages, intptr_t) noexcept override {
    // A page with no live data gains nothing from a recycled buffer (it would
    // have to be cleared anyway), and moving a pool page out of the pool
    // unmaps it there: a TLB shootdown across every CPU running this
    // process, which a faulting mutator pays in full. UFFDIO_COPY from a
    // zero page fills an empty PTE, with no flush.
    alignas(64) static const char zeros[kMaxZeroPages * 4096] = {};
    InstallOutcome o = copy_pages(env_, dst, zeros, npages);
    // Not buffers (no data of the heap's): counted as zero pages only.
    if (o.ok) c_.pages_zero.add(npages);
    return o;
  }

  InstallOutcome fill_hole(uintptr_t dst) noexcept override {
    os::UffdResult z = os::uffd_zeropage(env_.uffd, reinterpret_cast<void*>(dst), env_.page, 0);
    c_.ioctl_zeropage.add(1);
    if (z.ok()) {
      c_.pages_zero.add(1);
      return {};
    }
    if (z.err == os::UffdErr::exists) return {};
    return {false, z.sys_errno, "UFFDIO_ZEROPAGE"};
  }

  // A region some of whose pages mutators built (into buffers, moved in)
  // once the pool has run dry: the old pages they read stay resident in
  // from-space, one per page a mutator built (+41..51 MiB at 256 MiB with two
  // reading threads). Dropped now instead of at finish, so RSS stays near
  // its level at the flip. Not moved into the pool: that MOVE (a TLB
  // shootdown per run, with the mutators running) made the cycle twice as
  // long; one madvise per such region costs about 10%.
  void from_space_done(uintptr_t from, size_t len) noexcept override {
    (void)drop_from_space(env_, from, len);
  }

  Status finish_from_space(uintptr_t from, size_t len) override {
    std::vector<uint8_t> resident;
    Status s = os::resident_pages(reinterpret_cast<void*>(from), len, &resident);
    if (!s) return s;
    // The runs of resident pages, moved into the pool in one call while it
    // has room (a page it cannot take, shared after fork: EBUSY, is
    // skipped); whatever stays resident goes with one madvise.
    std::vector<heap::PagePool::SourceRun> runs;
    size_t resident_pages = 0;
    const size_t n = resident.size();
    for (size_t i = 0; i < n;) {
      if (!(resident[i] & 1)) {
        i++;
        continue;
      }
      size_t j = i;
      while (j < n && (resident[j] & 1)) j++;
      runs.push_back({reinterpret_cast<char*>(from + i * env_.page), j - i});
      resident_pages += j - i;
      i = j;
    }
    size_t received = 0;
    if (env_.pool && !runs.empty()) {
      uint64_t ioctls = 0;
      received = env_.pool->receive_runs(runs.data(), runs.size(), &ioctls);
      c_.ioctl_move.add(ioctls);
    }
    const size_t left = resident_pages - received;  // resident pages the pool did not take
    if (left) s = drop_from_space(env_, from, len);
    return s;
  }

 private:
  // The page at dst could not be moved from src (r says why); installs it
  // another way, or says why it cannot.
  InstallOutcome fix_page(uintptr_t dst, uintptr_t src, const os::UffdResult& r) noexcept {
    switch (r.err) {
      case os::UffdErr::exists:
        return {};  // mapped by someone else: success
      case os::UffdErr::busy: {
        os::UffdResult c = os::uffd_copy(env_.uffd, reinterpret_cast<void*>(dst),
                                         reinterpret_cast<void*>(src), env_.page, 0);
        c_.ioctl_copy.add(1);
        if (!c.ok() && c.err != os::UffdErr::exists) return {false, c.sys_errno, "UFFDIO_COPY"};
        c_.fallback_ebusy.add(1);
        c_.pages_copied.add(1);
        c_.buffers_new.add(1);
        return {};
      }
      case os::UffdErr::hole: {
        os::UffdResult z = os::uffd_zeropage(env_.uffd, reinterpret_cast<void*>(dst), env_.page, 0);
        c_.ioctl_zeropage.add(1);
        if (!z.ok() && z.err != os::UffdErr::exists)
          return {false, z.sys_errno, "UFFDIO_ZEROPAGE"};
        c_.fallback_other.add(1);
        return {};
      }
      default:
        return {false, r.sys_errno, "UFFDIO_MOVE"};
    }
  }

  BackendEnv env_;
  CycleCounters& c_;
};

}  // namespace

std::unique_ptr<Backend> make_move_backend(const BackendEnv& env) {
  return std::make_unique<MoveBackend>(env);
}

}  // namespace remap

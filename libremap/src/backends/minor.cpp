// minor.cpp — the minor backend: UFFDIO_CONTINUE of page-cache pages, on
// the shared layout (compact/shmem_layout.h).
//
// Every page is built in the page cache through the alias mapping, at the
// address the heap will map: a dense page in place in its slot (the heap
// faults MINOR on it: the page is in the file), a fragmented page in its
// region's new slot (the heap faults MISSING; building it there takes a
// regular page fault that allocates and clears a shmem page — this
// backend's own cost). UFFDIO_CONTINUE then maps the page-cache page into the heap;
// a run of pages is one ioctl. EEXIST means someone else mapped it: done.
//
// CONTINUE needs the page in the page cache (mm/userfaultfd.c
// mfill_atomic_pte_continue: SGP_NOALLOC, else EFAULT). A dense page whose
// bytes nobody ever wrote (and whose slots needed no update) is still a
// hole; it is allocated by one atomic no-op write through the alias and the
// ioctl retried. Old slots are punched by the layout at release_old, so
// from-space needs nothing here.
#include <string.h>

#include "compact/backend.h"
#include "os/uffd_ops.h"

namespace remap {
namespace {

class MinorBackend final : public Backend {
 public:
  explicit MinorBackend(const BackendEnv& env) : env_(env), c_(*env.counters) {}

  InstallOutcome install_run(uintptr_t dst, uintptr_t src, size_t npages) noexcept override {
    uint64_t t0 = now_ns();
    InstallOutcome o = map(dst, src, npages);
    c_.install_ns.add(now_ns() - t0);
    if (o.ok) c_.pages_installed.add(npages);
    return o;
  }

  void* take_buffer(uintptr_t dst, intptr_t write_delta) noexcept override {
    return reinterpret_cast<void*>(dst + write_delta);  // the page itself, in the page cache
  }
  void return_buffer(void*) noexcept override {}

  InstallOutcome install_buffer(uintptr_t dst, void* buf) noexcept override {
    return install_run(dst, reinterpret_cast<uintptr_t>(buf), 1);
  }

  InstallOutcome install_copy(uintptr_t, const void*) noexcept override {
    return {false, EINVAL, "install_copy (minor builds in the page cache, never on a stack)"};
  }

  InstallOutcome install_zero(uintptr_t dst, size_t npages, intptr_t write_delta) noexcept override {
    // The pages have no data in the new layout: their new-slot pages read
    // zero already (holes, or pages that held only free bytes); writing the
    // zeros allocates them in the page cache, which the CONTINUE needs.
    memset(reinterpret_cast<void*>(dst + write_delta), 0, npages * env_.page);
    InstallOutcome o = install_run(dst, dst + write_delta, npages);
    if (o.ok) c_.pages_zero.add(npages);
    return o;
  }

  Status finish_from_space(uintptr_t, size_t) override { return Status::ok(); }

 private:
  InstallOutcome map(uintptr_t dst, uintptr_t src, size_t npages) noexcept {
    const size_t len = npages * env_.page;
    size_t off = 0;
    uintptr_t touched = 0;  // the hole we allocated last, to retry once
    while (off < len) {
      os::UffdResult r = os::uffd_continue(env_.uffd, reinterpret_cast<void*>(dst + off),
                                           len - off, 0);
      c_.ioctl_continue.add(1);
      off += r.done;
      if (r.ok()) break;
      if (r.err == os::UffdErr::exists) {
        off += env_.page;  // mapped by someone else: success
        continue;
      }
      if (r.err == os::UffdErr::fault && touched != src + off) {
        touched = src + off;
        __atomic_fetch_or(reinterpret_cast<uint64_t*>(touched), uint64_t(0), __ATOMIC_RELAXED);
        c_.fallback_other.add(1);
        continue;
      }
      return {false, r.sys_errno, "UFFDIO_CONTINUE"};
    }
    return {};
  }

  BackendEnv env_;
  CycleCounters& c_;
};

}  // namespace

std::unique_ptr<Backend> make_minor_backend(const BackendEnv& env) {
  return std::make_unique<MinorBackend>(env);
}

}  // namespace remap

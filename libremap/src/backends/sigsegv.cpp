// sigsegv.cpp — the sigsegv backend: the classic PROT_NONE + SIGSEGV read
// barrier, on the shared layout (compact/shmem_layout.h).
//
// At the flip the heap range is mapped PROT_NONE onto the new layout's file
// slots; pages are built through the read-write alias mapping at the address
// the heap maps, and a built page or run is opened with
// mprotect(PROT_READ|PROT_WRITE). Each opened range that does not touch an
// already-open neighbour splits its VMA: up to one VMA per page, which is why
// the layout bounds the cycle against vm.max_map_count before the flip. An
// EMPTY page needs no building: its new-slot page reads zero, so opening it
// is all. No userfaultfd: delivery is the SIGSEGV handler (SEGV_ACCERR), so
// the heap's fault mode does not apply. mprotect of a page that is already
// open is a no-op (same flags: no split), the equivalent of EEXIST.
#include <sys/mman.h>

#include "compact/backend.h"
#include "os/sigsafe_vm.h"

namespace remap {
namespace {

class SigsegvBackend final : public Backend {
 public:
  explicit SigsegvBackend(const BackendEnv& env) : env_(env), c_(*env.counters) {}

  InstallOutcome install_run(uintptr_t dst, uintptr_t, size_t npages) noexcept override {
    return open(dst, npages);
  }

  void* take_buffer(uintptr_t dst, intptr_t write_delta) noexcept override {
    return reinterpret_cast<void*>(dst + write_delta);
  }
  void return_buffer(void*) noexcept override {}

  InstallOutcome install_buffer(uintptr_t dst, void*) noexcept override { return open(dst, 1); }

  InstallOutcome install_copy(uintptr_t, const void*) noexcept override {
    return {false, EINVAL, "install_copy (sigsegv builds through the alias, never on a stack)"};
  }

  InstallOutcome install_zero(uintptr_t dst, size_t npages, intptr_t) noexcept override {
    InstallOutcome o = open(dst, npages);
    if (o.ok) c_.pages_zero.add(npages);
    return o;
  }

  Status finish_from_space(uintptr_t, size_t) override { return Status::ok(); }

 private:
  InstallOutcome open(uintptr_t dst, size_t npages) noexcept {
    uint64_t t0 = now_ns();
    int e = os::protect_nothrow(reinterpret_cast<void*>(dst), npages * env_.page,
                                PROT_READ | PROT_WRITE);
    c_.mprotect_calls.add(1);
    c_.install_ns.add(now_ns() - t0);
    if (e) return {false, e, "mprotect(PROT_READ|PROT_WRITE)"};
    c_.pages_installed.add(npages);
    return {};
  }

  BackendEnv env_;
  CycleCounters& c_;
};

}  // namespace

std::unique_ptr<Backend> make_sigsegv_backend(const BackendEnv& env) {
  return std::make_unique<SigsegvBackend>(env);
}

}  // namespace remap

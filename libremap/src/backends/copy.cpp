// copy.cpp — the copy backend: UFFDIO_COPY, which every userfaultfd kernel has.
//
// Pages are built exactly as for move (in place in from-space by GC
// workers, in a pool page by mutators), but installing them makes the kernel
// allocate a fresh page, clear it and copy the buffer in; from-space is then
// released with MADV_DONTNEED, region by region as GC workers finish them
// (as a collector must, to bound its footprint) and once more at the end for
// whatever is left (empty regions, pages mutators produced).
#include <string.h>

#include "compact/backend.h"
#include "backends/uffd_install.h"

namespace remap {
namespace {

class CopyBackend final : public Backend {
 public:
  explicit CopyBackend(const BackendEnv& env) : env_(env), c_(*env.counters) {}

  InstallOutcome install_run(uintptr_t dst, uintptr_t src, size_t npages) noexcept override {
    return copy(dst, reinterpret_cast<const void*>(src), npages);
  }

  void* take_buffer(uintptr_t, intptr_t) noexcept override {
    return env_.pool ? env_.pool->acquire() : nullptr;
  }
  void return_buffer(void* b) noexcept override { env_.pool->release(b); }

  InstallOutcome install_buffer(uintptr_t dst, void* buf) noexcept override {
    InstallOutcome o = copy(dst, buf, 1);
    env_.pool->release(buf);  // the kernel copied it: the buffer is reusable
    return o;
  }

  InstallOutcome install_copy(uintptr_t dst, const void* bytes) noexcept override {
    return copy(dst, bytes, 1);
  }

  InstallOutcome install_zero(uintptr_t dst, size_t npages, intptr_t) noexcept override {
    alignas(64) static const char zeros[kMaxZeroPages * 4096] = {};
    // One allocation now instead of zeropage + COW later. Not a buffer (no
    // data of the heap's): counted as a zero page only.
    InstallOutcome o = copy(dst, zeros, npages, /*buffers=*/false);
    if (o.ok) c_.pages_zero.add(npages);
    return o;
  }

  void from_space_done(uintptr_t from, size_t len) noexcept override { (void)drop_from_space(env_, from, len); }

  Status finish_from_space(uintptr_t from, size_t len) override {
    return drop_from_space(env_, from, len);
  }

 private:
  InstallOutcome copy(uintptr_t dst, const void* src, size_t npages, bool buffers = true) noexcept {
    InstallOutcome o = copy_pages(env_, dst, src, npages);
    if (o.ok && buffers) c_.buffers_new.add(npages);  // every installed page: kernel-allocated
    return o;
  }

  BackendEnv env_;
  CycleCounters& c_;
};

}  // namespace

std::unique_ptr<Backend> make_copy_backend(const BackendEnv& env) {
  return std::make_unique<CopyBackend>(env);
}

}  // namespace remap

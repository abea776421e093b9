// backend.h — how a produced page reaches the heap: the interface a backend
// implements (backends/), and the registry row the engine reads its
// capabilities from instead of asking which backend it has.
//
// The concurrent engine (compact/) decides what each to-space page holds and
// builds it; a Backend only installs: a run of pages built in place in
// from-space (GC workers), one page built in a private buffer (a faulting
// mutator), or a zero page. Backends differ in the kernel mechanism and in
// what happens to from-space afterwards, which is exactly what the benchmark
// compares:
//   move: UFFDIO_MOVE of the built pages themselves — no allocation, no copy
//         in the kernel; from-space leftovers are recycled into the pool.
//   copy: UFFDIO_COPY — the kernel allocates and copies; from-space is
//         released with MADV_DONTNEED region by region.
//   minor: heap on a memfd (compact/shmem_layout.h); pages are built in the
//         page cache through the alias mapping (a regular fault allocates a
//         fragmented page) and mapped with UFFDIO_CONTINUE.
//   sigsegv: same layout, heap PROT_NONE; a built page is opened with
//         mprotect (one VMA per opened run).
// All methods called during compaction are async-signal-safe (mutators call
// them from the SIGBUS handler).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "base/status.h"
#include "compact/counters.h"
#include "heap/pool.h"

namespace remap {

struct InstallOutcome {
  bool ok = true;
  int sys_errno = 0;     // of the failing ioctl
  const char* op = "";   // its name
};

class Backend {
 public:
  virtual ~Backend() = default;

  // Installs npages pages built in place at src (from-space) onto dst, which
  // the caller owns (state PROCESSING). Pages the kernel reports already
  // mapped count as installed.
  virtual InstallOutcome install_run(uintptr_t dst, uintptr_t src, size_t npages) noexcept = 0;

  // Where a mutator builds the page for dst: a private buffer page (move,
  // copy: dst and write_delta unused) or, for a shared layout, the page's own
  // build address dst + write_delta. nullptr if none (the caller then builds
  // on its stack and calls install_copy).
  virtual void* take_buffer(uintptr_t dst, intptr_t write_delta) noexcept = 0;
  // Installs the buffer page at dst and disposes of the buffer.
  virtual InstallOutcome install_buffer(uintptr_t dst, void* buffer) noexcept = 0;
  // Gives an unused buffer back.
  virtual void return_buffer(void* buffer) noexcept = 0;
  // Installs a copy of `bytes` (one page) at dst: the fallback when no buffer
  // page is free.
  virtual InstallOutcome install_copy(uintptr_t dst, const void* bytes) noexcept = 0;
  // Installs `npages` (1..kMaxZeroPages) zero-filled pages from dst.
  // write_delta: as for take_buffer (a shared layout's page lives at dst +
  // write_delta; anon backends ignore it).
  static constexpr size_t kMaxZeroPages = 16;
  virtual InstallOutcome install_zero(uintptr_t dst, size_t npages,
                                      intptr_t write_delta) noexcept = 0;

  // A page the engine recorded as installed faulted (or is touched): a run
  // installed with source holes skipped left it unmapped, so it reads zero;
  // maps the zero page there. A page that is mapped stays as it is.
  virtual InstallOutcome fill_hole(uintptr_t dst) noexcept { return {}; }

  // A GC worker finished every page of [from, from+len) (from-space) and no
  // other producer reads it any more.
  virtual void from_space_done(uintptr_t from, size_t len) noexcept {}
  // The end of the cycle: dispose of from-space [from, from+len).
  virtual Status finish_from_space(uintptr_t from, size_t len) = 0;
};

struct BackendEnv {
  int uffd = -1;  // -1 for a backend that takes no userfaultfd faults
  heap::PagePool* pool = nullptr;
  CycleCounters* counters = nullptr;
  size_t page = 4096;
};

// --- the registry -------------------------------------------------------------
// The kernel call that puts a built page into the heap.
enum class Install : uint8_t {
  none,     // no engine (stw: everything memmoved in the pause; auto)
  move,     // UFFDIO_MOVE of the page itself; MOVE's destination (the pool
            // too) must be registered with the heap's userfaultfd
  copy,     // UFFDIO_COPY: the kernel allocates a page and copies into it
  cont,     // UFFDIO_CONTINUE of a page-cache page (shared layout, MINOR faults)
  protect,  // mprotect of the shared layout's PROT_NONE heap: no userfaultfd,
            // faults arrive as SIGSEGV whatever the fault mode says
};

// What becomes of from-space once its pages are built.
enum class FromSpace : uint8_t {
  none,      // no from-space (stw compacts in place; auto)
  recycled,  // into the page pool at finish (dropped per region if it runs dry)
  released,  // handed back region by region (from_space_done) as soon as no
             // producer reads it any more; copy drops it with MADV_DONTNEED
  punched,   // a shared layout's old file slot, hole-punched at finish
};

// One row of the registry (backends/registry.cpp): every fact about a
// backend the engine, the API and the C ABI's name and capability calls use.
struct BackendKind {
  int id;            // remap_backend
  const char* name;  // remap_backend_name
  // The backend of one heap's engine; null for a row with no concurrent
  // engine (stw compacts in the pause; auto is resolved at create).
  std::unique_ptr<Backend> (*make)(const BackendEnv& env);
  Install install;
  FromSpace from_space;
  // The heap lives on a memfd in two file slots per region
  // (compact/shmem_layout.h) instead of private anonymous memory
  // (compact/anon_layout.h).
  bool shared_layout;
  // UFFD_FEATURE_* bits the handshake must grant besides the fault mode's.
  uint64_t uffd_features;

  bool concurrent() const { return make != nullptr; }
  bool uses_uffd() const { return install != Install::none && install != Install::protect; }
};

// The row of remap_backend `id`, or null if there is none. Rows are numbered
// 0..backend_count()-1. Defined by the backends layer, above this one: the
// engine names what it needs here and the registry provides it.
const BackendKind* find_backend(int id);
int backend_count();

}  // namespace remap

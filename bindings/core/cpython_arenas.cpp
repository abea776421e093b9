// cpython_arenas.cpp — pymalloc's arenas from a libremap arena pool
// (libremap._core.cpython_arenas; the Python face is libremap.cpython).
//
// CPython's object allocator takes its 1 MiB arenas (64-bit, 3.10+) from a
// pluggable arena allocator, by default mmap/munmap: every new arena costs
// fresh page faults and zeroing. Installed here, arenas come from a
// remap_arena_pool, whose freed arenas keep their pages (up to a cap) and
// are reused without faults. Only the public C ABI is used.
//
// Process-wide state, because the arena allocator itself is process-wide
// (_PyRuntime.allocators.obj_arena, shared by every interpreter):
//   - the pool is created at the first install and never destroyed: arenas
//     it handed out may be freed at any later time, even after uninstall;
//   - `prev` is the allocator that was installed before us. Blocks it handed
//     out (every arena allocated before install) are freed through it: the
//     pool answers REMAP_ENOENT for addresses it never handed out.
// Modes: OFF (never installed, or uninstalled with nothing of ours live),
// INSTALLED (alloc from the pool), FORWARDING (uninstalled while blocks of
// ours are live: alloc goes to prev, free still routes by owner).
// The hooks run with the GIL held (pymalloc needs it); install/uninstall too.
// With per-interpreter GILs (3.12+) another interpreter may allocate while
// the allocator is swapped: install before starting such interpreters.
#include <Python.h>
#include <pybind11/pybind11.h>

#include <atomic>
#include <string>

#include "errors_py.h"
#include "libremap.h"
#include "module_parts.h"

namespace py = pybind11;

namespace libremap_py {
namespace {

enum Mode { kOff = 0, kInstalled = 1, kForwarding = 2 };

struct Adapter {
  remap_arena_pool* pool = nullptr;
  remap_arena_config config{};
  PyObjectArenaAllocator prev{};
  bool have_prev = false;
  Mode mode = kOff;
  std::atomic<uint64_t> foreign_frees{0};   // frees passed to prev
  std::atomic<uint64_t> foreign_arena_frees{0};  // ... of which arena-sized
  std::atomic<uint64_t> prev_allocs{0};     // allocations passed to prev (FORWARDING)
  std::atomic<uint64_t> alloc_failures{0};  // the pool failed: pymalloc raised MemoryError
  std::atomic<uint64_t> free_errors{0};     // a free the pool rejected (size mismatch, twice)
};

Adapter& adapter() {
  // Never destroyed: hooks may run during interpreter finalization, after
  // static destructors would have run.
  static Adapter* a = new Adapter;
  return *a;
}

void* pool_alloc(void* ctx, size_t size) {
  void* p = nullptr;
  if (remap_arena_alloc(static_cast<remap_arena_pool*>(ctx), size, &p) != REMAP_OK) {
    adapter().alloc_failures.fetch_add(1, std::memory_order_relaxed);
    return nullptr;  // pymalloc turns this into MemoryError
  }
  return p;
}

void* prev_alloc(void* ctx, size_t size) {
  Adapter& a = adapter();
  a.prev_allocs.fetch_add(1, std::memory_order_relaxed);
  return a.prev.alloc(a.prev.ctx, size);
}

void routed_free(void* ctx, void* ptr, size_t size) {
  if (!ptr) return;
  const remap_status s = remap_arena_free(static_cast<remap_arena_pool*>(ctx), ptr, size);
  if (s == REMAP_OK) return;
  Adapter& a = adapter();
  if (s == REMAP_ENOENT && a.have_prev) {
    a.foreign_frees.fetch_add(1, std::memory_order_relaxed);
    if (size == a.config.arena_size)
      a.foreign_arena_frees.fetch_add(1, std::memory_order_relaxed);
    a.prev.free(a.prev.ctx, ptr, size);
    return;
  }
  // A block of ours freed with the wrong size or twice: a bug in the
  // caller. Leaking it is the only safe answer inside a free hook.
  a.free_errors.fetch_add(1, std::memory_order_relaxed);
}

bool same_config(const remap_arena_config& a, const remap_arena_config& b) {
  return a.arena_size == b.arena_size && a.max_arenas == b.max_arenas &&
         a.cap_bytes == b.cap_bytes && a.hugepages == b.hugepages;
}

remap_arena_stats pool_stats() {
  remap_arena_stats st{};
  st.struct_size = sizeof st;
  if (adapter().pool) {
    remap_status s = remap_arena_pool_get_stats(adapter().pool, &st);
    if (s != REMAP_OK) check(s, "remap_arena_pool_get_stats");
  }
  return st;
}

bool install(size_t arena_size, size_t cap_bytes, size_t max_arenas, bool hugepages) {
  Adapter& a = adapter();
  PyObjectArenaAllocator cur;
  PyObject_GetArenaAllocator(&cur);
  if (a.mode == kInstalled && cur.alloc == pool_alloc) return false;
  remap_arena_config c;
  remap_arena_config_init(&c);
  c.arena_size = arena_size;
  c.cap_bytes = cap_bytes;
  c.max_arenas = max_arenas;
  c.hugepages = hugepages ? 1 : 0;
  if (a.pool && !same_config(a.config, c)) {
    const remap_arena_stats st = pool_stats();
    if (st.arenas_live || st.other_live)
      throw py::value_error("the arena pool of an earlier install() still holds " +
                            std::to_string(st.arenas_live) + " arenas and " +
                            std::to_string(st.other_live) +
                            " other blocks: install again with the same settings");
    remap_arena_pool_destroy(a.pool);
    a.pool = nullptr;
  }
  if (!a.pool) {
    remap_status s = remap_arena_pool_create(&c, &a.pool);
    if (s != REMAP_OK) check(s, "remap_arena_pool_create");
    a.config = c;
  }
  // In FORWARDING mode the current allocator is our own forwarder: the
  // allocator to keep is still the one saved at the first install.
  const bool ours = cur.alloc == pool_alloc || cur.alloc == prev_alloc;
  if (!ours) {
    a.prev = cur;
    a.have_prev = true;
  }
  PyObjectArenaAllocator mine{a.pool, pool_alloc, routed_free};
  PyObject_SetArenaAllocator(&mine);
  a.mode = kInstalled;
  return true;
}

bool uninstall() {
  Adapter& a = adapter();
  if (a.mode != kInstalled) return false;
  PyObjectArenaAllocator cur;
  PyObject_GetArenaAllocator(&cur);
  if (cur.alloc != pool_alloc)
    throw std::runtime_error(
        "another arena allocator was installed over libremap's; uninstall that one first");
  const remap_arena_stats st = pool_stats();
  if (st.arenas_live == 0 && st.other_live == 0) {
    PyObject_SetArenaAllocator(&a.prev);
    a.mode = kOff;
  } else {
    // Our arenas are still in use: their frees must reach the pool.
    PyObjectArenaAllocator fwd{a.pool, prev_alloc, routed_free};
    PyObject_SetArenaAllocator(&fwd);
    a.mode = kForwarding;
  }
  return true;
}

const char* mode_name(Mode m) {
  switch (m) {
    case kOff: return "off";
    case kInstalled: return "installed";
    case kForwarding: return "forwarding";
  }
  return "?";
}

py::dict stats() {
  Adapter& a = adapter();
  const remap_arena_stats st = pool_stats();
  py::dict d;
  d["mode"] = mode_name(a.mode);
  d["arena_size"] = st.arena_size;
  d["cap_bytes"] = a.pool ? a.config.cap_bytes : 0;
  d["reserved_bytes"] = st.reserved_bytes;
  d["arenas_live"] = st.arenas_live;
  d["arenas_peak"] = st.arenas_peak;
  d["arenas_allocated"] = st.arenas_allocated;
  d["arenas_freed"] = st.arenas_freed;
  d["arenas_recycled"] = st.arenas_recycled;
  d["arenas_cached"] = st.arenas_cached;
  d["pages_reused"] = st.pages_reused;
  d["arenas_returned"] = st.arenas_returned;
  d["bytes_returned"] = st.bytes_returned;
  d["madvise_calls"] = st.madvise_calls;
  d["other_live"] = st.other_live;
  d["other_bytes_live"] = st.other_bytes_live;
  d["other_allocated"] = st.other_allocated;
  d["other_freed"] = st.other_freed;
  d["foreign_frees"] = a.foreign_frees.load();
  d["foreign_arena_frees"] = a.foreign_arena_frees.load();
  d["prev_allocs"] = a.prev_allocs.load();
  d["alloc_failures"] = a.alloc_failures.load();
  d["free_errors"] = a.free_errors.load();
  return d;
}

bool owns(size_t addr) {
  if (!adapter().pool) return false;
  int owned = 0;
  remap_status s = remap_arena_owns(adapter().pool, reinterpret_cast<void*>(addr), &owned);
  if (s != REMAP_OK) check(s, "remap_arena_owns");
  return owned != 0;
}

}  // namespace

void register_cpython_arenas(py::module_& m) {
  auto sub = m.def_submodule("cpython_arenas", "pymalloc arenas from a libremap arena pool");
  sub.attr("DEFAULT_ARENA_SIZE") = size_t(1) << 20;  // pymalloc's ARENA_SIZE, 64-bit, 3.10+
  sub.def("install", &install, py::arg("arena_size"), py::arg("cap_bytes"),
          py::arg("max_arenas"), py::arg("hugepages"),
          "Install the arena allocator; False if it already was.");
  sub.def("uninstall", &uninstall,
          "Restore the previous allocator (or forward to it while our arenas live).");
  sub.def("stats", &stats);
  sub.def("owns", &owns, py::arg("addr"), "True if addr lies in a live block of the pool.");
}

}  // namespace libremap_py

// kernel_abi_fuzzer.cpp — the entry points that are not a heap: the
// userfaultfd layer (remap_uffd_*), arena pools (remap_arena_*), the probe.
//
// Every address handed to the kernel layer is one the harness owns or one
// that is invalid on its face (NULL, misaligned, wrapping, in the kernel's
// half): UFFDIO_MOVE with a source the process uses elsewhere would move
// that memory away, which no argument check can know. So the ranges are a
// registered destination area (never touched by the harness: a touch of a
// missing page would wait for a handler that does not exist), a populated
// source area, a PROT_NONE reservation, and the values in kBadAddrs.
// Arena pools get hostile configs, sizes, and frees of pointers they did or
// did not hand out; every block the pool hands out is written at both ends.
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "fuzz_input.h"
#include "libremap.h"
#include "toy_runtime.h"  // finding()

using namespace fuzz;

namespace {

constexpr size_t kPages = 16;

void check(const char* call, remap_status st) {
  const char* msg = remap_last_error();
  if (!msg) finding("remap_last_error() is NULL after %s", call);
  if (st > 0 || st < REMAP_EINTERNAL) finding("%s returned %d: not a remap_status", call, st);
  if (st == REMAP_EINTERNAL) finding("%s: REMAP_EINTERNAL: %s", call, msg);
  if (st != REMAP_OK && !msg[0]) finding("%s failed (%s) with no message", call, remap_status_name(st));
}

// One mapping, so that no range of up to kPages + 1 pages from an area
// reaches memory that is not the harness's: [dst][gap][src][gap], the gaps
// PROT_NONE.
struct Areas {
  size_t ps = size_t(sysconf(_SC_PAGESIZE));
  char* map = nullptr;
  char* dst = nullptr;   // registered with the uffd, never touched here
  char* none = nullptr;  // PROT_NONE
  char* src = nullptr;   // populated, private
  Areas() {
    map = static_cast<char*>(mmap(nullptr, 4 * kPages * ps, PROT_NONE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    if (map == MAP_FAILED) finding("mmap failed");
    dst = map;
    none = map + kPages * ps;
    src = map + 2 * kPages * ps;
    if (mprotect(dst, kPages * ps, PROT_READ | PROT_WRITE) ||
        mprotect(src, kPages * ps, PROT_READ | PROT_WRITE))
      finding("mprotect failed");
    for (size_t i = 0; i < kPages; ++i) src[i * ps] = char(i + 1);
  }
  ~Areas() { munmap(map, 4 * kPages * ps); }
  char* addr(Input& in, bool for_dst) {
    char* area = for_dst ? dst : src;
    switch (in.below(10)) {
      case 0: return nullptr;
      case 1: return area + 1 + in.below(ps - 1);                 // misaligned
      case 2: return reinterpret_cast<char*>(~uintptr_t(ps - 1));   // last page of the space
      case 3: return reinterpret_cast<char*>(uintptr_t(1) << 63);  // the kernel's half
      case 4: return none + ps * in.below(kPages);
      case 5: return area + kPages * ps - ps;
      case 6: return (for_dst ? src : dst) + ps * in.below(kPages);  // the other area
      default: return area + ps * in.below(kPages);
    }
  }
  size_t len(Input& in) {
    const size_t lens[] = {0, ps, 2 * ps, ps - 1, ps + 1, kPages * ps, (kPages + 1) * ps,
                           SIZE_MAX, SIZE_MAX - ps + 1, size_t(1) << 47};
    return in.below(4) ? ps * (1 + in.below(kPages)) : in.pick(lens);
  }
};

void uffd_calls(Input& in) {
  Areas ar;
  const uint64_t feats[] = {0, REMAP_FEATURE_MOVE, REMAP_FEATURE_SIGBUS | REMAP_FEATURE_MOVE,
                            REMAP_FEATURE_THREAD_ID, REMAP_FEATURE_MINOR_SHMEM, ~uint64_t(0),
                            uint64_t(1) << 63};
  const uint64_t features = in.flag() ? in.pick(feats) : in.u64();
  const int flags = in.flag() ? int(in.u8() & 3) : int(in.u32());
  remap_uffd* u = reinterpret_cast<remap_uffd*>(uintptr_t(0xdead0));
  remap_status st = remap_uffd_open(features, flags, &u);
  check("remap_uffd_open", st);
  if (st != REMAP_OK) {
    if (u) finding("remap_uffd_open failed and set *out");
    return;
  }
  (void)remap_uffd_fd(u);
  (void)remap_uffd_features(u);
  uint64_t ioctls = 0;
  // The destination area, registered for missing faults (so moves, copies
  // and zeropages have somewhere to go).
  check("remap_uffd_register", remap_uffd_register(u, ar.dst, kPages * ar.ps, REMAP_REGISTER_MISSING,
                                                   in.flag() ? &ioctls : nullptr));
  for (int n = 0; n < 32 && !in.empty(); ++n) {
    size_t done = 7;
    size_t* donep = in.flag() ? &done : nullptr;
    const unsigned mode = in.below(4) ? in.u8() & 3 : in.u32();
    switch (in.below(8)) {
      case 0: {
        char* d = ar.addr(in, true);
        check("remap_uffd_move", remap_uffd_move(u, d, ar.addr(in, false), ar.len(in), mode, donep));
        break;
      }
      case 1: {
        // A copy's source is read with copy_from_user: from a missing page
        // of the registered area that read waits for a handler, and this
        // thread is the only one (the kernel's rule, not an argument the
        // library can check: whether a page is missing is a race). So the
        // source is never the destination area.
        char* d = ar.addr(in, true);
        char* s = ar.addr(in, false);
        if (uintptr_t(s) - uintptr_t(ar.dst) < (kPages + 1) * ar.ps) s = ar.src;
        check("remap_uffd_copy", remap_uffd_copy(u, d, s, ar.len(in), mode, donep));
        break;
      }
      case 2:
        check("remap_uffd_zeropage", remap_uffd_zeropage(u, ar.addr(in, true), ar.len(in), donep));
        break;
      case 3:
        check("remap_uffd_continue", remap_uffd_continue(u, ar.addr(in, true), ar.len(in), donep));
        break;
      case 4:
        check("remap_uffd_wake", remap_uffd_wake(u, ar.addr(in, true), ar.len(in)));
        break;
      case 5: {
        // Register anything but the source area: registering memory the
        // harness touches would make its next touch wait forever.
        char* a = ar.addr(in, true);
        const bool src_overlap = a && uintptr_t(a) < uintptr_t(ar.src) + kPages * ar.ps &&
                                 uintptr_t(a) + (kPages + 1) * ar.ps > uintptr_t(ar.src);
        if (src_overlap) break;
        const size_t lens[] = {0, ar.ps - 1, ar.ps + 1, SIZE_MAX, SIZE_MAX - ar.ps + 1};
        const size_t len = in.below(4) ? ar.ps * (1 + in.below(kPages + 1)) : in.pick(lens);
        check("remap_uffd_register",
              remap_uffd_register(u, a, len, in.below(4) ? 1u << in.below(3) : mode, &ioctls));
        break;
      }
      case 6:
        check("remap_uffd_unregister", remap_uffd_unregister(u, ar.addr(in, true), ar.len(in)));
        break;
      default:
        check("remap_uffd_move (NULL uffd)", remap_uffd_move(nullptr, ar.dst, ar.src, ar.ps, 0, donep));
        break;
    }
    if (donep && done != 7 && done > (SIZE_MAX >> 1)) finding("*done = %zu", done);
  }
  // The source area must still be the harness's: unregistered, readable.
  for (size_t i = 0; i < kPages; ++i) (void)*reinterpret_cast<volatile char*>(ar.src + i * ar.ps);
  remap_uffd_close(u);
  remap_uffd_close(nullptr);
}

struct Block {
  char* p;
  size_t size;
};

void arena_calls(Input& in) {
  remap_arena_config c;
  remap_arena_config_init(&c);
  const size_t ps = size_t(sysconf(_SC_PAGESIZE));
  if (in.flag()) {
    const size_t sizes[] = {0, 1, ps - 1, ps + 1, size_t(1) << 40, SIZE_MAX, size_t(1) << 30};
    const size_t counts[] = {0, 1, size_t(1) << 40, SIZE_MAX, SIZE_MAX / 2};
    switch (in.below(5)) {
      case 0: c.arena_size = in.pick(sizes); break;
      case 1: c.max_arenas = in.pick(counts); break;
      case 2: c.arena_size = in.pick(sizes); c.max_arenas = in.pick(counts); break;
      case 3: c.hugepages = int(in.u32()); break;
      default: c.struct_size = in.pick({size_t(0), size_t(8), sizeof c + 8, SIZE_MAX}); break;
    }
  } else {
    c.arena_size = ps << in.below(6);
    c.max_arenas = 1 + in.below(16);
    c.cap_bytes = c.arena_size * in.below(4);
    c.hugepages = in.below(2);
  }
  remap_arena_pool* pool = nullptr;
  remap_status st = remap_arena_pool_create(in.below(8) ? &c : nullptr, &pool);
  check("remap_arena_pool_create", st);
  if (st != REMAP_OK) return;
  remap_arena_stats stats;
  std::memset(&stats, 0, sizeof stats);
  stats.struct_size = sizeof stats;
  check("remap_arena_pool_get_stats", remap_arena_pool_get_stats(pool, &stats));
  const size_t arena = stats.arena_size;
  std::vector<Block> blocks;
  for (int n = 0; n < 48 && !in.empty(); ++n) {
    switch (in.below(7)) {
      case 0: case 1: {
        const size_t sizes[] = {arena, arena, ps, arena + ps, 0, SIZE_MAX, size_t(1) << 46, 3};
        const size_t sz = in.pick(sizes);
        void* p = nullptr;
        st = remap_arena_alloc(pool, sz, &p);
        check("remap_arena_alloc", st);
        if (st != REMAP_OK) break;
        if (!p || (uintptr_t(p) % ps) || sz == 0) finding("remap_arena_alloc(%zu) gave %p", sz, p);
        char* b = static_cast<char*>(p);
        b[0] = 1;
        b[sz - 1] = 2;
        blocks.push_back({b, sz});
        break;
      }
      case 2: {  // a good free
        if (blocks.empty()) break;
        const size_t i = in.below(blocks.size());
        check("remap_arena_free", st = remap_arena_free(pool, blocks[i].p, blocks[i].size));
        if (st != REMAP_OK) finding("remap_arena_free of a block it handed out: %s", remap_last_error());
        blocks.erase(blocks.begin() + long(i));
        break;
      }
      case 3: {  // a bad free: refused, the block still usable
        void* p;
        size_t sz;
        Block* b = blocks.empty() ? nullptr : &blocks[in.below(blocks.size())];
        switch (in.below(5)) {
          case 0: p = b ? static_cast<void*>(b->p + (b->size > ps ? ps : 8)) : static_cast<void*>(&c); sz = b ? b->size : 8; break;
          case 1: p = b ? b->p : nullptr; sz = b ? b->size + ps : 0; break;
          case 2: p = nullptr; sz = arena; break;
          case 3: p = &stats; sz = arena; break;
          default: p = b ? b->p : nullptr; sz = 0; break;
        }
        st = remap_arena_free(pool, p, sz);
        check("remap_arena_free (bad)", st);
        if (st == REMAP_OK) finding("remap_arena_free(%p, %zu) accepted a bad free", p, sz);
        if (b) b->p[b->size - 1] = 3;
        break;
      }
      case 4: {
        int owned = -1;
        const void* p = in.flag() && !blocks.empty() ? blocks[in.below(blocks.size())].p
                                                     : reinterpret_cast<void*>(uintptr_t(in.u64()));
        check("remap_arena_owns", remap_arena_owns(pool, p, in.below(8) ? &owned : nullptr));
        break;
      }
      case 5:
        check("remap_arena_pool_trim", remap_arena_pool_trim(pool, in.flag() ? 0 : SIZE_MAX));
        break;
      default: {
        const size_t want = in.pick({size_t(0), size_t(8), sizeof stats - 8, sizeof stats,
                                     sizeof stats + 8, SIZE_MAX});
        std::vector<unsigned char> buf(want < 8 ? 8 : want > sizeof stats + 64 ? sizeof stats + 64 : want);
        std::memcpy(buf.data(), &want, sizeof want);
        st = remap_arena_pool_get_stats(pool, reinterpret_cast<remap_arena_stats*>(buf.data()));
        check("remap_arena_pool_get_stats", st);
        if (st == REMAP_OK && want > sizeof stats) finding("arena stats accepted struct_size %zu", want);
        break;
      }
    }
  }
  for (const Block& b : blocks)
    if (b.p[0] != 1) finding("arena block %p lost its first byte", static_cast<void*>(b.p));
  remap_arena_pool_destroy(pool);
  remap_arena_pool_destroy(nullptr);
}

void probe_call(Input& in) {
  const size_t want = in.pick({sizeof(remap_probe_info), size_t(0), size_t(8),
                               sizeof(remap_probe_info) - 8, sizeof(remap_probe_info) + 8,
                               offsetof(remap_probe_info, auto_backend), SIZE_MAX});
  std::vector<unsigned char> buf(want < 8 ? 8 : want > sizeof(remap_probe_info) + 64 ? sizeof(remap_probe_info) + 64 : want);
  std::memcpy(buf.data(), &want, sizeof want);
  remap_status st = remap_probe(reinterpret_cast<remap_probe_info*>(buf.data()));
  check("remap_probe", st);
  if (st == REMAP_OK && want > sizeof(remap_probe_info)) finding("remap_probe accepted struct_size %zu", want);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  switch (in.below(8)) {
    case 0: probe_call(in); break;
    case 1: case 2: case 3: arena_calls(in); break;
    default: uffd_calls(in); break;
  }
  return 0;
}

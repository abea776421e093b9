// arena_api.cpp — the public remap_arena_* functions over heap::ArenaPool.
//
// alloc and free sit on a runtime's allocation path (pymalloc calls them
// once per 1 MiB arena), so they check only what cannot be checked cheaper
// by the pool itself; every failure still carries a message.
#include <cstring>
#include <memory>

#include "api/api_call.h"
#include "heap/arena_pool.h"
#include "libremap.h"
#include "os/vm.h"

struct remap_arena_pool {
  std::unique_ptr<remap::heap::ArenaPool> pool;
};

namespace {

using remap::fail;
using remap::Status;

void defaults(remap_arena_config* c) {
  std::memset(c, 0, sizeof *c);
  const remap::heap::ArenaConfig d;
  c->struct_size = sizeof *c;
  c->arena_size = d.arena_size;
  c->max_arenas = d.max_arenas;
  c->cap_bytes = d.cap_bytes;
  c->hugepages = d.hugepages ? 1 : 0;
}

Status need_pool(const remap_arena_pool* p) {
  if (!p || !p->pool) return fail(REMAP_EINVAL, "pool is NULL (create one with remap_arena_pool_create)");
  return Status::ok();
}

}  // namespace

extern "C" {

REMAP_API void remap_arena_config_init(remap_arena_config* config) {
  if (config) defaults(config);
}

REMAP_API remap_status remap_arena_pool_create(const remap_arena_config* config,
                                               remap_arena_pool** out) {
  return remap::api_call("remap_arena_pool_create", [&]() -> Status {
    if (!out) return fail(REMAP_EINVAL, "out is NULL");
    *out = nullptr;
    remap_arena_config c;
    defaults(&c);
    if (config) {
      // Every field so far was in the first release: today's size is the
      // smallest a caller can have. Later fields a caller lacks keep their
      // defaults.
      Status s = remap::check_struct_size("remap_arena_config", config->struct_size,
                                          sizeof(remap_arena_config), sizeof(remap_arena_config));
      if (!s) return s;
      std::memcpy(&c, config, config->struct_size);
    }
    if (c.hugepages != 0 && c.hugepages != 1)
      return fail(REMAP_EINVAL, "hugepages %d must be 0 or 1", c.hugepages);
    remap::heap::ArenaConfig ac;
    ac.arena_size = c.arena_size;
    ac.max_arenas = c.max_arenas;
    ac.cap_bytes = c.cap_bytes;
    ac.hugepages = c.hugepages == 1;
    auto h = std::make_unique<remap_arena_pool>();
    if (Status s = remap::heap::ArenaPool::create(ac, &h->pool); !s) return s;
    *out = h.release();
    return Status::ok();
  });
}

REMAP_API void remap_arena_pool_destroy(remap_arena_pool* pool) { delete pool; }

REMAP_API remap_status remap_arena_alloc(remap_arena_pool* pool, size_t size, void** out) {
  return remap::api_call("remap_arena_alloc", [&]() -> Status {
    if (Status s = need_pool(pool); !s) return s;
    if (!out) return fail(REMAP_EINVAL, "out is NULL");
    *out = nullptr;
    if (size == 0) return fail(REMAP_EINVAL, "size is 0");
    return pool->pool->alloc(size, out);
  });
}

REMAP_API remap_status remap_arena_free(remap_arena_pool* pool, void* ptr, size_t size) {
  return remap::api_call("remap_arena_free", [&]() -> Status {
    if (Status s = need_pool(pool); !s) return s;
    if (!ptr) return fail(REMAP_EINVAL, "ptr is NULL");
    if (size == 0) return fail(REMAP_EINVAL, "size is 0");
    return pool->pool->free(ptr, size);
  });
}

REMAP_API remap_status remap_arena_owns(const remap_arena_pool* pool, const void* ptr,
                                        int* owned) {
  return remap::api_call("remap_arena_owns", [&]() -> Status {
    if (Status s = need_pool(pool); !s) return s;
    if (!owned) return fail(REMAP_EINVAL, "owned is NULL");
    *owned = ptr && pool->pool->owns(ptr) ? 1 : 0;
    return Status::ok();
  });
}

REMAP_API remap_status remap_arena_pool_trim(remap_arena_pool* pool, size_t keep_bytes) {
  return remap::api_call("remap_arena_pool_trim", [&]() -> Status {
    if (Status s = need_pool(pool); !s) return s;
    Status why;
    (void)pool->pool->trim(keep_bytes / pool->pool->arena_size(), &why);
    return why;
  });
}

REMAP_API remap_status remap_arena_pool_get_stats(const remap_arena_pool* pool,
                                                  remap_arena_stats* out) {
  return remap::api_call("remap_arena_pool_get_stats", [&]() -> Status {
    if (Status s = need_pool(pool); !s) return s;
    if (!out) return fail(REMAP_EINVAL, "out is NULL");
    Status s = remap::check_struct_size("remap_arena_stats", out->struct_size,
                                        sizeof(remap_arena_stats), sizeof(remap_arena_stats));
    if (!s) return s;
    const remap::heap::ArenaPool& p = *pool->pool;
    const remap::heap::ArenaCounters c = p.counters();
    remap_arena_stats st;
    std::memset(&st, 0, sizeof st);
    st.struct_size = out->struct_size;
    st.arena_size = p.arena_size();
    st.reserved_bytes = p.reserved_bytes();
    st.arenas_live = c.live;
    st.arenas_peak = c.peak;
    st.arenas_allocated = c.allocated;
    st.arenas_freed = c.freed;
    st.arenas_recycled = c.recycled;
    st.arenas_cached = c.cached;
    st.pages_reused = c.pages_reused;
    st.arenas_returned = c.returned;
    st.bytes_returned = c.bytes_returned;
    st.madvise_calls = c.madvise_calls;
    st.other_live = c.other_live;
    st.other_bytes_live = c.other_bytes_live;
    st.other_allocated = c.other_allocated;
    st.other_freed = c.other_freed;
    std::memcpy(out, &st, out->struct_size);
    return Status::ok();
  });
}

}  // extern "C"

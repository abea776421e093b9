// registry.cpp — every backend, one row each: its number and name in the C
// ABI and what the engine needs to know about it (compact/backend.h).
//
// The engine, the API and the C ABI's name and capability calls all read
// this table; nothing else lists the backends. Adding one: docs/ADDING_A_BACKEND.md.
#include <iterator>

#include "compact/backend.h"
#include "libremap.h"
#include "os/uffd_abi.h"

namespace remap {

std::unique_ptr<Backend> make_move_backend(const BackendEnv& env);     // move.cpp
std::unique_ptr<Backend> make_copy_backend(const BackendEnv& env);     // copy.cpp
std::unique_ptr<Backend> make_minor_backend(const BackendEnv& env);    // minor.cpp
std::unique_ptr<Backend> make_sigsegv_backend(const BackendEnv& env);  // sigsegv.cpp

namespace {

using I = Install;
using F = FromSpace;

// Indexed by remap_backend: row i has id i (checked below).
constexpr BackendKind kBackends[] = {
    // id                  name       make                  install     from-space   shared uffd features
    {REMAP_BACKEND_AUTO,    "auto",    nullptr,              I::none,    F::none,     false, 0},
    {REMAP_BACKEND_MOVE,    "move",    make_move_backend,    I::move,    F::recycled, false, UFFD_FEATURE_MOVE},
    {REMAP_BACKEND_COPY,    "copy",    make_copy_backend,    I::copy,    F::released, false, 0},
    {REMAP_BACKEND_MINOR,   "minor",   make_minor_backend,   I::cont,    F::punched,  true,  UFFD_FEATURE_MINOR_SHMEM},
    {REMAP_BACKEND_SIGSEGV, "sigsegv", make_sigsegv_backend, I::protect, F::punched,  true,  0},
    {REMAP_BACKEND_STW,     "stw",     nullptr,              I::none,    F::none,     false, 0},
};

constexpr bool numbered_by_position() {
  for (size_t i = 0; i < std::size(kBackends); i++)
    if (kBackends[i].id != int(i)) return false;
  return true;
}
static_assert(numbered_by_position(), "kBackends[i] must be remap_backend i");

}  // namespace

const BackendKind* find_backend(int id) {
  if (id < 0 || size_t(id) >= std::size(kBackends)) return nullptr;
  return &kBackends[id];
}

int backend_count() { return int(std::size(kBackends)); }

}  // namespace remap

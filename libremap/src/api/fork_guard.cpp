// fork_guard.cpp — the fork registry and the atfork handlers (see
// fork_guard.h for the rules they keep).
#include "api/fork_guard.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

#include "compact/compactor.h"
#include "compact/producer.h"  // ~Compactor needs ~Producer
#include "os/fork.h"

namespace remap::api {
namespace {

// Bumped in every child: a heap whose fork_gen differs was inherited.
std::atomic<uint64_t> g_generation{0};

// Live heaps. The lock is held from the atfork prepare handler to the parent
// or child handler, and around engine creation (which may install signal
// handlers under fault_signal.cpp's own mutex: never inherited locked).
std::mutex g_registry_mutex;
std::vector<remap_heap*>* g_registry = nullptr;  // never freed: fork may run at exit

std::once_flag g_atfork_once;
Status g_atfork_status;

// The mutexes a child must not inherit locked by a thread it does not have.
enum : unsigned { kCycle = 1, kStats = 2, kAlloc = 4 };

// A thread that holds one of a heap's mutexes and forks is inside a call
// that runs the runtime's code: an object-model callback of remap_prepare
// or the stw flip (under cycle_mutex). Taking it again would deadlock, and
// nothing else can change that heap meanwhile: the child's copy of the
// thread returns from the callback and finishes the call on the child's own
// memory (and unlocks it there).
void lock_unless_mine(remap_heap* h, std::mutex& m, unsigned bit) {
  if (os::held_by_this_thread(m)) return;
  m.lock();
  h->fork_locked |= bit;
}

void unlock_taken(remap_heap* h) {
  if (h->fork_locked & kAlloc) h->heap->fork_lock().unlock();
  if (h->fork_locked & kStats) h->stats_mutex.unlock();
  if (h->fork_locked & kCycle) h->cycle_mutex.unlock();
  h->fork_locked = 0;
}

void fork_prepare() {
  g_registry_mutex.lock();
  if (!g_registry) return;
  for (remap_heap* h : *g_registry) {
    h->fork_locked = 0;
    // cycle_mutex first (the order the cycle takes them in): no flip,
    // finish or prepare runs while the engine completes the cycle in
    // progress and the layout takes the child's snapshot.
    lock_unless_mine(h, h->cycle_mutex, kCycle);
    if (h->compactor) h->compactor->fork_prepare();
    lock_unless_mine(h, h->stats_mutex, kStats);
    lock_unless_mine(h, h->heap->fork_lock(), kAlloc);
  }
}

void fork_parent() {
  if (g_registry) {
    for (remap_heap* h : *g_registry) {
      if (h->compactor) h->compactor->fork_parent();
      unlock_taken(h);
    }
  }
  g_registry_mutex.unlock();
}

void fork_child() {
  g_generation.fetch_add(1, std::memory_order_relaxed);
  if (g_registry) {
    for (remap_heap* h : *g_registry) {
      // fork_child replaces a shared heap range with the private snapshot;
      // without one the range is inaccessible and the heap unusable here.
      if (h->compactor && !h->compactor->fork_child())
        remap::api::set_phase(*h, REMAP_PHASE_BROKEN, /*notify=*/false);
      unlock_taken(h);
    }
  }
  g_registry_mutex.unlock();
}

}  // namespace

Status fork_guard_attach(remap_heap& h, Status (*attach)(remap_heap&)) {
  std::call_once(g_atfork_once, [] {
    g_atfork_status = os::atfork_install(fork_prepare, fork_parent, fork_child);
  });
  if (!g_atfork_status) return g_atfork_status;
  std::lock_guard<std::mutex> g(g_registry_mutex);
  if (!g_registry) g_registry = new std::vector<remap_heap*>();
  if (!h.fork_registered) g_registry->reserve(g_registry->size() + 1);  // no throw after attach
  Status s = attach(h);
  if (!s) return s;
  h.fork_gen.store(g_generation.load(std::memory_order_relaxed), std::memory_order_relaxed);
  h.owner_pid = int(os::current_pid());
  if (!h.fork_registered) {
    g_registry->push_back(&h);
    h.fork_registered = true;
  }
  return Status::ok();
}

void fork_guard_detach(remap_heap& h) {
  {
    std::lock_guard<std::mutex> g(g_registry_mutex);
    if (h.fork_registered && g_registry) {
      auto it = std::find(g_registry->begin(), g_registry->end(), &h);
      if (it != g_registry->end()) g_registry->erase(it);
      h.fork_registered = false;
    }
  }
  if (fork_inherited(h) && h.compactor) {
    // The parent's engine: its threads do not exist here (destroying their
    // std::thread objects would join or terminate), its pool and alias are
    // not mapped here (MADV_DONTFORK) and their ranges may be reused.
    h.compactor->abandon_in_child();
    (void)h.compactor.release();
  }
}

bool fork_inherited(const remap_heap& h) {
  return h.fork_gen.load(std::memory_order_relaxed) !=
         g_generation.load(std::memory_order_relaxed);
}

Status fork_refusal(const remap_heap& h, const Status& why) {
  return fail(why.code == REMAP_OK ? REMAP_EUNSUPPORTED : why.code,
              "this %s heap was created in process %d and inherited across fork(); its "
              "userfaultfd and compaction engine belong to that process, and a new engine for "
              "this one could not be made (the heap is intact: allocation and marking work, "
              "retry the cycle once the cause is fixed): %s",
              remap_backend_name(h.backend), h.owner_pid, why.message.c_str());
}

}  // namespace remap::api

// pool.h — the page pool: pages that hold physical
// memory and no live data, handed out as buffers without clearing them.
//
// The pool owns one private anonymous buffer mapping of `capacity_pages`
// slots, MADV_DONTFORK (a forked child gets no copy: pool pages stay
// exclusive to this process, which UFFDIO_MOVE requires of its source, and
// the child never sees them). Optionally the mapping is registered MISSING
// with the heap's userfaultfd, because UFFDIO_MOVE's destination must be
// registered with the uffd that moves: then from-space pages can be MOVEd
// into the pool (receive) instead of being freed and faulted in again.
//
// Invariants:
//   - Every slot is in exactly one place: on the populated stack, on the
//     empty stack, or out (held by a caller, or by a maintenance call in
//     progress). acquire/release/vacate move slots between these.
//   - A slot on the populated stack is backed by a page. The pool never
//     believes an unpopulated slot is populated: in a registered pool,
//     touching an unpopulated page blocks forever (no fault delivery) or
//     raises SIGBUS, so receive() stops at a source hole and prime()
//     populates registered slots only with UFFDIO_COPY, never by touching.
//     (The reverse mistake is harmless: a MOVE into a populated slot that was
//     believed empty gets EEXIST, and the slot is filed as populated.)
//   - The pool never writes to a populated page: contents are whatever the
//     last user left (pages with no live data need no clearing).
//   - acquire/release/vacate are lock-free and async-signal-safe (the SIGBUS
//     handler takes its buffer page here); the stacks are Treiber stacks whose
//     head carries a 32-bit tag bumped on every change, so a pop that raced
//     with pop-push of the same slot (ABA) fails its CAS and retries.
//   - prime/receive/trim are maintenance calls: one at a time (a mutex), not
//     signal-safe; while one runs, acquire may see fewer pages than exist.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "base/status.h"
#include "os/vm.h"

namespace remap::heap {

// A lock-free LIFO of slot indices. `next` is shared by the stacks of one
// pool: a slot is on at most one stack at a time, so one link per slot is
// enough.
class SlotStack {
 public:
  static constexpr uint32_t kNil = 0xFFFFFFFFu;

  void bind(std::atomic<uint32_t>* next) { next_ = next; }
  void push(uint32_t slot) noexcept;
  uint32_t pop() noexcept;  // kNil if empty
  size_t approx_size() const noexcept { return size_.load(std::memory_order_relaxed); }

 private:
  static uint64_t pack(uint32_t tag, uint32_t slot) { return (uint64_t(tag) << 32) | slot; }
  std::atomic<uint64_t> head_{pack(0, kNil)};
  std::atomic<size_t> size_{0};
  std::atomic<uint32_t>* next_ = nullptr;
};

struct PoolCounters {
  uint64_t acquired = 0;
  uint64_t released = 0;
  uint64_t vacated = 0;
  uint64_t received = 0;       // pages MOVEd in
  uint64_t primed = 0;         // pages populated by prime()
  uint64_t trimmed = 0;        // pages returned to the OS
  uint64_t madvise_calls = 0;  // MADV_DONTNEED calls made by trim()
};

class PagePool {
 public:
  // capacity_pages slots (1 .. 2^32-2). uffd_fd >= 0 registers the buffer
  // MISSING with that userfaultfd so receive() can MOVE into it; -1: a plain
  // pool (prime() touches pages, receive() is unavailable).
  static Status create(size_t capacity_pages, int uffd_fd, std::unique_ptr<PagePool>* out);
  ~PagePool();
  PagePool(const PagePool&) = delete;
  PagePool& operator=(const PagePool&) = delete;

  // A populated page, not cleared; nullptr if none. Async-signal-safe.
  void* acquire() noexcept;
  // Gives a page back, still populated. False if `page` is not a pool page.
  bool release(void* page) noexcept;
  // Gives a page back whose content was moved away (UFFDIO_MOVE out of it):
  // the slot is a hole now and will only be refilled by prime/receive.
  bool vacate(void* page) noexcept;

  // MOVEs up to npages pages from [src, ...) into empty slots, runs of
  // contiguous empty slots at a time. Stops at the first page that cannot
  // move (a source hole: ENOENT without ALLOW_SRC_HOLES; a shared page:
  // EBUSY); *why (may be null) gets the reason. Returns pages received: the
  // first `n` source pages are now holes. Needs a registered pool.
  size_t receive(void* src, size_t npages, Status* why = nullptr);
  // receive() for many source runs with one drain and one sort of the empty
  // slots (one call per run drained and sorted the whole stack
  // each time, ~10% of a cycle). A page that cannot move is skipped, not a
  // stop. Returns pages received; *ioctls gets the MOVE calls made. Stops
  // when the pool has no empty slot left.
  struct SourceRun {
    char* src;
    size_t npages;
  };
  size_t receive_runs(const SourceRun* runs, size_t nruns, uint64_t* ioctls);
  // Populates up to n empty slots (lowest first). Registered pool: UFFDIO_COPY
  // from zeroes (never a touch); plain pool: a write per page. Returns pages
  // populated.
  size_t prime(size_t n, Status* why = nullptr);
  // Keeps at most `keep` populated pages (the lowest slots) and returns the
  // rest to the OS with MADV_DONTNEED, as one call over the whole range of
  // dropped slots whenever no held page lies inside it. Returns pages freed.
  size_t trim(size_t keep, Status* why = nullptr);

  bool contains(const void* p) const noexcept { return buffer_.contains(p); }
  char* base() const noexcept { return buffer_.data(); }
  size_t capacity_pages() const noexcept { return capacity_; }
  bool registered() const noexcept { return uffd_ >= 0; }
  size_t populated_pages() const noexcept { return full_.approx_size(); }
  size_t empty_pages() const noexcept { return empty_.approx_size(); }
  PoolCounters counters() const noexcept;

 private:
  PagePool() = default;
  uint32_t slot_of(const void* page) const noexcept;  // kNil if not a pool page
  char* page_of(uint32_t slot) const noexcept { return buffer_.data() + size_t(slot) * page_; }
  // Pops every slot of `s` (maintenance only).
  void drain(SlotStack& s, std::unique_ptr<uint32_t[]>& out, size_t* n);
  // receive()'s bookkeeping (maintenance_ held): the empty slots, sorted,
  // and the ones a MOVE filled; file_back returns both to their stacks.
  struct Intake {
    std::unique_ptr<uint32_t[]> holes, filled;
    size_t nholes = 0, nfilled = 0, used = 0;
  };
  Intake take_empty();
  void file_back(Intake& in, size_t received);
  // Pushes slots so that the lowest index ends on top.
  void push_sorted(SlotStack& s, const uint32_t* slots, size_t n);

  os::Mapping buffer_;
  size_t page_ = 0;
  size_t capacity_ = 0;
  int uffd_ = -1;  // not owned
  std::unique_ptr<std::atomic<uint32_t>[]> next_;
  SlotStack full_;   // populated slots
  SlotStack empty_;  // holes
  std::mutex maintenance_;

  struct AtomicCounters {
    std::atomic<uint64_t> acquired{0}, released{0}, vacated{0}, received{0}, primed{0},
        trimmed{0}, madvise_calls{0};
  } counters_;
};

}  // namespace remap::heap

// pool.cpp — the page pool; the invariants are in pool.h.
#include "heap/pool.h"

#include <algorithm>

#include "os/uffd_abi.h"
#include "os/uffd_ops.h"

namespace remap::heap {
namespace {
// A write fault without changing the byte; volatile so it is not dropped.
inline void touch_write(char* p) {
  volatile char* v = p;
  v[0] = v[0];
}
}  // namespace

// ---- SlotStack ----------------------------------------------------------

void SlotStack::push(uint32_t slot) noexcept {
  uint64_t old = head_.load(std::memory_order_relaxed);
  for (;;) {
    next_[slot].store(static_cast<uint32_t>(old), std::memory_order_relaxed);
    const uint64_t neu = pack(static_cast<uint32_t>(old >> 32) + 1, slot);
    // release: the link store above is visible to whoever pops `slot`.
    if (head_.compare_exchange_weak(old, neu, std::memory_order_release,
                                    std::memory_order_relaxed))
      break;
  }
  size_.fetch_add(1, std::memory_order_relaxed);
}

uint32_t SlotStack::pop() noexcept {
  uint64_t old = head_.load(std::memory_order_acquire);
  for (;;) {
    const uint32_t slot = static_cast<uint32_t>(old);
    if (slot == kNil) return kNil;
    // May read a stale link if `slot` was popped and pushed again meanwhile;
    // then the tag changed and the CAS below fails (no ABA).
    const uint32_t next = next_[slot].load(std::memory_order_relaxed);
    const uint64_t neu = pack(static_cast<uint32_t>(old >> 32) + 1, next);
    if (head_.compare_exchange_weak(old, neu, std::memory_order_acquire,
                                    std::memory_order_acquire)) {
      size_.fetch_sub(1, std::memory_order_relaxed);
      return slot;
    }
  }
}

// ---- PagePool -----------------------------------------------------------

Status PagePool::create(size_t capacity_pages, int uffd_fd, std::unique_ptr<PagePool>* out) {
  if (capacity_pages == 0 || capacity_pages >= SlotStack::kNil)
    return fail(REMAP_EINVAL, "pool capacity %zu pages: give 1 .. %u", capacity_pages,
                SlotStack::kNil - 1);
  std::unique_ptr<PagePool> pool(new PagePool);
  pool->page_ = os::page_size();
  pool->capacity_ = capacity_pages;
  if (Status s = os::map_anonymous(capacity_pages * pool->page_, &pool->buffer_); !s) return s;
  // A forked child must not share pool pages: shared pages are not
  // exclusive and UFFDIO_MOVE refuses them with EBUSY (mm/userfaultfd.c
  // checks PageAnonExclusive); the kernel's MOVE comment recommends DONTFORK.
  if (Status s = os::advise(pool->buffer_.data(), pool->buffer_.size(), os::Advice::dontfork); !s)
    return s;
  // Slots are single pages; a THP here would be split by the first partial
  // MADV_DONTNEED or MOVE. Failure only means THP is not configured.
  (void)os::advise(pool->buffer_.data(), pool->buffer_.size(), os::Advice::nohugepage);
  if (uffd_fd >= 0) {
    // MOVE's destination VMA must be registered with the uffd that moves
    // (otherwise EINVAL). MISSING mode: nobody ever faults here, the
    // registration only authorises MOVE/COPY into the range.
    auto r = os::uffd_register(uffd_fd, pool->buffer_.data(), pool->buffer_.size(),
                               UFFDIO_REGISTER_MODE_MISSING, nullptr);
    if (!r.ok())
      return os::uffd_status("UFFDIO_REGISTER", r, pool->buffer_.data(), pool->buffer_.size());
    pool->uffd_ = uffd_fd;
  }
  pool->next_.reset(new std::atomic<uint32_t>[capacity_pages]);
  pool->full_.bind(pool->next_.get());
  pool->empty_.bind(pool->next_.get());
  for (size_t i = capacity_pages; i-- > 0;) pool->empty_.push(static_cast<uint32_t>(i));
  *out = std::move(pool);
  return Status::ok();
}

PagePool::~PagePool() {
  // Unregister before munmap: with UFFD_FEATURE_EVENT_UNMAP the munmap of a
  // registered range would queue an event and wait for the monitor to read it.
  if (uffd_ >= 0 && buffer_.valid()) (void)os::uffd_unregister(uffd_, buffer_.data(), buffer_.size());
}

uint32_t PagePool::slot_of(const void* page) const noexcept {
  if (!buffer_.contains(page)) return SlotStack::kNil;
  const size_t off = static_cast<size_t>(static_cast<const char*>(page) - buffer_.data());
  if (off % page_) return SlotStack::kNil;
  return static_cast<uint32_t>(off / page_);
}

void* PagePool::acquire() noexcept {
  const uint32_t slot = full_.pop();
  if (slot == SlotStack::kNil) return nullptr;
  counters_.acquired.fetch_add(1, std::memory_order_relaxed);
  return page_of(slot);
}

bool PagePool::release(void* page) noexcept {
  const uint32_t slot = slot_of(page);
  if (slot == SlotStack::kNil) return false;
  full_.push(slot);
  counters_.released.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool PagePool::vacate(void* page) noexcept {
  const uint32_t slot = slot_of(page);
  if (slot == SlotStack::kNil) return false;
  empty_.push(slot);
  counters_.vacated.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void PagePool::drain(SlotStack& s, std::unique_ptr<uint32_t[]>& out, size_t* n) {
  if (!out) out.reset(new uint32_t[capacity_]);
  *n = 0;
  for (uint32_t slot; *n < capacity_ && (slot = s.pop()) != SlotStack::kNil;) out[(*n)++] = slot;
}

void PagePool::push_sorted(SlotStack& s, const uint32_t* slots, size_t n) {
  // `slots` is ascending: push the highest first so the lowest pops first,
  // which keeps the populated pages packed at the bottom for trim().
  for (size_t i = n; i-- > 0;) s.push(slots[i]);
}

size_t PagePool::receive(void* src, size_t npages, Status* why) {
  if (why) *why = Status::ok();
  if (!registered()) {
    if (why)
      *why = fail(REMAP_EINVAL, "the pool is not registered with a userfaultfd: UFFDIO_MOVE "
                  "needs its destination registered (create the pool with the heap's uffd)");
    return 0;
  }
  if (npages == 0) return 0;
  std::lock_guard<std::mutex> lock(maintenance_);
  Intake in = take_empty();
  size_t &nholes = in.nholes, &nfilled = in.nfilled, &used = in.used, moved = 0;
  auto& holes = in.holes;
  auto& filled = in.filled;
  char* from = static_cast<char*>(src);
  bool stop = false;
  while (!stop && used < nholes && moved < npages) {
    // The run of contiguous empty slots starting at holes[used].
    size_t run = 1;
    while (used + run < nholes && holes[used + run] == holes[used] + run) ++run;
    run = std::min(run, npages - moved);
    // DONTWAKE: no thread ever waits on a pool page.
    char* dst0 = page_of(holes[used]);
    auto r = os::uffd_move(uffd_, dst0, from + moved * page_, run * page_, os::kMoveModeDontwake);
    const size_t pages = r.done / page_;
    for (size_t i = 0; i < pages; ++i) filled[nfilled++] = holes[used + i];
    moved += pages;
    used += pages;
    if (r.ok()) continue;
    if (r.err == os::UffdErr::exists) {
      // The slot was populated although filed as empty (someone released a
      // page as vacated). It holds a page, so file it as populated and retry
      // the same source page on the next slot.
      filled[nfilled++] = holes[used++];
      continue;
    }
    if (why) *why = os::uffd_status("UFFDIO_MOVE", r, dst0, run * page_);
    stop = true;
  }
  if (!stop && moved < npages && why)
    *why = fail(REMAP_ELIMIT, "the pool has no empty slot left: received %zu of %zu pages", moved,
                npages);
  file_back(in, moved);
  return moved;
}

PagePool::Intake PagePool::take_empty() {
  Intake in;
  drain(empty_, in.holes, &in.nholes);
  std::sort(in.holes.get(), in.holes.get() + in.nholes);
  in.filled.reset(new uint32_t[in.nholes ? in.nholes : 1]);
  return in;
}

void PagePool::file_back(Intake& in, size_t received) {
  std::sort(in.filled.get(), in.filled.get() + in.nfilled);
  push_sorted(full_, in.filled.get(), in.nfilled);
  push_sorted(empty_, in.holes.get() + in.used, in.nholes - in.used);
  counters_.received.fetch_add(received, std::memory_order_relaxed);
}

size_t PagePool::receive_runs(const SourceRun* runs, size_t nruns, uint64_t* ioctls) {
  *ioctls = 0;
  if (!registered() || nruns == 0) return 0;
  std::lock_guard<std::mutex> lock(maintenance_);
  Intake in = take_empty();
  size_t &nholes = in.nholes, &nfilled = in.nfilled, &used = in.used, received = 0;
  auto& holes = in.holes;
  auto& filled = in.filled;
  for (size_t k = 0; k < nruns && used < nholes; ++k) {
    char* const from = runs[k].src;
    const size_t npages = runs[k].npages;
    size_t done = 0;  // source pages of this run moved or skipped
    while (done < npages && used < nholes) {
      size_t run = 1;
      while (used + run < nholes && holes[used + run] == holes[used] + run) ++run;
      run = std::min(run, npages - done);
      char* dst0 = page_of(holes[used]);
      // DONTWAKE: no thread ever waits on a pool page.
      auto r = os::uffd_move(uffd_, dst0, from + done * page_, run * page_, os::kMoveModeDontwake);
      ++*ioctls;
      const size_t pages = r.done / page_;
      for (size_t i = 0; i < pages; ++i) filled[nfilled++] = holes[used + i];
      done += pages;
      used += pages;
      received += pages;
      if (r.ok()) continue;
      if (r.err == os::UffdErr::exists) {
        filled[nfilled++] = holes[used++];  // populated although filed empty
        continue;
      }
      ++done;  // this source page cannot move (EBUSY after fork, a hole): skip it
    }
  }
  file_back(in, received);
  return received;
}

size_t PagePool::prime(size_t n, Status* why) {
  if (why) *why = Status::ok();
  if (n == 0) return 0;
  std::lock_guard<std::mutex> lock(maintenance_);
  std::unique_ptr<uint32_t[]> holes;
  size_t nholes = 0;
  drain(empty_, holes, &nholes);
  std::sort(holes.get(), holes.get() + nholes);
  const size_t want = std::min(n, nholes);
  if (want == 0) {  // every slot is populated or held
    push_sorted(empty_, holes.get(), nholes);
    return 0;
  }
  size_t done = 0;  // holes[0, done) are populated now
  size_t extra = 0;  // of those, pages found already populated (EEXIST)
  if (!registered()) {
    // Unregistered: MADV_POPULATE_WRITE (5.14) allocates writable pages
    // run by run without changing any byte (a slot filed empty by mistake
    // keeps its content); older kernels get a volatile read-write per page.
    while (done < want) {
      size_t run = 1;
      while (done + run < want && holes[done + run] == holes[done] + run) ++run;
      char* p = page_of(holes[done]);
      if (!os::advise(p, run * page_, os::Advice::populate_write)) {
        for (size_t i = 0; i < run; ++i) touch_write(p + i * page_);
      }
      done += run;
    }
  } else {
    // Registered: touching an unpopulated page would block forever (or
    // SIGBUS). UFFDIO_COPY allocates and fills it from a source buffer; an
    // untouched private mapping reads as zeroes without allocating.
    constexpr size_t kChunk = 256;
    os::Mapping zeros;
    Status s = os::map_anonymous(std::min(want, kChunk) * page_, &zeros);
    if (!s) {
      if (why) *why = s;
    } else {
      while (done < want) {
        size_t run = 1;
        while (done + run < want && run < kChunk && holes[done + run] == holes[done] + run) ++run;
        char* dst0 = page_of(holes[done]);
        auto r = os::uffd_copy(uffd_, dst0, zeros.data(), run * page_, UFFDIO_COPY_MODE_DONTWAKE);
        done += r.done / page_;
        if (r.ok()) continue;
        if (r.err == os::UffdErr::exists) {  // already populated: file it as such
          ++done;
          ++extra;
          continue;
        }
        if (why) *why = os::uffd_status("UFFDIO_COPY", r, dst0, run * page_);
        break;
      }
    }
  }
  push_sorted(full_, holes.get(), done);
  push_sorted(empty_, holes.get() + done, nholes - done);
  counters_.primed.fetch_add(done - extra, std::memory_order_relaxed);
  return done;
}

size_t PagePool::trim(size_t keep, Status* why) {
  if (why) *why = Status::ok();
  std::lock_guard<std::mutex> lock(maintenance_);
  std::unique_ptr<uint32_t[]> full, holes;
  size_t nfull = 0, nholes = 0;
  drain(full_, full, &nfull);
  if (nfull <= keep) {
    std::sort(full.get(), full.get() + nfull);
    push_sorted(full_, full.get(), nfull);
    return 0;
  }
  drain(empty_, holes, &nholes);
  std::sort(full.get(), full.get() + nfull);
  std::sort(holes.get(), holes.get() + nholes);
  // Keep the lowest `keep` populated slots; drop full[keep, nfull). A slot
  // on neither stack is held by a caller and must not lose its page, so the
  // dropped range is cut only at held slots: one madvise when none lies
  // inside it. Empty slots inside the range are holes already; DONTNEED on
  // them is a no-op (and touches nothing, so it is safe when registered).
  std::unique_ptr<uint8_t[]> on_stack(new uint8_t[capacity_]());
  for (size_t i = 0; i < nfull; ++i) on_stack[full[i]] = 1;
  for (size_t i = 0; i < nholes; ++i) on_stack[holes[i]] = 1;
  const uint32_t lo = full[keep], hi = full[nfull - 1];
  size_t calls = 0;
  size_t dropped = nfull - keep;
  Status failed = Status::ok();
  for (uint32_t s = lo; s <= hi && failed.is_ok();) {
    if (!on_stack[s]) {
      ++s;
      continue;
    }
    uint32_t e = s;
    while (e + 1 <= hi && on_stack[e + 1]) ++e;
    // Note: with UFFD_FEATURE_EVENT_REMOVE on the pool's uffd, DONTNEED here
    // would queue a remove event; libremap's uffds do not ask for it.
    Status st = os::advise(page_of(s), size_t(e - s + 1) * page_, os::Advice::dontneed);
    ++calls;
    if (!st) failed = st;
    s = e + 1;
  }
  if (!failed.is_ok() && why) *why = failed;
  // Dropped slots go to the empty stack even when a madvise failed: a slot
  // of unknown state must be believed empty (a later MOVE/COPY into a page
  // that is still there gets EEXIST and files it as populated), never
  // believed populated (touching a registered hole blocks forever).
  // Empty = old holes + dropped slots, ascending.
  std::unique_ptr<uint32_t[]> empty(new uint32_t[nholes + dropped]);
  std::merge(holes.get(), holes.get() + nholes, full.get() + keep, full.get() + nfull, empty.get());
  push_sorted(full_, full.get(), keep);
  push_sorted(empty_, empty.get(), nholes + dropped);
  if (failed.is_ok()) counters_.trimmed.fetch_add(dropped, std::memory_order_relaxed);
  counters_.madvise_calls.fetch_add(calls, std::memory_order_relaxed);
  return failed.is_ok() ? dropped : 0;
}

PoolCounters PagePool::counters() const noexcept {
  PoolCounters c;
  c.acquired = counters_.acquired.load(std::memory_order_relaxed);
  c.released = counters_.released.load(std::memory_order_relaxed);
  c.vacated = counters_.vacated.load(std::memory_order_relaxed);
  c.received = counters_.received.load(std::memory_order_relaxed);
  c.primed = counters_.primed.load(std::memory_order_relaxed);
  c.trimmed = counters_.trimmed.load(std::memory_order_relaxed);
  c.madvise_calls = counters_.madvise_calls.load(std::memory_order_relaxed);
  return c;
}

}  // namespace remap::heap

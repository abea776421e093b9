// compactor.cpp — the cycle of the concurrent engine: create, prepare, flip,
// work, touch, fault resolution, finish. Page building is in producer.cpp,
// page installing in backends/.
#include "compact/compactor.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "compact/anon_layout.h"
#include "compact/fault_signal.h"
#include "compact/producer.h"
#include "compact/shmem_layout.h"
#include "os/cpu_load.h"
#include "os/procfs.h"
#include "os/signals.h"
#include "os/sigsafe_vm.h"
#include "os/uffd_abi.h"
#include "os/uffd_open.h"
#include "os/uffd_ops.h"

namespace remap {
namespace {

constexpr size_t kPrimedPages = 256;  // buffers ready before the first cycle
constexpr size_t kStackPage = 4096;

// Measurement switches: each keeps an earlier path reachable, so that one
// build gives the before/after numbers (REMAP_X=0|1 in the environment).
bool env_is(const char* name, char value) {
  const char* e = getenv(name);
  return e && *e == value;
}
// REMAP_FREE_TAILS=0 leaves regions' free tails out of the GC's MOVE runs
// (producer.h, gc_tail): each tail then gets its own zero-page install.
bool free_tails_off() { return env_is("REMAP_FREE_TAILS", '0'); }
// REMAP_SHORT_RUN_COPY=0 moves every run, however short (producer.h,
// kCopyBelowPages).
bool short_run_copy_off() { return env_is("REMAP_SHORT_RUN_COPY", '0'); }
// REMAP_PREFILL=0: no FREE region is filled ahead of allocation
// (Compactor::prefill).
bool prefill_off() { return env_is("REMAP_PREFILL", '0'); }
// REMAP_FAULT_MOVE=1: move builds a faulting mutator's page in a pool
// buffer and MOVEs it in (Compactor::prepare).
bool fault_move_on() { return env_is("REMAP_FAULT_MOVE", '1'); }
// REMAP_HELPERS_ALWAYS=1: run()'s helper threads claim regions whether or not
// a CPU is free (Compactor::helper_may_claim).
bool helpers_always() { return env_is("REMAP_HELPERS_ALWAYS", '1'); }

// A message built without allocation, locks or locale, so that a failure can
// be recorded from inside a SIGBUS handler. Truncates at its size.
class SafeMsg {
 public:
  SafeMsg& s(const char* t) {
    while (t && *t && len_ + 1 < sizeof buf_) buf_[len_++] = *t++;
    buf_[len_] = 0;
    return *this;
  }
  SafeMsg& u(uint64_t v) {
    char d[20];
    int n = 0;
    do d[n++] = char('0' + v % 10); while ((v /= 10) != 0);
    char out[21];
    for (int i = 0; i < n; i++) out[i] = d[n - 1 - i];
    out[n] = 0;
    return s(out);
  }
  SafeMsg& x(uint64_t v) {
    char out[19] = "0x";
    int n = 2;
    for (int shift = 60; shift >= 0; shift -= 4) {
      unsigned digit = (v >> shift) & 0xf;
      if (n == 2 && digit == 0 && shift) continue;
      out[n++] = "0123456789abcdef"[digit];
    }
    out[n] = 0;
    return s(out);
  }
  // "errno 12 (ENOMEM)": strerrorname_np is a table lookup, no locale.
  SafeMsg& err(int e) {
    s("errno ").u(uint64_t(e));
    if (const char* name = strerrorname_np(e)) s(" (").s(name).s(")");
    return *this;
  }
  // What an errno of an install means when the reader may not know it.
  SafeMsg& hint(int e) {
    if (e == ENOMEM)
      s(" [ENOMEM: out of memory, or the process reached vm.max_map_count (mprotect and "
        "MAP_FIXED split VMAs)]");
    return *this;
  }
  const char* c_str() const { return buf_; }

 private:
  char buf_[480] = {};
  size_t len_ = 0;
};

// The status for an install the kernel refused with errno `e` (ENOMEM stays
// REMAP_ENOMEM, ...).
remap_status install_code(int e) { return os::uffd_err_code(os::uffd_classify(e), e); }

}  // namespace

Status Compactor::create(Heap& heap, int backend, int fault_mode, std::unique_ptr<Compactor>* out) {
  if (heap.page_size() != kStackPage)
    return fail(REMAP_EUNSUPPORTED, "the concurrent engine supports 4 KiB pages only (page size %zu)",
                heap.page_size());
  std::unique_ptr<Compactor> c(new Compactor(heap));
  Status s = c->init(backend, fault_mode);
  if (!s) return s;
  *out = std::move(c);
  return Status::ok();
}

Status Compactor::init(int backend, int fault_mode) {
  kind_ = find_backend(backend);
  fault_mode_ = fault_mode;
  if (!kind_ || !kind_->concurrent())
    return fail(REMAP_EINVAL, "backend %d is not a concurrent backend", backend);
  BackendEnv env{-1, nullptr, &counters_, heap_.page_size()};

  // A backend that takes no userfaultfd faults (sigsegv) is told of them by
  // SIGSEGV on its PROT_NONE heap whatever the fault mode says (the mode is
  // recorded, not used).
  if (!kind_->uses_uffd()) {
    backend_ = kind_->make(env);
    Status s = make_shmem_layout(heap_, /*protect=*/true, -1, counters_, &layout_);
    if (!s) return s;
    return signal_register(SIGSEGV, this);
  }

  // One userfaultfd per heap: its features are fixed at the handshake, so the
  // fault mode is fixed per heap. Handler threads read it non-blocking.
  os::UffdOpenResult opened;
  Status s = os::uffd_open(/*nonblock=*/fault_mode == REMAP_FAULT_THREAD, false, &opened);
  if (!s) return s;
  uint64_t want = kind_->uffd_features;
  if (fault_mode == REMAP_FAULT_SIGBUS) want |= UFFD_FEATURE_SIGBUS;
  uint64_t ioctls = 0;
  s = os::uffd_api(opened.fd.get(), want, /*best_effort=*/false, &features_, &ioctls);
  if (!s)
    return fail(s.code == REMAP_EINVAL ? REMAP_EUNSUPPORTED : s.code,
                "backend %s with %s faults needs userfaultfd features 0x%llx: %s",
                kind_->name, remap_fault_mode_name(fault_mode),
                (unsigned long long)want, s.message.c_str());
  if (opened.path == REMAP_UFFD_USER_MODE_ONLY && fault_mode == REMAP_FAULT_THREAD) {
    // Handler threads exist to serve kernel-originated faults; a
    // user-mode-only uffd turns those into EFAULT, so the mode would only add
    // latency. Still allowed: user faults work.
  }
  uffd_ = std::move(opened.fd);

  env.uffd = uffd_.get();
  if (kind_->shared_layout) {
    // Pages are built in the page cache through the alias: no buffer pool.
    backend_ = kind_->make(env);
    s = make_shmem_layout(heap_, /*protect=*/false, uffd_.get(), counters_, &layout_);
    if (!s) return s;
  } else {
    // Mutators build pages in pool pages. MOVE's destination must be
    // registered with this uffd, and the pool takes from-space pages by MOVE
    // (move.cpp), so a moving backend's pool is registered; any other only
    // borrows buffers.
    const bool registered = kind_->install == Install::move;
    s = heap::PagePool::create(heap_.config().pool_max_pages, registered ? uffd_.get() : -1,
                               &pool_);
    if (!s) return s;
    pool_->prime(std::min<size_t>(kPrimedPages, heap_.config().pool_max_pages));
    env.pool = pool_.get();
    backend_ = kind_->make(env);
    s = make_anon_layout(heap_, uffd_.get(), *backend_, &layout_);
    if (!s) return s;
  }

  // Fault delivery stays installed for the heap's life: a SIGBUS raised just
  // before finish unregistered the range must still find us (and is then
  // simply retried).
  if (fault_mode == REMAP_FAULT_SIGBUS) return signal_register(SIGBUS, this);
  return threads_.start(uffd_.get(), heap_.config().handler_threads, this);
}

Compactor::~Compactor() {
  heap_.set_compacting(false);
  heap_.end_prefill();
  threads_.stop();
  if (!kind_) return;  // init failed before it knew the backend
  if (!kind_->uses_uffd()) signal_unregister(SIGSEGV, this);
  else if (fault_mode_ == REMAP_FAULT_SIGBUS) signal_unregister(SIGBUS, this);
}

Status Compactor::prepare(const Plan& plan) {
  if (active_.load()) return fail(REMAP_EPHASE, "a cycle is still compacting");
  if (broken()) return broken_status();  // its fault delivery may be gone
  plan_ = &plan;
  // Page states are set here, outside the pause: O(pages), not O(1).
  const size_t pages = heap_.page_count();
  states_.reset(pages);
  for (size_t p = 0; p < pages; p++)
    states_.init(p, plan.page_kind(p) == PageKind::EMPTY ? kPageEmpty : kPageUnprocessed);
  counters_.reset();
  next_region_.store(0);
  finishing_.store(false);
  // Workers start at the first region whose free tail the allocator will
  // offer (Heap::acquire_region: ascending, at least a quarter region) and
  // wrap around: the tails mutators allocate in while compacting are then
  // installed first, by the GC, instead of zero-filled by a fault every few
  // pages (small-object regions sit at the heap's top, large objects and
  // the regions below them went first before).
  first_region_ = 0;
  const size_t rs = heap_.region_size();
  for (size_t r = 0; r < plan.region_count(); r++) {
    const RegionClass c = plan.region_class(r);
    if ((c == RegionClass::FRAGMENTED || c == RegionClass::DENSE) &&
        heap_.region_base(r) + rs - plan.new_top(r) >= rs / 4) {
      first_region_ = r;
      break;
    }
  }
  Status s = layout_->prepare(plan, &spaces_);
  if (!s) return s;
  // Free tails ride in a GC worker's run of MOVEs: zero pages of from-space
  // moved along with the data (producer.h, gc_tail). Short runs are copied
  // instead of moved (producer.h, kCopyBelowPages). Both only where runs are
  // MOVEs of pages built in place.
  const bool moves_runs = kind_->install == Install::move && !layout_->clip();
  prefill_ = (kind_->install == Install::move || kind_->install == Install::copy) &&
             !layout_->clip() && !prefill_off();
  // move: a faulting mutator builds its page on its stack and COPYs it in
  // (ensure_page), as copy does and as move's zero fills do, instead of
  // building it in a pool buffer and MOVEing that: the MOVE unmaps the
  // buffer from the pool, a TLB shootdown IPI to every other CPU running
  // the process, which the faulting thread waits for (~20-30 us here).
  // Toy-VM GCBench, move's fault p99 over three alternated pairs: 45, 39,
  // 46 us copied against 60, 50, 54 us moved. The kernel allocates the page
  // (buffers_new), as for GC runs shorter than Producer::kCopyBelowPages:
  // the pool-dry and tail-budget rules count it. The same for a large
  // object's page (ensure_page).
  fault_copies_ = kind_->install == Install::move && !layout_->clip() && !fault_move_on();
  const bool free_tails = moves_runs && !free_tails_off();
  producer_ = std::make_unique<Producer>(heap_, plan, states_, *backend_, counters_, spaces_,
                                         layout_->clip(), *kind_, free_tails,
                                         heap_.config().pool_max_pages / 2,
                                         moves_runs && !short_run_copy_off());
  int64_t v = os::count_vmas();
  vmas_before_ = v < 0 ? 0 : uint64_t(v);
  return Status::ok();
}

void Compactor::add_black_pages(const Plan& plan) {
  for (uint32_t r : plan.black_regions()) {
    const uintptr_t rb = heap_.region_base(r);
    for (size_t p = heap_.page_index(rb); p < states_.count(); p++) {
      if (plan.page_kind(p) != PageKind::BLACK || plan.first_object(p) != rb) break;
      states_.init(p, kPageUnprocessed);
    }
  }
}

Status Compactor::flip() {
  if (!plan_) return fail(REMAP_EPHASE, "flip before prepare");
  bool lost = false;
  Status s = layout_->flip(*plan_, &lost);
  if (lost) {
    // Not abort(): the runtime hears it from remap_flip and the heap is
    // BROKEN (api/concurrent_cycle.cpp); destroying it is all that is left.
    break_heap(s.code, s.message.c_str());
    return broken_status();
  }
  if (!s) return s;
  // Allocation from now on sees the new layout (free tails, empty regions),
  // adopted by the first allocation call: nothing O(heap) in the pause.
  heap_.publish_layout(*plan_);
  faults_stopped_.store(false);
  active_.store(true, std::memory_order_release);
  if (kind_->uses_uffd()) heap_.set_compacting(true);
  flip_end_ns_ = now_ns();
  return Status::ok();
}

Status Compactor::work() { return work_loop(false); }

Status Compactor::work_loop(bool helper) {
  if (!active_.load()) return fail(REMAP_EPHASE, "no cycle is compacting");
  const size_t n = heap_.region_count();
  // Consecutive regions a claim: a worker's run goes on from one region into
  // the next, so a claim as long as the longest run lets every MOVE be that
  // long (one TLB shootdown each); at least 4, for small-page regions.
  const size_t per_claim =
      std::max<size_t>(4, Producer::kMaxRunPages * heap_.page_size() / heap_.region_size());
  workers_.fetch_add(1);
  auto produce = [&](size_t r0, size_t r1) {
    InstallOutcome bad;
    if (r0 < r1 && !producer_->gc_regions(r0, r1, &bad)) {
      // The producer marked the run's pages MAPPED anyway, so nobody waits
      // for them; a fault there is zero-filled (resolve_fault). The other
      // regions are still produced: their pages keep their data.
      SafeMsg m;
      m.s("a GC worker could not install a run of pages: ").s(bad.op).s(" failed with ")
          .err(bad.sys_errno).hint(bad.sys_errno);
      break_heap(install_code(bad.sys_errno), m.c_str());
    }
  };
  // Claim i is region first_region_ + i, modulo n: [first, n), then [0, first).
  const size_t first = first_region_ < n ? first_region_ : 0;
  for (;;) {
    if (helper && !helper_may_claim(n)) break;
    prefill();
    const size_t i0 = next_region_.fetch_add(per_claim);
    if (i0 >= n) {
      // The last claim is gone: helpers waiting for a CPU have nothing to wait for.
      std::lock_guard<std::mutex> g(claims_mutex_);
      claims_cv_.notify_all();
      break;
    }
    const size_t a = first + i0, b = first + std::min(n, i0 + per_claim);
    if (b <= n) {
      produce(a, b);
    } else if (a >= n) {
      produce(a - n, b - n);
    } else {
      produce(a, n);
      produce(0, b - n);
    }
  }
  workers_.fetch_sub(1);
  if (broken()) return broken_status();
  return Status::ok();
}

Status Compactor::run(unsigned threads) {
  std::vector<std::thread> extra;
  helper_cpus_ = helpers_always() ? 0 : os::helper_cpu_budget();
  // A GC thread that cannot start (its stack is an mmap: RLIMIT_AS,
  // vm.max_map_count, RLIMIT_NPROC) only costs parallelism: the threads
  // that did start, this one at least, share its regions (before, the
  // exception left remap_compact failing with "internal error", or, past
  // the first thread, destroyed a joinable std::thread: std::terminate).
  try {
    for (unsigned i = 1; i < threads; i++) extra.emplace_back([this] { work_loop(true); });
  } catch (const std::exception&) {
  }
  Status s = work();
  for (auto& t : extra) t.join();
  return s;
}

// A helper (a thread run() started for gc_threads > 1) claims regions only
// while the machine has a CPU free. Beside running mutators a helper adds no
// CPU, it takes one of theirs: on this 2-CPU machine two GC threads beside
// GCBench's two mutators compacted faster (97 -> 78 ms) and made the
// mutators slower (150 -> 168 ms), which is the time a runtime sees. While
// every CPU is busy the helper waits, looking again every 500 us, and the
// other workers take the regions; once nothing is left to claim it leaves.
// It waits between claims only, holding no page a mutator could wait for.
// The thread that called remap_compact, and threads in remap_compact_work,
// are the runtime's to place: they never wait here. Nor does a helper of a
// process pinned to some of the CPUs (os::helper_cpu_budget).
bool Compactor::helper_may_claim(size_t n) {
  if (helper_cpus_ == 0) return true;  // pinned, or REMAP_HELPERS_ALWAYS=1
  uint64_t since = 0;
  for (;;) {
    const bool left = next_region_.load() < n;
    const int runnable = left ? os::runnable_threads() : 0;  // this helper included
    if (!left || runnable < 0 || runnable <= helper_cpus_) {
      if (since) counters_.helper_wait_ns.add(now_ns() - since);
      return left;
    }
    if (!since) since = now_ns();
    std::unique_lock<std::mutex> g(claims_mutex_);
    claims_cv_.wait_for(g, std::chrono::microseconds(500),
                        [&] { return next_region_.load() >= n; });
  }
}

Status Compactor::touch(uintptr_t addr, size_t len) {
  if (!active_.load()) return Status::ok();
  if (len == 0) return Status::ok();
  uintptr_t end = addr + len;
  if (end < addr || addr < heap_.base() || end > heap_.end())
    return fail(REMAP_EINVAL, "range [%#lx, +%zu) is not inside the heap", (unsigned long)addr, len);
  for (size_t p = heap_.page_index(addr); p <= heap_.page_index(end - 1); p++) {
    if (!ensure_page(p, false)) return broken_status();
    // The kernel will access it without a fault we can serve (SIGBUS mode):
    // a hole left by a run must be mapped too.
    InstallOutcome o = backend_->fill_hole(heap_.page_addr(p));
    if (!o.ok) return fail(REMAP_EKERNEL, "could not map the zero page at page %zu: %s errno %d", p,
                           o.op, o.sys_errno);
  }
  // A page given up earlier reads zero, not its data: the caller must know.
  if (broken()) return broken_status();
  return Status::ok();
}

bool Compactor::covers(uintptr_t addr) const noexcept {
  // An abandoned engine stays in the signal tables (the child cannot wait
  // for the parent's in-flight handlers to leave them) and its heap may be
  // gone: it must claim nothing and read nothing of the heap.
  if (abandoned_.load(std::memory_order_acquire)) return false;
  return addr >= heap_.map_base() && addr < heap_.map_base() + heap_.map_size();
}

FaultOutcome Compactor::resolve_fault(uintptr_t addr) noexcept {
  // in_flight_ is raised before closing_ is read (both seq_cst), and finish
  // raises closing_ before it waits for in_flight_ == 0: once that wait ends
  // no handler is installing anything, so the layout can stop faults (a
  // handler thread still writing an EMPTY page through minor's alias after
  // the unregister woke its mutator would overwrite what the mutator wrote),
  // and no handler is inside ensure_page when the next prepare resets the
  // page states. A fault that arrives while closing does nothing: the access
  // is retried, and faults normally once the layout has stopped faulting.
  // A fork child's engine resolves nothing: every page was installed before
  // the fork and the kernel dropped the registrations, so no fault here is a
  // page waiting for us (and installing would use the parent's uffd): the
  // signal goes to the previous handler.
  if (inherited_) return FaultOutcome::unserved;
  in_flight_.fetch_add(1);
  FaultOutcome out = FaultOutcome::resolved;
  if (!covers(addr)) {
    // Only thread mode gets here: the uffd has a range registered outside
    // the heap (the move backend's page pool, as MOVE's destination).
    SafeMsg m;
    m.s("a thread touched ").x(addr).s(", registered with the heap's userfaultfd but outside "
                                     "the heap's mapping (a libremap bug: please report it)");
    break_heap(REMAP_EINTERNAL, m.c_str());
    out = zero_fill(addr);
  } else if (active_.load() && !closing_.load()) {
    if (!heap_.contains(addr)) {
      // The anon layout registers the whole mapping (layout.h), so a touch
      // past capacity faults instead of reading the reservation's zeros.
      SafeMsg m;
      m.s("a thread touched ").x(addr).s(" during compaction, past the heap's capacity (heap ")
          .x(heap_.base()).s(" + ").u(heap_.capacity())
          .s(" bytes): the runtime read outside its heap");
      break_heap(REMAP_EINVAL, m.c_str());
      out = zero_fill(addr);
    } else if (!ensure_page(heap_.page_index(addr), true)) {
      out = zero_fill(addr);
    }
  } else if (broken() && !closing_.load() && !faults_stopped_.load()) {
    // finish could not stop faults: no page will be produced any more, and
    // a retry would fault again forever. (If it did stop them, a SIGBUS
    // raised before the unregister may still arrive: UFFDIO_ZEROPAGE on the
    // unregistered range then fails, and answering "unserved" killed the
    // process; the retry faults in normally, as for a sound heap.)
    out = zero_fill(addr);
  }
  in_flight_.fetch_sub(1);
  return out;
}

FaultOutcome Compactor::zero_fill(uintptr_t addr) noexcept {
  void* page = reinterpret_cast<void*>(addr & ~uintptr_t(kStackPage - 1));
  if (!kind_->uses_uffd()) {
    // The page lives in the memfd: opening it shows whatever its slot holds.
    // If mprotect is refused (the failure that broke the heap), a private
    // zero page replaces it; if that is refused too (both split a VMA: at
    // vm.max_map_count they fail ENOMEM), the whole heap is opened.
    if (os::protect_nothrow(page, kStackPage, PROT_READ | PROT_WRITE) != 0 &&
        os::map_zero_fixed_nothrow(page, kStackPage) != 0)
      return stop_faulting_now(addr);
    zero_filled_.fetch_add(1);
    return FaultOutcome::zero_filled;
  }
  // UFFDIO_ZEROPAGE ends the fault: it maps the zero page (a zeroed page in
  // the file for shmem) and, without DONTWAKE, wakes the threads parked on it.
  os::UffdResult z = os::uffd_zeropage(uffd_.get(), page, kStackPage, 0);
  if (z.ok()) {
    zero_filled_.fetch_add(1);
    return FaultOutcome::zero_filled;
  }
  if (z.err != os::UffdErr::exists) return stop_faulting_now(addr);
  // EEXIST. Anonymous memory: the page is mapped (installed, or zero-filled
  // for another thread, meanwhile). Shmem (minor): the file has a page there
  // that this mapping does not map yet, a MINOR fault, which only
  // UFFDIO_CONTINUE ends (EEXIST again: mapped by now).
  if (kind_->install == Install::cont) {
    os::UffdResult c = os::uffd_continue(uffd_.get(), page, kStackPage, 0);
    if (!c.ok() && c.err != os::UffdErr::exists) return stop_faulting_now(addr);
    if (c.ok()) zero_filled_.fetch_add(1);  // whatever the file held: not its data
  }
  return FaultOutcome::zero_filled;
}

FaultOutcome Compactor::stop_faulting_now(uintptr_t addr) noexcept {
  // The heap is broken and this page cannot be mapped at all, so its fault
  // cannot end the usual way. A page registered with our uffd outside the
  // heap is not ours to give up (thread mode releases it by itself).
  if (!covers(addr)) return FaultOutcome::unserved;
  void* page = reinterpret_cast<void*>(addr & ~uintptr_t(kStackPage - 1));
  const bool shared = kind_->shared_layout;
  void* start = reinterpret_cast<void*>(shared ? heap_.base() : heap_.map_base());
  const size_t len = shared ? heap_.capacity() : heap_.map_size();
  if (kind_->install == Install::protect) {
    // Opening the whole heap range merges its VMAs instead of splitting
    // one, so it works at vm.max_map_count too.
    if (os::protect_nothrow(start, len, PROT_READ | PROT_WRITE) != 0) return FaultOutcome::unserved;
  } else if (!os::uffd_unregister(uffd_.get(), page, kStackPage).ok() &&
             !os::uffd_unregister(uffd_.get(), start, len).ok()) {
    // Unregistering the page wakes the threads parked on it and its retry
    // faults in normally (zero for anonymous memory, whatever the file holds
    // for minor); later faults elsewhere are still served. If that split is
    // refused (vm.max_map_count), the whole range stops faulting, as
    // delivery_failed does. Async-signal-safe: ioctls only.
    return FaultOutcome::unserved;
  }
  zero_filled_.fetch_add(1);
  return FaultOutcome::zero_filled;
}

void Compactor::delivery_failed(const char* what, int err) noexcept {
  SafeMsg m;
  m.s("the fault handler threads stopped: ").s(what).s(" on the heap's userfaultfd failed");
  if (err) m.s(" with ").err(err);
  m.s("; no later fault could be served, so the heap stopped faulting (unproduced pages read "
      "zero or stale bytes)");
  break_heap(REMAP_EKERNEL, m.c_str());
  // Unregistering wakes every fault pending on the range (fs/userfaultfd.c,
  // userfaultfd_unregister) and later accesses fault in normally: no thread
  // parks on a range that nobody reads any more. A GC worker's MOVE into it
  // then fails (MOVE's destination must be registered) and is recorded too.
  if (layout_) {
    Status s = layout_->stop_faults();
    (void)s;  // if even that fails the uffd is gone, and with it the ranges
  }
  wake_stragglers();
}

void Compactor::wake_stragglers() noexcept {
  // The unregister wakes the range before it detaches each VMA from the
  // uffd (fs/userfaultfd.c), and a fault taken under the per-VMA lock may
  // queue itself in between: we could not rule it out (a test thread stayed
  // parked once in a few hundred runs before this wake existed). Once the
  // unregister has returned no fault can start queueing any more (detaching
  // waits for the VMA's readers), so one more wake of the whole mapping
  // releases any straggler; normally it wakes nobody.
  if (!uffd_.valid()) return;
  if (os::uffd_wake(uffd_.get(), reinterpret_cast<void*>(heap_.map_base()), heap_.map_size())
          .ok() ||
      !broken())
    return;
  // A broken heap whose wake failed too (every UFFDIO_WAKE refused, as the
  // injection tests do): a straggler would stay parked for good. The last
  // way to release it is the kernel's release of the uffd, which wakes
  // every thread parked on it and unregisters every range (a retry then
  // faults in normally). Only destroy follows a broken heap. The uffd's
  // number is pointed at /dev/null rather than closed, so that a later
  // ioctl of this engine (the pool's unregister at destroy) fails with
  // ENOTTY instead of reaching whatever file the number was reused for.
  // (A handler thread still inside poll() holds the file until it returns:
  // the release then happens at destroy.) Async-signal-safe calls only.
  if (uffd_released_.exchange(true)) return;
  const int stand_in = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (stand_in >= 0) {
    (void)::dup3(stand_in, uffd_.get(), O_CLOEXEC);
    ::close(stand_in);
  }
}

void Compactor::break_heap(remap_status code, const char* msg) noexcept {
  int expect = 0;
  if (!broken_.compare_exchange_strong(expect, 1)) return;  // the first failure is the cause
  broken_code_ = code;
  size_t n = 0;
  while (msg[n] && n + 1 < sizeof broken_msg_) {
    broken_msg_[n] = msg[n];
    n++;
  }
  broken_msg_[n] = 0;
  broken_.store(2, std::memory_order_release);
  // Now, not only at finish: a mutator that was given a zero page may crash
  // long before the runtime calls remap_finish.
  static const char head[] = "libremap: the heap is broken: ";
  os::write_stderr(head, sizeof head - 1);
  os::write_stderr(broken_msg_, n);
  os::write_stderr("\n", 1);
}

Status Compactor::broken_status() const {
  while (broken_.load(std::memory_order_acquire) == 1) sched_yield();  // a message is being written
  const unsigned long long zeroed = zero_filled_.load();
  if (zeroed)
    return fail(broken_code_,
                "%s; faults given a zero (or stale) page instead of their data: %llu; the heap "
                "cannot be trusted, destroy it",
                broken_msg_, zeroed);
  return fail(broken_code_, "%s; the heap cannot be trusted, destroy it", broken_msg_);
}

// Heap.h, "FREE regions filled ahead of allocation": zero pages in the
// regions acquire_region hands out next, installed by a GC worker before a
// mutator allocates there. In toy-VM GCBench nearly every page mutators
// built was such a zero fill, a SIGBUS each 16 pages; here the worker does
// it in four ioctls a region, between its claims (a claim is ~8 regions,
// a few hundred microseconds: mutators take a region or two meanwhile).
void Compactor::prefill() noexcept {
  if (!prefill_ || finishing_.load(std::memory_order_relaxed)) return;
  const size_t per_region = heap_.region_size() / heap_.page_size();
  for (size_t want = heap_.prefill_wanted(kPrefillRegions); want > 0; want--) {
    const size_t r = heap_.take_region_to_prefill();
    if (r == Heap::kNoFreeRegion) return;
    const size_t first = heap_.page_index(heap_.region_base(r));
    const size_t end = first + per_region;
    if (end > states_.count() || r >= plan_->region_count()) {  // grown since prepare
      heap_.offer_prefilled(r);
      continue;
    }
    uint64_t filled = 0;
    for (size_t p = first; p < end && !broken();) {
      size_t n = 0;
      while (p + n < end && n < Backend::kMaxZeroPages && states_.claim_empty_for_gc(p + n)) n++;
      if (n == 0) {  // a page somebody else owns (a stray touch of a free region)
        p++;
        continue;
      }
      const InstallOutcome o = backend_->install_zero(heap_.page_addr(p), n, spaces_.write[r]);
      // MAPPED even if it failed ("given up"): nobody waits for these pages.
      for (size_t i = 0; i < n; i++) states_.set(p + i, kPageMapped);
      if (!o.ok) {
        SafeMsg m;
        m.s("a GC worker could not install zero pages ahead of allocation: ").s(o.op)
            .s(" failed with ").err(o.sys_errno).hint(o.sys_errno);
        break_heap(install_code(o.sys_errno), m.c_str());
      }
      filled += n;
      p += n;
    }
    counters_.pages_by_gc.add(filled);
    heap_.offer_prefilled(r);
  }
}

bool Compactor::ensure_page(size_t page, bool by_fault) noexcept {
  const uint64_t t0 = now_ns();
  uint8_t was;
  if (states_.claim_for_mutator(page, &was)) {
    const uintptr_t addr = heap_.page_addr(page);
    InstallOutcome o;
    size_t npages = 1;
    if (was == kPageEmpty) {
      // A free page faulted on is touched by allocation, which goes on
      // upwards: the free pages after it in its region are zero-filled now
      // with it (one ioctl and one fault instead of one of each per page;
      // 14k zero-page COPYs in a toy-VM GCBench run). remap_touch asks for
      // its range and no more.
      const size_t region_end = heap_.page_index(heap_.region_base(heap_.region_index(addr)) +
                                                 heap_.region_size());
      while (by_fault && npages < Backend::kMaxZeroPages && page + npages < region_end &&
             states_.claim_empty_for_mutator(page + npages))
        npages++;
      o = backend_->install_zero(addr, npages, spaces_.write[heap_.region_index(addr)]);
    } else if (plan_->page_kind(page) == PageKind::LARGE && !layout_->clip()) {
      // A large object's page is its old page, slots forwarded where it lies:
      // installed from there like a GC worker's run (move: never copied) —
      // except that move COPYs it for a faulting thread (fault_copies_): a
      // MOVE of one page is a TLB shootdown that thread waits for. Toy-VM
      // GCBench: 20.7 us a large-page fault moved, 2.0 us with copy's COPY.
      // The thread touches the page, so it would come in from swap anyway.
      const bool copy_it = fault_copies_ && by_fault;
      const uintptr_t src = producer_->large_in_place(page, copy_it);
      o = copy_it ? backend_->install_copy(addr, reinterpret_cast<const void*>(src))
                  : backend_->install_run(addr, src, 1);
    } else if (void* buf = fault_copies_ ? nullptr
                                         : backend_->take_buffer(
                                               addr, spaces_.write[heap_.region_index(addr)])) {
      producer_->build_page(page, static_cast<char*>(buf));
      o = backend_->install_buffer(addr, buf);
    } else {
      alignas(kStackPage) char tmp[kStackPage];
      producer_->build_page(page, tmp);
      o = backend_->install_copy(addr, tmp);
    }
    if (!o.ok) {
      SafeMsg m;
      // What the page was, for whoever reads this: an ENOENT from COPY means
      // the destination was not a registered VMA at that moment.
      m.s("could not install page ").x(addr).s(by_fault ? " for a faulting thread: " : ": ")
          .s(o.op).s(" failed with ").err(o.sys_errno).s(" (page ").u(page).s(", kind ")
          .s(page_kind_name(plan_->page_kind(page))).s(was == kPageEmpty ? ", empty" : ", with data")
          .s(closing_.load() ? ", while closing)" : ")").hint(o.sys_errno);
      break_heap(install_code(o.sys_errno), m.c_str());
      // MAPPED means "given up" here: threads waiting for the page go on, and
      // their retry faults into the zero fill (resolve_fault, below).
      for (size_t i = 0; i < npages; i++) states_.set(page + i, kPageMapped);
      return false;
    }
    for (size_t i = 0; i < npages; i++) states_.set(page + i, kPageMapped);
    counters_.pages_by_mutator.add(npages);
  } else if (was != kPageMapped) {
    uint64_t w0 = now_ns();
    states_.add_waiter();
    states_.wait_mapped(page);
    states_.remove_waiter();
    counters_.wait_ns.add(now_ns() - w0);
  } else if (by_fault) {
    // Installed, yet it faulted: a run moved with source holes skipped left
    // it unmapped (or it was mapped just now, and this is a no-op). On a
    // broken engine it may be a page whose install failed (marked MAPPED so
    // nobody waits): the caller zero-fills it, where fill_hole would do
    // nothing for minor and the thread would fault again forever.
    if (broken()) return false;
    InstallOutcome o = backend_->fill_hole(heap_.page_addr(page));
    if (!o.ok) {
      SafeMsg m;
      m.s("could not map the zero page at ").x(heap_.page_addr(page)).s(" (a hole left by a run): ")
          .s(o.op).s(" failed with ").err(o.sys_errno);
      break_heap(install_code(o.sys_errno), m.c_str());
      return false;
    }
  }
  if (by_fault) counters_.latency.record(now_ns() - t0);
  return true;
}

Status Compactor::finish(remap_cycle_stats* stats) {
  if (!active_.load()) return fail(REMAP_EPHASE, "no cycle is compacting");
  // The cycle ends here: nothing more is filled ahead (prefill).
  finishing_.store(true);
  // Regions no worker took yet. A failure is recorded (broken()) and the
  // rest still runs: faults must be stopped whatever happened.
  (void)work();
  // Workers of a concurrent remap_compact may still be returning from their
  // last region: the producer must outlive them.
  while (workers_.load() != 0) sched_yield();
  heap_.set_compacting(false);
  heap_.end_prefill();
  // Pages mutators still build; an UNPROCESSED page here would be a bug in
  // work(), but producing it is the safe answer.
  for (size_t p = 0; p < states_.count(); p++) {
    uint8_t st = states_.load(p);
    if (st != kPageMapped && st != kPageEmpty) (void)ensure_page(p, false);
  }
  uint64_t done_ns = now_ns();

  // VMAs with every page installed, before the layout stops faulting: the
  // cycle's peak (for sigsegv the opened runs still split the heap range;
  // stop_faults opens the rest and they merge back).
  int64_t vmas_peak = os::count_vmas();

  closing_.store(true);
  while (in_flight_.load() != 0) sched_yield();
  Status stopped = layout_->stop_faults();
  faults_stopped_.store(stopped.is_ok());
  active_.store(false);
  closing_.store(false);
  // Handler threads that lost the uffd cannot wake a fault that raced the
  // unregister.
  if (broken()) wake_stragglers();
  if (!stopped) {
    // Faults keep coming: from now on resolve_fault zero-fills them.
    SafeMsg m;
    m.s("cannot stop faults at the end of the cycle: ").s(stopped.message.c_str());
    break_heap(stopped.code, m.c_str());
  }
  // A broken cycle is not completed: the heap's regions and from-space are
  // left as they are, since the heap is BROKEN and only destroy follows.
  if (broken()) return broken_status();

  Status s = layout_->release_old(*plan_);
  heap_.complete_cycle(*plan_);
  if (s && counters_.black_walk_errors.get())
    s = fail(REMAP_EOBJMODEL,
             "the object model gave a size or slot offset that cannot be right while walking "
             "black objects (allocated since remap_cycle_begin) on %llu page(s) or region(s): "
             "their later slots were not forwarded",
             (unsigned long long)counters_.black_walk_errors.get());

  if (stats) {
    counters_.fill(stats);
    stats->compaction_ns = done_ns - flip_end_ns_;
    stats->vmas_before = vmas_before_;
    stats->vmas_after = vmas_peak < 0 ? 0 : uint64_t(vmas_peak);
  }
  plan_ = nullptr;
  producer_.reset();
  return s;
}

void Compactor::fork_prepare() noexcept {
  if (inherited_) return;  // a child forking again: nothing of ours is live
  if (active_.load(std::memory_order_acquire) && !closing_.load()) {
    // After fork the child's heap VMAs are no longer registered (the kernel
    // keeps uffd registrations in a child only with UFFD_FEATURE_EVENT_FORK,
    // which needs CAP_SYS_PTRACE), so a page not installed now would read as
    // zero in the child (anon) or as stale file bytes (minor, sigsegv). The
    // child cannot install it either: an ioctl on the inherited uffd acts on
    // the parent's mm (UFFDIO_MOVE refuses a cross-mm call with EINVAL;
    // UFFDIO_COPY would write into the parent). So the parent installs every
    // page first, as finish does. A page a GC worker or a mutator holds is
    // waited for; they do not need anything the forking thread holds.
    // EMPTY pages need nothing: unregistered they read zero in the child
    // (anon: an unpopulated page; shmem: the new slot's page reads zero, see
    // shmem_layout.h), which is what installing them would give.
    for (size_t p = 0; p < states_.count(); p++) {
      uint8_t st = states_.load(p);
      if (st != kPageMapped && st != kPageEmpty) (void)ensure_page(p, false);
    }
  }
  layout_->fork_prepare();
}

void Compactor::fork_parent() noexcept {
  if (!inherited_) layout_->fork_parent();
}

bool Compactor::fork_child() noexcept {
  if (inherited_) return true;  // its layout was made private at the first fork
  inherited_ = true;
  return layout_->fork_child();
}

Status Compactor::finish_inherited(remap_cycle_stats* stats) {
  if (!active_.load()) return fail(REMAP_EPHASE, "no cycle is compacting");
  active_.store(false);
  heap_.complete_cycle(*plan_);
  if (stats) {
    counters_.fill(stats);
    stats->compaction_ns = now_ns() - flip_end_ns_;
    stats->vmas_before = vmas_before_;
    int64_t v = os::count_vmas();
    stats->vmas_after = v < 0 ? 0 : uint64_t(v);
  }
  plan_ = nullptr;
  producer_.reset();
  return Status::ok();
}

void Compactor::abandon_in_child() noexcept {
  abandoned_.store(true, std::memory_order_release);
  inherited_ = true;
  layout_->abandon_in_child();
  uffd_.reset();  // the child's reference; the parent's uffd lives on
}

}  // namespace remap

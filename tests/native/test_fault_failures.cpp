// test_fault_failures.cpp — a fault the engine cannot serve never hangs a
// thread and never passes unnoticed (issue 12, defect 4).
//
// The promise under test: when a page cannot be produced (the kernel refuses
// the install), a thread touches the heap's mapping past its capacity, or the
// handler threads cannot poll their userfaultfd, the faulting thread goes on
// (it reads a zero page, or the range stops faulting), the other faults keep
// being served, remap_finish returns the failure's status with a message
// saying what failed, and the heap is REMAP_PHASE_BROKEN. Same in thread mode
// and in SIGBUS mode.
//
// Failures are injected by wrapping the compactor's backend (a test seam in
// Compactor) in one that refuses to install one chosen page, as the kernel
// would with ENOMEM. Each scenario runs in a forked child under a deadline:
// before this was fixed a handler thread dropped such faults and the thread
// stayed parked in the kernel forever, so "fails" has to mean "timed out",
// not "hung the test run".
#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "api/handle.h"
#include "compact/backend.h"
#include "check.h"
#include "compact/compactor.h"
#include "compact/producer.h"  // Compactor's members need ~Producer
#include "libremap.h"
#include "os/vm.h"

namespace {

using namespace remap;

constexpr size_t kPage = 4096;
constexpr int kChildSkip = 77;
constexpr int kDeadlineS = 20;

// Object: [u64 size = 64][u64 nrefs = 0][u64 id][payload...]
size_t obj_size(void*, const void* obj) { return static_cast<const uint64_t*>(obj)[0]; }
void obj_visit(void*, const void*, remap_visit_fn, void*) {}

// Refuses every install that would map page `bad` (errno ENOMEM, as the
// kernel answers when it cannot allocate a page table); the rest goes to the
// real backend.
class RefusingBackend final : public Backend {
 public:
  // *bad: the page to refuse (0: none yet), read at every install.
  RefusingBackend(std::unique_ptr<Backend> inner, const uintptr_t* bad)
      : inner_(std::move(inner)), bad_ptr_(bad) {}

  InstallOutcome install_run(uintptr_t dst, uintptr_t src, size_t n) noexcept override {
    const uintptr_t b = bad();
    if (b && b >= dst && b < dst + n * kPage) {
      // The pages before the bad one go in, like a real partial failure.
      if (b > dst) {
        InstallOutcome o = inner_->install_run(dst, src, (b - dst) / kPage);
        if (!o.ok) return o;
      }
      return refused();
    }
    return inner_->install_run(dst, src, n);
  }
  void* take_buffer(uintptr_t dst, intptr_t wd) noexcept override {
    return inner_->take_buffer(dst, wd);
  }
  InstallOutcome install_buffer(uintptr_t dst, void* buf) noexcept override {
    if (dst == bad()) {
      inner_->return_buffer(buf);
      return refused();
    }
    return inner_->install_buffer(dst, buf);
  }
  void return_buffer(void* buf) noexcept override { inner_->return_buffer(buf); }
  InstallOutcome install_copy(uintptr_t dst, const void* bytes) noexcept override {
    return dst == bad() ? refused() : inner_->install_copy(dst, bytes);
  }
  InstallOutcome install_zero(uintptr_t dst, size_t n, intptr_t wd) noexcept override {
    const uintptr_t b = bad();
    return b && b >= dst && b < dst + n * kPage ? refused() : inner_->install_zero(dst, n, wd);
  }
  InstallOutcome fill_hole(uintptr_t dst) noexcept override {
    return dst == bad() ? refused() : inner_->fill_hole(dst);
  }
  void from_space_done(uintptr_t from, size_t len) noexcept override {
    inner_->from_space_done(from, len);
  }
  Status finish_from_space(uintptr_t from, size_t len) override {
    return inner_->finish_from_space(from, len);
  }

 private:
  static InstallOutcome refused() { return {false, ENOMEM, "UFFDIO_MOVE (injected)"}; }
  uintptr_t bad() const { return *bad_ptr_; }
  std::unique_ptr<Backend> inner_;
  const uintptr_t* bad_ptr_;
};

struct Scenario {
  int backend;
  int fault_mode;
  unsigned handler_threads = 1;
};

// A heap of 48 fragmented regions (every other 64-byte object live), planned
// and flipped: every page with data is unproduced. roots[i] is the i-th live
// object's new address, ids[i] the id it carries.
struct Flipped {
  remap_heap* heap = nullptr;
  std::vector<uintptr_t> roots;
  std::vector<uint64_t> ids;
  uintptr_t refused_page = 0;  // read by the RefusingBackend
  ~Flipped() { remap_heap_destroy(heap); }
};

// Child-side failure: print and leave with status 1.
[[noreturn]] void child_fail(const char* what, const std::string& detail = "") {
  fprintf(stderr, "  child: %s %s\n", what, detail.c_str());
  fflush(stderr);
  _exit(1);
}
#define CHILD_CHECK(cond, detail)                                   \
  do {                                                              \
    if (!(cond)) child_fail("check failed: " #cond, (detail));      \
  } while (0)

// Builds the heap; `refuse_root` >= 0: the page holding that root's new
// address refuses installs. Exits the child as skipped if the engine is
// unavailable here.
void flip(Flipped* f, const Scenario& sc, int refuse_root) {
  remap_heap_config cfg;
  remap_heap_config_init(&cfg);
  cfg.capacity = 64 * 65536;
  cfg.region_size = 65536;
  cfg.backend = sc.backend;
  cfg.fault_mode = sc.fault_mode;
  cfg.handler_threads = sc.handler_threads;
  cfg.model.object_size = obj_size;
  cfg.model.visit_ref_offsets = obj_visit;
  remap_status s = remap_heap_create(&cfg, &f->heap);
  if (s != REMAP_OK) {
    fprintf(stderr, "  skip: %s\n", remap_last_error());
    _exit(kChildSkip);
  }
  // The seam: the producer binds to the backend at prepare, so wrap it now;
  // the page to refuse is known once the plan is.
  if (refuse_root >= 0) {
    auto& slot = f->heap->compactor->backend_slot_for_test();
    slot = std::make_unique<RefusingBackend>(std::move(slot), &f->refused_page);
  }
  std::vector<uintptr_t> old_roots;
  uint64_t id = 1;
  for (int r = 0; r < 48; r++) {
    void *start, *end;
    CHILD_CHECK(remap_region_acquire(f->heap, &start, &end) == REMAP_OK, remap_last_error());
    uintptr_t cur = uintptr_t(start);
    for (; cur + 64 <= uintptr_t(end); cur += 64, id++) {
      auto* o = reinterpret_cast<uint64_t*>(cur);
      o[0] = 64;
      o[1] = 0;
      for (int k = 2; k < 8; k++) o[k] = id * 8 + k;
      if (id % 2) old_roots.push_back(cur);
    }
    CHILD_CHECK(remap_region_retire(f->heap, start, reinterpret_cast<void*>(cur)) == REMAP_OK,
                remap_last_error());
  }
  for (uintptr_t o : old_roots) {
    CHILD_CHECK(remap_mark(f->heap, reinterpret_cast<void*>(o)) == REMAP_OK, remap_last_error());
    f->ids.push_back(reinterpret_cast<uint64_t*>(o)[2]);
  }
  CHILD_CHECK(remap_prepare(f->heap) == REMAP_OK, remap_last_error());
  for (uintptr_t o : old_roots) {
    void* nw = nullptr;
    CHILD_CHECK(remap_forward(f->heap, reinterpret_cast<void*>(o), &nw) == REMAP_OK,
                remap_last_error());
    f->roots.push_back(uintptr_t(nw));
  }
  if (refuse_root >= 0) f->refused_page = f->roots[size_t(refuse_root)] & ~uintptr_t(kPage - 1);
  CHILD_CHECK(remap_flip(f->heap) == REMAP_OK, remap_last_error());
}

uint64_t read_word(uintptr_t a) { return *reinterpret_cast<volatile uint64_t*>(a); }

// The index of a root whose page is at least `gap` pages away from root 0's
// (either side: regions are handed out from the top of the heap down).
size_t far_root(const Flipped& f, size_t gap) {
  const uintptr_t p0 = f.roots[0] / kPage;
  for (size_t i = 0; i < f.roots.size(); i++) {
    const uintptr_t p = f.roots[i] / kPage;
    if ((p > p0 ? p - p0 : p0 - p) >= gap) return i;
  }
  child_fail("no root far enough from root 0");
}

int phase_of(remap_heap* h) {
  remap_heap_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  if (remap_heap_get_info(h, &info) != REMAP_OK) return -1;
  return info.phase;
}

// remap_finish must fail with `code`, a message containing `needle`, and
// leave the heap BROKEN; destroy must then work.
void expect_broken_finish(Flipped& f, remap_status code, const char* needle) {
  remap_status s = remap_finish(f.heap);
  std::string msg = remap_last_error();
  CHILD_CHECK(s == code, "finish returned " + std::to_string(int(s)) + ": " + msg);
  CHILD_CHECK(msg.find(needle) != std::string::npos, msg);
  CHILD_CHECK(phase_of(f.heap) == REMAP_PHASE_BROKEN, msg);
  // Nothing will end a wait on a broken heap: remap_wait_idle says so.
  CHILD_CHECK(remap_wait_idle(f.heap, -1) == REMAP_EPHASE, remap_last_error());
  fprintf(stderr, "  finish: %s\n", msg.c_str());
}

// Runs `scenario(sc)` in a forked child under kDeadlineS; reports a hang as
// a failure (the child is killed), an engine missing here as a note.
void in_child(const char* what, void (*scenario)(const Scenario&), Scenario sc) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    alarm(0);  // the parent's watchdog; ours is below
    scenario(sc);
    fflush(stderr);
    _exit(0);
  }
  int status = 0;
  timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    pid_t got = waitpid(pid, &status, WNOHANG);
    if (got == pid) break;
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (t.tv_sec - t0.tv_sec > kDeadlineS) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      check::fail(__FILE__, __LINE__,
                  std::string(what) + ": timed out after " + std::to_string(kDeadlineS) +
                      " s (a thread is parked in a fault nobody serves)");
      return;
    }
    usleep(10000);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == kChildSkip) {
    // One engine missing here must not hide the others' results.
    printf("  [ note ] %s: engine unavailable, not run\n", what);
    return;
  }
  if (WIFSIGNALED(status))
    check::fail(__FILE__, __LINE__,
                std::string(what) + ": killed by signal " + std::to_string(WTERMSIG(status)));
  else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    check::fail(__FILE__, __LINE__,
                std::string(what) + ": exit " + std::to_string(WEXITSTATUS(status)));
}

// A faulting thread's page cannot be installed: the thread goes on (a zero
// page where the kernel gives one), later faults are served with the right
// data, finish reports the kernel's errno and the heap is BROKEN.
void mutator_install_refused(const Scenario& sc) {
  Flipped f;
  flip(&f, sc, 0);
  uint64_t got = read_word(f.roots[0] + 16);
  const bool anon = sc.backend == REMAP_BACKEND_MOVE || sc.backend == REMAP_BACKEND_COPY;
  if (anon) CHILD_CHECK(got == 0, "the refused page reads " + std::to_string(got) + ", not zero");
  // The handler thread (or the SIGBUS handler) still serves other pages.
  size_t j = far_root(f, 3);
  got = read_word(f.roots[j] + 16);
  CHILD_CHECK(got == f.ids[j], "a later fault got wrong data: " + std::to_string(got));
  // GC workers finish the rest; they report the broken heap too.
  remap_status cs = remap_compact(f.heap);
  CHILD_CHECK(cs == REMAP_ENOMEM, std::string("remap_compact: ") + remap_last_error());
  expect_broken_finish(f, REMAP_ENOMEM, "ENOMEM");
}

// A GC worker's run cannot be installed: remap_compact fails, a thread that
// then touches the page is not parked (nor looping), finish reports it.
void gc_install_refused(const Scenario& sc) {
  Flipped f;
  flip(&f, sc, 1);
  remap_status cs = remap_compact(f.heap);
  CHILD_CHECK(cs == REMAP_ENOMEM, std::string("remap_compact: ") + remap_last_error());
  uint64_t got = read_word(f.roots[1] + 16);
  const bool anon = sc.backend == REMAP_BACKEND_MOVE || sc.backend == REMAP_BACKEND_COPY;
  if (anon) CHILD_CHECK(got == 0, "the refused page reads " + std::to_string(got) + ", not zero");
  // The rest of the refused run is lost too (a run fails as a whole past
  // the refused page), but not the runs of other regions.
  size_t j = far_root(f, 160);
  CHILD_CHECK(read_word(f.roots[j] + 16) == f.ids[j], "a produced page lost its data");
  expect_broken_finish(f, REMAP_ENOMEM, "GC worker");
}

// A thread touches the heap's mapping past its capacity (registered with the
// heap's userfaultfd, so it faults there): the engine has no page to produce.
void past_capacity(const Scenario& sc) {
  Flipped f;
  flip(&f, sc, -1);
  Heap& h = *f.heap->heap;
  if (h.map_size() <= h.capacity()) {
    fprintf(stderr, "  skip: the mapping has no room past capacity\n");
    _exit(kChildSkip);
  }
  uint64_t got = read_word(h.end() + 2 * kPage);
  CHILD_CHECK(got == 0, "past capacity should read a zero page");
  size_t j = far_root(f, 3);
  CHILD_CHECK(read_word(f.roots[j] + 16) == f.ids[j], "a later fault got wrong data");
  expect_broken_finish(f, REMAP_EINVAL, "past the heap's capacity");
}

// The other threads of this (child) process, once each sleeps in poll(2):
// /proc/<tid>/syscall names the system call a blocked thread is in. A
// handler thread that has not reached poll yet would read RLIMIT_NOFILE too
// early, and the scenario would be another one.
std::vector<pid_t> handler_threads_in_poll() {
  std::vector<pid_t> tids;
  DIR* d = opendir("/proc/self/task");
  CHILD_CHECK(d != nullptr, "opendir /proc/self/task");
  while (dirent* e = readdir(d)) {
    pid_t tid = pid_t(atoi(e->d_name));
    if (tid > 0 && tid != pid_t(syscall(SYS_gettid))) tids.push_back(tid);
  }
  closedir(d);
  CHILD_CHECK(!tids.empty(), "no handler thread");
  for (pid_t tid : tids) {
    std::string path = "/proc/self/task/" + std::to_string(tid) + "/syscall";
    bool in_poll = false;
    for (int i = 0; i < 5000 && !in_poll; i++) {
      char buf[64] = {};
      FILE* f = fopen(path.c_str(), "r");
      if (f) {
        if (fgets(buf, sizeof buf, f)) {
          long nr = atol(buf);
          in_poll = nr == SYS_poll || nr == SYS_ppoll;
        }
        fclose(f);
      }
      if (!in_poll) usleep(1000);
    }
    CHILD_CHECK(in_poll, "a handler thread never sat in poll: " + path);
  }
  return tids;
}

// The handler thread's poll fails (EINVAL: more fds than RLIMIT_NOFILE):
// it cannot serve any fault any more, so the heap stops faulting and breaks.
void poll_fails(const Scenario& sc) {
  Flipped f;
  flip(&f, sc, -1);
  (void)handler_threads_in_poll();
  rlimit old;
  CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0, "getrlimit");
  rlimit one = old;
  one.rlim_cur = 1;  // poll(2) of 2 fds > RLIMIT_NOFILE: EINVAL
  CHILD_CHECK(setrlimit(RLIMIT_NOFILE, &one) == 0, "setrlimit");
  // Served; the handler thread then re-enters poll and fails.
  CHILD_CHECK(read_word(f.roots[0] + 16) == f.ids[0], "the first fault got wrong data");
  size_t j = far_root(f, 3);
  (void)read_word(f.roots[j] + 16);  // must return: no handler can serve it
  CHILD_CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0, "setrlimit back");
  expect_broken_finish(f, REMAP_EKERNEL, "poll");
}

// A fault message for an address registered with the heap's uffd but not in
// the heap (in thread mode the uffd also has the move backend's page pool):
// the engine has nothing to produce there. Called directly, as the handler
// thread would with such a message; an unregistered address stands in for
// the pool page (no zero page can be mapped there: unserved, and the handler
// thread would then unregister it).
void outside_heap(const Scenario& sc) {
  Flipped f;
  flip(&f, sc, -1);
  os::Mapping elsewhere;
  CHILD_CHECK(os::reserve_aligned(kPage, kPage, PROT_READ | PROT_WRITE, &elsewhere).is_ok(),
              "mmap");
  FaultOutcome out = f.heap->compactor->resolve_fault(uintptr_t(elsewhere.addr()));
  CHILD_CHECK(out == FaultOutcome::unserved, "an unregistered page cannot be zero-filled");
  CHILD_CHECK(f.heap->compactor->broken(), "the engine is not broken");
  // The heap's own faults are still served with their data.
  CHILD_CHECK(read_word(f.roots[0] + 16) == f.ids[0], "a later fault got wrong data");
  expect_broken_finish(f, REMAP_EINTERNAL, "outside the heap's mapping");
}

// Two threads fault on the same refused page at once (two handler threads in
// thread mode): the one that loses the claim waits for the page, which is
// given up rather than installed; both go on, neither loops for ever.
void concurrent_faults_on_refused_page(const Scenario& sc) {
  Flipped f;
  flip(&f, sc, 0);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  uint64_t got[2] = {1, 1};
  std::thread ts[2];
  for (int i = 0; i < 2; i++)
    ts[i] = std::thread([&, i] {
      ready.fetch_add(1);
      while (!go.load()) {
      }
      got[i] = read_word(f.roots[0] + 16 + 8 * i);
    });
  while (ready.load() != 2) {
  }
  go = true;
  for (auto& t : ts) t.join();
  CHILD_CHECK(got[0] == 0 && got[1] == 0, "a refused page read nonzero");
  size_t j = far_root(f, 3);
  CHILD_CHECK(read_word(f.roots[j] + 16) == f.ids[j], "a later fault got wrong data");
  expect_broken_finish(f, REMAP_ENOMEM, "ENOMEM");
}

void on_usr1(int) {}

// The same failure between cycles: nothing is compacting, so the runtime
// hears of it at the next remap_prepare, which fails with the message and
// leaves the heap BROKEN (no cycle can start without fault delivery).
void poll_fails_between_cycles(const Scenario& sc) {
  Flipped f;
  flip(&f, sc, -1);
  CHILD_CHECK(remap_compact(f.heap) == REMAP_OK, remap_last_error());
  CHILD_CHECK(remap_finish(f.heap) == REMAP_OK, remap_last_error());
  // The handler thread sits in poll(2); a signal makes it poll again (EINTR)
  // while RLIMIT_NOFILE is too low for its two fds.
  std::vector<pid_t> others = handler_threads_in_poll();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, nullptr);
  rlimit old;
  CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0, "getrlimit");
  rlimit one = old;
  one.rlim_cur = 1;
  CHILD_CHECK(setrlimit(RLIMIT_NOFILE, &one) == 0, "setrlimit");
  for (pid_t tid : others) syscall(SYS_tgkill, getpid(), tid, SIGUSR1);
  usleep(200000);
  CHILD_CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0, "setrlimit back");
  remap_status s = remap_prepare(f.heap);
  std::string msg = remap_last_error();
  CHILD_CHECK(s == REMAP_EKERNEL, "prepare returned " + std::to_string(int(s)) + ": " + msg);
  CHILD_CHECK(msg.find("poll") != std::string::npos, msg);
  CHILD_CHECK(phase_of(f.heap) == REMAP_PHASE_BROKEN, msg);
}

}  // namespace

TEST(fault_failure_thread_mode_install_refused) {
  in_child("move/thread", mutator_install_refused, {REMAP_BACKEND_MOVE, REMAP_FAULT_THREAD});
  in_child("copy/thread", mutator_install_refused, {REMAP_BACKEND_COPY, REMAP_FAULT_THREAD});
  in_child("minor/thread", mutator_install_refused, {REMAP_BACKEND_MINOR, REMAP_FAULT_THREAD});
}

TEST(fault_failure_sigbus_mode_install_refused) {
  in_child("move/sigbus", mutator_install_refused, {REMAP_BACKEND_MOVE, REMAP_FAULT_SIGBUS});
  in_child("copy/sigbus", mutator_install_refused, {REMAP_BACKEND_COPY, REMAP_FAULT_SIGBUS});
  in_child("minor/sigbus", mutator_install_refused, {REMAP_BACKEND_MINOR, REMAP_FAULT_SIGBUS});
  // sigsegv delivers by SIGSEGV on its PROT_NONE heap: the same promise.
  in_child("sigsegv", mutator_install_refused, {REMAP_BACKEND_SIGSEGV, REMAP_FAULT_SIGBUS});
}

TEST(fault_failure_gc_install_refused) {
  in_child("move/thread", gc_install_refused, {REMAP_BACKEND_MOVE, REMAP_FAULT_THREAD});
  in_child("move/sigbus", gc_install_refused, {REMAP_BACKEND_MOVE, REMAP_FAULT_SIGBUS});
  in_child("minor/thread", gc_install_refused, {REMAP_BACKEND_MINOR, REMAP_FAULT_THREAD});
}

TEST(fault_failure_thread_mode_past_capacity) {
  in_child("move/thread", past_capacity, {REMAP_BACKEND_MOVE, REMAP_FAULT_THREAD});
}

TEST(fault_failure_sigbus_mode_past_capacity) {
  in_child("move/sigbus", past_capacity, {REMAP_BACKEND_MOVE, REMAP_FAULT_SIGBUS});
}

TEST(fault_failure_thread_mode_poll_error) {
#if defined(__SANITIZE_THREAD__)
  // handler_threads_in_poll takes every other thread for a handler thread;
  // TSan's runtime adds a background thread that never sits in poll.
  SKIP("TSan's background thread is not a handler thread (see handler_threads_in_poll)");
#endif
  in_child("move/thread", poll_fails, {REMAP_BACKEND_MOVE, REMAP_FAULT_THREAD});
}

TEST(fault_failure_thread_mode_poll_error_between_cycles) {
#if defined(__SANITIZE_THREAD__)
  // handler_threads_in_poll takes every other thread for a handler thread;
  // TSan's runtime adds a background thread that never sits in poll.
  SKIP("TSan's background thread is not a handler thread (see handler_threads_in_poll)");
#endif
  in_child("move/thread", poll_fails_between_cycles, {REMAP_BACKEND_MOVE, REMAP_FAULT_THREAD});
}

TEST(fault_failure_thread_mode_outside_heap) {
  in_child("move/thread", outside_heap, {REMAP_BACKEND_MOVE, REMAP_FAULT_THREAD});
}

TEST(fault_failure_concurrent_faults_on_a_refused_page) {
  in_child("move/thread", concurrent_faults_on_refused_page,
           {REMAP_BACKEND_MOVE, REMAP_FAULT_THREAD, 2});
  in_child("move/sigbus", concurrent_faults_on_refused_page,
           {REMAP_BACKEND_MOVE, REMAP_FAULT_SIGBUS});
}

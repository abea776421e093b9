/* sigbus_chain.c — libremap's SIGBUS handler and a runtime's own (issue 4).
 *
 *   sigbus_chain chain-siginfo|chain-plain <backend>
 *     installs a SIGBUS handler (SA_SIGINFO, or a plain sa_handler) before
 *     creating a heap in SIGBUS mode, then raises foreign SIGBUSes (touching
 *     a page of a shared file mapping past the file's end) while the heap is
 *     idle, while it is compacting (on this thread, while another thread
 *     runs remap_compact and this one also reads the heap through faults),
 *     and after the heap is destroyed. Each must reach the handler, which
 *     grows the file back so the access succeeds on retry; heap faults must
 *     never reach it. Prints "ok <hits>" and exits 0, or "FAIL ..." and 1.
 *   sigbus_chain nochain <backend>
 *     no handler of its own: prints "armed" and then a foreign SIGBUS during
 *     compaction must kill the process with SIGBUS (the default action).
 *
 * Exit 77: the backend is unsupported (heap create said EUNSUPPORTED). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testheap.c"

static int g_fd = -1;
static long g_page;
static volatile char* g_map;
static volatile sig_atomic_t g_hits;
static void* volatile g_addr;

static void on_bus_siginfo(int sig, siginfo_t* si, void* uc) {
  (void)sig;
  (void)uc;
  g_hits++;
  g_addr = si->si_addr;
  if (ftruncate(g_fd, 2 * g_page) != 0) _exit(3);  /* the retry now succeeds */
}

static void on_bus_plain(int sig) {
  (void)sig;
  g_hits++;
  if (ftruncate(g_fd, 2 * g_page) != 0) _exit(3);
}

#define FAIL(...)                 \
  do {                            \
    printf("FAIL ");              \
    printf(__VA_ARGS__);          \
    printf("\n");                 \
    fflush(stdout);               \
    exit(1);                      \
  } while (0)

/* Shrinks the file to one page (unmapping the second) and reads the second
 * page: SIGBUS, BUS_ADRERR, at g_map + g_page. */
static void foreign_fault(void) {
  if (ftruncate(g_fd, g_page) != 0) FAIL("ftruncate");
  char c = g_map[g_page];
  (void)c;
}

static void* compact_thread(void* arg) {
  th_heap* h = arg;
  intptr_t s = remap_compact(th_remap(h));
  return (void*)s;
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  const char* mode = argv[1];
  int backend = strcmp(argv[2], "copy") == 0 ? REMAP_BACKEND_COPY
                : strcmp(argv[2], "minor") == 0 ? REMAP_BACKEND_MINOR
                : strcmp(argv[2], "sigsegv") == 0 ? REMAP_BACKEND_SIGSEGV
                                                  : REMAP_BACKEND_MOVE;
  int chain = strcmp(mode, "nochain") != 0;
  g_page = sysconf(_SC_PAGESIZE);
  char path[] = "/tmp/sigbus_chain.XXXXXX";
  g_fd = mkstemp(path);
  if (g_fd < 0) FAIL("mkstemp");
  unlink(path);
  if (ftruncate(g_fd, 2 * g_page) != 0) FAIL("ftruncate");
  g_map = mmap(NULL, 2 * g_page, PROT_READ | PROT_WRITE, MAP_SHARED, g_fd, 0);
  if (g_map == MAP_FAILED) FAIL("mmap");

  if (chain) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    if (strcmp(mode, "chain-siginfo") == 0) {
      sa.sa_sigaction = on_bus_siginfo;
      sa.sa_flags = SA_SIGINFO;
    } else {
      sa.sa_handler = on_bus_plain;
    }
    if (sigaction(SIGBUS, &sa, NULL) != 0) FAIL("sigaction");
  }

  th_heap* h;
  int s = th_create(backend, REMAP_FAULT_SIGBUS, 1, 4, 7, 0.4, 0.75, &h);
  if (s == REMAP_EUNSUPPORTED) {
    printf("unsupported: %s\n", remap_last_error());
    return 77;
  }
  if (s != REMAP_OK) FAIL("th_create: %s", remap_last_error());
  uint64_t want = th_checksum(h);

  if (chain) {
    foreign_fault();  /* idle heap, libremap's handler installed */
    if (g_hits != 1) FAIL("foreign SIGBUS with an idle heap: %d hits", (int)g_hits);
  }
  if ((s = th_cycle_begin(h)) != REMAP_OK) FAIL("cycle: %s", remap_last_error());
  if (th_phase(h) != REMAP_PHASE_COMPACTING) FAIL("not compacting");
  if (!chain) {
    /* A heap fault is libremap's, and fine, before the foreign one. */
    volatile uint64_t id = *(volatile uint64_t*)(th_root(h, 0) + 8);
    (void)id;
    printf("armed\n");
    fflush(stdout);
    foreign_fault();
    printf("survived\n");  /* must not be reached */
    return 0;
  }
  foreign_fault();  /* compacting, no GC thread yet */
  if (g_hits != 2) FAIL("foreign SIGBUS while compacting: %d hits", (int)g_hits);
  if (strcmp(mode, "chain-siginfo") == 0 && g_addr != (void*)(g_map + g_page))
    FAIL("the handler got si_addr %p, not %p", g_addr, (void*)(g_map + g_page));
  /* Heap faults (on half of the roots) go to libremap, never to us. */
  size_t n = th_nroots(h);
  for (size_t i = 0; i < n; i += 2) {
    volatile uint64_t id = *(volatile uint64_t*)(th_root(h, i) + 8);
    (void)id;
  }
  if (g_hits != 2) FAIL("a heap fault reached the runtime's handler");

  pthread_t t;
  if (pthread_create(&t, NULL, compact_thread, h) != 0) FAIL("pthread_create");
  for (int i = 0; i < 50; i++) {
    foreign_fault();
    volatile uint64_t id = *(volatile uint64_t*)(th_root(h, (size_t)i * 7 % n) + 8);
    (void)id;
  }
  void* ret;
  pthread_join(t, &ret);
  if ((intptr_t)ret != REMAP_OK) FAIL("remap_compact: %d", (int)(intptr_t)ret);
  if (g_hits != 52) FAIL("foreign SIGBUS during remap_compact: %d hits of 52", (int)g_hits);
  if ((s = remap_finish(th_remap(h))) != REMAP_OK) FAIL("finish: %s", remap_last_error());
  if (th_checksum(h) != want) FAIL("the heap changed");
  remap_cycle_stats st;
  memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  remap_heap_last_stats(th_remap(h), &st);
  th_destroy(h);
  foreign_fault();  /* after destroy: still chained */
  if (g_hits != 53) FAIL("foreign SIGBUS after destroy: %d hits", (int)g_hits);
  printf("ok %d %llu\n", (int)g_hits, (unsigned long long)st.faults);
  return 0;
}

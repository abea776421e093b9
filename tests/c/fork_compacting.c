/* fork_compacting.c — fork() while the library's own threads are busy
 * (issue 12, defect 6): GC workers in remap_compact, mutators faulting
 * (inside libremap's SIGBUS handler, or parked for its handler threads),
 * and the main thread forks. Each round forks at a different moment of a
 * cycle.
 *
 * The child (alarm: a deadlock kills it) checks that the heap it inherited
 * is complete and unchanged, finishes the inherited cycle, runs a cycle of
 * its own on a new engine, checks again and destroys the heap. The parent
 * checks its own cycle and the child's exit status.
 *
 * Usage: fork_compacting BACKEND FAULT_MODE ROUNDS
 * Prints "ok ROUNDS" and exits 0; 77 if the backend is unsupported here; 1
 * with a message otherwise. */
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testheap.c"

static th_heap* g_heap;
static uint64_t g_want;
static volatile int g_bad;

static void* gc_thread(void* arg) {
  (void)arg;
  int s = remap_compact(g_heap->heap);
  if (s != REMAP_OK) {
    fprintf(stderr, "compact: %s: %s\n", remap_status_name(s), remap_last_error());
    g_bad = 1;
  }
  return NULL;
}

static void* mutator(void* arg) {
  (void)arg;
  if (th_checksum(g_heap) != g_want) g_bad = 2;
  return NULL;
}

static int parse(const char* s, const char* const* names, int n) {
  for (int i = 0; i < n; i++)
    if (strcmp(s, names[i]) == 0) return i;
  return -1;
}

/* The forked child: exit code 0, or the step that failed. */
static int child(void) {
  alarm(30);
  if (th_checksum(g_heap) != g_want) return 10;
  int s = th_phase(g_heap) == REMAP_PHASE_COMPACTING ? remap_finish(g_heap->heap) : REMAP_OK;
  if (s != REMAP_OK) {
    fprintf(stderr, "child finish: %s: %s\n", remap_status_name(s), remap_last_error());
    return 11;
  }
  if (th_checksum(g_heap) != g_want) return 12;
  if ((s = th_collect(g_heap)) != REMAP_OK) {
    fprintf(stderr, "child cycle: %s: %s\n", remap_status_name(s), remap_last_error());
    return 13;
  }
  if (th_checksum(g_heap) != g_want) return 14;
  th_destroy(g_heap);
  return 0;
}

int main(int argc, char** argv) {
  /* remap_backend and remap_fault_mode order */
  static const char* const backends[] = {"auto", "move", "copy", "minor", "sigsegv", "stw"};
  static const char* const modes[] = {"auto", "sigbus", "thread"};
  if (argc != 4) return 2;
  int backend = parse(argv[1], backends, 6), mode = parse(argv[2], modes, 3);
  int rounds = atoi(argv[3]);
  if (backend < 0 || mode < 0) return 2;
  int s = th_create(backend, mode, 2, 16, 7, 0.4, 0.8, &g_heap);
  if (s == REMAP_EUNSUPPORTED) {
    printf("unsupported: %s\n", remap_last_error());
    return 77;
  }
  if (s != REMAP_OK) {
    fprintf(stderr, "create: %s: %s\n", remap_status_name(s), remap_last_error());
    return 1;
  }
  g_want = th_checksum(g_heap);
  for (int round = 0; round < rounds; round++) {
    if (round > 0) {
      /* Drop some roots so that the cycle has objects to move: a cycle that
       * moves nothing ends at the flip (issue 14) and has nothing to fork in. */
      const size_t keep = g_heap->nroots - g_heap->nroots / 6;
      for (size_t i = keep; i < g_heap->nroots; i++) ((uint64_t*)g_heap->roots[i])[1] = 0;
      g_heap->nroots = keep;
      for (size_t i = 0; i < keep; i++) { /* no slot may name a dropped object */
        uint64_t* w = (uint64_t*)g_heap->roots[i];
        for (unsigned k = 0; k < ((uint16_t*)w)[2]; k++)
          if (w[2 + k] && ((uint64_t*)w[2 + k])[1] == 0) w[2 + k] = 0;
      }
      g_want = th_checksum(g_heap);
    }
    if ((s = th_cycle_begin(g_heap)) != REMAP_OK) {
      fprintf(stderr, "round %d: cycle: %s: %s\n", round, remap_status_name(s), remap_last_error());
      return 1;
    }
    pthread_t gc, mut[2];
    pthread_create(&mut[0], NULL, mutator, NULL);
    pthread_create(&mut[1], NULL, mutator, NULL);
    const int compacting = th_phase(g_heap) == REMAP_PHASE_COMPACTING;
    if (round % 3 != 2 && compacting) pthread_create(&gc, NULL, gc_thread, NULL);
    /* Round 0 forks at once; later rounds a little later each time. */
    struct timespec d = {0, (long)(round % 3) * 150000L};
    nanosleep(&d, NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(child());
    pthread_join(mut[0], NULL);
    pthread_join(mut[1], NULL);
    if (round % 3 != 2 && compacting) pthread_join(gc, NULL);
    if (pid < 0) return 1;
    if (th_phase(g_heap) == REMAP_PHASE_COMPACTING &&
        (s = remap_finish(g_heap->heap)) != REMAP_OK) {
      fprintf(stderr, "round %d: finish: %s: %s\n", round, remap_status_name(s),
              remap_last_error());
      return 1;
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (g_bad) {
      fprintf(stderr, "round %d: parent check %d failed\n", round, g_bad);
      return 1;
    }
    if (th_checksum(g_heap) != g_want) {
      fprintf(stderr, "round %d: the parent's heap changed\n", round);
      return 1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "round %d: child %s %d\n", round, WIFEXITED(status) ? "exited" : "killed by",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      return 1;
    }
  }
  th_destroy(g_heap);
  printf("ok %d\n", rounds);
  return 0;
}

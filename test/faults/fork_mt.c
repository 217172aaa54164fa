/*
 * test/faults/fork_mt.c — fork while other threads allocate, 1,000 times.
 *
 * Two background threads malloc, realloc and free continuously (256 slots
 * each: 80% 1..1024 B, 18% up to 32 KiB, 2% large up to 256 KiB; patterned;
 * and handing blocks to each other so that remote frees are in flight at
 * every moment). The working set is kept small on purpose: every page the
 * parent writes after a fork is copied, so a big one makes the test
 * measure copy-on-write faults rather than the allocator (with 1 MiB
 * blocks and 1,024 slots, 1,000 forks took two minutes here). The main thread forks
 * --forks times (default 1000); every child, with an alarm as a deadlock
 * guard:
 *   - frees a few blocks the parent allocated before the fork (inherited,
 *     owned in the parent by a thread the child does not have), after
 *     checking their patterns;
 *   - allocates, patterns, checks and frees 2,000 small blocks and 4 large
 *     ones (64 KiB .. 1 MiB), and a realloc chain across the size classes;
 *   - every 10th child also starts a thread that allocates and frees, and
 *     joins it;
 *   - exits with _exit(0) after the checks (a distinct non-zero code names
 *     the check that failed).
 * The parent waits for each child and checks its status; at the end it
 * stops the background threads, checks their blocks and frees them, and
 * prints the time spent in fork() and in the children.
 * FORK_MT_VERBOSE=1 prints the progress every 100 forks.
 */
#include "faults.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define BG_THREADS 2
#define BG_SLOTS   256
#define XFER_SLOTS 64
#define INHERIT    16

typedef struct slot {
  void *p;
  size_t n;
  uint64_t tag;
} slot_t;

static _Atomic int stop;
static _Atomic unsigned long bg_ops[BG_THREADS];
static _Atomic(slot_t *) xfer[XFER_SLOTS]; /* blocks handed between threads */

static size_t bg_size(rng_t *r)
{
  unsigned k = (unsigned)(rng_next(r) % 100);
  if (k < 80)
    return rng_range(r, 1, 1024);
  if (k < 98)
    return rng_range(r, 1025, 32768);
  return rng_range(r, 32769, (size_t)256 << 10);
}

static void slot_check(const slot_t *s, const char *who)
{
  size_t off = pat_check(s->p, s->n, s->tag);
  if (off != (size_t)-1)
    fail("%s: block %p (%zu bytes) corrupted at offset %zu", who, s->p, s->n, off);
}

static void slot_new(slot_t *s, rng_t *r, const char *who)
{
  s->n = bg_size(r);
  s->p = malloc(s->n);
  if (!s->p)
    fail("%s: malloc(%zu) failed", who, s->n);
  s->tag = rng_next(r);
  pat_fill(s->p, s->n, s->tag);
}

static slot_t bg_slots[BG_THREADS][BG_SLOTS];

static void *bg_thread(void *arg)
{
  unsigned id = (unsigned)(uintptr_t)arg;
  slot_t *slots = bg_slots[id];
  rng_t r;
  rng_seed(&r, 1000 + id);
  unsigned long ops = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    slot_t *s = &slots[rng_next(&r) % BG_SLOTS];
    unsigned op = (unsigned)(rng_next(&r) % 16);
    if (!s->p) {
      slot_new(s, &r, "background");
    } else if (op < 8) {
      slot_check(s, "background free");
      free(s->p);
      s->p = NULL;
    } else if (op < 12) {
      slot_check(s, "background realloc");
      size_t m = bg_size(&r);
      unsigned char *q = realloc(s->p, m);
      if (!q)
        fail("background: realloc(%zu) failed", m);
      size_t keep = s->n < m ? s->n : m;
      size_t off = pat_range_check(q, 0, keep < 256 ? keep : 256, s->tag);
      if (off != (size_t)-1)
        fail("background: realloc lost the contents at %zu", off);
      s->p = q;
      s->n = m;
      pat_fill(q, m, s->tag);
    } else {
      /* Hand the block to whoever takes the transfer slot; free what was
       * there (most likely the other thread's block: a remote free). */
      slot_t *box = malloc(sizeof *box);
      if (!box)
        fail("background: malloc(box) failed");
      *box = *s;
      s->p = NULL;
      slot_t *old = atomic_exchange(&xfer[rng_next(&r) % XFER_SLOTS], box);
      if (old) {
        slot_check(old, "background hand-off");
        free(old->p);
        free(old);
      }
    }
    ops++;
    if ((ops & 1023) == 0)
      atomic_store_explicit(&bg_ops[id], ops, memory_order_relaxed);
  }
  atomic_store(&bg_ops[id], ops);
  return NULL;
}

/* ---- The child ------------------------------------------------------------- */

enum {
  CHILD_INHERITED = 10, CHILD_SMALL_ALLOC, CHILD_SMALL_PATTERN, CHILD_LARGE_ALLOC, CHILD_LARGE_PATTERN,
  CHILD_REALLOC, CHILD_THREAD, CHILD_USABLE,
};

static slot_t inherited[INHERIT];

static void *child_thread(void *arg)
{
  rng_t *r = arg;
  for (int i = 0; i < 500; i++) {
    size_t n = rng_range(r, 1, 20000);
    void *p = malloc(n);
    if (!p)
      return (void *)1;
    memset(p, 0x7e, n);
    free(p);
  }
  return NULL;
}

static int child_body(unsigned iter)
{
  rng_t r;
  rng_seed(&r, 77 + iter);
  /* Blocks the parent allocated before the fork. */
  for (unsigned i = 0; i < INHERIT; i++) {
    if (pat_check(inherited[i].p, inherited[i].n, inherited[i].tag) != (size_t)-1)
      return CHILD_INHERITED;
    if (i % 2 == iter % 2)
      free(inherited[i].p);
  }
  enum { N = 2000 };
  static slot_t blk[N];
  for (unsigned i = 0; i < N; i++) {
    blk[i].n = rng_range(&r, 1, 2048);
    blk[i].p = malloc(blk[i].n);
    if (!blk[i].p)
      return CHILD_SMALL_ALLOC;
    if (malloc_usable_size(blk[i].p) < blk[i].n)
      return CHILD_USABLE;
    blk[i].tag = rng_next(&r);
    pat_fill(blk[i].p, blk[i].n, blk[i].tag);
  }
  for (unsigned i = 0; i < N; i++) {
    if (pat_check(blk[i].p, blk[i].n, blk[i].tag) != (size_t)-1)
      return CHILD_SMALL_PATTERN;
    free(blk[i].p);
  }
  for (unsigned i = 0; i < 4; i++) {
    size_t n = rng_range(&r, (size_t)64 << 10, (size_t)1 << 20);
    unsigned char *p = malloc(n);
    if (!p)
      return CHILD_LARGE_ALLOC;
    pat_fill(p, n, i);
    if (pat_check(p, n, i) != (size_t)-1)
      return CHILD_LARGE_PATTERN;
    free(p);
  }
  unsigned char *p = NULL;
  size_t n = 0;
  for (size_t m = 8; m < ((size_t)1 << 20); m = m * 3 + 1) {
    unsigned char *q = realloc(p, m);
    if (!q || (n && pat_range_check(q, 0, n < 256 ? n : 256, 99) != (size_t)-1))
      return CHILD_REALLOC;
    pat_fill(q, m, 99);
    p = q;
    n = m;
  }
  free(p);
  if (iter % 10 == 0) {
    pthread_t th;
    void *res = (void *)1;
    if (pthread_create(&th, NULL, child_thread, &r) != 0 || pthread_join(th, &res) != 0 || res)
      return CHILD_THREAD;
  }
  return 0;
}

static const char *child_code(int c)
{
  switch (c) {
  case CHILD_INHERITED: return "a block inherited from the parent was corrupted";
  case CHILD_SMALL_ALLOC: return "malloc of a small block failed";
  case CHILD_SMALL_PATTERN: return "a small block was corrupted";
  case CHILD_LARGE_ALLOC: return "malloc of a large block failed";
  case CHILD_LARGE_PATTERN: return "a large block was corrupted";
  case CHILD_REALLOC: return "realloc failed or lost the contents";
  case CHILD_THREAD: return "a thread in the child failed";
  case CHILD_USABLE: return "malloc_usable_size below the size asked for";
  default: return "unknown";
  }
}

int main(int argc, char **argv)
{
  test_name = "fork_mt";
  long forks = arg_long(argc, argv, "--forks", 1000);
  rng_t r;
  rng_seed(&r, 5);
  for (unsigned i = 0; i < INHERIT; i++)
    slot_new(&inherited[i], &r, "main");
  pthread_t th[BG_THREADS];
  for (unsigned i = 0; i < BG_THREADS; i++)
    CHECK(pthread_create(&th[i], NULL, bg_thread, (void *)(uintptr_t)i) == 0, "pthread_create");
  /* let the background threads get going */
  while (atomic_load(&bg_ops[0]) < 10000 || atomic_load(&bg_ops[1]) < 10000)
    usleep(1000);

  double t0 = now_s();
  double t_fork = 0, t_wait = 0, t_fork_max = 0, t_wait_max = 0;
  long ok = 0;
  for (long i = 0; i < forks; i++) {
    double ta = now_s();
    pid_t pid = fork();
    double tb = now_s();
    if (pid < 0)
      fail("fork %ld: %s", i, strerror(errno));
    if (pid == 0) {
      alarm(20); /* a deadlock in the child ends as SIGALRM */
      _exit(child_body((unsigned)i));
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
      fail("waitpid: %s", strerror(errno));
    double tc = now_s();
    t_fork += tb - ta;
    t_wait += tc - tb;
    if (tb - ta > t_fork_max)
      t_fork_max = tb - ta;
    if (tc - tb > t_wait_max)
      t_wait_max = tc - tb;
    if (WIFSIGNALED(st))
      fail("child %ld (of %ld) was killed by signal %d (%s)%s", i, forks, WTERMSIG(st), strsignal(WTERMSIG(st)),
           WTERMSIG(st) == SIGALRM ? ": deadlocked after fork" : "");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      fail("child %ld (of %ld) exited with %d: %s", i, forks, WEXITSTATUS(st), child_code(WEXITSTATUS(st)));
    ok++;
    if (getenv("FORK_MT_VERBOSE") && i % 100 == 99)
      note("%ld forks, %.1f s, RSS %.1f MiB, VmSize %.1f MiB", i + 1, now_s() - t0, mib(rss_bytes()),
           mib(vm_bytes()));
  }
  double t1 = now_s();
  atomic_store(&stop, 1);
  for (unsigned i = 0; i < BG_THREADS; i++)
    pthread_join(th[i], NULL);
  unsigned long total = 0;
  for (unsigned i = 0; i < BG_THREADS; i++) {
    total += atomic_load(&bg_ops[i]);
    for (unsigned j = 0; j < BG_SLOTS; j++)
      if (bg_slots[i][j].p) {
        slot_check(&bg_slots[i][j], "final");
        free(bg_slots[i][j].p);
      }
  }
  for (unsigned j = 0; j < XFER_SLOTS; j++) {
    slot_t *b = atomic_exchange(&xfer[j], NULL);
    if (b) {
      slot_check(b, "final hand-off");
      free(b->p);
      free(b);
    }
  }
  for (unsigned i = 0; i < INHERIT; i++) {
    slot_check(&inherited[i], "final inherited");
    free(inherited[i].p);
  }
  note("time in fork(): %.2f s (longest %.1f ms); waiting for the children: %.2f s (longest %.1f ms)", t_fork,
       t_fork_max * 1000, t_wait, t_wait_max * 1000);
  note("%ld of %ld children exited 0 (%.1f s, %.2f ms per fork); background threads made %lu operations "
       "meanwhile", ok, forks, t1 - t0, (t1 - t0) * 1000 / (double)(forks ? forks : 1), total);
  return 0;
}

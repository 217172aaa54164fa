/*
 * test/faults/memory_back.c — memory goes back to the system.
 *
 * Two worker threads warm up (allocate and free 4 MiB of blocks each, so
 * every size class, cache and pool involved exists), then the main thread
 * reads the baseline RSS. The workers then allocate --mib (default 1024)
 * MiB in total of blocks of 64..512 bytes, each fully patterned; then each
 * frees half of its own blocks and half of the other's (checking every
 * pattern first), so half the frees are cross-thread. The workers stay
 * alive and idle afterwards, as a server's thread pool would.
 *
 *   --mode trim    (a) the main thread calls malloc_trim(0); the RSS must
 *                  come back within the bound of the baseline.
 *   --mode churn   (b) no trim: each worker then does 32 MiB worth of
 *                  further malloc/free of the same sizes (at most 4,096
 *                  blocks alive at a time), and parks again; the RSS must
 *                  come back within the bound of the baseline within
 *                  SETTLE_S seconds, while every thread stays quiet: free
 *                  pages go back once they have stayed unused for the purge
 *                  delay (100 ms by default), by the threads' own slow
 *                  paths or by the purge thread for quiet ones.
 *
 * Each mode runs in a process of its own (two test() entries). The RSS
 * after the workers have exited is printed too, for information.
 *
 * The bound is baseline + max(10% of the baseline, 6 MiB). The baseline of
 * a small process is a few MiB, where 10% is below the noise of the page
 * granularity, so the absolute slack applies; 6 MiB is what an allocator
 * may legitimately keep for two live idle threads, 3 MiB each: their
 * per-thread caches (about 32 KiB of blocks per size class, 21 classes
 * between 64 and 512 bytes: 0.7 MiB a thread), the pages of the slabs those
 * cached blocks sit in (a cached block keeps its slab's touched pages: up
 * to ~1.5 MiB a thread), plus metadata not given back (SuperSlab header
 * pages, registry leaf pages, statistics blocks). It is 0.6% of the
 * gibibyte that went through.
 */
#include "faults.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#define WORKERS     2
#define MIN_SIZE    64
#define MAX_SIZE    512
#define SLACK       ((size_t)6 << 20)
#define CHURN_BYTES ((size_t)32 << 20)
#define CHURN_LIVE  4096
#define SETTLE_S    2.0

typedef struct rec {
  void *p;
  uint32_t n;
} rec_t;

static rec_t *recs[WORKERS];
static size_t nrecs[WORKERS];
static size_t cap_recs;
static size_t per_worker_bytes;
static int mode_churn;

static pthread_barrier_t bar;

static uint64_t tag_of(unsigned w, size_t i) { return ((uint64_t)w << 48) ^ (uint64_t)i * 0x9e3779b97f4a7c15ull; }

static void churn(rng_t *r, size_t bytes)
{
  static __thread void *ring[CHURN_LIVE];
  static __thread uint32_t ring_n[CHURN_LIVE];
  size_t done = 0;
  unsigned i = 0;
  while (done < bytes) {
    if (ring[i]) {
      if (pat_check(ring[i], ring_n[i], (uint64_t)i) != (size_t)-1)
        fail("churn: a block was corrupted");
      free(ring[i]);
    }
    size_t n = rng_range(r, MIN_SIZE, MAX_SIZE);
    ring[i] = malloc(n);
    if (!ring[i])
      fail("churn: malloc(%zu) failed", n);
    ring_n[i] = (uint32_t)n;
    pat_fill(ring[i], n, (uint64_t)i);
    done += n;
    i = (i + 1) % CHURN_LIVE;
  }
  for (i = 0; i < CHURN_LIVE; i++) {
    free(ring[i]);
    ring[i] = NULL;
  }
}

static void *worker(void *arg)
{
  unsigned w = (unsigned)(uintptr_t)arg;
  rng_t r;
  rng_seed(&r, 42 + w);
  churn(&r, (size_t)4 << 20); /* warm-up */
  pthread_barrier_wait(&bar); /* 1: warmed up; main reads the baseline */
  pthread_barrier_wait(&bar); /* 2: go */
  rec_t *mine = recs[w];
  size_t bytes = 0, n = 0;
  while (bytes < per_worker_bytes) {
    if (n == cap_recs)
      fail("record table full");
    size_t sz = rng_range(&r, MIN_SIZE, MAX_SIZE);
    void *p = malloc(sz);
    if (!p)
      fail("malloc(%zu) failed after %zu MiB", sz, bytes >> 20);
    pat_fill(p, sz, tag_of(w, n));
    mine[n].p = p;
    mine[n].n = (uint32_t)sz;
    n++;
    bytes += sz;
  }
  nrecs[w] = n;
  pthread_barrier_wait(&bar); /* 3: all allocated; main reads the peak */
  /* Free half of my own blocks (even indices) and half of the other's
   * (odd indices): every block once, half of them across threads. */
  for (unsigned v = 0; v < WORKERS; v++) {
    unsigned other = (w + v) % WORKERS;
    rec_t *t = recs[other];
    for (size_t i = (v == 0 ? 0 : 1); i < nrecs[other]; i += 2) {
      if (pat_check(t[i].p, t[i].n, tag_of(other, i)) != (size_t)-1)
        fail("block %zu of worker %u corrupted", i, other);
      free(t[i].p);
    }
  }
  pthread_barrier_wait(&bar); /* 4: all freed */
  if (mode_churn)
    churn(&r, CHURN_BYTES);
  pthread_barrier_wait(&bar); /* 5: churned (or not); main measures */
  pthread_barrier_wait(&bar); /* 6: exit */
  return NULL;
}

int main(int argc, char **argv)
{
  test_name = "memory_back";
  const char *mode = arg_str(argc, argv, "--mode", "trim");
  long total_mib = arg_long(argc, argv, "--mib", 1024);
  if (strcmp(mode, "trim") == 0) {
    test_name = "memory_back(trim)";
  } else if (strcmp(mode, "churn") == 0) {
    test_name = "memory_back(churn)";
    mode_churn = 1;
  } else {
    fail("--mode trim|churn");
  }
  per_worker_bytes = (size_t)total_mib * MiB / WORKERS;
  cap_recs = per_worker_bytes / MIN_SIZE + 1;
  for (unsigned w = 0; w < WORKERS; w++) {
    /* not from malloc: the records must not weigh on the allocator */
    recs[w] = mmap(NULL, cap_recs * sizeof(rec_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    CHECK(recs[w] != MAP_FAILED, "mmap: %s", strerror(errno));
  }
  pthread_barrier_init(&bar, NULL, WORKERS + 1);
  /* the main thread's own set-up */
  free(malloc(100));
  pthread_t th[WORKERS];
  for (unsigned w = 0; w < WORKERS; w++)
    CHECK(pthread_create(&th[w], NULL, worker, (void *)(uintptr_t)w) == 0, "pthread_create");
  pthread_barrier_wait(&bar); /* 1 */
  size_t base = rss_bytes();
  double t0 = now_s();
  pthread_barrier_wait(&bar); /* 2 */
  pthread_barrier_wait(&bar); /* 3 */
  size_t peak = rss_bytes();
  double t1 = now_s();
  pthread_barrier_wait(&bar); /* 4 */
  double t2 = now_s();
  /* The records are the test's, not the allocator's: out of the RSS. */
  for (unsigned w = 0; w < WORKERS; w++)
    munmap(recs[w], cap_recs * sizeof(rec_t));
  size_t freed = rss_bytes();
  if (!mode_churn)
    malloc_trim(0);
  pthread_barrier_wait(&bar); /* 5 */
  size_t slack = base / 10 > SLACK ? base / 10 : SLACK;
  size_t bound = base + slack;
  double t3 = now_s(), settled = 0;
  size_t after = rss_bytes();
  while (mode_churn && after > bound && (settled = now_s() - t3) < SETTLE_S) {
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    after = rss_bytes();
  }
  settled = now_s() - t3;
  long long ss_after = ss_alive();
  pthread_barrier_wait(&bar); /* 6 */
  for (unsigned w = 0; w < WORKERS; w++)
    pthread_join(th[w], NULL);
  size_t after_exit = rss_bytes();
  long long ss_exit = ss_alive();

  note("%zu + %zu blocks of %d..%d B (%ld MiB) allocated in %.1f s, freed in %.1f s", nrecs[0], nrecs[1], MIN_SIZE,
       MAX_SIZE, total_mib, t1 - t0, t2 - t1);
  note("RSS: baseline %.1f MiB, peak %.1f MiB (with the test's records), after the frees %.1f MiB, "
       "after %s %.1f MiB (bound %.1f MiB); after the workers exited %.1f MiB",
       mib(base), mib(peak), mib(freed), mode_churn ? "32 MiB of churn per worker" : "malloc_trim(0)", mib(after),
       mib(bound), mib(after_exit));
  if (mode_churn)
    note("the RSS settled %.2f s after the churn (allowed: %.1f s)", settled, SETTLE_S);
  note("SuperSlabs alive: %lld with the workers idle, %lld after they exited", ss_after, ss_exit);
  if (after > bound)
    fail("RSS %.1f MiB after %s is above baseline %.1f MiB + %.1f MiB (%.1f MiB not given back)", mib(after),
         mode_churn ? "the churn" : "malloc_trim(0)", mib(base), mib(slack), mib(after - base));
  note("ok");
  return 0;
}

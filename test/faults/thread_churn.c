/*
 * test/faults/thread_churn.c — 10,000 threads created and exited, a few at
 * a time, each allocating and freeing; some free blocks of threads that are
 * already gone. Memory must stay bounded and no block may be lost.
 *
 * Each thread (--threads, default 10000; --concurrent at a time, default 4):
 *   - allocates 64 blocks of 16 B..8 KiB (and, one thread in eight, a large
 *     block of 64..512 KiB), patterned;
 *   - frees half of them;
 *   - 16 times, allocates a block and swaps it into a random slot of a
 *     shared array of 1024 slots; the block it gets back (allocated by an
 *     earlier thread, most likely gone) is checked and freed;
 *   - frees the rest of its own blocks, each checked first;
 *   - exits without any clean-up call: the allocator's thread-exit path
 *     must give its caches and SuperSlabs back.
 *
 * Checked:
 *   - every pattern, before every free;
 *   - the RSS after the last thread is within a bound of the RSS after the
 *     first 1,000, both taken after malloc_trim(0) (see rss_bound below);
 *   - the SuperSlabs alive (hak_stats_get superslabs_mapped - _unmapped),
 *     also taken after malloc_trim(0), do not grow between thread 1,000
 *     and the end;
 *   - with every block freed and malloc_trim(0) called, the SuperSlabs alive
 *     are back to what the main thread had before the first thread started
 *     (plus a small slack), and large_allocs == large_frees;
 *   - allocations == frees, counted by the test itself.
 * In a build with -Dstats=false the counter checks are skipped (said so).
 */
#include "faults.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>

#define LOCAL      64
#define SHARED     1024
#define EXCHANGES  16

typedef struct box {
  void *p;
  size_t n;
  uint64_t tag;
} box_t;

static _Atomic(box_t *) shared[SHARED];
static _Atomic unsigned long n_allocs, n_frees;

static void box_check(const box_t *b, const char *who)
{
  size_t off = pat_check(b->p, b->n, b->tag);
  if (off != (size_t)-1)
    fail("%s: block %p (%zu bytes) corrupted at offset %zu", who, b->p, b->n, off);
}

static void *xmalloc(size_t n)
{
  void *p = malloc(n);
  if (!p)
    fail("malloc(%zu) failed", n);
  return p;
}

static box_t *box_new(rng_t *r, size_t lo, size_t hi)
{
  box_t *b = xmalloc(sizeof *b);
  b->n = rng_range(r, lo, hi);
  b->p = xmalloc(b->n);
  b->tag = rng_next(r);
  pat_fill(b->p, b->n, b->tag);
  return b;
}

static void box_free(box_t *b, const char *who)
{
  box_check(b, who);
  free(b->p);
  free(b);
}

static void *worker(void *arg)
{
  uint64_t id = (uint64_t)(uintptr_t)arg;
  rng_t r;
  rng_seed(&r, 0xc0ffee + id);
  box_t *mine[LOCAL + 1];
  unsigned n = 0;
  unsigned long allocs = 0, frees = 0;
  for (unsigned i = 0; i < LOCAL; i++)
    mine[n++] = box_new(&r, 16, 8192);
  if (id % 8 == 0)
    mine[n++] = box_new(&r, (size_t)64 << 10, (size_t)512 << 10);
  allocs += n;
  for (unsigned i = 0; i < n; i += 2) {
    box_free(mine[i], "own block");
    mine[i] = NULL;
    frees++;
  }
  for (unsigned i = 0; i < EXCHANGES; i++) {
    box_t *b = box_new(&r, 16, 4096);
    allocs++;
    box_t *old = atomic_exchange(&shared[rng_next(&r) % SHARED], b);
    if (old) {
      box_free(old, "block of an earlier thread");
      frees++;
    }
  }
  for (unsigned i = 0; i < n; i++)
    if (mine[i]) {
      box_free(mine[i], "own block");
      frees++;
    }
  atomic_fetch_add(&n_allocs, allocs);
  atomic_fetch_add(&n_frees, frees);
  return NULL;
}

static bool have_stats = true;

static long long ss_count(void)
{
  long long n = ss_alive();
  if (n < 0) {
    have_stats = false;
    return 0;
  }
  return n;
}

/*
 * The RSS bound. Both figures are taken after malloc_trim(0) (no worker
 * runs then): what is free but still resident at a given moment depends on
 * timing (the purge delay, and the free tier keeps as many SuperSlabs as
 * threads took from it over the last few delays, which the first 1,000
 * threads of a fast run do not span), while a leak survives the trim.
 * After 1,000 threads the process is in its steady state:
 * the shared array is full (1,024 blocks of at most 4 KiB), glibc has as
 * many cached thread stacks as it will ever keep (it keeps up to 40 MiB,
 * reused in turn), and the allocator has seen every size class and every
 * per-thread structure (owner records, statistics blocks) it recycles. What
 * the next 9,000 threads may add without a leak is noise: which SuperSlabs
 * happen to be partly used when the measurement is taken. That is bounded
 * by one SuperSlab per class in use (about 45 classes up to 8 KiB) of
 * which only touched pages count, so +16 MiB, or +50% for a large baseline.
 * A leak of one page per exited thread would add 35 MiB and fail; one
 * SuperSlab per thread, gigabytes.
 */
static size_t rss_bound(size_t rss1)
{
  size_t slack = rss1 / 2 > (size_t)16 * MiB ? rss1 / 2 : (size_t)16 * MiB;
  return rss1 + slack;
}

int main(int argc, char **argv)
{
  test_name = "thread_churn";
  long threads = arg_long(argc, argv, "--threads", 10000);
  long conc = arg_long(argc, argv, "--concurrent", 4);
  long mark = threads < 1000 ? threads / 2 : 1000;
  /* the main thread's own start-up allocations, before any worker */
  void *warm = xmalloc(100);
  free(warm);
  long long ss0 = ss_count();
  size_t rss0 = rss_bytes();
  size_t rss1 = 0, rss1_raw = 0;
  long long ss1 = 0, ss1_raw = 0;
  double t0 = now_s();
  pthread_t th[64];
  if (conc < 1 || conc > 64)
    fail("--concurrent must be within 1..64");
  for (long done = 0; done < threads;) {
    long k = threads - done < conc ? threads - done : conc;
    for (long i = 0; i < k; i++)
      if (pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(done + i)) != 0)
        fail("pthread_create failed at thread %ld", done + i);
    for (long i = 0; i < k; i++)
      pthread_join(th[i], NULL);
    done += k;
    if (done >= mark && rss1 == 0) {
      rss1_raw = rss_bytes();
      ss1_raw = ss_count();
      malloc_trim(0);
      rss1 = rss_bytes();
      ss1 = ss_count();
    }
  }
  double t1 = now_s();
  size_t rss_end_raw = rss_bytes();
  long long ss_end_raw = ss_count();
  malloc_trim(0);
  size_t rss_end = rss_bytes();
  long long ss_end = ss_count();
  note("%ld threads (%ld at a time) in %.1f s; RSS: %.1f MiB at the start, %.1f MiB after %ld threads "
       "(%.1f after malloc_trim), %.1f MiB after %ld (%.1f after malloc_trim)", threads, conc, t1 - t0,
       mib(rss0), mib(rss1_raw), mark, mib(rss1), mib(rss_end_raw), threads, mib(rss_end));
  if (have_stats)
    note("SuperSlabs alive: %lld at the start, %lld after %ld threads (%lld after malloc_trim), %lld after %ld "
         "(%lld after malloc_trim)", ss0, ss1_raw, mark, ss1, ss_end_raw, threads, ss_end);

  /* Free what the last threads left in the shared array. */
  unsigned long drained = 0;
  for (unsigned i = 0; i < SHARED; i++) {
    box_t *b = atomic_exchange(&shared[i], NULL);
    if (b) {
      box_free(b, "shared block at the end");
      drained++;
    }
  }
  atomic_fetch_add(&n_frees, drained);
  unsigned long a = atomic_load(&n_allocs), f = atomic_load(&n_frees);
  if (a != f)
    fail("the test allocated %lu blocks but freed %lu", a, f);
  malloc_trim(0);
  long long ss_trim = ss_count();
  size_t rss_trim = rss_bytes();
  note("after freeing every block (%lu allocations) and malloc_trim(0): RSS %.1f MiB, SuperSlabs alive %lld", a,
       mib(rss_trim), ss_trim);

  if (rss_end > rss_bound(rss1))
    fail("RSS after malloc_trim grew from %.1f MiB after %ld threads to %.1f MiB after %ld (bound %.1f MiB)",
         mib(rss1), mark,
         mib(rss_end), threads, mib(rss_bound(rss1)));
  if (have_stats) {
    /* Between thread 1,000 and the end the working set is the same. Both
     * counts are taken after malloc_trim(0), as the RSS is: before it, the
     * free tier holds as many SuperSlabs as the last few purge delays
     * needed, which is timing, not a leak, and moved the untrimmed count
     * past this slack in one run of forty. What is left after the trim is
     * which classes the shared slots happen to pin; a steady climb is a
     * leak. */
    if (ss_end > ss1 + 32)
      fail("SuperSlabs alive grew from %lld after %ld threads to %lld after %ld", ss1, mark, ss_end, threads);
    /* Everything freed and trimmed: only what the main thread had. The
     * slack covers SuperSlabs the main thread's own frees of the shared
     * blocks may leave in its pool (one per class it touched). */
    if (ss_trim > ss0 + 8)
      fail("with every block freed and trimmed, %lld SuperSlabs are still alive (%lld before the first thread): "
           "blocks or SuperSlabs were lost", ss_trim, ss0);
    unsigned long long la = 0, lf = 0;
    hak_stats_get("large_allocs", &la);
    hak_stats_get("large_frees", &lf);
    if (la != lf)
      fail("large_allocs %llu != large_frees %llu with every block freed", la, lf);
  } else {
    note("statistics compiled out: SuperSlab counts not checked");
  }
  note("ok");
  return 0;
}

/*
 * test/faults/soak.c — a random mixed workload in 4 threads for a given
 * time, every block patterned and checked, the RSS sampled: memory must
 * not creep.
 *
 * The test() entry runs one minute:
 *     fault_soak --seconds 60
 * The 30-minute soak (not in the test suite) is:
 *     meson compile -C build && build/test/faults/fault_soak --seconds 1800
 * (options: --threads N (4), --sample S (seconds between RSS samples, 5),
 * --warmup S (default: a sixth of the run, 5..120 s), --seed N).
 *
 * Each thread owns 4,096 slots. A slot has a size budget drawn once (88%
 * 16 B..1 KiB, 11% 1..32 KiB, 1% 32..256 KiB) and every block it holds is
 * between half the budget and the budget, so the bytes alive stay about
 * the same for the whole run and any RSS growth is the allocator's. An
 * operation on a random slot: allocate if empty (malloc, calloc with its
 * zeroes checked, posix_memalign, aligned_alloc, with alignment and
 * malloc_usable_size checked), else free it and allocate a new block for
 * it at once (slots stay occupied, so the bytes alive stay within about a
 * percent), realloc (contents kept), or swap the block with one of 256
 * shared slots and reallocate the block taken from there (another
 * thread's) to this slot's budget: blocks are freed and reallocated by
 * threads other than their allocator. Every block is checked before it is freed,
 * reallocated or handed over.
 *
 * The main thread samples the RSS every --sample seconds. The median of
 * the first three samples after the warm-up is the reference; the median
 * of the last three (at the end) must not be more than 5% above it. One
 * sample alone swings by a few percent with the timing of the purge
 * delay, a creep moves the medians. (A decrease is not a failure: memory
 * given back is welcome.) All samples are printed.
 */
#include "faults.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>

#define MAX_THREADS 16
#define SLOTS       4096
#define SHARED      256
#define MAX_DRIFT   0.05

typedef struct slot {
  void *p;
  size_t n;
  uint64_t tag;
  uint32_t budget;
} slot_t;

typedef struct box {
  void *p;
  size_t n;
  uint64_t tag;
} box_t;

static _Atomic(box_t *) shared[SHARED];
static _Atomic int stop;
static _Atomic unsigned long total_ops;
static uint64_t seed = 1;
/* Bytes allocated minus bytes freed, per thread (a thread's figure can go
 * negative as blocks migrate; the sum is the bytes alive). Written by its
 * thread only, read by the sampler. */
static _Atomic long long live_bytes[MAX_THREADS];
static __thread long long my_live;

static size_t pick_budget(rng_t *r)
{
  unsigned k = (unsigned)(rng_next(r) % 100);
  if (k < 88)
    return rng_range(r, 16, 1024);
  if (k < 99)
    return rng_range(r, 1025, 32768);
  return rng_range(r, 32769, (size_t)256 << 10);
}

/* The median of n <= 3 samples (the middle one, or the mean of two). */
static size_t median3(const size_t *v, unsigned n)
{
  if (n == 1)
    return v[0];
  if (n == 2)
    return (v[0] + v[1]) / 2;
  size_t a = v[0], b = v[1], c = v[2];
  if ((a <= b && b <= c) || (c <= b && b <= a))
    return b;
  if ((b <= a && a <= c) || (c <= a && a <= b))
    return a;
  return c;
}

static size_t pick_size(rng_t *r, const slot_t *s) { return rng_range(r, s->budget / 2 + 1, s->budget); }

static void check(const void *p, size_t n, uint64_t tag, const char *what)
{
  size_t off = pat_check(p, n, tag);
  if (off != (size_t)-1)
    fail("%s: block %p (%zu bytes) corrupted at offset %zu", what, p, n, off);
}

static void fresh(slot_t *s, rng_t *r)
{
  size_t n = pick_size(r, s), align = 0;
  void *p = NULL;
  unsigned how = (unsigned)(rng_next(r) % 10);
  if (how < 6) {
    p = malloc(n);
  } else if (how < 8) {
    p = calloc(1, n);
    if (p) {
      const unsigned char *b = p;
      for (size_t i = 0; i < n; i += (n > 4096 ? 127 : 1))
        if (b[i])
          fail("calloc(%zu) = %p: byte %zu not zero", n, p, i);
    }
  } else if (how < 9) {
    align = (size_t)1 << rng_range(r, 3, 12);
    if (posix_memalign(&p, align, n) != 0)
      p = NULL;
  } else {
    align = (size_t)1 << rng_range(r, 4, 10);
    p = aligned_alloc(align, n);
  }
  if (!p)
    fail("allocation of %zu bytes failed", n);
  if (n >= 16 && (uintptr_t)p % 16)
    fail("%p (%zu bytes) not 16-byte aligned", p, n);
  if (align && (uintptr_t)p % align)
    fail("%p not aligned to %zu", p, align);
  if (malloc_usable_size(p) < n)
    fail("malloc_usable_size(%p) = %zu < %zu", p, malloc_usable_size(p), n);
  s->p = p;
  s->n = n;
  s->tag = rng_next(r);
  pat_fill(p, n, s->tag);
  my_live += (long long)n;
}

/* Slot s gets p (n bytes of pattern tag, already checked) reallocated to m
 * bytes: the prefix the pattern covers — all of a block up to PAT_FULL_MAX,
 * else its first 256 bytes — must come along; then a fresh pattern. what
 * names the case in a failure. */
static void realloc_into(slot_t *s, unsigned char *p, size_t n, uint64_t tag, size_t m, rng_t *r,
                         const char *what)
{
  unsigned char *q = realloc(p, m);
  if (!q)
    fail("realloc(%zu) of %s failed", m, what);
  size_t keep = n < m ? n : m, lim = n <= PAT_FULL_MAX ? 1024 : 256;
  size_t off = pat_range_check(q, 0, keep < lim ? keep : lim, tag);
  if (off != (size_t)-1)
    fail("realloc(%zu -> %zu) of %s lost the contents at offset %zu", n, m, what, off);
  if (malloc_usable_size(q) < m)
    fail("malloc_usable_size after realloc of %s: %zu < %zu", what, malloc_usable_size(q), m);
  my_live += (long long)m - (long long)n;
  s->p = q;
  s->n = m;
  s->tag = rng_next(r);
  pat_fill(q, m, s->tag);
}

static void *worker(void *arg)
{
  unsigned id = (unsigned)(uintptr_t)arg;
  rng_t r;
  rng_seed(&r, seed * 1000 + id);
  slot_t *slots = calloc(SLOTS, sizeof *slots);
  if (!slots)
    fail("calloc of the slot table failed");
  for (unsigned i = 0; i < SLOTS; i++)
    slots[i].budget = (uint32_t)pick_budget(&r);
  unsigned long ops = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    for (int burst = 0; burst < 256; burst++, ops++) {
      slot_t *s = &slots[rng_next(&r) % SLOTS];
      if (!s->p) {
        fresh(s, &r);
        continue;
      }
      unsigned op = (unsigned)(rng_next(&r) % 10);
      if (op < 5) {
        /* free, and at once a new block for the slot: a slot stays
         * occupied, so the bytes alive hardly move (an empty slot now and
         * then among the large ones would swing them by a few percent) */
        check(s->p, s->n, s->tag, "free");
        free(s->p);
        my_live -= (long long)s->n;
        s->p = NULL;
        fresh(s, &r);
      } else if (op < 8) {
        check(s->p, s->n, s->tag, "realloc");
        realloc_into(s, s->p, s->n, s->tag, pick_size(&r, s), &r, "a slot's block");
      } else {
        check(s->p, s->n, s->tag, "hand-off");
        box_t *b = malloc(sizeof *b);
        if (!b)
          fail("malloc(box) failed");
        b->p = s->p;
        b->n = s->n;
        b->tag = s->tag;
        box_t *old = atomic_exchange(&shared[rng_next(&r) % SHARED], b);
        if (old) {
          /* Take the other thread's block over, reallocated to this
           * slot's budget, so that big blocks do not wander into small
           * slots and the bytes alive stay put. */
          check(old->p, old->n, old->tag, "taken over");
          realloc_into(s, old->p, old->n, old->tag, pick_size(&r, s), &r, "a block taken over");
          free(old);
        } else {
          s->p = NULL;
        }
      }
    }
    atomic_store_explicit(&live_bytes[id], my_live, memory_order_relaxed);
  }
  for (unsigned i = 0; i < SLOTS; i++)
    if (slots[i].p) {
      check(slots[i].p, slots[i].n, slots[i].tag, "final");
      free(slots[i].p);
    }
  free(slots);
  atomic_fetch_add(&total_ops, ops);
  return NULL;
}

int main(int argc, char **argv)
{
  test_name = "soak";
  long seconds = arg_long(argc, argv, "--seconds", 60);
  long nthreads = arg_long(argc, argv, "--threads", 4);
  long sample = arg_long(argc, argv, "--sample", 5);
  long warmup = arg_long(argc, argv, "--warmup", seconds / 6 < 5 ? 5 : seconds / 6 > 120 ? 120 : seconds / 6);
  seed = (uint64_t)arg_long(argc, argv, "--seed", 1);
  if (nthreads < 1 || nthreads > MAX_THREADS || sample < 1 || seconds < warmup + sample)
    fail("bad options: --threads 1..%d, --sample >= 1, --seconds >= --warmup + --sample", MAX_THREADS);
  pthread_t th[MAX_THREADS];
  double t0 = now_s();
  for (long i = 0; i < nthreads; i++)
    CHECK(pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i) == 0, "pthread_create");
  enum { MAX_SAMPLES = 4096, WINDOW = 3 };
  static size_t after[MAX_SAMPLES]; /* the samples after the warm-up */
  unsigned n_after = 0;
  size_t lo = SIZE_MAX, hi = 0;
  double ref_t = 0;
  char line[320];
  size_t ll = 0;
  note("%ld threads for %ld s, RSS sampled every %ld s, reference after %ld s of warm-up", nthreads, seconds,
       sample, warmup);
  for (long t = sample; t <= seconds; t += sample) {
    double until = t0 + (double)t;
    for (double now = now_s(); now < until; now = now_s())
      usleep((useconds_t)((until - now) * 1e6 > 200000 ? 200000 : (until - now) * 1e6 + 1));
    size_t rss = rss_bytes();
    long long lb = 0;
    for (long i = 0; i < nthreads; i++)
      lb += atomic_load_explicit(&live_bytes[i], memory_order_relaxed);
    int w = snprintf(line + ll, sizeof line - ll, " %ld:%.1f/%.1f", t, mib(rss), (double)lb / (double)MiB);
    ll += w > 0 && (size_t)w < sizeof line - ll ? (size_t)w : 0;
    if (ll > 160) {
      note("RSS/live (s:MiB/MiB)%s", line);
      ll = 0;
    }
    if (t >= warmup && n_after < MAX_SAMPLES) {
      if (n_after == 0)
        ref_t = (double)t;
      after[n_after++] = rss;
      lo = rss < lo ? rss : lo;
      hi = rss > hi ? rss : hi;
    }
  }
  if (ll)
    note("RSS/live (s:MiB/MiB)%s", line);
  atomic_store(&stop, 1);
  for (long i = 0; i < nthreads; i++)
    pthread_join(th[i], NULL);
  double t1 = now_s();
  for (unsigned i = 0; i < SHARED; i++) {
    box_t *b = atomic_exchange(&shared[i], NULL);
    if (b) {
      check(b->p, b->n, b->tag, "final shared");
      free(b->p);
      free(b);
    }
  }
  unsigned long ops = atomic_load(&total_ops);
  if (n_after == 0)
    fail("no RSS sample after the warm-up");
  size_t ref = median3(after, n_after < WINDOW ? n_after : WINDOW);
  size_t last = median3(after + (n_after < WINDOW ? 0 : n_after - WINDOW), n_after < WINDOW ? n_after : WINDOW);
  double drift = ((double)last - (double)ref) / (double)ref;
  note("%lu operations in %.1f s (%.2f M/s); RSS after the warm-up (%.0f s, median of %d) %.1f MiB, at the end "
       "%.1f MiB (drift %+.2f%%, limit +%.0f%%), range after the warm-up %.1f..%.1f MiB",
       ops, t1 - t0, (double)ops / (t1 - t0) / 1e6, ref_t, WINDOW, mib(ref), mib(last), drift * 100, MAX_DRIFT * 100,
       mib(lo), mib(hi));
  if (drift > MAX_DRIFT)
    fail("RSS drifted by %+.2f%% (from %.1f to %.1f MiB) after the warm-up", drift * 100, mib(ref), mib(last));
  note("ok");
  return 0;
}

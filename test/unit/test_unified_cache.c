/* Unit tests of boxes/unified_cache: pop/push, refill batches, the fill
 * limit and flushes, thread exit. With -Dunified_cache=false the cache must
 * hold nothing. */
#include "boxes/unified_cache/unified_cache.h"
#include "boxes/warm_pool/warm_pool.h"
#include "backend/size_class.h"
#include "hak/stats.h"
#include "hakmem.h"

#include <check.h>
#include <pthread.h>
#include <stdlib.h>

static unsigned long long stat(const char *name)
{
  unsigned long long v = 0;
  hak_stats_get(name, &v);
  return v;
}

static unsigned bin_len(unsigned c)
{
  return uc_bin_length(c);
}

START_TEST(refill_then_hits)
{
  uc_thread_init();
  unsigned c = hak_class_of(64);
  uc_drain_all();
  ck_assert_ptr_null(uc_pop(c)); /* an empty bin misses */
  void *p = uc_refill(c, 0);
  ck_assert_ptr_nonnull(p);
  if (HAK_UNIFIED_CACHE) {
    unsigned cached = bin_len(c), popped = 0;
    ck_assert_uint_gt(cached, 0);
    /* no ck_assert in between: libcheck's own mallocs could refill bin c */
    while (uc_pop(c))
      popped++;
    ck_assert_uint_eq(popped, cached);
    uc_fold_stats();
    if (HAK_STATS)
      ck_assert_uint_ge(stat("uc_hits"), cached);
  } else {
    ck_assert_ptr_null(uc_pop(c));
    ck_assert_uint_eq(bin_len(c), 0);
  }
  uc_thread_exit();
}
END_TEST

/* Every pop that hits is counted once in bin c's uc_hits, across refills,
 * flushes and limit changes (each moves the fill counters) and any number
 * of folds. */
START_TEST(hits_counted_exactly_across_slow_paths)
{
#if HAK_STATS && HAK_UNIFIED_CACHE
  uc_thread_init();
  const unsigned c = hak_class_of(48);
  enum { N = 700 };
  static void *blocks[N]; /* no malloc between the counted pops */
  uc_drain_all();
  uc_fold_stats();
  const uint64_t h0 = hak_tls_stats->cls[c].v[HAK_STAT_uc_hits];
  uint64_t hits = 0;
  for (unsigned round = 0; round < 3; round++) {
    for (unsigned i = 0; i < N; i++) {
      blocks[i] = uc_pop(c);
      if (blocks[i])
        hits++;
      else
        blocks[i] = uc_refill(c, 0);
      if (i % 97 == 0)
        uc_fold_stats();
    }
    for (unsigned i = 0; i < N; i++)
      uc_push(c, blocks[i]); /* overflows: flushes, and the bin may shrink */
  }
  uc_fold_stats();
  const uint64_t h1 = hak_tls_stats->cls[c].v[HAK_STAT_uc_hits];
  ck_assert_uint_gt(hits, N); /* the second and third rounds mostly hit */
  ck_assert_uint_eq(h1 - h0, hits);
  uc_thread_exit();
#endif
}
END_TEST

/* A fresh bin's limit: about 16 KiB of blocks, at most 256, at least 24
 * for the classes up to 1 KiB, 4 for the other small ones; none for the
 * medium ones. */
START_TEST(limits_follow_the_byte_budget)
{
  uc_thread_init();
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    const unsigned size = (unsigned)hak_class_size(c), lim = uc_bin_limit(c);
    if (!HAK_UNIFIED_CACHE) {
      ck_assert_uint_eq(lim, 0);
      continue;
    }
    if (size > HAK_SMALL_MAX) { /* the medium classes: no bin */
      ck_assert_uint_eq(lim, 0);
      continue;
    }
    const unsigned least = size <= HAK_TINY_MAX ? 24 : 4;
    ck_assert_uint_ge(lim, least);
    ck_assert_uint_le(lim, 256);
    if (lim > least)
      ck_assert_uint_le(lim * size, 16384);
    if (lim < 256)
      ck_assert_uint_gt((lim + 1) * size, 16384);
  }
  if (HAK_UNIFIED_CACHE) {
    ck_assert_uint_eq(uc_bin_limit(hak_class_of(1024)), 24);
    ck_assert_uint_eq(uc_bin_limit(hak_class_of(64)), 256);
  }
  uc_thread_exit();
}
END_TEST

START_TEST(flush_keeps_fill_bounded)
{
  uc_thread_init();
  unsigned c = hak_class_of(16);
  enum { N = 5000 };
  void **blocks = calloc(N, sizeof(void *));
  for (unsigned i = 0; i < N; i++) {
    blocks[i] = uc_pop(c);
    if (!blocks[i])
      blocks[i] = uc_refill(c, 0);
    ck_assert_ptr_nonnull(blocks[i]);
  }
  /* all distinct */
  for (unsigned i = 1; i < N; i++)
    ck_assert_ptr_ne(blocks[i], blocks[i - 1]);
  unsigned long long f0 = stat("uc_flushes");
  unsigned max_seen = 0;
  for (unsigned i = 0; i < N; i++) {
    uc_push(c, blocks[i]);
    unsigned l = bin_len(c);
    if (l > max_seen)
      max_seen = l;
  }
  if (HAK_UNIFIED_CACHE) {
    ck_assert_uint_le(max_seen, 256);
    if (HAK_STATS)
      ck_assert_uint_gt(stat("uc_flushes"), f0);
  } else {
    ck_assert_uint_eq(max_seen, 0);
  }
  free(blocks);
  uc_thread_exit();
  ck_assert_uint_eq(bin_len(c), 0); /* exit gave everything back */
}
END_TEST

START_TEST(push_after_exit_passes_through)
{
  uc_thread_init();
  unsigned c = hak_class_of(32);
  void *p = uc_refill(c, 0);
  uc_thread_exit();
  uc_push(c, p); /* a free in a late destructor */
  ck_assert_uint_eq(bin_len(c), 0);
}
END_TEST

START_TEST(double_free_probe)
{
  uc_thread_init();
  unsigned c = hak_class_of(80);
  void *p = uc_refill(c, 0);
  ck_assert(!uc_holds_recent(c, p, 8));
  uc_push(c, p);
  if (HAK_UNIFIED_CACHE)
    ck_assert(uc_holds_recent(c, p, 8));
  uc_thread_exit();
}
END_TEST

/* n blocks of class c from the calling thread's cache (NULL: out of memory). */
static void take_blocks(unsigned c, void **blocks, unsigned n)
{
  for (unsigned i = 0; i < n; i++) {
    blocks[i] = uc_pop(c);
    if (!blocks[i])
      blocks[i] = uc_refill(c, 0);
  }
}

typedef struct alloc_job {
  unsigned c, n;
  void **blocks;
} alloc_job_t;

/* Another thread allocates the blocks; its cache is emptied when it is done
 * (its SuperSlabs stay its own). */
static void *alloc_elsewhere(void *arg)
{
  alloc_job_t *job = arg;
  uc_thread_init();
  take_blocks(job->c, job->blocks, job->n);
  uc_thread_exit();
  return NULL;
}

/* A bin its thread only frees into (a consumer of other threads' blocks)
 * shrinks to a quarter of its limit; drained again, it gets it back. */
START_TEST(sink_bin_shrinks_then_grows_back)
{
  uc_thread_init();
  unsigned c = hak_class_of(64);
  unsigned max = uc_bin_limit(c);
  if (!HAK_UNIFIED_CACHE) {
    ck_assert_uint_eq(max, 0);
    uc_thread_exit();
    return;
  }
  ck_assert_uint_eq(max, 256);
  enum { N = 4000 };
  void **blocks = calloc(N, sizeof(void *));
  ck_assert_ptr_nonnull(blocks);
  alloc_job_t job = {.c = c, .n = N, .blocks = blocks};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, alloc_elsewhere, &job), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  for (unsigned i = 0; i < N; i++)
    ck_assert_ptr_nonnull(blocks[i]);
  ck_assert_uint_eq(uc_bin_limit(c), max); /* nothing freed yet: unchanged */
  unsigned most = 0;
  for (unsigned i = 0; i < N; i++) {
    uc_push(c, blocks[i]);
    unsigned l = bin_len(c);
    most = i >= N / 2 && l > most ? l : most;
  }
  ck_assert_uint_eq(uc_bin_limit(c), max / 4);
  ck_assert_uint_le(most, max / 4); /* the second half never held more */
  /* The thread allocates again: the first refill after the flushes gives
   * the bin its whole limit back. */
  unsigned n = uc_bin_limit(c) + 1;
  take_blocks(c, blocks, n);
  ck_assert_uint_eq(uc_bin_limit(c), max);
  for (unsigned i = 0; i < n; i++)
    uc_push(c, blocks[i]);
  ck_assert_uint_eq(uc_bin_limit(c), max);
  free(blocks);
  uc_thread_exit();
  ck_assert_uint_eq(uc_bin_limit(c), 0);
}
END_TEST

/* Blocks of a class above the table's that another thread owns are never
 * cached: they wait in a chain that malloc does not pop and go back to
 * their SuperSlab in batches (16 blocks of 4 KiB), and draining the bins
 * sends the rest. The calling thread's own blocks, and other threads'
 * blocks of the table's classes, still go on the bins. */
START_TEST(foreign_blocks_skip_the_bin)
{
  uc_thread_init();
  const unsigned c = hak_class_of(4096), small = hak_class_of(64);
  ck_assert_uint_ge(c, HAK_NUM_TINY_CLASSES);
  ck_assert_uint_lt(small, HAK_NUM_TINY_CLASSES);
  const bool split = HAK_UNIFIED_CACHE && HAK_WARM_POOL && !HAK_HARDENED;
  enum { N = 40 };
  void *theirs[N], *theirs_small[N], *mine[4];
  alloc_job_t job = {.c = c, .n = N, .blocks = theirs};
  alloc_job_t job_small = {.c = small, .n = N, .blocks = theirs_small};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, alloc_elsewhere, &job), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  ck_assert_int_eq(pthread_create(&t, NULL, alloc_elsewhere, &job_small), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  uc_drain_all();
  unsigned most = 0;
  for (unsigned i = 0; i < N; i++) {
    uc_push_checked(c + 1, theirs[i]); /* as free's slow path does */
    const unsigned held = uc_foreign_length(c), cached = bin_len(c);
    most = held > most ? held : most;
    if (split)
      ck_assert_uint_eq(cached, 0);
  }
  if (split) {
    ck_assert_uint_eq(most, 15); /* the 16th push sends the chain */
    ck_assert_uint_eq(uc_foreign_length(c), N % 16);
    ck_assert_ptr_null(uc_pop(c));
    uc_drain_all();
    ck_assert_uint_eq(uc_foreign_length(c), 0);
  } else {
    ck_assert_uint_eq(most, 0);
  }
  for (unsigned i = 0; i < N; i++)
    uc_push(small, theirs_small[i]);
  if (HAK_UNIFIED_CACHE)
    ck_assert_uint_gt(bin_len(small), 0);
  ck_assert_uint_eq(uc_foreign_length(small), 0);
  uc_drain_all();
  take_blocks(c, mine, 4);
  for (unsigned i = 0; i < 4; i++)
    uc_push_checked(c + 1, mine[i]);
  ck_assert_uint_eq(uc_foreign_length(c), 0);
  if (HAK_UNIFIED_CACHE)
    ck_assert_uint_gt(bin_len(c), 0);
  uc_thread_exit();
}
END_TEST

/* A thread that frees many of its own blocks with no allocation between
 * (the free phase) ends with empty bins: none of its slabs is pinned by
 * blocks only it could give back. Its next refill of a class gives that
 * bin its limit back. */
START_TEST(free_phase_empties_the_bins)
{
  uc_thread_init();
  const unsigned a = hak_class_of(64), b = hak_class_of(512);
  const unsigned max_a = uc_bin_limit(a), max_b = uc_bin_limit(b);
  if (!HAK_UNIFIED_CACHE) {
    uc_thread_exit();
    return;
  }
  enum { NA = 5000, NB = 100 }; /* a phase short of UC_FREE_PHASE_DIRECT frees */
  void **ba = calloc(NA, sizeof(void *)), **bb = calloc(NB, sizeof(void *));
  ck_assert_ptr_nonnull(ba);
  ck_assert_ptr_nonnull(bb);
  take_blocks(b, bb, NB);
  take_blocks(a, ba, NA);
  for (unsigned i = 0; i < NB; i++)
    uc_push(b, bb[i]);
  ck_assert_uint_gt(bin_len(b), 0); /* a few flushes: b still caches */
  /* No ck_assert until the end: libcheck's own mallocs would refill bins.
   * Dozens of flushes of our own blocks in a row: nothing stays cached. */
  for (unsigned i = 0; i < NA; i++)
    uc_push(a, ba[i]);
  const unsigned len_a = bin_len(a), len_b = bin_len(b);
  const unsigned lim_a = uc_bin_limit(a), lim_b = uc_bin_limit(b);
  void *miss = uc_pop(b);
  void *p = uc_refill(b, 0);
  const unsigned lim_b_after = uc_bin_limit(b), lim_a_after = uc_bin_limit(a);
  const unsigned len_b_refilled = bin_len(b);
  uc_push(b, p);
  const unsigned len_b_after = bin_len(b); /* the phase is over: b caches again */
  take_blocks(a, ba, 1);
  const unsigned lim_a_refilled = uc_bin_limit(a);
  if (!HAK_WARM_POOL) {
    /* Without a warm pool the thread owns no SuperSlab: every flush hands
     * its blocks to the backend at once, none are its own, and the free
     * phase (which is about the thread's own slabs) never starts. */
    ck_assert_uint_gt(lim_a, 0);
    ck_assert_uint_gt(lim_b, 0);
    uc_push(a, ba[0]);
    free(ba);
    free(bb);
    uc_thread_exit();
    return;
  }
  ck_assert_uint_eq(len_a, 0);
  ck_assert_uint_eq(len_b, 0);
  ck_assert_uint_eq(lim_a, 0);
  ck_assert_uint_eq(lim_b, 0);
  ck_assert_ptr_null(miss);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(lim_b_after, max_b);
  ck_assert_uint_eq(lim_a_after, 0); /* a waits for a refill of its own */
  ck_assert_uint_eq(len_b_after, len_b_refilled + 1);
  ck_assert_uint_eq(lim_a_refilled, max_a);
  uc_push(a, ba[0]);
  free(ba);
  free(bb);
  uc_thread_exit();
}
END_TEST

/* A free phase that runs on (a long teardown) stops paying a slow path
 * per free: the bins batch again, all of a batch given back at every
 * overflow, so what the thread keeps stays bounded. A batch is 4 KiB of
 * blocks, at least 16 and at most 128: 64 blocks of 64 bytes, 16 of 512
 * (the byte budget would give 8). */
static void long_free_phase_case(size_t size, unsigned batch)
{
  uc_thread_init();
  const unsigned a = hak_class_of(size);
  ck_assert_uint_eq(hak_class_size(a), size);
  const unsigned max_a = uc_bin_limit(a);
  if (!HAK_UNIFIED_CACHE || !HAK_WARM_POOL) { /* no phase without owned slabs */
    uc_thread_exit();
    return;
  }
  enum { NA = 30000 };
  void **ba = calloc(NA, sizeof(void *));
  ck_assert_ptr_nonnull(ba);
  take_blocks(a, ba, NA);
  unsigned most = 0;
  for (unsigned i = 0; i < NA; i++) {
    uc_push(a, ba[i]);
    if (i > NA - 1000 && bin_len(a) > most)
      most = bin_len(a);
  }
  const unsigned len_a = bin_len(a), lim_a = uc_bin_limit(a);
  take_blocks(a, ba, len_a + 1); /* past what the bin holds: a refill */
  const unsigned lim_a_refilled = uc_bin_limit(a);
  ck_assert_uint_le(len_a, batch);
  ck_assert_uint_le(most, batch);
  ck_assert_uint_gt(most, batch / 2); /* it does batch */
  ck_assert_uint_eq(lim_a, batch);
  ck_assert_uint_eq(lim_a_refilled, max_a);
  for (unsigned i = 0; i <= len_a; i++)
    uc_push(a, ba[i]);
  free(ba);
  uc_thread_exit();
}

START_TEST(long_free_phase_batches)
{
  long_free_phase_case(64, 64);
  long_free_phase_case(512, 16);
}
END_TEST

/* A bin that cycles through more of its thread's own blocks than it holds
 * (all of them freed, then allocated again) grows until a cycle fits, no
 * further than its byte ceiling; a free phase puts it back. */
START_TEST(cycling_bin_grows_to_fit)
{
  uc_thread_init();
  const unsigned c = hak_class_of(16);
  const unsigned max = uc_bin_limit(c);
  if (!HAK_UNIFIED_CACHE || !HAK_WARM_POOL) { /* no own blocks without a pool */
    uc_thread_exit();
    return;
  }
  enum { N = 1500, ROUNDS = 6 };
  static void *blocks[N];
  static unsigned lim[ROUNDS];
  static unsigned long long flushes[ROUNDS];
  /* No ck_assert until the end: libcheck's own mallocs would move bins. */
  for (unsigned r = 0; r < ROUNDS; r++) {
    take_blocks(c, blocks, N);
    lim[r] = uc_bin_limit(c); /* as the refills of this round left it */
    uc_fold_stats();
    unsigned long long f0 = stat("uc_flushes");
    for (unsigned i = 0; i < N; i++)
      uc_push(c, blocks[i]);
    uc_fold_stats();
    flushes[r] = stat("uc_flushes") - f0;
  }
  ck_assert_uint_eq(max, 256);
  ck_assert_uint_eq(lim[0], max);      /* nothing cycled yet */
  ck_assert_uint_eq(lim[1], 2 * max);  /* one doubling per cycle */
  ck_assert_uint_ge(lim[ROUNDS - 1], N); /* a whole cycle fits */
  ck_assert_uint_le(lim[ROUNDS - 1], 2048);
  ck_assert_uint_le(lim[ROUNDS - 1] * 16u, 65536);
  if (HAK_STATS) {
    /* At most the blocks a refill left over still overflow, once. */
    ck_assert_uint_ge(flushes[0], 8);
    ck_assert_uint_le(flushes[ROUNDS - 1], 1);
  }
  /* A teardown: dozens of flushes of a class in a row, no refill. */
  const unsigned d = hak_class_of(64);
  enum { ND = 8000 };
  void **bd = calloc(ND, sizeof(void *));
  ck_assert_ptr_nonnull(bd);
  take_blocks(d, bd, ND);
  for (unsigned i = 0; i < ND; i++)
    uc_push(d, bd[i]);
  take_blocks(c, blocks, 1);
  const unsigned lim_after = uc_bin_limit(c);
  ck_assert_uint_eq(lim_after, max);
  uc_push(c, blocks[0]);
  free(bd);
  uc_thread_exit();
}
END_TEST

int main(void)
{
  Suite *s = suite_create("unified_cache");
  TCase *tc = tcase_create("cache");
  tcase_add_test(tc, refill_then_hits);
  tcase_add_test(tc, hits_counted_exactly_across_slow_paths);
  tcase_add_test(tc, limits_follow_the_byte_budget);
  tcase_add_test(tc, flush_keeps_fill_bounded);
  tcase_add_test(tc, cycling_bin_grows_to_fit);
  tcase_add_test(tc, push_after_exit_passes_through);
  tcase_add_test(tc, double_free_probe);
  tcase_add_test(tc, sink_bin_shrinks_then_grows_back);
  tcase_add_test(tc, foreign_blocks_skip_the_bin);
  tcase_add_test(tc, free_phase_empties_the_bins);
  tcase_add_test(tc, long_free_phase_batches);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_set_fork_status(sr, CK_FORK);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

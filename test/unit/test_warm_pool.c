/* Unit tests of boxes/warm_pool: hits, misses, prefill, capacity, return of
 * local and remote blocks. Written against the settings in force (the
 * build's defaults, or what a test case loads): with -Dwarm_pool=false
 * every refill must be a miss; with prefill N a miss after the first
 * brings N extra SuperSlabs. */
#include "boxes/warm_pool/warm_pool.h"
#include "backend/superslab.h"
#include "backend/size_class.h"
#include "hak/config.h"
#include "hak/settings.h"
#include "hakmem.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* The warm pool's settings in force, clipped as the pool clips them. */
static unsigned pool_max(void) { return (unsigned)hak_settings_get(HAK_SET_warm_pool_max); }
static unsigned prefill_effective(void)
{
  unsigned p = (unsigned)hak_settings_get(HAK_SET_prefill);
  return p < pool_max() ? p : pool_max() - 1;
}
static unsigned prefill_cap(void)
{
  unsigned g = (unsigned)hak_settings_get(HAK_SET_prefill) * HAK_PREFILL_GROWTH;
  return g < pool_max() ? g : pool_max() - 1;
}
static bool adaptive(void) { return hak_settings_get(HAK_SET_prefill_policy) == HAK_SET_POLICY_ADAPTIVE; }

/* Load the settings from env (a test case's own environment). */
static void load(char *const *env)
{
  ck_assert_uint_eq(hak_settings_load(env, NULL, NULL), 0);
}

static unsigned long long stat(const char *name)
{
  unsigned long long v = 0;
  if (hak_stats_get(name, &v) != 0)
    return 0;
  return v;
}

/* Take n blocks of class c one refill at a time, recording them. No
 * ck_assert inside: libcheck mallocs when it records a passed check, and
 * the counters below must see only this loop's refills. */
static unsigned take(unsigned c, void **out, unsigned n, unsigned batch)
{
  unsigned got = 0;
  while (got < n) {
    void *h, *t;
    unsigned k = warm_pool_refill(c, batch, &h, &t);
    if (k == 0)
      return got;
    unsigned i = 0;
    for (; i < k && got < n; i++) {
      out[got++] = h;
      h = *(void **)h;
    }
    if (i < k) /* blocks beyond n go back at once */
      warm_pool_return(c, h, k - i);
  }
  return got;
}

/* Runs in a thread of its own, so the pool starts empty and nothing else
 * (libcheck's own mallocs) refills from it meanwhile. */
static void *hits_misses_body(void *arg)
{
  (void)arg;
  ck_assert(warm_pool_thread_init());
  unsigned c = hak_class_of(2900);
  unsigned per_ss = backend_ss_capacity(c);
  /* Use up more than two SuperSlabs' worth, one block per refill. */
  unsigned n = per_ss * 2 + 5;
  void **blocks = calloc(n, sizeof(void *)); /* before the baseline: it may refill too */
  unsigned long long m0 = stat("warm_misses"), h0 = stat("warm_hits"), p0 = stat("prefilled");
  unsigned long long c0 = stat("warm_cold_misses");
  unsigned got = take(c, blocks, n, 1);
  unsigned long long misses = stat("warm_misses") - m0, hits = stat("warm_hits") - h0;
  unsigned long long cold = stat("warm_cold_misses") - c0;
  ck_assert_uint_eq(got, n);
  if (!HAK_STATS) {
    /* counters compiled out: only the pool's own state can be checked */
    ck_assert_uint_eq(misses + hits + cold, 0);
    if (HAK_WARM_POOL)
      ck_assert_uint_eq(warm_pool_count(c), prefill_effective() > 0 ? prefill_effective() : 1);
    else
      ck_assert_uint_eq(warm_pool_count(c), 0);
  } else if (HAK_WARM_POOL) {
    /* first SuperSlab: a cold miss; second: a miss that prefills; the
     * third comes from the prefilled pool (a hit) unless prefill is 0. */
    ck_assert_uint_eq(cold, 1);
    ck_assert_uint_eq(misses, prefill_effective() > 0 ? 1 : 2);
    ck_assert_uint_eq(hits + misses + cold, n);
    ck_assert_uint_eq(stat("prefilled") - p0, prefill_effective());
    ck_assert_uint_eq(warm_pool_count(c), prefill_effective() > 0 ? prefill_effective() : 1);
  } else {
    ck_assert_uint_eq(hits, 0);
    ck_assert_uint_eq(cold, 1);
    ck_assert_uint_eq(misses, n - 1);
    ck_assert_uint_eq(warm_pool_count(c), 0);
  }
  /* Everything back: no block is lost, the pool keeps at most one empty. */
  for (unsigned i = 0; i < n; i++) {
    *(void **)blocks[i] = NULL;
    warm_pool_return(c, blocks[i], 1);
  }
  ck_assert_uint_le(warm_pool_count(c), pool_max());
  free(blocks);
  warm_pool_thread_exit();
  return NULL;
}

START_TEST(hits_misses_and_prefill)
{
  pthread_t th;
  pthread_create(&th, NULL, hits_misses_body, NULL);
  pthread_join(th, NULL);
}
END_TEST

static void pool_capacity_body(void)
{
  ck_assert(warm_pool_thread_init());
  unsigned c = hak_class_of(4096);
  unsigned per_ss = backend_ss_capacity(c);
  unsigned n = per_ss * (pool_max() + 4);
  void **blocks = calloc(n, sizeof(void *));
  ck_assert_uint_eq(take(c, blocks, n, 8), n);
  /* Free one block of every SuperSlab: each regains room and is offered
   * to the pool, which must never exceed its capacity. */
  unsigned most = 0;
  for (unsigned i = 0; i < n; i += per_ss) {
    *(void **)blocks[i] = NULL;
    warm_pool_return(c, blocks[i], 1);
    blocks[i] = NULL;
    ck_assert_uint_le(warm_pool_count(c), pool_max());
    most = warm_pool_count(c) > most ? warm_pool_count(c) : most;
  }
  /* ... and fills up to it: more SuperSlabs regained room than it holds. */
  ck_assert_uint_eq(most, HAK_WARM_POOL ? pool_max() : 0);
  for (unsigned i = 0; i < n; i++)
    if (blocks[i]) {
      *(void **)blocks[i] = NULL;
      warm_pool_return(c, blocks[i], 1);
    }
  free(blocks);
  warm_pool_thread_exit();
}

START_TEST(pool_capacity_is_respected)
{
  pool_capacity_body();
}
END_TEST

static void *blocks_from_thread[512];

static void *alloc_thread(void *arg)
{
  unsigned c = (unsigned)(uintptr_t)arg;
  warm_pool_thread_init();
  if (take(c, blocks_from_thread, 512, 32) != 512)
    abort();
  warm_pool_thread_exit(); /* the blocks stay live in ownerless SuperSlabs */
  return NULL;
}

START_TEST(blocks_of_exited_threads_return)
{
  unsigned c = hak_class_of(200);
  pthread_t th;
  pthread_create(&th, NULL, alloc_thread, (void *)(uintptr_t)c);
  pthread_join(th, NULL);
  ck_assert(warm_pool_thread_init());
  for (unsigned i = 0; i < 512; i++) {
    *(void **)blocks_from_thread[i] = NULL;
    warm_pool_return(c, blocks_from_thread[i], 1);
  }
  /* every block came back to the ownerless SuperSlab, which then left for
   * the free tier: its chunk is no longer registered */
  ck_assert_uint_eq(registry_tag(blocks_from_thread[0]), 0);
  warm_pool_thread_exit();
}
END_TEST

/* The prefill budget: fixed stays at the configured value; adaptive
 * doubles on each miss up to prefill_cap() and halves for each prefilled
 * SuperSlab given back unused. Deterministic: exact values are checked. */
static void *budget_body(void *arg)
{
  (void)arg;
  ck_assert(warm_pool_thread_init());
  unsigned c = hak_class_of(HAK_SMALL_MAX); /* 2 blocks per slab: SuperSlabs go fast */
  unsigned per_ss = backend_ss_capacity(c);
  enum { MAXB = 4000 };
  void **blocks = calloc(MAXB, sizeof(void *));
  unsigned n = 0;
  unsigned long long p0 = stat("prefilled");

  n += take(c, blocks + n, 1, 1); /* cold miss: no prefill, budget set */
  ck_assert_uint_eq(warm_pool_budget(c), prefill_effective());
  ck_assert_uint_eq(warm_pool_count(c), 1);

  unsigned expect_spent = prefill_effective(), total_prefilled = 0;
  unsigned budget = prefill_effective();
  for (int miss = 0; miss < 4; miss++) {
    /* use up everything in the pool, then one more: a miss */
    unsigned in_pool = warm_pool_count(c);
    unsigned want = n + (in_pool - 1) * per_ss + (per_ss - (n - 1) % per_ss) - 1 + 1;
    (void)want;
    unsigned before = warm_pool_count(c);
    while (warm_pool_count(c) > 0 && n < MAXB) {
      n += take(c, blocks + n, 1, 1);
      if (warm_pool_count(c) > before)
        break; /* the miss happened and refilled the pool */
      before = warm_pool_count(c);
    }
    total_prefilled += expect_spent;
    if (HAK_STATS)
      ck_assert_uint_eq(stat("prefilled") - p0, total_prefilled);
    if (adaptive()) {
      unsigned next = budget ? budget * 2 : 1;
      budget = next > prefill_cap() ? prefill_cap() : next;
    }
    ck_assert_uint_eq(warm_pool_budget(c), budget);
    expect_spent = budget;
  }
  /* Every prefilled SuperSlab still untouched goes back on trim: adaptive
   * halves the budget once for each. */
  unsigned unused = warm_pool_count(c) - 1; /* all but the one carving */
  warm_pool_trim();
  if (adaptive()) {
    for (unsigned i = 0; i < unused; i++)
      budget /= 2;
  }
  ck_assert_uint_eq(warm_pool_budget(c), budget);
  for (unsigned i = 0; i < n; i++) {
    *(void **)blocks[i] = NULL;
    warm_pool_return(c, blocks[i], 1);
  }
  free(blocks);
  warm_pool_thread_exit();
  return NULL;
}

START_TEST(prefill_budget_policy)
{
  pthread_t th;
  pthread_create(&th, NULL, budget_body, NULL);
  pthread_join(th, NULL);
}
END_TEST

/* The same behaviours under settings loaded at run time (each test runs in
 * a process of its own: CK_FORK). */
START_TEST(runtime_prefill_and_capacity)
{
  char *env[] = {"HAKMEM_PREFILL=2", "HAKMEM_WARM_POOL_MAX=5", NULL};
  load(env);
  ck_assert_uint_eq(prefill_effective(), 2);
  ck_assert_uint_eq(pool_max(), 5);
  pthread_t th;
  pthread_create(&th, NULL, hits_misses_body, NULL);
  pthread_join(th, NULL);
  pool_capacity_body();
}
END_TEST

START_TEST(runtime_prefill_clipped_to_capacity)
{
  char *env[] = {"HAKMEM_OPTIONS=prefill=9,warm_pool_max=3", NULL};
  load(env);
  ck_assert_uint_eq(prefill_effective(), 2);
  pthread_t th;
  pthread_create(&th, NULL, hits_misses_body, NULL);
  pthread_join(th, NULL);
}
END_TEST

START_TEST(runtime_adaptive_policy)
{
  char *env[] = {"HAKMEM_OPTIONS=prefill_policy=adaptive,prefill=2", NULL};
  load(env);
  ck_assert(adaptive());
  ck_assert_uint_eq(prefill_cap(), 8);
  pthread_t th;
  pthread_create(&th, NULL, budget_body, NULL);
  pthread_join(th, NULL);
}
END_TEST

START_TEST(runtime_fixed_policy_no_prefill)
{
  char *env[] = {"HAKMEM_PREFILL_POLICY=fixed", "HAKMEM_PREFILL=0", NULL};
  load(env);
  pthread_t th;
  pthread_create(&th, NULL, hits_misses_body, NULL);
  pthread_join(th, NULL);
  if (HAK_WARM_POOL) {
    pthread_create(&th, NULL, budget_body, NULL);
    pthread_join(th, NULL);
  }
}
END_TEST

static void restore_defaults(void) { hak_settings_load(NULL, NULL, NULL); }

int main(void)
{
  Suite *s = suite_create("warm_pool");
  TCase *tc = tcase_create("pool");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, hits_misses_and_prefill);
  tcase_add_test(tc, pool_capacity_is_respected);
  tcase_add_test(tc, blocks_of_exited_threads_return);
  if (HAK_WARM_POOL)
    tcase_add_test(tc, prefill_budget_policy);
  suite_add_tcase(s, tc);
  TCase *rt = tcase_create("runtime_settings");
  tcase_set_timeout(rt, 60);
  tcase_add_test(rt, runtime_prefill_and_capacity);
  tcase_add_test(rt, runtime_prefill_clipped_to_capacity);
  if (HAK_WARM_POOL)
    tcase_add_test(rt, runtime_adaptive_policy);
  tcase_add_test(rt, runtime_fixed_policy_no_prefill);
  tcase_add_checked_fixture(rt, NULL, restore_defaults);
  suite_add_tcase(s, rt);
  SRunner *sr = srunner_create(s);
  srunner_set_fork_status(sr, CK_FORK);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

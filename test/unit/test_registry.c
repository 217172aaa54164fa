/* Unit tests of registry/: the address map and the per-class index. */
#include "registry/registry.h"

#include <check.h>
#include <signal.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>

/* Synthetic chunk addresses, far from anything mapped. */
#define SYN_BASE ((uintptr_t)0x500000000000ull)

START_TEST(lookup_of_unregistered_is_zero)
{
  ck_assert_uint_eq(registry_tag(NULL), 0);
  ck_assert_uint_eq(registry_tag((void *)(SYN_BASE + 12345)), 0);
  ck_assert_uint_eq(registry_tag((void *)~(uintptr_t)0), 0);      /* non-canonical */
  ck_assert_uint_eq(registry_tag((void *)((uintptr_t)1 << 50)), 0); /* above 48 bits */
}
END_TEST

START_TEST(million_entries_no_capacity_limit)
{
  /* Far more entries than any fixed table would hold: one million chunks
   * (a terabyte of address space), every one found again. */
  const size_t n = 1000000;
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(registry_set_tag(SYN_BASE + i * HAK_SS_SIZE, hak_tag_make(HAK_KIND_SMALL, i % 72)), 0);
  for (size_t i = 0; i < n; i += 1) {
    uintptr_t a = SYN_BASE + i * HAK_SS_SIZE + (i * 4093) % HAK_SS_SIZE; /* any address in the chunk */
    uint64_t t = registry_tag((void *)a);
    if (hak_tag_kind(t) != HAK_KIND_SMALL || hak_tag_class(t) != i % 72)
      ck_abort_msg("entry %zu lost", i);
  }
  ck_assert_uint_ge(registry_leaves_mapped(), n >> HAK_REG_LEAF_BITS);
  for (size_t i = 0; i < n; i++)
    registry_clear_tag(SYN_BASE + i * HAK_SS_SIZE);
  ck_assert_uint_eq(registry_tag((void *)(SYN_BASE + 77 * HAK_SS_SIZE)), 0);
}
END_TEST

START_TEST(sparse_entries_across_address_space)
{
  /* One chunk in every top-level slot of the 48-bit space. */
  for (size_t top = 1; top < HAK_REG_TOP_SIZE; top += 37) {
    uintptr_t base = ((uintptr_t)top << (HAK_SS_SHIFT + HAK_REG_LEAF_BITS)) + 5 * HAK_SS_SIZE;
    ck_assert_int_eq(registry_set_tag(base, hak_tag_make(HAK_KIND_LARGE, 0)), 0);
    ck_assert_uint_eq(hak_tag_kind(registry_tag((void *)(base + 100))), HAK_KIND_LARGE);
    ck_assert_uint_eq(registry_tag((void *)(base + HAK_SS_SIZE)), 0); /* the neighbour */
    registry_clear_tag(base);
  }
}
END_TEST

START_TEST(swap_tag_claims_once)
{
  uintptr_t base = SYN_BASE + 3 * HAK_SS_SIZE;
  uint64_t t = hak_tag_make(HAK_KIND_LARGE, 0);
  registry_set_tag(base, t);
  ck_assert(registry_swap_tag(base, t, 0));
  ck_assert(!registry_swap_tag(base, t, 0)); /* second claim fails */
}
END_TEST

static hak_list_node_t links[8];

START_TEST(index_push_pop_remove)
{
  /* the largest class: the process's own allocations (libcheck's) never
   * leave a SuperSlab of it in the index */
  unsigned c = HAK_NUM_CLASSES - 1;
  registry_index_lock(c);
  ck_assert_ptr_null(registry_index_pop(c));
  for (int i = 0; i < 8; i++)
    registry_index_push(c, &links[i]);
  registry_index_push(c, &links[3]); /* already linked: no duplicate */
  ck_assert_uint_eq(registry_index_length(c), 8);
  registry_index_remove(c, &links[3]);
  registry_index_remove(c, &links[3]);
  ck_assert_uint_eq(registry_index_length(c), 7);
  int seen[8] = {0};
  hak_list_node_t *l;
  while ((l = registry_index_pop(c)) != NULL)
    seen[l - links]++;
  for (int i = 0; i < 8; i++)
    ck_assert_int_eq(seen[i], i == 3 ? 0 : 1);
  ck_assert_uint_eq(registry_index_length(c), 0);
  registry_index_unlock(c);
}
END_TEST

/* Reader/writer/reclaim: readers look a chunk up under the read lock and
 * read its header; the writer clears the tag, waits for a grace period and
 * unmaps. A reader that found the tag must never touch unmapped memory. */
static _Atomic int stop_readers;
static _Atomic unsigned long reads_done;

static _Atomic(uint64_t *) published;
static _Atomic int readers_started;

static void *deref_reader(void *arg)
{
  (void)arg;
  unsigned long n = 0, bad = 0;
  atomic_fetch_add(&readers_started, 1);
  while (!atomic_load(&stop_readers)) {
    registry_read_lock();
    uint64_t *p = atomic_load(&published);
    if (p && hak_tag_kind(registry_tag(p)) == HAK_KIND_SMALL && *p != 0xfeedfacecafebeefull)
      bad++;
    registry_read_unlock();
    n++;
  }
  atomic_fetch_add(&reads_done, n);
  return (void *)bad;
}

START_TEST(rcu_reader_writer_reclaim)
{
  pthread_t r[3];
  atomic_store(&stop_readers, 0);
  pthread_create(&r[0], NULL, deref_reader, NULL);
  pthread_create(&r[1], NULL, deref_reader, NULL);
  pthread_create(&r[2], NULL, deref_reader, NULL);
  while (atomic_load(&readers_started) < 3) /* the writer must race real readers */
    sched_yield();
  for (int round = 0; round < 200; round++) {
    uint64_t *m = mmap(NULL, HAK_SS_SIZE * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(m, MAP_FAILED);
    uint64_t *chunk = (uint64_t *)(((uintptr_t)m + HAK_SS_SIZE - 1) & ~(uintptr_t)HAK_SS_MASK);
    *chunk = 0xfeedfacecafebeefull;
    registry_set_tag((uintptr_t)chunk, hak_tag_make(HAK_KIND_SMALL, 1));
    atomic_store(&published, chunk);
    /* retire: unpublish, clear the tag, wait, then unmap */
    atomic_store(&published, NULL);
    registry_clear_tag((uintptr_t)chunk);
    registry_synchronize();
    munmap(m, HAK_SS_SIZE * 2);
  }
  atomic_store(&stop_readers, 1);
  void *bad0, *bad1, *bad2;
  pthread_join(r[0], &bad2);
  pthread_join(r[1], &bad0);
  pthread_join(r[2], &bad1);
  ck_assert_ptr_null(bad0);
  ck_assert_ptr_null(bad1);
  ck_assert_ptr_null(bad2);
  ck_assert_uint_gt(atomic_load(&reads_done), 0);
}
END_TEST

/* Checking builds (-Ddebug_checks=true): the allocator's mutex knows who
 * holds it. A function that needs its lock asserts it, and only the holder
 * may unlock. */
static hak_mutex_t test_lock = HAK_MUTEX_INIT;

static void *held_elsewhere(void *arg)
{
  (void)arg;
  hak_mutex_assert_held(&test_lock);
  return NULL;
}

START_TEST(lock_held_by_its_holder_only)
{
  hak_mutex_lock(&test_lock);
  hak_mutex_assert_held(&test_lock);
  pthread_t t;
  pthread_create(&t, NULL, held_elsewhere, NULL); /* aborts the process */
  pthread_join(t, NULL);
}
END_TEST

START_TEST(lock_not_held_after_unlock)
{
  hak_mutex_lock(&test_lock);
  hak_mutex_unlock(&test_lock);
  ck_assert(hak_mutex_trylock(&test_lock));
  hak_mutex_assert_held(&test_lock);
  hak_mutex_unlock(&test_lock);
  hak_mutex_assert_held(&test_lock); /* aborts */
}
END_TEST

static void *unlock_elsewhere(void *arg)
{
  (void)arg;
  hak_mutex_unlock(&test_lock);
  return NULL;
}

START_TEST(lock_unlocked_by_another_thread_aborts)
{
  hak_mutex_lock(&test_lock);
  pthread_t t;
  pthread_create(&t, NULL, unlock_elsewhere, NULL);
  pthread_join(t, NULL);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("registry");
  TCase *tc = tcase_create("map");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, lookup_of_unregistered_is_zero);
  tcase_add_test(tc, million_entries_no_capacity_limit);
  tcase_add_test(tc, sparse_entries_across_address_space);
  tcase_add_test(tc, swap_tag_claims_once);
  suite_add_tcase(s, tc);
  TCase *ti = tcase_create("index");
  tcase_add_test(ti, index_push_pop_remove);
  suite_add_tcase(s, ti);
  TCase *tr = tcase_create("rcu");
  tcase_set_timeout(tr, 60);
  tcase_add_test(tr, rcu_reader_writer_reclaim);
  suite_add_tcase(s, tr);
  if (HAK_DEBUG_CHECKS) {
    TCase *tl = tcase_create("debug_checks");
    tcase_add_test_raise_signal(tl, lock_held_by_its_holder_only, SIGABRT);
    tcase_add_test_raise_signal(tl, lock_not_held_after_unlock, SIGABRT);
    tcase_add_test_raise_signal(tl, lock_unlocked_by_another_thread_aborts, SIGABRT);
    suite_add_tcase(s, tl);
  }
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Unit tests of front/: the entry points' semantics and errno values, and
 * loud failure on pointers hakmem did not hand out. */
#include "hakmem.h"
#include "hak/config.h"
#include "backend/size_class.h"
#include "hak/stats.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

START_TEST(malloc_sizes_alignment_usable)
{
  for (size_t n = 0; n < 100000; n = n < 64 ? n + 1 : n * 5 / 4) {
    unsigned char *p = hak_malloc(n);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % (n > 8 ? 16 : 8), 0);
    ck_assert_uint_ge(hak_malloc_usable_size(p), n);
    memset(p, 0x5a, hak_malloc_usable_size(p));
    hak_free(p);
  }
  ck_assert_uint_eq(hak_malloc_usable_size(NULL), 0);
  hak_free(NULL);
}
END_TEST

START_TEST(malloc_zero_is_unique)
{
  void *a = hak_malloc(0), *b = hak_malloc(0);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  ck_assert_ptr_ne(a, b);
  hak_free(a);
  hak_free(b);
}
END_TEST

START_TEST(huge_sizes_enomem)
{
  errno = 0;
  ck_assert_ptr_null(hak_malloc(SIZE_MAX));
  ck_assert_int_eq(errno, ENOMEM);
  errno = 0;
  ck_assert_ptr_null(hak_malloc((size_t)PTRDIFF_MAX + 1));
  ck_assert_int_eq(errno, ENOMEM);
  errno = 0;
  ck_assert_ptr_null(hak_calloc(SIZE_MAX / 2 + 1, 2));
  ck_assert_int_eq(errno, ENOMEM);
  void *p = hak_malloc(10);
  memcpy(p, "123456789", 10);
  errno = 0;
  ck_assert_ptr_null(hak_reallocarray(p, SIZE_MAX / 4, 8));
  ck_assert_int_eq(errno, ENOMEM);
  errno = 0;
  ck_assert_ptr_null(hak_realloc(p, SIZE_MAX));
  ck_assert_int_eq(errno, ENOMEM);
  ck_assert_str_eq(p, "123456789"); /* the old block is untouched */
  hak_free(p);
}
END_TEST

START_TEST(calloc_zeroes)
{
  for (size_t n = 1; n < 3000000; n = n * 3 + 1) {
    unsigned char *p = hak_malloc(n);
    memset(p, 0xff, n);
    hak_free(p);
    p = hak_calloc(1, n);
    for (size_t i = 0; i < n; i += (n > 4096 ? 509 : 1))
      ck_assert_int_eq(p[i], 0);
    hak_free(p);
  }
}
END_TEST

/* Blocks that went back to their slab and are carved again from pages that
 * still hold their old bytes are cleared in full; after malloc_trim has
 * given those pages back, the blocks carved from them read zero too. */
START_TEST(calloc_recarved_blocks_zeroed)
{
  static const size_t sizes[] = {48, 1000, 5000, 40000};
  enum { N = 1500 };
  static unsigned char *blocks[N];
  for (int trim = 0; trim < 2; trim++)
    for (unsigned k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
      const size_t n = sizes[k];
      for (unsigned i = 0; i < N; i++) {
        blocks[i] = hak_malloc(n);
        ck_assert_ptr_nonnull(blocks[i]);
        memset(blocks[i], 0xa5, hak_malloc_usable_size(blocks[i]));
      }
      for (unsigned i = 0; i < N; i++)
        hak_free(blocks[i]);
      if (trim)
        hak_malloc_trim(0);
      for (unsigned i = 0; i < N; i++) {
        blocks[i] = hak_calloc(1, n);
        ck_assert_ptr_nonnull(blocks[i]);
        for (size_t j = 0; j < n; j++)
          if (blocks[i][j] != 0)
            ck_abort_msg("calloc(1, %zu), round %d: byte %zu of block %u is %#x", n, trim, j, i, blocks[i][j]);
      }
      for (unsigned i = 0; i < N; i++)
        hak_free(blocks[i]);
    }
}
END_TEST

#if !HAK_HARDENED
/* A block carved from pages nobody has touched is cleared only where the
 * allocator wrote in it: calloc leaves the rest of its pages untouched (not
 * resident), and they read zero. (Hardened builds clear every block.) */
START_TEST(calloc_fresh_pages_untouched)
{
  const size_t n = 150000;
  hak_malloc_trim(0); /* what this process freed of the class goes back */
  unsigned char *p = hak_calloc(1, n);
  ck_assert_ptr_nonnull(p);
  const uintptr_t first = ((uintptr_t)p + HAK_PAGE_SIZE) & ~(uintptr_t)(HAK_PAGE_SIZE - 1);
  const uintptr_t end = ((uintptr_t)p + n) & ~(uintptr_t)(HAK_PAGE_SIZE - 1);
  unsigned char vec[64];
  ck_assert_uint_le((end - first) / HAK_PAGE_SIZE, sizeof vec);
  ck_assert_int_eq(mincore((void *)first, end - first, vec), 0);
  unsigned resident = 0;
  for (size_t i = 0; i < (end - first) / HAK_PAGE_SIZE; i++)
    resident += vec[i] & 1;
  ck_assert_uint_eq(resident, 0);
  for (size_t j = 0; j < n; j++)
    if (p[j] != 0)
      ck_abort_msg("byte %zu is %#x", j, p[j]);
  hak_free(p);
}
END_TEST
#endif

START_TEST(realloc_keeps_contents)
{
  unsigned char *p = NULL;
  size_t n = 0;
  for (size_t m = 1; m < 4000000; m = m * 2 + 3) {
    p = hak_realloc(p, m);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n && i < m; i += 97)
      ck_assert_int_eq(p[i], (unsigned char)i);
    for (size_t i = 0; i < m; i++)
      p[i] = (unsigned char)i;
    n = m;
  }
  for (size_t m = n; m > 1; m /= 3) {
    p = hak_realloc(p, m);
    for (size_t i = 0; i < m; i += 89)
      ck_assert_int_eq(p[i], (unsigned char)i);
  }
  ck_assert_ptr_null(hak_realloc(p, 0)); /* glibc: frees, returns NULL */
  p = hak_realloc(NULL, 40);
  ck_assert_ptr_nonnull(p);
  hak_free(p);
}
END_TEST

/* Blocks of the medium classes (32..256 KiB): sized by their class, reused
 * (calloc still zeroes a reused one), freed by another thread, grown and
 * shrunk across the small, medium and large ranges. */
static void *free_all_in_thread(void *arg)
{
  void **blocks = arg;
  for (unsigned i = 0; blocks[i]; i++)
    hak_free(blocks[i]);
  return NULL;
}

START_TEST(medium_blocks)
{
  static const size_t sizes[] = {32769, 36864, 40000, 65537, 100000, 168524, 200000, 262144};
  for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    const size_t n = sizes[i];
    unsigned char *p = hak_malloc(n);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 16, 0);
    size_t u = hak_malloc_usable_size(p);
    ck_assert_uint_ge(u, n);
    ck_assert_uint_le(u, n + n / 8 + HAK_PAGE_SIZE);
    memset(p, 0xff, u);
    hak_free(p);
    unsigned char *z = hak_calloc(1, n);
    ck_assert_ptr_nonnull(z);
    for (size_t j = 0; j < n; j += 61)
      ck_assert_int_eq(z[j], 0);
    ck_assert_int_eq(z[n - 1], 0);
    hak_free(z);
  }
  /* another thread frees them all; the memory serves this one again */
  enum { N = 64 };
  void *blocks[N + 1];
  for (int round = 0; round < 3; round++) {
    for (unsigned i = 0; i < N; i++) {
      blocks[i] = hak_malloc(40000 + 3000 * (i % 8));
      ck_assert_ptr_nonnull(blocks[i]);
      memset(blocks[i], (int)i, 40000);
    }
    blocks[N] = NULL;
    for (unsigned i = 0; i < N; i++)
      ck_assert_int_eq(((unsigned char *)blocks[i])[39999], (unsigned char)i);
#if defined(__SANITIZE_THREAD__)
    /* TSan takes the allocator's locks, held by its fork handler when
     * libcheck forked this test and set up again in the child, for locks
     * still held: a thread started here reports double locks. The stress
     * test covers frees from other threads under TSan. */
    free_all_in_thread(blocks);
#else
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_all_in_thread, blocks), 0);
    pthread_join(t, NULL);
#endif
  }
  /* realloc across the ranges keeps the contents */
  unsigned char *p = hak_malloc(20000);
  for (size_t j = 0; j < 20000; j++)
    p[j] = (unsigned char)(j * 7);
  static const size_t steps[] = {50000, 250000, 600000, 120000, 33000, 1000};
  size_t have = 20000;
  for (unsigned i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    p = hak_realloc(p, steps[i]);
    ck_assert_ptr_nonnull(p);
    size_t keep = have < steps[i] ? have : steps[i];
    for (size_t j = 0; j < keep; j += 13)
      ck_assert_int_eq(p[j], (unsigned char)(j * 7));
    for (size_t j = keep; j < steps[i]; j++)
      p[j] = (unsigned char)(j * 7);
    have = steps[i];
  }
  hak_free(p);
}
END_TEST

/* A buffer that grows past the small classes moves once, to a mapping of
 * its own, and then grows in place: a string or vector doubling through
 * the medium sizes is not copied at every step. (The room behind a mapping
 * is reserved unless overcommit is strict.) */
START_TEST(realloc_growth_past_small_stays_in_place)
{
  FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
  int mode = 0;
  if (f) {
    if (fscanf(f, "%d", &mode) != 1)
      mode = 0;
    fclose(f);
  }
  static const size_t starts[] = {20000, 40000}; /* small, medium */
  for (unsigned s = 0; s < 2; s++) {
    unsigned char *p = hak_malloc(starts[s]);
    ck_assert_ptr_nonnull(p);
    for (size_t j = 0; j < starts[s]; j++)
      p[j] = (unsigned char)(j * 5);
    unsigned char *q = hak_realloc(p, 50000); /* moves */
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_ge(hak_malloc_usable_size(q), 50000);
    for (size_t j = 0; j < starts[s]; j += 7)
      ck_assert_int_eq(q[j], (unsigned char)(j * 5));
    unsigned char *r = hak_realloc(q, 90000); /* in place */
    ck_assert_ptr_nonnull(r);
    if (mode != 2)
      ck_assert_ptr_eq(r, q);
    for (size_t j = 0; j < starts[s]; j += 7)
      ck_assert_int_eq(r[j], (unsigned char)(j * 5));
    memset(r, 1, 90000);
    hak_free(r);
  }
}
END_TEST

/* Requests of up to 8 bytes get the smallest blocks: 16 bytes, 16-byte
 * aligned, side by side in their slab (a free block needs its link and the
 * check word). When another thread frees every other one, the blocks
 * between stay intact: nothing is written past a two-word block on the
 * way back to its owner (a remote chain's hint needs a third word). */
enum { SMALLEST_N = 20000 };
static uint64_t *smallest[SMALLEST_N];

static void *free_every_other(void *arg)
{
  (void)arg;
  for (unsigned i = 0; i < SMALLEST_N; i += 2)
    hak_free(smallest[i]);
  return NULL;
}

START_TEST(smallest_blocks)
{
  const size_t least = 16;
  unsigned adjacent = 0;
  for (unsigned i = 0; i < SMALLEST_N; i++) {
    smallest[i] = hak_malloc(i % 9); /* 0..8 bytes */
    ck_assert_ptr_nonnull(smallest[i]);
    ck_assert_uint_eq((uintptr_t)smallest[i] % 16, 0);
    ck_assert_uint_eq(hak_malloc_usable_size(smallest[i]), least);
    smallest[i][0] = UINT64_C(0x0123456789abcdef) ^ i;
    smallest[i][1] = UINT64_C(0xfedcba9876543210) ^ i;
    if (i && (uintptr_t)smallest[i] - (uintptr_t)smallest[i - 1] == least)
      adjacent++;
  }
  if (!HAK_HARDENED) /* hardened builds carve in a random order */
    ck_assert_uint_gt(adjacent, SMALLEST_N / 2);
#if defined(__SANITIZE_THREAD__)
  free_every_other(NULL); /* see medium_blocks */
#else
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, free_every_other, NULL), 0);
  pthread_join(t, NULL);
#endif
  for (unsigned i = 1; i < SMALLEST_N; i += 2) {
    ck_assert_uint_eq(smallest[i][0], UINT64_C(0x0123456789abcdef) ^ i);
    ck_assert_uint_eq(smallest[i][1], UINT64_C(0xfedcba9876543210) ^ i);
    hak_free(smallest[i]);
  }
  /* an alignment is honoured even for the smallest request */
  for (size_t n = 0; n <= 8; n++) {
    void *p = NULL;
    ck_assert_int_eq(hak_posix_memalign(&p, 16, n), 0);
    ck_assert_uint_eq((uintptr_t)p % 16, 0);
    hak_free(p);
    p = hak_aligned_alloc(8, 8);
    ck_assert_uint_eq((uintptr_t)p % 8, 0);
    hak_free(p);
  }
}
END_TEST

START_TEST(aligned_entry_points)
{
  void *p = (void *)1;
  ck_assert_int_eq(hak_posix_memalign(&p, 3, 10), EINVAL);
  ck_assert_int_eq(hak_posix_memalign(&p, 4, 10), EINVAL);   /* < sizeof(void *) */
  ck_assert_int_eq(hak_posix_memalign(&p, 0, 10), EINVAL);
  ck_assert_ptr_eq(p, (void *)1);                              /* untouched on error */
  ck_assert_int_eq(hak_posix_memalign(&p, 64, SIZE_MAX / 2), ENOMEM);
  for (size_t a = 8; a <= ((size_t)16 << 20); a <<= 1)
    for (size_t n = 1; n < 200000; n = n * 7 + 5) {
      ck_assert_int_eq(hak_posix_memalign(&p, a, n), 0);
      ck_assert_uint_eq((uintptr_t)p % a, 0);
      ck_assert_uint_ge(hak_malloc_usable_size(p), n);
      memset(p, 1, n);
      hak_free(p);
    }
  errno = 0;
  ck_assert_ptr_null(hak_aligned_alloc(24, 100));
  ck_assert_int_eq(errno, EINVAL);
  p = hak_aligned_alloc(256, 1000);
  ck_assert_uint_eq((uintptr_t)p % 256, 0);
  hak_free(p);
  p = hak_memalign(48, 100); /* rounded up to 64 */
  ck_assert_uint_eq((uintptr_t)p % 64, 0);
  hak_free(p);
  p = hak_valloc(10);
  ck_assert_uint_eq((uintptr_t)p % 4096, 0);
  hak_free(p);
  p = hak_pvalloc(5000);
  ck_assert_uint_eq((uintptr_t)p % 4096, 0);
  ck_assert_uint_ge(hak_malloc_usable_size(p), 8192);
  hak_free(p);
}
END_TEST

START_TEST(sized_frees_trim_mallopt)
{
  void *p = hak_malloc(100);
  hak_free_sized(p, 100);
  p = hak_aligned_alloc(128, 300);
  hak_free_aligned_sized(p, 128, 300);
  ck_assert_int_eq(hak_mallopt(1, 0), 1);
  int r = hak_malloc_trim(0);
  ck_assert(r == 0 || r == 1);
}
END_TEST

static int global_object;

START_TEST(free_stack_pointer_aborts)
{
  int local;
  hak_free(&local);
}
END_TEST

START_TEST(free_global_aborts) { hak_free(&global_object); }
END_TEST

START_TEST(free_interior_pointer_aborts)
{
  char *p = hak_malloc(100);
  hak_free(p + 16);
}
END_TEST

START_TEST(free_interior_large_aborts)
{
  char *p = hak_malloc(1 << 20);
  hak_free(p + 4096);
}
END_TEST

START_TEST(free_interior_medium_aborts)
{
  char *p = hak_malloc(100000);
  hak_free(p + 4096);
}
END_TEST

START_TEST(realloc_bad_pointer_aborts)
{
  int local;
  hak_realloc(&local, 10);
}
END_TEST

START_TEST(usable_size_bad_pointer_aborts)
{
  int local;
  hak_malloc_usable_size(&local);
}
END_TEST

START_TEST(double_free_large_aborts)
{
  void *p = hak_malloc(1 << 20);
  hak_free(p);
  hak_free(p);
}
END_TEST

/* Hardened builds only. */
START_TEST(hardened_overwritten_link_aborts)
{
  char *p = hak_malloc(64), *q = hak_malloc(64);
  hak_free(p);
  hak_free(q);
  memset(q, 0x41, 16); /* a use after free / overflow scribbles on the link */
  hak_malloc(64);      /* pops q: its link no longer decodes to a block */
  hak_malloc(64);
}
END_TEST

START_TEST(hardened_double_free_anywhere_aborts)
{
  char *p = hak_malloc(48), *q = hak_malloc(48);
  hak_free(p);
  hak_free(q);
  hak_free(p); /* not back to back: found by the canary */
}
END_TEST

START_TEST(hardened_carving_is_shuffled)
{
  /* a class nothing else uses, so the blocks come from a fresh slab */
  enum { N = 200 };
  static char *b[N];
  unsigned down = 0;
  for (int i = 0; i < N; i++) {
    b[i] = hak_malloc(27000);
    if (i && b[i] < b[i - 1])
      down++;
  }
  for (int i = 0; i < N; i++)
    hak_free(b[i]);
  ck_assert_uint_gt(down, 10);
}
END_TEST

/* Hardened: the SuperSlab's first slab is a guard region (below the data). */
START_TEST(hardened_guard_before_data)
{
  char *p = hak_malloc(100);
  volatile char *guard = (char *)((uintptr_t)p & ~(uintptr_t)HAK_SS_MASK) + HAK_PAGE_SIZE;
  (void)*guard; /* SIGSEGV */
}
END_TEST

/* Every counter of the list answers hak_stats_get under its name and
 * appears in the JSON totals; an unknown name does not answer; counters
 * move with the work they count. With -Dstats=false nothing answers. */
START_TEST(stats_get_answers_every_counter)
{
  unsigned long long v = 0;
  ck_assert_int_eq(hak_stats_get("no_such_counter", &v), -1);
  if (!HAK_STATS) {
    ck_assert_int_eq(hak_stats_get("uc_hits", &v), -1);
    return;
  }
  for (unsigned id = 0; id < HAK_STAT_COUNT; id++)
    ck_assert_msg(hak_stats_get(hak_stat_desc[id].name, &v) == 0, "%s", hak_stat_desc[id].name);
  unsigned long long large0, large1, frees0, frees1, live;
  ck_assert_int_eq(hak_stats_get("large_allocs", &large0), 0);
  ck_assert_int_eq(hak_stats_get("large_frees", &frees0), 0);
  void *p = hak_malloc(8u << 20);
  ck_assert_ptr_nonnull(p);
  ck_assert_int_eq(hak_stats_get("large_allocs", &large1), 0);
  ck_assert_uint_eq(large1, large0 + 1);
  hak_free(p);
  ck_assert_int_eq(hak_stats_get("large_frees", &frees1), 0);
  ck_assert_uint_eq(frees1, frees0 + 1);
  void *q = hak_malloc(100);
  ck_assert_int_eq(hak_stats_get("superslabs_live", &live), 0);
  ck_assert_uint_ge(live, 1);
  hak_free(q);
  char path[] = "/tmp/hakmem-stats-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  unlink(path);
  ck_assert_int_eq(hak_stats_write(fd, 1), 0);
  static char json[64 * 1024];
  ssize_t n = pread(fd, json, sizeof json - 1, 0);
  close(fd);
  ck_assert_int_gt(n, 0);
  json[n] = 0;
  const char *totals = strstr(json, "\"totals\":{");
  ck_assert_ptr_nonnull(totals);
  for (unsigned id = 0; id < HAK_STAT_COUNT; id++) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", hak_stat_desc[id].name);
    ck_assert_msg(strstr(totals, key) != NULL, "%s missing from the totals", key);
  }
}
END_TEST

int main(void)
{
  Suite *s = suite_create("front");
  TCase *tc = tcase_create("semantics");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, malloc_sizes_alignment_usable);
  tcase_add_test(tc, malloc_zero_is_unique);
  tcase_add_test(tc, huge_sizes_enomem);
  tcase_add_test(tc, calloc_zeroes);
  tcase_add_test(tc, calloc_recarved_blocks_zeroed);
#if !HAK_HARDENED
  tcase_add_test(tc, calloc_fresh_pages_untouched);
#endif
  tcase_add_test(tc, realloc_keeps_contents);
  tcase_add_test(tc, realloc_growth_past_small_stays_in_place);
  tcase_add_test(tc, medium_blocks);
  tcase_add_test(tc, smallest_blocks);
  tcase_add_test(tc, stats_get_answers_every_counter);
  tcase_add_test(tc, aligned_entry_points);
  tcase_add_test(tc, sized_frees_trim_mallopt);
  suite_add_tcase(s, tc);
  TCase *tb = tcase_create("misuse");
  tcase_add_test_raise_signal(tb, free_stack_pointer_aborts, SIGABRT);
  tcase_add_test_raise_signal(tb, free_global_aborts, SIGABRT);
  tcase_add_test_raise_signal(tb, free_interior_pointer_aborts, SIGABRT);
  tcase_add_test_raise_signal(tb, free_interior_large_aborts, SIGABRT);
  tcase_add_test_raise_signal(tb, free_interior_medium_aborts, SIGABRT);
  tcase_add_test_raise_signal(tb, realloc_bad_pointer_aborts, SIGABRT);
  tcase_add_test_raise_signal(tb, usable_size_bad_pointer_aborts, SIGABRT);
  tcase_add_test_raise_signal(tb, double_free_large_aborts, SIGABRT);
  suite_add_tcase(s, tb);
  if (HAK_HARDENED) {
    TCase *th = tcase_create("hardened");
    tcase_add_test_raise_signal(th, hardened_overwritten_link_aborts, SIGABRT);
    tcase_add_test_raise_signal(th, hardened_double_free_anywhere_aborts, SIGABRT);
    tcase_add_test(th, hardened_carving_is_shuffled);
    tcase_add_test_raise_signal(th, hardened_guard_before_data, SIGSEGV);
    suite_add_tcase(s, th);
  }
  SRunner *sr = srunner_create(s);
  srunner_set_fork_status(sr, CK_FORK);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Unit tests of front/info.c: mallinfo2, mallinfo, malloc_stats and
 * malloc_info answer with hakmem's figures, which agree with each other,
 * with a known allocation pattern and with the statistics.
 *
 * "No allocation in between": libcheck and stdio allocate, so a figure
 * compared with another is taken with nothing but the call under test
 * between them (FILEs are opened and given a static buffer first). */
#include "hakmem.h"
#include "hak/config.h"
#include "hak/stats.h"
#include "backend/size_class.h"
#include "front/front.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_SMALL 1000          /* blocks of 48 bytes */
#define N_MID 100             /* blocks of 3000 bytes */
#define BIG ((size_t)8 << 20) /* two large blocks */

static void *small_blocks[N_SMALL], *mid_blocks[N_MID], *big_blocks[2];

static size_t class_bytes(size_t n) { return hak_class_size(hak_class_of(n)); }

static void alloc_pattern(void)
{
  for (unsigned i = 0; i < N_SMALL; i++)
    ck_assert_ptr_nonnull(small_blocks[i] = hak_malloc(48));
  for (unsigned i = 0; i < N_MID; i++)
    ck_assert_ptr_nonnull(mid_blocks[i] = hak_malloc(3000));
  for (unsigned i = 0; i < 2; i++)
    ck_assert_ptr_nonnull(big_blocks[i] = hak_malloc(BIG));
}

static void free_pattern(void)
{
  for (unsigned i = 0; i < N_SMALL; i++)
    hak_free(small_blocks[i]);
  for (unsigned i = 0; i < N_MID; i++)
    hak_free(mid_blocks[i]);
}

static void free_big(void)
{
  for (unsigned i = 0; i < 2; i++)
    hak_free(big_blocks[i]);
}

/* uordblks grows by at least what was asked for (more: a refill brings
 * blocks into the thread's cache, which count as in use); once the cache
 * is drained (malloc_trim) by exactly the class sizes of the blocks out
 * and the large blocks' usable bytes. hblks and hblkhd follow the two
 * large blocks, and every figure falls back once they are freed. */
START_TEST(mallinfo2_follows_a_pattern)
{
  hak_malloc_trim(0);
  const struct mallinfo2 base = hak_mallinfo2();
  alloc_pattern(); /* no assertion fails: libcheck's allocate only then */
  const struct mallinfo2 now = hak_mallinfo2();
  hak_malloc_trim(0); /* the thread's cache goes back on the slabs */
  const struct mallinfo2 trimmed = hak_mallinfo2();
  const size_t big_usable = hak_malloc_usable_size(big_blocks[0]) + hak_malloc_usable_size(big_blocks[1]);
  const size_t asked = N_SMALL * 48 + N_MID * 3000 + 2 * BIG;
  const size_t rounded = N_SMALL * class_bytes(48) + N_MID * class_bytes(3000) + big_usable;
  ck_assert_uint_ge(big_usable, 2 * BIG);
  ck_assert_uint_ge(now.uordblks - base.uordblks, asked);
  ck_assert_uint_eq(now.hblks - base.hblks, 2);
  ck_assert_uint_ge(now.hblkhd - base.hblkhd, 2 * (BIG + 4096));
  ck_assert_uint_eq(now.arena % HAK_SS_SIZE, 0);
  ck_assert_uint_ge(now.arena, base.arena);
  ck_assert_uint_eq(trimmed.uordblks - base.uordblks, rounded);
  ck_assert_uint_eq(trimmed.hblks - base.hblks, 2);
  ck_assert_uint_le(trimmed.keepcost, trimmed.fordblks);

  hak_malloc_trim(0);
  const struct mallinfo2 before = hak_mallinfo2();
  free_big();
  const struct mallinfo2 no_big = hak_mallinfo2();
  ck_assert_uint_eq(no_big.hblks, base.hblks);
  ck_assert_uint_eq(no_big.hblkhd, base.hblkhd);
  ck_assert_uint_eq(before.uordblks - no_big.uordblks, big_usable);
  hak_malloc_trim(0);
  const struct mallinfo2 mid = hak_mallinfo2();
  free_pattern();
  hak_malloc_trim(0);
  const struct mallinfo2 end = hak_mallinfo2();
  ck_assert_uint_eq(mid.uordblks - end.uordblks, N_SMALL * class_bytes(48) + N_MID * class_bytes(3000));
  ck_assert_uint_eq(end.hblks, base.hblks);
  ck_assert_uint_eq(end.hblkhd, base.hblkhd);
}
END_TEST

/* Where the figures overlap with the statistics, they agree. */
START_TEST(mallinfo2_agrees_with_stats)
{
#if HAK_STATS
  alloc_pattern();
  unsigned long long live = 0, allocs = 0, frees = 0;
  for (int round = 0; round < 2; round++) {
    /* No assertion in between: libcheck's allocate. */
    const int r0 = hak_stats_get("superslabs_live", &live);
    const int r1 = hak_stats_get("large_allocs", &allocs);
    const int r2 = hak_stats_get("large_frees", &frees);
    const struct mallinfo2 m = hak_mallinfo2();
    ck_assert_int_eq(r0 | r1 | r2, 0);
    ck_assert_uint_eq(live * HAK_SS_SIZE, m.arena);
    ck_assert_uint_eq(allocs - frees, m.hblks);
    if (round == 0) {
      ck_assert_uint_ge(m.hblks, 2);
      free_big();
      free_pattern();
      hak_malloc_trim(0);
    }
  }
#else
  /* The statistics are compiled out; the figures are not. */
  unsigned long long v;
  ck_assert_int_eq(hak_stats_get("superslabs_live", &v), -1);
  alloc_pattern();
  const struct mallinfo2 m = hak_mallinfo2();
  ck_assert_uint_gt(m.arena, 0);
  ck_assert_uint_ge(m.hblks, 2);
  free_big();
  free_pattern();
#endif
}
END_TEST

START_TEST(mallinfo_saturates)
{
  const struct mallinfo2 big = {
    .arena = (size_t)INT_MAX + 1, .ordblks = SIZE_MAX, .smblks = 5, .hblks = INT_MAX,
    .hblkhd = (size_t)3 << 31, .usmblks = 0, .fsmblks = (size_t)INT_MAX - 1,
    .uordblks = (size_t)1 << 40, .fordblks = 7, .keepcost = (size_t)UINT_MAX,
  };
  const struct mallinfo r = hak_mallinfo_saturate(&big);
  ck_assert_int_eq(r.arena, INT_MAX);
  ck_assert_int_eq(r.ordblks, INT_MAX);
  ck_assert_int_eq(r.smblks, 5);
  ck_assert_int_eq(r.hblks, INT_MAX);
  ck_assert_int_eq(r.hblkhd, INT_MAX);
  ck_assert_int_eq(r.usmblks, 0);
  ck_assert_int_eq(r.fsmblks, INT_MAX - 1);
  ck_assert_int_eq(r.uordblks, INT_MAX);
  ck_assert_int_eq(r.fordblks, 7);
  ck_assert_int_eq(r.keepcost, INT_MAX);

  /* In a small process mallinfo is mallinfo2 in ints. */
  const struct mallinfo2 m2 = hak_mallinfo2();
  const struct mallinfo m = hak_mallinfo();
  ck_assert_int_eq(m.arena, (int)m2.arena);
  ck_assert_int_eq(m.uordblks, (int)m2.uordblks);
  ck_assert_int_eq(m.fordblks, (int)m2.fordblks);
  ck_assert_int_eq(m.hblks, (int)m2.hblks);
  ck_assert_int_eq(m.hblkhd, (int)m2.hblkhd);
  ck_assert_int_eq(m.keepcost, (int)m2.keepcost);

  /* 2.5 GiB in one large block (address space only: never touched),
   * where the system grants that much. */
  const size_t huge = (size_t)5 << 29;
  void *p = hak_malloc(huge);
  if (p) {
    const struct mallinfo2 h2 = hak_mallinfo2();
    const struct mallinfo h = hak_mallinfo();
    ck_assert_uint_ge(h2.uordblks, huge);
    ck_assert_uint_ge(h2.hblkhd, huge);
    ck_assert_int_eq(h.uordblks, INT_MAX);
    ck_assert_int_eq(h.hblkhd, INT_MAX);
    ck_assert_int_ge(h.hblks, 1);
    hak_free(p);
  }
}
END_TEST

START_TEST(malloc_info_options_einval)
{
  FILE *fp = tmpfile();
  ck_assert_ptr_nonnull(fp);
  errno = 0;
  ck_assert_int_eq(hak_malloc_info(1, fp), -1);
  ck_assert_int_eq(errno, EINVAL);
  errno = 0;
  ck_assert_int_eq(hak_malloc_info(-1, fp), -1);
  ck_assert_int_eq(errno, EINVAL);
  ck_assert_int_eq(ftell(fp), 0);
  fclose(fp);
}
END_TEST

/* ---- A small XML checker ------------------------------------------------
 * Well-formed for what malloc_info writes: one root element; elements
 * nest; names are letters, digits and _; attribute values are quoted and
 * hold no '<', '&' or quote; nothing but white space outside the root. */

static bool name_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static const char *skip_space(const char *s)
{
  while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
    s++;
  return s;
}

static bool xml_well_formed(const char *s, char *root, size_t root_len)
{
  char stack[16][32];
  int depth = 0, roots = 0;
  s = skip_space(s);
  while (*s) {
    if (*s != '<') {
      if (depth == 0)
        return false; /* text outside the root */
      s++;
      continue;
    }
    s++;
    bool closing = *s == '/';
    if (closing)
      s++;
    size_t n = 0;
    char name[32];
    while (name_char(*s) && n < sizeof name - 1)
      name[n++] = *s++;
    name[n] = 0;
    if (n == 0)
      return false;
    if (closing) {
      s = skip_space(s);
      if (*s++ != '>' || depth == 0 || strcmp(stack[--depth], name) != 0)
        return false;
    } else {
      for (;;) {
        s = skip_space(s);
        if (*s == '/' || *s == '>')
          break;
        size_t an = 0;
        while (name_char(*s))
          s++, an++;
        if (an == 0 || *s++ != '=' || *s++ != '"')
          return false;
        while (*s && *s != '"') {
          if (*s == '<' || *s == '&')
            return false;
          s++;
        }
        if (*s++ != '"')
          return false;
      }
      if (depth == 0) {
        if (roots++)
          return false;
        snprintf(root, root_len, "%s", name);
      }
      if (*s == '/') {
        if (*++s != '>')
          return false;
        s++;
      } else {
        if (depth == 16)
          return false;
        strcpy(stack[depth++], name);
        s++;
      }
    }
    if (depth == 0)
      s = skip_space(s);
  }
  return depth == 0 && roots == 1;
}

/* The value of attribute attr of the first element named elem at or after
 * from; -1 if there is none. */
static long long xml_attr(const char *from, const char *elem, const char *attr, const char **at)
{
  char open[48], key[48];
  snprintf(open, sizeof open, "<%s ", elem);
  snprintf(key, sizeof key, " %s=\"", attr);
  const char *e = strstr(from, open);
  if (!e)
    return -1;
  const char *end = strchr(e, '>');
  const char *a = strstr(e, key);
  if (!a || a > end)
    return -1;
  if (at)
    *at = end;
  return strtoll(a + strlen(key), NULL, 10);
}

static char file_buf[1 << 16], xml[1 << 16];

START_TEST(malloc_info_xml_matches_mallinfo2)
{
  FILE *fp = tmpfile();
  ck_assert_ptr_nonnull(fp);
  ck_assert_int_eq(setvbuf(fp, file_buf, _IOFBF, sizeof file_buf), 0);
  alloc_pattern();
  const struct mallinfo2 m = hak_mallinfo2();
  const int r = hak_malloc_info(0, fp);
  ck_assert_int_eq(r, 0);
  rewind(fp);
  size_t n = fread(xml, 1, sizeof xml - 1, fp);
  xml[n] = 0;
  fclose(fp);
  ck_assert_uint_gt(n, 0);

  char root[32] = "";
  ck_assert_msg(xml_well_formed(xml, root, sizeof root), "malformed XML:\n%s", xml);
  ck_assert_str_eq(root, "malloc");
  ck_assert_ptr_nonnull(strstr(xml, "<malloc version=\"hakmem-1\">"));

  ck_assert_int_eq(xml_attr(xml, "mallinfo2", "arena", NULL), (long long)m.arena);
  ck_assert_int_eq(xml_attr(xml, "mallinfo2", "ordblks", NULL), (long long)m.ordblks);
  ck_assert_int_eq(xml_attr(xml, "mallinfo2", "smblks", NULL), (long long)m.smblks);
  ck_assert_int_eq(xml_attr(xml, "mallinfo2", "hblks", NULL), (long long)m.hblks);
  ck_assert_int_eq(xml_attr(xml, "mallinfo2", "hblkhd", NULL), (long long)m.hblkhd);
  ck_assert_int_eq(xml_attr(xml, "mallinfo2", "usmblks", NULL), (long long)m.usmblks);
  ck_assert_int_eq(xml_attr(xml, "mallinfo2", "fsmblks", NULL), (long long)m.fsmblks);
  ck_assert_int_eq(xml_attr(xml, "mallinfo2", "uordblks", NULL), (long long)m.uordblks);
  ck_assert_int_eq(xml_attr(xml, "mallinfo2", "fordblks", NULL), (long long)m.fordblks);
  ck_assert_int_eq(xml_attr(xml, "mallinfo2", "keepcost", NULL), (long long)m.keepcost);

  /* The parts add up: the classes' blocks, empty SuperSlabs and the bytes
   * no block fits in make the arena; classes and large blocks make the
   * totals. */
  long long used = 0, free_bytes = 0, free_blocks = 0, superslabs = 0;
  const char *at = xml;
  for (;;) {
    long long size = xml_attr(at, "class", "size", NULL);
    if (size < 0)
      break;
    used += size * xml_attr(at, "class", "inuse", NULL);
    free_bytes += size * xml_attr(at, "class", "free", NULL);
    free_blocks += xml_attr(at, "class", "free", NULL);
    superslabs += xml_attr(at, "class", "superslabs", &at);
  }
  ck_assert_int_ge(used, N_SMALL * 48 + N_MID * 3000);
  const long long ss_size = xml_attr(xml, "superslabs", "size", NULL);
  ck_assert_int_eq(ss_size, (long long)HAK_SS_SIZE);
  ck_assert_int_eq(xml_attr(xml, "superslabs", "inuse", NULL), superslabs);
  const long long empty = xml_attr(xml, "superslabs", "empty", NULL);
  ck_assert_int_eq(xml_attr(xml, "superslabs", "mapped", NULL) * ss_size, (long long)m.arena);
  ck_assert_int_eq(superslabs + empty, xml_attr(xml, "superslabs", "mapped", NULL));
  const long long unusable = xml_attr(xml, "total type=\"unusable\"", "size", NULL);
  ck_assert_int_ge(unusable, 0);
  ck_assert_int_eq(used + free_bytes + empty * ss_size + unusable, (long long)m.arena);

  const long long large_usable = xml_attr(xml, "large", "usable", NULL);
  const long long cached = xml_attr(xml, "large", "cached", NULL);
  const long long cached_bytes = xml_attr(xml, "large", "cachedbytes", NULL);
  ck_assert_int_eq(xml_attr(xml, "large", "blocks", NULL), (long long)m.hblks);
  ck_assert_int_eq(xml_attr(xml, "large", "mapped", NULL), (long long)m.hblkhd);
  ck_assert_int_eq(used + large_usable, (long long)m.uordblks);
  ck_assert_int_eq(free_bytes + empty * ss_size + cached_bytes, (long long)m.fordblks);
  ck_assert_int_eq(free_blocks + cached, (long long)m.ordblks);
  ck_assert_int_eq(xml_attr(xml, "total type=\"system\"", "size", NULL), (long long)(m.arena + m.hblkhd));
  ck_assert_int_eq(xml_attr(xml, "total type=\"inuse\"", "size", NULL), (long long)m.uordblks);
  ck_assert_int_eq(xml_attr(xml, "total type=\"free\"", "size", NULL), (long long)m.fordblks);
  ck_assert_int_eq(xml_attr(xml, "total type=\"trimmable\"", "size", NULL), (long long)m.keepcost);
  free_big();
  free_pattern();
}
END_TEST

static char stats_out[1 << 16];

START_TEST(malloc_stats_shows_in_use)
{
  FILE *tmp = tmpfile();
  ck_assert_ptr_nonnull(tmp);
  alloc_pattern();
  char want[160];
  fflush(stderr);
  const int saved = dup(STDERR_FILENO);
  ck_assert_int_ge(saved, 0);
  ck_assert_int_ge(dup2(fileno(tmp), STDERR_FILENO), 0);
  const struct mallinfo2 m = hak_mallinfo2();
  hak_malloc_stats();
  dup2(saved, STDERR_FILENO);
  close(saved);
  ssize_t n = pread(fileno(tmp), stats_out, sizeof stats_out - 1, 0);
  fclose(tmp);
  ck_assert_int_gt(n, 0);
  stats_out[n] = 0;
  snprintf(want, sizeof want, "Total (incl. large blocks):\nsystem bytes     = %12zu\nin use bytes     = %12zu\n",
           m.arena + m.hblkhd, m.uordblks);
  ck_assert_msg(strstr(stats_out, want) != NULL, "no\n%s\nin\n%s", want, stats_out);
  snprintf(want, sizeof want, "blocks           = %12zu\n", m.hblks);
  ck_assert_msg(strstr(stats_out, want) != NULL, "no\n%s\nin\n%s", want, stats_out);
  /* The line of the 48-byte class shows at least our blocks. */
  snprintf(want, sizeof want, "\n%5u%8zu", hak_class_of(48), class_bytes(48));
  const char *line = strstr(stats_out, want);
  ck_assert_msg(line != NULL, "no class line for 48 bytes in\n%s", stats_out);
  unsigned long long ss = 0, in_use = 0;
  ck_assert_int_eq(sscanf(line + strlen(want), "%llu %llu", &ss, &in_use), 2);
  ck_assert_uint_ge(ss, 1);
  ck_assert_uint_ge(in_use, N_SMALL);
  free_big();
  free_pattern();
}
END_TEST

/* The census reads the counts while their owner changes them: a thread
 * allocates and frees (its own blocks and the main thread's) while the
 * main thread asks for the figures. */
static _Atomic int churn_stop;
static void *churn_handoff[256];

static void *churn(void *arg)
{
  (void)arg;
  void *mine[64] = {0};
  unsigned x = 1;
  while (!atomic_load(&churn_stop)) {
    for (unsigned i = 0; i < 64; i++) {
      x = x * 1103515245u + 12345u;
      hak_free(mine[i]);
      mine[i] = hak_malloc(16 + (x >> 16) % 5000);
    }
    for (unsigned i = 0; i < 256; i++)
      hak_free(__atomic_exchange_n(&churn_handoff[i], NULL, __ATOMIC_ACQ_REL));
  }
  for (unsigned i = 0; i < 64; i++)
    hak_free(mine[i]);
  return NULL;
}

START_TEST(figures_while_another_thread_allocates)
{
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, churn, NULL), 0);
  for (unsigned round = 0; round < 2000; round++) {
    void *p = hak_malloc(48 + round % 700);
    void *old = __atomic_exchange_n(&churn_handoff[round % 256], p, __ATOMIC_ACQ_REL);
    hak_free(old);
    const struct mallinfo2 m = hak_mallinfo2();
    ck_assert_uint_eq(m.arena % HAK_SS_SIZE, 0);
    ck_assert_uint_le(m.keepcost, m.fordblks);
    if (round % 500 == 0) {
      static char buf[1 << 16];
      FILE *fp = fmemopen(buf, sizeof buf, "w");
      ck_assert_ptr_nonnull(fp);
      ck_assert_int_eq(hak_malloc_info(0, fp), 0);
      fclose(fp);
    }
  }
  atomic_store(&churn_stop, 1);
  pthread_join(t, NULL);
  for (unsigned i = 0; i < 256; i++)
    hak_free(churn_handoff[i]);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("info");
  TCase *tc = tcase_create("figures");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, mallinfo2_follows_a_pattern);
  tcase_add_test(tc, mallinfo2_agrees_with_stats);
  tcase_add_test(tc, mallinfo_saturates);
  tcase_add_test(tc, malloc_info_options_einval);
  tcase_add_test(tc, malloc_info_xml_matches_mallinfo2);
  tcase_add_test(tc, malloc_stats_shows_in_use);
  tcase_add_test(tc, figures_while_another_thread_allocates);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
#if defined(__SANITIZE_THREAD__)
  /* TSan takes the allocator's locks, which the fork handler holds when
   * libcheck forks a test and sets up again in the child, for locks still
   * held: a thread started in a forked test reports double locks (see
   * test_front.c). In one process, the last test checks the census's
   * reads against the owner's writes. */
  srunner_set_fork_status(sr, CK_NOFORK);
#else
  srunner_set_fork_status(sr, CK_FORK);
#endif
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

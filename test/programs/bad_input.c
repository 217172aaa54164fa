/*
 * test/programs/bad_input.c — what every allocation entry point does with
 * bad input: sizes that overflow or cannot be served, bad alignments,
 * NULL and zero sizes, and pointers it never handed out.
 *
 * The expectations are glibc 2.36's (checked on Debian 12 by building this
 * file without hakmem), since hakmem promises glibc's semantics:
 *   - sizes that cannot be served: NULL and errno ENOMEM, including the
 *     overflowing products of calloc and reallocarray and sizes that
 *     overflow when rounded up; a failed realloc leaves the old block as it
 *     was;
 *   - realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns NULL
 *     with errno untouched; malloc(0) returns a unique pointer; free(NULL)
 *     does nothing, and free never changes errno;
 *   - posix_memalign returns EINVAL for an alignment that is not a power of
 *     two times sizeof(void *), without touching errno, and ENOMEM for
 *     sizes it cannot serve; memalign rounds other alignments up to a power
 *     of two; valloc and pvalloc align to a page and pvalloc rounds the
 *     size up to pages; alignments up to 64 MiB work;
 *   - aligned_alloc with an alignment that is not a power of two: glibc 2.36
 *     rounds it up like memalign (glibc 2.38 and later return NULL with
 *     EINVAL); both are accepted, the block must then be aligned to the next
 *     power of two;
 *   - malloc_usable_size(NULL) is 0; mallopt accepts glibc's parameters
 *     (returns 1); malloc_trim returns 0 or 1.
 * With hakmem (built with -DBAD_INPUT_HAKMEM and linked with it), also:
 *   - the same checks through the hak_* names;
 *   - free_sized and free_aligned_sized;
 *   - a pointer the allocator never handed out (stack, global, interior of
 *     a block, memory mapped directly, even at an address that looks like a
 *     SuperSlab) given to free, realloc or free_sized, and a back-to-back
 *     double free: the process writes a line naming the function and the
 *     address to stderr and aborts (SIGABRT). Each runs in a child process.
 *     Under glibc these only report what happened, except the small-block
 *     double free, which glibc's tcache also aborts on.
 *
 * Uses libcheck, which itself allocates: with hakmem linked in, that is
 * served by hakmem too.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef BAD_INPUT_HAKMEM
#include "hakmem.h"
#define WITH_HAKMEM 1
#else
#define WITH_HAKMEM 0
#endif

/* C23 names that glibc 2.36 does not declare. Weak: NULL without hakmem. */
void free_sized(void *ptr, size_t size) __attribute__((weak));
void free_aligned_sized(void *ptr, size_t alignment, size_t size) __attribute__((weak));

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define ERRNO_SENTINEL 12345

/* Sizes read through volatile objects so that the compiler neither warns
 * about nor folds the calls it can see will fail. */
static volatile size_t v_size_max = SIZE_MAX;
static volatile size_t v_ptrdiff_max = PTRDIFF_MAX;

/* ------------------------------------------------------------------------ */
/* The entry points, as a table: the standard names and, with hakmem, the
 * hak_* names. Calls go through the table so that they are not optimised
 * away (a malloc whose result is only freed may be removed). */

struct api {
  const char *name;
  void *(*malloc)(size_t);
  void (*free)(void *);
  void *(*calloc)(size_t, size_t);
  void *(*realloc)(void *, size_t);
  void *(*reallocarray)(void *, size_t, size_t);
  int (*posix_memalign)(void **, size_t, size_t);
  void *(*aligned_alloc)(size_t, size_t);
  void *(*memalign)(size_t, size_t);
  void *(*valloc)(size_t);
  void *(*pvalloc)(size_t);
  size_t (*usable)(void *);
  void (*free_sized)(void *, size_t);
  void (*free_aligned_sized)(void *, size_t, size_t);
  int (*trim)(size_t);
  int (*mallopt)(int, int);
};

static struct api apis[2];
static int n_apis;

static void setup_apis(void)
{
  apis[0] = (struct api){
    "std", malloc, free, calloc, realloc, reallocarray, posix_memalign,
    aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size,
    free_sized, free_aligned_sized, malloc_trim, mallopt,
  };
  n_apis = 1;
#if WITH_HAKMEM
  apis[1] = (struct api){
    "hak", hak_malloc, hak_free, hak_calloc, hak_realloc, hak_reallocarray,
    hak_posix_memalign, hak_aligned_alloc, hak_memalign, hak_valloc, hak_pvalloc,
    hak_malloc_usable_size, hak_free_sized, hak_free_aligned_sized,
    hak_malloc_trim, hak_mallopt,
  };
  n_apis = 2;
#endif
}

static const struct api *volatile api_sel;
static const struct api *A(int i)
{
  api_sel = &apis[i];
  return api_sel;
}

static bool aligned_to(const void *p, size_t a)
{
  return ((uintptr_t)p & (a - 1)) == 0;
}

static size_t next_pow2(size_t a)
{
  size_t p = 1;
  while (p < a) p <<= 1;
  return p;
}

static void fill(void *p, size_t n, unsigned char seed)
{
  unsigned char *b = p;
  for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(seed + i * 7);
}

static bool filled(const void *p, size_t n, unsigned char seed)
{
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != (unsigned char)(seed + i * 7)) return false;
  return true;
}

/* A NULL with errno ENOMEM from an allocation that must fail. */
#define ck_assert_enomem(call, what, ...) do {                                 \
    errno = 0;                                                                 \
    void *r_ = (call);                                                         \
    int e_ = errno;                                                            \
    ck_assert_msg(r_ == NULL, "%s: " what " returned %p, expected NULL",       \
                  a->name, __VA_ARGS__, r_);                                   \
    ck_assert_msg(e_ == ENOMEM, "%s: " what " set errno %d, expected ENOMEM",  \
                  a->name, __VA_ARGS__, e_);                                   \
  } while (0)

/* ------------------------------------------------------------------------ */
/* Sizes that cannot be served */

static const size_t *huge_sizes(size_t *n)
{
  static size_t s[10];
  s[0] = v_size_max;
  s[1] = v_size_max - 1;
  s[2] = v_size_max - 15;            /* overflows when rounded to 16 */
  s[3] = v_size_max - 4095;          /* ... to a page */
  s[4] = v_size_max - 2 * MiB;       /* ... to a SuperSlab or huge page */
  s[5] = v_ptrdiff_max + 1;
  s[6] = v_ptrdiff_max;
  s[7] = (size_t)1 << 62;
  s[8] = (size_t)1 << 48;            /* more than the address space */
  s[9] = v_size_max / 2 - 100;
  *n = sizeof s / sizeof s[0];
  return s;
}

START_TEST(malloc_too_big)
{
  const struct api *a = A(_i);
  size_t n;
  const size_t *s = huge_sizes(&n);
  for (size_t k = 0; k < n; k++)
    ck_assert_enomem(a->malloc(s[k]), "malloc(%zu)", s[k]);
}
END_TEST

START_TEST(calloc_overflow)
{
  const struct api *a = A(_i);
  const size_t pairs[][2] = {
    { v_size_max / 2 + 1, 2 }, { 2, v_size_max / 2 + 1 }, { v_size_max, v_size_max },
    { (size_t)1 << 32, (size_t)1 << 32 }, { 1, v_size_max }, { v_size_max, 1 },
    { 3, v_size_max / 3 + 1 }, { 65537, v_size_max / 65536 }, { 1, v_ptrdiff_max + 1 },
    { (size_t)1 << 24, (size_t)1 << 24 },   /* 256 TiB: no overflow, no room */
  };
  for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++)
    ck_assert_enomem(a->calloc(pairs[k][0], pairs[k][1]), "calloc(%zu, %zu)",
                     pairs[k][0], pairs[k][1]);
}
END_TEST

START_TEST(reallocarray_overflow)
{
  const struct api *a = A(_i);
  for (size_t size = 100; size <= 2 * MiB; size *= 150) {   /* 100 B, 15000 B */
    unsigned char *p = a->malloc(size);
    ck_assert_ptr_nonnull(p);
    fill(p, size, 3);
    size_t usable = a->usable(p);
    ck_assert_enomem(a->reallocarray(p, v_size_max / 2 + 1, 2), "reallocarray(p, %zu, 2)",
                     v_size_max / 2 + 1);
    ck_assert_enomem(a->reallocarray(p, (size_t)1 << 32, (size_t)1 << 32),
                     "reallocarray(p, %zu, 2^32)", (size_t)1 << 32);
    ck_assert_enomem(a->reallocarray(p, 1, v_size_max), "reallocarray(p, 1, %zu)", v_size_max);
    ck_assert_msg(filled(p, size, 3), "%s: failed reallocarray changed the old block", a->name);
    ck_assert_uint_eq(a->usable(p), usable);
    unsigned char *q = a->reallocarray(p, 2, size);
    ck_assert_msg(q != NULL, "%s: reallocarray(p, 2, %zu) failed", a->name, size);
    ck_assert_msg(filled(q, size, 3), "%s: reallocarray lost the contents", a->name);
    a->free(q);
  }
  ck_assert_enomem(a->reallocarray(NULL, v_size_max, 2), "reallocarray(NULL, %zu, 2)", v_size_max);
  void *z = a->reallocarray(NULL, 0, 5);
  ck_assert_msg(z != NULL, "%s: reallocarray(NULL, 0, 5) returned NULL", a->name);
  a->free(z);
}
END_TEST

START_TEST(realloc_too_big)
{
  const struct api *a = A(_i);
  const size_t old_sizes[] = { 1, 100, 5000, 40 * KiB, 1 * MiB };
  for (size_t j = 0; j < sizeof old_sizes / sizeof old_sizes[0]; j++) {
    size_t size = old_sizes[j];
    unsigned char *p = a->malloc(size);
    ck_assert_ptr_nonnull(p);
    fill(p, size, 9);
    size_t usable = a->usable(p);
    size_t n;
    const size_t *s = huge_sizes(&n);
    for (size_t k = 0; k < n; k++) {
      ck_assert_enomem(a->realloc(p, s[k]), "realloc(block of %zu, %zu)", size, s[k]);
      ck_assert_msg(filled(p, size, 9), "%s: failed realloc(p, %zu) changed the block of %zu",
                    a->name, s[k], size);
      ck_assert_uint_eq(a->usable(p), usable);
    }
    a->free(p);
  }
}
END_TEST

START_TEST(realloc_null_is_malloc)
{
  const struct api *a = A(_i);
  const size_t sizes[] = { 0, 1, 16, 100, 5000, 40 * KiB, 1 * MiB };
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    errno = ERRNO_SENTINEL;
    unsigned char *p = a->realloc(NULL, sizes[k]);
    ck_assert_msg(p != NULL, "%s: realloc(NULL, %zu) returned NULL", a->name, sizes[k]);
    ck_assert_int_eq(errno, ERRNO_SENTINEL);
    ck_assert_msg(a->usable(p) >= sizes[k], "%s: realloc(NULL, %zu): usable %zu",
                  a->name, sizes[k], a->usable(p));
    ck_assert_msg(aligned_to(p, sizes[k] >= 16 ? 16 : 8), "%s: realloc(NULL, %zu) = %p",
                  a->name, sizes[k], (void *)p);
    fill(p, sizes[k], 1);
    a->free(p);
  }
}
END_TEST

/* glibc 2.36 (REALLOC_ZERO_BYTES_FREES): realloc(p, 0) frees p and returns
 * NULL, and leaves errno alone. */
START_TEST(realloc_zero_frees)
{
  const struct api *a = A(_i);
  const size_t sizes[] = { 1, 100, 5000, 40 * KiB, 1 * MiB };
  for (int round = 0; round < 50; round++)
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
      void *p = a->malloc(sizes[k]);
      ck_assert_ptr_nonnull(p);
      fill(p, sizes[k], 5);
      errno = ERRNO_SENTINEL;
      void *q = a->realloc(p, 0);
      int e = errno;
      ck_assert_msg(q == NULL, "%s: realloc(block of %zu, 0) returned %p; glibc frees and returns NULL",
                    a->name, sizes[k], q);
      ck_assert_msg(e == ERRNO_SENTINEL, "%s: realloc(p, 0) changed errno to %d", a->name, e);
    }
}
END_TEST

static int cmp_ptr(const void *x, const void *y)
{
  uintptr_t a = *(const uintptr_t *)x, b = *(const uintptr_t *)y;
  return (a > b) - (a < b);
}

START_TEST(zero_sizes_unique)
{
  const struct api *a = A(_i);
  enum { N = 300 };
  void *p[N];
  for (int k = 0; k < N; k++) {
    errno = ERRNO_SENTINEL;
    switch (k % 3) {
    case 0: p[k] = a->malloc(0); break;
    case 1: p[k] = a->calloc(0, k % 2 ? 0 : v_size_max); break;
    default: p[k] = a->calloc(k, 0); break;
    }
    ck_assert_msg(p[k] != NULL, "%s: allocation %d of size 0 returned NULL", a->name, k);
    ck_assert_int_eq(errno, ERRNO_SENTINEL);
    (void)a->usable(p[k]);
  }
  void *sorted[N];
  memcpy(sorted, p, sizeof p);
  qsort(sorted, N, sizeof sorted[0], cmp_ptr);
  for (int k = 1; k < N; k++)
    ck_assert_msg(sorted[k] != sorted[k - 1], "%s: two live size-0 blocks share %p",
                  a->name, sorted[k]);
  for (int k = 0; k < N; k++) a->free(p[k]);
}
END_TEST

/* free(NULL) does nothing; free never changes errno (glibc >= 2.33, POSIX
 * 2024), even when it unmaps. */
START_TEST(free_keeps_errno)
{
  const struct api *a = A(_i);
  errno = ERRNO_SENTINEL;
  a->free(NULL);
  ck_assert_int_eq(errno, ERRNO_SENTINEL);
  const size_t sizes[] = { 0, 8, 100, 4000, 32 * KiB, 100 * KiB, 4 * MiB, 40 * MiB };
  for (int round = 0; round < 20; round++)
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
      void *p = a->malloc(sizes[k]);
      ck_assert_ptr_nonnull(p);
      errno = ERRNO_SENTINEL;
      a->free(p);
      ck_assert_msg(errno == ERRNO_SENTINEL, "%s: free(block of %zu) set errno to %d",
                    a->name, sizes[k], errno);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Alignments */

START_TEST(posix_memalign_bad_alignment)
{
  const struct api *a = A(_i);
  const size_t bad[] = { 0, 1, 2, 4, 3, 12, 24, 48, 1000, 4097, 3 * MiB,
                         (size_t)1 << 63 | 8, v_size_max };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    void *out = (void *)&out;
    errno = ERRNO_SENTINEL;
    int r = a->posix_memalign(&out, bad[k], 64);
    ck_assert_msg(r == EINVAL, "%s: posix_memalign(align %zu) returned %d, expected EINVAL",
                  a->name, bad[k], r);
    ck_assert_msg(errno == ERRNO_SENTINEL, "%s: posix_memalign(align %zu) set errno to %d",
                  a->name, bad[k], errno);
    ck_assert_msg(out == (void *)&out || out == NULL,
                  "%s: failed posix_memalign stored %p", a->name, out);
  }
}
END_TEST

START_TEST(posix_memalign_too_big)
{
  const struct api *a = A(_i);
  const size_t cases[][2] = {
    { 16, v_size_max }, { 4096, v_size_max - 4095 }, { 64, v_size_max - 63 },
    { MiB, v_ptrdiff_max }, { MiB, v_size_max - MiB + 1 }, { (size_t)1 << 63, 10 },
    { (size_t)1 << 62, 1 }, { 8, (size_t)1 << 62 },
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    void *out = NULL;
    int r = a->posix_memalign(&out, cases[k][0], cases[k][1]);
    ck_assert_msg(r == ENOMEM, "%s: posix_memalign(align %zu, size %zu) returned %d, expected ENOMEM",
                  a->name, cases[k][0], cases[k][1], r);
  }
}
END_TEST

static void check_aligned_block(const struct api *a, const char *fn, void *p, size_t align,
                                size_t size)
{
  ck_assert_msg(p != NULL, "%s: %s(align %zu, size %zu) failed", a->name, fn, align, size);
  ck_assert_msg(aligned_to(p, align), "%s: %s(align %zu, size %zu) = %p is misaligned",
                a->name, fn, align, size, p);
  ck_assert_msg(a->usable(p) >= size, "%s: %s(align %zu, size %zu): usable %zu",
                a->name, fn, align, size, a->usable(p));
  if (size) {
    ((volatile char *)p)[0] = 1;
    ((volatile char *)p)[size - 1] = 2;
  }
  if (size <= 8 * MiB) fill(p, size, 7);
}

START_TEST(posix_memalign_ok)
{
  const struct api *a = A(_i);
  const size_t sizes[] = { 0, 1, 8, 100, 4096, 100 * KiB, 3 * MiB };
  for (size_t align = sizeof(void *); align <= 64 * MiB; align <<= 1)
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
      if (align >= 4 * MiB && k % 3) continue;   /* keep the big ones few */
      void *p = (void *)&p;
      errno = ERRNO_SENTINEL;
      int r = a->posix_memalign(&p, align, sizes[k]);
      ck_assert_msg(r == 0, "%s: posix_memalign(align %zu, size %zu) returned %d",
                    a->name, align, sizes[k], r);
      ck_assert_int_eq(errno, ERRNO_SENTINEL);
      check_aligned_block(a, "posix_memalign", p, align, sizes[k]);
      a->free(p);
    }
}
END_TEST

START_TEST(aligned_alloc_alignments)
{
  const struct api *a = A(_i);
  for (size_t align = 1; align <= 64 * MiB; align <<= 1) {
    size_t sizes[] = { align, 3 * align, 100 };
    for (size_t k = 0; k < 3; k++) {
      if (align >= 4 * MiB && k == 1) continue;
      void *p = a->aligned_alloc(align, sizes[k]);
      check_aligned_block(a, "aligned_alloc", p, align, sizes[k]);
      a->free(p);
    }
  }
  /* Not a power of two: glibc 2.36 rounds up, glibc 2.38 refuses. */
  const size_t odd[] = { 3, 24, 48, 96, 1000, 3 * KiB };
  static int reported;
  for (size_t k = 0; k < sizeof odd / sizeof odd[0]; k++) {
    errno = ERRNO_SENTINEL;
    void *p = a->aligned_alloc(odd[k], 2 * odd[k]);
    if (p == NULL) {
      ck_assert_msg(errno == EINVAL, "%s: aligned_alloc(%zu, %zu) = NULL with errno %d, "
                    "expected EINVAL", a->name, odd[k], 2 * odd[k], errno);
    } else {
      check_aligned_block(a, "aligned_alloc", p, next_pow2(odd[k]), 2 * odd[k]);
      a->free(p);
    }
    if (!reported++)
      fprintf(stderr, "note: %s aligned_alloc(%zu, ...) %s\n", a->name, odd[k],
              p ? "rounds the alignment up (glibc 2.36)" : "fails with EINVAL (glibc >= 2.38)");
  }
  ck_assert_enomem(a->aligned_alloc(16, v_size_max), "aligned_alloc(16, %zu)", v_size_max);
  ck_assert_enomem(a->aligned_alloc(4096, v_size_max - 4095), "aligned_alloc(4096, %zu)",
                   v_size_max - 4095);
  ck_assert_enomem(a->aligned_alloc((size_t)1 << 63, 10), "aligned_alloc(%zu, 10)",
                   (size_t)1 << 63);
  errno = 0;
  void *p = a->aligned_alloc((size_t)1 << 63 | 8, 10);
  ck_assert_msg(p == NULL && errno == EINVAL, "%s: aligned_alloc(2^63 + 8, 10) = %p errno %d,"
                " expected NULL and EINVAL", a->name, p, errno);
}
END_TEST

/* glibc's memalign rounds an alignment that is not a power of two up to
 * the next one; 0 and 1 mean no alignment; above SIZE_MAX / 2 + 1: EINVAL. */
START_TEST(memalign_rounds_up)
{
  const struct api *a = A(_i);
  const size_t odd[] = { 0, 1, 2, 3, 12, 24, 48, 96, 1000, 3 * KiB, 5000, 3 * MiB };
  const size_t sizes[] = { 1, 48, 5000, 200 * KiB };
  for (size_t k = 0; k < sizeof odd / sizeof odd[0]; k++)
    for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
      errno = ERRNO_SENTINEL;
      void *p = a->memalign(odd[k], sizes[j]);
      ck_assert_int_eq(errno, ERRNO_SENTINEL);
      check_aligned_block(a, "memalign", p, odd[k] ? next_pow2(odd[k]) : 1, sizes[j]);
      a->free(p);
    }
  errno = 0;
  void *p = a->memalign((size_t)1 << 63 | 8, 48);
  ck_assert_msg(p == NULL && errno == EINVAL, "%s: memalign(2^63 + 8, 48) = %p errno %d,"
                " expected NULL and EINVAL", a->name, p, errno);
  ck_assert_enomem(a->memalign(16, v_size_max), "memalign(16, %zu)", v_size_max);
  ck_assert_enomem(a->memalign(MiB, v_size_max - MiB), "memalign(1 MiB, %zu)", v_size_max - MiB);
  /* A power of two no allocation can honour: ENOMEM, as aligned_alloc. */
  ck_assert_enomem(a->memalign((size_t)1 << 63, 48), "memalign(%zu, 48)", (size_t)1 << 63);
}
END_TEST

START_TEST(valloc_pvalloc)
{
  const struct api *a = A(_i);
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t sizes[] = { 0, 1, 100, 4095, 4096, 4097, 100 * KiB, 3 * MiB + 5 };
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    void *p = a->valloc(sizes[k]);
    check_aligned_block(a, "valloc", p, page, sizes[k]);
    a->free(p);
    size_t rounded = (sizes[k] + page - 1) / page * page;
    p = a->pvalloc(sizes[k]);
    check_aligned_block(a, "pvalloc", p, page, rounded);
    a->free(p);
  }
  ck_assert_enomem(a->valloc(v_size_max - 10), "valloc(%zu)", v_size_max - 10);
  ck_assert_enomem(a->pvalloc(v_size_max - 10), "pvalloc(%zu)", v_size_max - 10);
  ck_assert_enomem(a->pvalloc(v_size_max - page + 2), "pvalloc(%zu)", v_size_max - page + 2);
  ck_assert_enomem(a->valloc(v_ptrdiff_max), "valloc(%zu)", v_ptrdiff_max);
}
END_TEST

START_TEST(large_alignments)
{
  const struct api *a = A(_i);
  const size_t aligns[] = { MiB, 2 * MiB, 8 * MiB, 64 * MiB };
  const size_t sizes[] = { 1, 4096, MiB + 1, 5 * MiB };
  for (size_t i = 0; i < 4; i++)
    for (size_t j = 0; j < 4; j++) {
      void *p = NULL;
      ck_assert_int_eq(a->posix_memalign(&p, aligns[i], sizes[j]), 0);
      check_aligned_block(a, "posix_memalign", p, aligns[i], sizes[j]);
      void *q = a->aligned_alloc(aligns[i], sizes[j]);
      check_aligned_block(a, "aligned_alloc", q, aligns[i], sizes[j]);
      void *r = a->memalign(aligns[i], sizes[j]);
      check_aligned_block(a, "memalign", r, aligns[i], sizes[j]);
      /* realloc of an aligned block keeps its contents. */
      fill(p, sizes[j], 11);
      void *p2 = a->realloc(p, sizes[j] + 100 * KiB);
      ck_assert_ptr_nonnull(p2);
      ck_assert_msg(filled(p2, sizes[j], 11), "%s: realloc of a %zu-aligned block lost data",
                    a->name, aligns[i]);
      a->free(p2);
      a->free(q);
      a->free(r);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Introspection and tuning */

START_TEST(usable_size)
{
  const struct api *a = A(_i);
  ck_assert_uint_eq(a->usable(NULL), 0);
  for (size_t n = 0; n <= 300 * KiB; n = n < 64 ? n + 1 : n * 5 / 4) {
    void *p = a->malloc(n);
    ck_assert_ptr_nonnull(p);
    size_t u = a->usable(p);
    ck_assert_msg(u >= n, "%s: malloc_usable_size(malloc(%zu)) = %zu", a->name, n, u);
    fill(p, u, 2);                      /* the whole usable size is ours */
    a->free(p);
  }
}
END_TEST

START_TEST(sized_frees)
{
  const struct api *a = A(_i);
  if (a->free_sized == NULL || a->free_aligned_sized == NULL) {
    fprintf(stderr, "note: free_sized / free_aligned_sized not available: skipped\n");
    return;
  }
  a->free_sized(NULL, 0);
  a->free_sized(NULL, 100);
  a->free_aligned_sized(NULL, 64, 0);
  for (int round = 0; round < 3; round++)
    for (size_t n = 0; n <= 2 * MiB; n = n < 64 ? n + 1 : n * 3 / 2) {
      void *p = a->malloc(n);
      ck_assert_ptr_nonnull(p);
      fill(p, n, 4);
      a->free_sized(p, n);
      p = a->calloc(1, n);
      ck_assert_ptr_nonnull(p);
      a->free_sized(p, n);
      size_t align = (size_t)16 << (n % 9);
      size_t an = (n + align - 1) & ~(align - 1);
      p = a->aligned_alloc(align, an);
      check_aligned_block(a, "aligned_alloc", p, align, an);
      a->free_aligned_sized(p, align, an);
    }
  /* After all that, the allocator still hands out good blocks. */
  void *p = a->malloc(100);
  ck_assert_ptr_nonnull(p);
  fill(p, 100, 1);
  ck_assert(filled(p, 100, 1));
  a->free(p);
}
END_TEST

START_TEST(mallopt_known_params)
{
  const struct api *a = A(_i);
  const struct { int param, value; const char *name; } known[] = {
    { M_MXFAST, 64, "M_MXFAST" }, { M_TRIM_THRESHOLD, 128 * 1024, "M_TRIM_THRESHOLD" },
    { M_TOP_PAD, 64 * 1024, "M_TOP_PAD" }, { M_MMAP_THRESHOLD, 256 * 1024, "M_MMAP_THRESHOLD" },
    { M_MMAP_MAX, 65536, "M_MMAP_MAX" }, { M_CHECK_ACTION, 3, "M_CHECK_ACTION" },
    { M_PERTURB, 0, "M_PERTURB" }, { M_ARENA_TEST, 8, "M_ARENA_TEST" },
    { M_ARENA_MAX, 8, "M_ARENA_MAX" },
  };
  for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
    int r = a->mallopt(known[k].param, known[k].value);
    ck_assert_msg(r == 1, "%s: mallopt(%s, %d) returned %d, expected 1", a->name,
                  known[k].name, known[k].value, r);
  }
  void *p = a->malloc(300 * KiB);    /* still works after the tuning */
  ck_assert_ptr_nonnull(p);
  fill(p, 300 * KiB, 1);
  a->free(p);
}
END_TEST

START_TEST(trim)
{
  const struct api *a = A(_i);
  enum { N = 2000 };
  static void *p[N];
  for (int k = 0; k < N; k++) {
    p[k] = a->malloc((size_t)(k % 50) * 97 + (k % 100 == 0 ? 300 * KiB : 1));
    ck_assert_ptr_nonnull(p[k]);
  }
  for (int k = 0; k < N; k++) a->free(p[k]);
  int r = a->trim(0);
  ck_assert_msg(r == 0 || r == 1, "%s: malloc_trim(0) returned %d", a->name, r);
  r = a->trim(MiB);
  ck_assert_msg(r == 0 || r == 1, "%s: malloc_trim(1 MiB) returned %d", a->name, r);
  for (int k = 0; k < N; k++) {
    p[k] = a->malloc((size_t)(k % 50) * 97 + 1);
    ck_assert_ptr_nonnull(p[k]);
    fill(p[k], (size_t)(k % 50) * 97 + 1, 6);
  }
  for (int k = 0; k < N; k++) {
    ck_assert(filled(p[k], (size_t)(k % 50) * 97 + 1, 6));
    a->free(p[k]);
  }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Pointers the allocator never handed out, and double frees: in a child. */

struct child_result {
  int status;          /* from waitpid */
  char err[8192];      /* what the child wrote to stderr (truncated) */
  void *addr;          /* the address the child passed (the child reports it) */
};

enum bad_case {
  BAD_STACK, BAD_GLOBAL, BAD_INTERIOR_SMALL, BAD_INTERIOR_LARGE, BAD_MMAP,
  BAD_MMAP_SS_LIKE, DOUBLE_FREE_SMALL, DOUBLE_FREE_CALLOC, DOUBLE_FREE_LARGE,
  N_BAD_CASES
};
static const char *const bad_case_name[] = {
  "stack address", "global", "interior of a small block", "interior of a large block",
  "memory mapped directly", "mmap at a SuperSlab-like address", "double free (small)",
  "double free (calloc)", "double free (large)",
};

enum bad_fn { FN_FREE, FN_REALLOC, FN_FREE_SIZED, N_BAD_FNS };
static const char *const bad_fn_name[] = { "free", "realloc", "free_sized" };

static char global_buf[512] __attribute__((aligned(64)));

/* Runs in the child: builds the bad pointer, reports it on fd, then hands
 * it to the function. Returns only if the function did not abort. */
static void child_do(const struct api *a, enum bad_case c, enum bad_fn f, size_t size, int fd)
{
  char stack_buf[256] __attribute__((aligned(64)));
  void *bad = NULL;
  unsigned char *p;
  switch (c) {
  case BAD_STACK:
    memset(stack_buf, 0, sizeof stack_buf);
    bad = stack_buf + 64;
    break;
  case BAD_GLOBAL:
    bad = global_buf + 64;
    break;
  case BAD_INTERIOR_SMALL:
    p = a->malloc(size);
    fill(p, size, 1);
    bad = p + 16;
    break;
  case BAD_INTERIOR_LARGE:
    p = a->malloc(size);
    fill(p, size, 1);
    bad = p + 4096;
    break;
  case BAD_MMAP:
    bad = mmap(NULL, 64 * KiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    break;
  case BAD_MMAP_SS_LIKE: {
    /* 1 MiB-aligned region, zero-filled and readable, so that anything
     * reading a "header" there finds plausible zeroes. */
    unsigned char *m = mmap(NULL, 8 * MiB, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uintptr_t base = ((uintptr_t)m + 4 * MiB - 1) & ~(uintptr_t)(4 * MiB - 1);
    bad = (void *)(base + 64 * KiB);
    break;
  }
  case DOUBLE_FREE_SMALL:
  case DOUBLE_FREE_LARGE:
    p = a->malloc(size);
    fill(p, size, 1);
    bad = p;
    a->free(p);
    break;
  case DOUBLE_FREE_CALLOC:
    p = a->calloc(1, size);
    bad = p;
    a->free(p);
    break;
  default:
    break;
  }
  if (write(fd, &bad, sizeof bad) != (ssize_t)sizeof bad) _exit(90);
  switch (f) {
  case FN_FREE: a->free(bad); break;
  case FN_REALLOC: (void)a->realloc(bad, 100); break;
  case FN_FREE_SIZED: a->free_sized(bad, 64); break;
  default: break;
  }
}

static void run_child(const struct api *a, enum bad_case c, enum bad_fn f, size_t size,
                      struct child_result *r)
{
  int err_pipe[2], addr_pipe[2];
  ck_assert_int_eq(pipe(err_pipe), 0);
  ck_assert_int_eq(pipe(addr_pipe), 0);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    struct rlimit no_core = { 0, 0 };
    setrlimit(RLIMIT_CORE, &no_core);
    close(err_pipe[0]);
    close(addr_pipe[0]);
    dup2(err_pipe[1], STDERR_FILENO);
    close(err_pipe[1]);
    child_do(a, c, f, size, addr_pipe[1]);
    _exit(0);
  }
  close(err_pipe[1]);
  close(addr_pipe[1]);
  r->addr = NULL;
  if (read(addr_pipe[0], &r->addr, sizeof r->addr) != (ssize_t)sizeof r->addr) r->addr = NULL;
  close(addr_pipe[0]);
  size_t len = 0;
  for (;;) {
    ssize_t n = read(err_pipe[0], r->err + len, sizeof r->err - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
    if (len == sizeof r->err - 1) {          /* drain the rest */
      char sink[4096];
      while (read(err_pipe[0], sink, sizeof sink) > 0) {}
      break;
    }
  }
  while (len > 0 && r->err[len - 1] == '\n') len--;   /* messages read better */
  r->err[len] = '\0';
  close(err_pipe[0]);
  while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR) {}
}

static const char *describe_status(int st, char *buf, size_t n)
{
  if (WIFSIGNALED(st)) snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
  else snprintf(buf, n, "exited with status %d", WEXITSTATUS(st));
  return buf;
}

/* True when one line of err names fn and shows addr in hexadecimal. */
static bool err_names(const char *err, const char *fn, const void *addr)
{
  char hex[32];
  snprintf(hex, sizeof hex, "%" PRIxPTR, (uintptr_t)addr);
  const char *line = err;
  while (*line) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    char low[1024];
    size_t m = len < sizeof low - 1 ? len : sizeof low - 1;
    for (size_t i = 0; i < m; i++) low[i] = (char)tolower((unsigned char)line[i]);
    low[m] = '\0';
    if (strstr(low, fn) && strstr(low, hex)) return true;
    if (!end) break;
    line = end + 1;
  }
  return false;
}

/* Failures of expect_abort in the running test, reported together at its
 * end (by expect_abort_done) so that one run shows every case missed. */
static char abort_report[8192];

static void report_miss(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report_miss(const char *fmt, ...)
{
  size_t len = strlen(abort_report);
  if (len + 2 >= sizeof abort_report) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(abort_report + len, sizeof abort_report - len - 1, fmt, ap);
  va_end(ap);
  strcat(abort_report, "\n");
}

/* glibc_must_abort: the expectation also holds for glibc (only checked
 * when built without hakmem; with hakmem, abort is always required). */
static void expect_abort(const struct api *a, enum bad_case c, enum bad_fn f, size_t size,
                         bool glibc_must_abort)
{
  static struct child_result r;
  char st[96];
  if (f == FN_FREE_SIZED && a->free_sized == NULL) return;
  run_child(a, c, f, size, &r);
  describe_status(r.status, st, sizeof st);
  bool aborted = WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT;
  if (!WITH_HAKMEM) {
    fprintf(stderr, "note: %s: %s(%s, %zu): %s; stderr: %.200s\n", a->name, bad_fn_name[f],
            bad_case_name[c], size, st, r.err[0] ? r.err : "(nothing)");
    if (glibc_must_abort && !aborted)
      report_miss("%s: %s(%s, block of %zu) %s, expected SIGABRT",
                  a->name, bad_fn_name[f], bad_case_name[c], size, st);
    return;
  }
  if (!aborted)
    report_miss("%s: %s(%p: %s, block of %zu): the process %s, expected an abort (SIGABRT);"
                " stderr: %.300s", a->name, bad_fn_name[f], r.addr, bad_case_name[c], size,
                st, r.err[0] ? r.err : "(nothing)");
  else if (!err_names(r.err, bad_fn_name[f], r.addr))
    report_miss("%s: %s(%p: %s, block of %zu) aborted but no line on stderr names \"%s\" and"
                " the address; stderr: %.300s", a->name, bad_fn_name[f], r.addr,
                bad_case_name[c], size, bad_fn_name[f], r.err);
}

static void expect_abort_begin(void)
{
  abort_report[0] = '\0';
}

static void expect_abort_done(void)
{
  ck_assert_msg(abort_report[0] == '\0', "%s", abort_report);
}

START_TEST(free_foreign_pointers)
{
  const struct api *a = A(_i);
  expect_abort_begin();
  expect_abort(a, BAD_STACK, FN_FREE, 0, false);
  expect_abort(a, BAD_GLOBAL, FN_FREE, 0, false);
  expect_abort(a, BAD_MMAP, FN_FREE, 0, false);
  expect_abort(a, BAD_MMAP_SS_LIKE, FN_FREE, 0, false);
  expect_abort_done();
}
END_TEST

START_TEST(free_interior_pointers)
{
  const struct api *a = A(_i);
  expect_abort_begin();
  const size_t small[] = { 64, 100, 1000, 4000, 20000 };
  for (size_t k = 0; k < sizeof small / sizeof small[0]; k++)
    expect_abort(a, BAD_INTERIOR_SMALL, FN_FREE, small[k], false);
  expect_abort(a, BAD_INTERIOR_LARGE, FN_FREE, 256 * KiB, false);
  expect_abort(a, BAD_INTERIOR_LARGE, FN_FREE, 3 * MiB, false);
  expect_abort_done();
}
END_TEST

START_TEST(other_functions_foreign_pointers)
{
  const struct api *a = A(_i);
  expect_abort_begin();
  expect_abort(a, BAD_STACK, FN_REALLOC, 0, false);
  expect_abort(a, BAD_GLOBAL, FN_REALLOC, 0, false);
  expect_abort(a, BAD_INTERIOR_SMALL, FN_REALLOC, 100, false);
  expect_abort(a, BAD_STACK, FN_FREE_SIZED, 0, false);
  expect_abort(a, BAD_MMAP_SS_LIKE, FN_FREE_SIZED, 0, false);
  expect_abort_done();
}
END_TEST

/* free(p); free(p); back to back: the block is then the most recent one in
 * the thread's cache, which the library means to catch. glibc's tcache
 * catches it too. */
START_TEST(double_free_back_to_back)
{
  const struct api *a = A(_i);
  expect_abort_begin();
  const size_t sizes[] = { 1, 16, 24, 100, 1000, 4000, 32 * KiB };
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
    expect_abort(a, DOUBLE_FREE_SMALL, FN_FREE, sizes[k], sizes[k] <= 1000);
  expect_abort(a, DOUBLE_FREE_CALLOC, FN_FREE, 200, true);
  expect_abort_done();
}
END_TEST

/* A large block is unmapped (or parked for reuse) by the first free; the
 * second must be refused, not crash or corrupt. */
START_TEST(double_free_large)
{
  const struct api *a = A(_i);
  expect_abort_begin();
  expect_abort(a, DOUBLE_FREE_LARGE, FN_FREE, 100 * KiB, false);
  expect_abort(a, DOUBLE_FREE_LARGE, FN_FREE, 4 * MiB, false);
  expect_abort_done();
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *bad_input_suite(void)
{
  Suite *s = suite_create(WITH_HAKMEM ? "bad_input (hakmem)" : "bad_input (without hakmem)");
  struct { const char *name; const TTest *tests[12]; } cases[] = {
    { "sizes", { malloc_too_big, calloc_overflow, reallocarray_overflow, realloc_too_big,
                 realloc_null_is_malloc, realloc_zero_frees, zero_sizes_unique,
                 free_keeps_errno, NULL } },
    { "alignment", { posix_memalign_bad_alignment, posix_memalign_too_big, posix_memalign_ok,
                     aligned_alloc_alignments, memalign_rounds_up, valloc_pvalloc,
                     large_alignments, NULL } },
    { "extras", { usable_size, sized_frees, mallopt_known_params, trim, NULL } },
    { "bad_pointers", { free_foreign_pointers, free_interior_pointers,
                        other_functions_foreign_pointers, double_free_back_to_back,
                        double_free_large, NULL } },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    TCase *tc = tcase_create(cases[i].name);
    tcase_set_timeout(tc, 60);
    for (size_t t = 0; cases[i].tests[t]; t++)
      tcase_add_loop_test(tc, cases[i].tests[t], 0, n_apis);
    suite_add_tcase(s, tc);
  }
  return s;
}

int main(void)
{
  setup_apis();
#if WITH_HAKMEM
  printf("bad_input: hakmem %s [%s]\n", hak_version(), hak_config_string());
#else
  printf("bad_input: built without hakmem (reference run of the expectations)\n");
#endif
  fflush(stdout);
  SRunner *sr = srunner_create(bad_input_suite());
  srunner_run_all(sr, CK_VERBOSE);
  int failures = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

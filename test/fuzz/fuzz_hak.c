/*
 * test/fuzz/fuzz_hak.c — libFuzzer harness for the hak_* entry points.
 *
 * Built by test/fuzz/build.sh with clang, -fsanitize=fuzzer,address and
 * -DHAK_NO_STD_NAMES (the sanitizer owns malloc; the harness calls hak_*).
 * Run with test/fuzz/run.sh SECONDS.
 *
 * Each input is a program of operations on a table of up to 64 live
 * blocks (the shadow model: address, size asked for, alignment asked for,
 * usable size, pattern seed — the harness's own static table, no malloc).
 * Every byte string is a valid program; the operations are:
 *
 *   byte  operation (op % 16)          operands (bytes that follow)
 *   0, 1  hak_malloc                   size(2)
 *   2     hak_calloc                   nmemb(1) size(2)
 *   3     hak_realloc                  slot(1) size(2)   (slot empty: realloc(NULL))
 *   4, 5  hak_free / hak_free_sized    slot(1)
 *   6     hak_posix_memalign           align(1) size(2)
 *   7     hak_aligned_alloc            align(1) size(2)
 *   8     hak_memalign/valloc/pvalloc  align(1) size(2)
 *   9     hand slot to the second thread, which checks and frees it
 *   10    ask the second thread to allocate (and pattern) a block, take it
 *                                      size(2)
 *   11    hak_realloc to 0 (frees)     slot(1)
 *   12    check one block fully        slot(1)
 *   13    hak_malloc_trim(0)
 *   14    hak_reallocarray             slot(1) nmemb(1) size(2)
 *   15    free a run of blocks         slot(1) count(1)
 *
 * size(2): a 16-bit value v; the top two bits pick a range: 0..255 (00),
 * 0..4095 (01), 0..65532 (10, (v & 0x3fff) * 4: around and above the largest
 * size class, 32 KiB), or (11) a large size (v & 0x3fff) * 128 bytes (up to
 * 2 MiB).
 * align(1): a in 0..255; a < 200 gives 2^(a % 17) (1 B .. 64 KiB), the rest
 * odd or zero alignments (invalid: EINVAL expected where glibc gives it).
 *
 * Checked after every operation, against the model: every allocation is
 * aligned as asked (16 bytes for every block of 16 bytes or more),
 * hak_malloc_usable_size is at least the size asked for and never changes
 * while the block lives, the block does not overlap any other live block,
 * calloc's memory is zero, realloc keeps the prefix, a failed call leaves
 * the block intact and sets ENOMEM/EINVAL as glibc does; every block's
 * pattern is checked before it is freed, reallocated or handed over, and
 * all live blocks are checked every 16 operations. Total live bytes are
 * capped at 32 MiB (larger requests are skipped). At the end of each input
 * every block is freed and the second thread is idle again, so inputs do
 * not depend on each other; after the first input and every 128th, both
 * threads trim and no SuperSlab and no large block may be left (see
 * leak_check).
 */
#include "hakmem.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS      64
#define LIVE_MAX   ((size_t)32 << 20)
#define ALL_EVERY  16

typedef struct blk {
  unsigned char *p;
  size_t n;       /* size asked for */
  size_t align;   /* alignment asked for (0: none) */
  size_t usable;  /* hak_malloc_usable_size at allocation */
  uint8_t seed;
} blk_t;

static blk_t tab[SLOTS];
static size_t live_bytes;

__attribute__((noreturn, format(printf, 1, 2))) static void bug(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fuzz_hak: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  abort();
}

/* The pattern loops are not the code under test: no coverage feedback
 * (their comparisons would flood the fuzzer's comparison tracing). */
#define NOCOV __attribute__((no_sanitize("coverage")))

/* ---- Patterns: every byte of small blocks; ends and a stride of large. ---- */

static inline unsigned char pb(uint8_t seed, size_t i) { return (unsigned char)(seed + i * 31 + (i >> 8)); }

#define FULL_MAX 8192u
/* Above FULL_MAX: the first and last 512 bytes and one byte every STRIDE
 * (a prime a little under 64 KiB, so the bytes fall at varying page
 * offsets); touching every page of every large block would make the page
 * faults, not the allocator, the cost of an input. */
#define STRIDE   65521u

NOCOV static void fill(unsigned char *p, size_t n, uint8_t seed)
{
  if (n <= FULL_MAX) {
    for (size_t i = 0; i < n; i++)
      p[i] = pb(seed, i);
    return;
  }
  for (size_t i = 0; i < 512; i++)
    p[i] = pb(seed, i);
  for (size_t i = n - 512; i < n; i++)
    p[i] = pb(seed, i);
  for (size_t i = 512; i < n - 512; i += STRIDE)
    p[i] = pb(seed, i);
}

/* First offset below lim that does not match, or (size_t)-1. */
NOCOV static size_t verify(const unsigned char *p, size_t n, uint8_t seed, size_t lim)
{
  if (lim > n)
    lim = n;
  if (n <= FULL_MAX) {
    for (size_t i = 0; i < lim; i++)
      if (p[i] != pb(seed, i))
        return i;
    return (size_t)-1;
  }
  for (size_t i = 0; i < 512 && i < lim; i++)
    if (p[i] != pb(seed, i))
      return i;
  if (lim == n)
    for (size_t i = n - 512; i < n; i++)
      if (p[i] != pb(seed, i))
        return i;
  for (size_t i = 512; i < n - 512 && i < lim; i += STRIDE)
    if (p[i] != pb(seed, i))
      return i;
  return (size_t)-1;
}

static void check_blk(const blk_t *b, const char *when)
{
  size_t off = verify(b->p, b->n, b->seed, b->n);
  if (off != (size_t)-1)
    bug("%s: block %p (%zu bytes) corrupted at offset %zu", when, (void *)b->p, b->n, off);
  size_t u = hak_malloc_usable_size(b->p);
  if (u != b->usable)
    bug("%s: hak_malloc_usable_size(%p) changed from %zu to %zu", when, (void *)b->p, b->usable, u);
}

/* ---- The second thread ------------------------------------------------------ */

/* One request at a time, handed over under a mutex: the worker either
 * frees the given block or allocates one of the given size. */
static pthread_mutex_t w_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t w_cond = PTHREAD_COND_INITIALIZER;
static enum { W_IDLE, W_FREE, W_ALLOC, W_TRIM, W_DONE } w_state = W_IDLE;
static blk_t w_blk;
static bool w_started;

static void *worker(void *arg)
{
  (void)arg;
  pthread_mutex_lock(&w_lock);
  for (;;) {
    while (w_state == W_IDLE || w_state == W_DONE)
      pthread_cond_wait(&w_cond, &w_lock);
    if (w_state == W_FREE) {
      check_blk(&w_blk, "freed by the second thread");
      hak_free(w_blk.p);
    } else if (w_state == W_TRIM) {
      hak_malloc_trim(0);
    } else {
      w_blk.p = hak_malloc(w_blk.n);
      if (w_blk.p) {
        if (w_blk.n >= 16 && (uintptr_t)w_blk.p % 16)
          bug("hak_malloc(%zu) in the second thread = %p: not 16-byte aligned", w_blk.n, (void *)w_blk.p);
        w_blk.usable = hak_malloc_usable_size(w_blk.p);
        if (w_blk.usable < w_blk.n)
          bug("hak_malloc(%zu) in the second thread: usable %zu", w_blk.n, w_blk.usable);
        fill(w_blk.p, w_blk.n, w_blk.seed);
      }
    }
    w_state = W_DONE;
    pthread_cond_broadcast(&w_cond);
  }
  return NULL;
}

static void worker_do(int what)
{
  if (!w_started) {
    pthread_t th;
    if (pthread_create(&th, NULL, worker, NULL) != 0)
      bug("pthread_create failed");
    pthread_detach(th);
    w_started = true;
  }
  pthread_mutex_lock(&w_lock);
  w_state = what;
  pthread_cond_broadcast(&w_cond);
  while (w_state != W_DONE)
    pthread_cond_wait(&w_cond, &w_lock);
  w_state = W_IDLE;
  pthread_mutex_unlock(&w_lock);
}

/* ---- The model ------------------------------------------------------------- */

typedef struct in {
  const uint8_t *d;
  size_t n, i;
} in_t;

static inline unsigned get8(in_t *in) { return in->i < in->n ? in->d[in->i++] : 0; }

static size_t get_size(in_t *in)
{
  unsigned v = get8(in) << 8;
  v |= get8(in);
  switch (v >> 14) {
  case 0: return v & 0xff;
  case 1: return v & 0xfff;
  case 2: return (v & 0x3fff) * 4; /* 0..65532 */
  default: return (size_t)(v & 0x3fff) * 128;
  }
}

static size_t get_align(in_t *in, bool *valid)
{
  unsigned a = get8(in);
  if (a < 200) {
    *valid = true;
    return (size_t)1 << (a % 17);
  }
  *valid = false;
  static const size_t odd[] = {0, 3, 24, 48, 100, 4097, 12288, (size_t)1 << 63};
  return odd[a % 8];
}

static blk_t *slot(in_t *in) { return &tab[get8(in) % SLOTS]; }

static blk_t *free_slot(void)
{
  for (unsigned i = 0; i < SLOTS; i++)
    if (!tab[i].p)
      return &tab[i];
  return NULL;
}

static void drop(blk_t *b)
{
  live_bytes -= b->n;
  memset(b, 0, sizeof *b);
}

static void release(blk_t *b, bool sized)
{
  check_blk(b, "free");
  if (sized)
    hak_free_sized(b->p, b->n);
  else
    hak_free(b->p);
  drop(b);
}

/* Record a new block, checking it against the model. */
NOCOV static void adopt(blk_t *b, void *p, size_t n, size_t align, uint8_t seed, const char *fn, bool zero)
{
  unsigned char *q = p;
  if (n >= 16 && (uintptr_t)q % 16)
    bug("%s(%zu) = %p: not 16-byte aligned", fn, n, p);
  if (align > 1 && (uintptr_t)q % align)
    bug("%s(%zu, align %zu) = %p: misaligned", fn, n, align, p);
  size_t u = hak_malloc_usable_size(q);
  if (u < n)
    bug("%s(%zu) = %p: usable size %zu", fn, n, p, u);
  for (unsigned i = 0; i < SLOTS; i++) {
    const blk_t *o = &tab[i];
    if (o->p && o != b && q < o->p + o->usable && o->p < q + u)
      bug("%s(%zu) = %p (usable %zu) overlaps live block %p (usable %zu)", fn, n, p, u, (void *)o->p, o->usable);
  }
  if (zero)
    for (size_t i = 0; i < n; i += (n > 65536 ? STRIDE : 1))
      if (q[i])
        bug("%s(%zu) = %p: byte %zu is %u, not zero", fn, n, p, i, q[i]);
  b->p = q;
  b->n = n;
  b->align = align;
  b->usable = u;
  b->seed = seed;
  live_bytes += n;
  fill(q, n, seed);
}

static bool fits(size_t n) { return n <= LIVE_MAX && live_bytes + n <= LIVE_MAX; }

static void expect_err(void *p, int want, const char *what, size_t a, size_t n)
{
  if (p)
    bug("%s(align %zu, %zu) succeeded; expected an error", what, a, n);
  if (errno != want)
    bug("%s(align %zu, %zu): errno %d, expected %d", what, a, n, errno, want);
}

static void run_op(in_t *in, unsigned op, uint8_t seed)
{
  switch (op % 16) {
  case 0:
  case 1: {
    size_t n = get_size(in);
    blk_t *b = free_slot();
    if (!b || !fits(n))
      return;
    void *p = hak_malloc(n);
    if (!p)
      bug("hak_malloc(%zu) failed", n);
    adopt(b, p, n, 0, seed, "hak_malloc", false);
    return;
  }
  case 2: {
    size_t m = get8(in), s = get_size(in);
    blk_t *b = free_slot();
    if (!b || !fits(m * s))
      return;
    void *p = hak_calloc(m, s);
    if (!p)
      bug("hak_calloc(%zu, %zu) failed", m, s);
    adopt(b, p, m * s, 0, seed, "hak_calloc", true);
    return;
  }
  case 3:
  case 14: {
    blk_t *b = slot(in);
    size_t m = op % 16 == 14 ? get8(in) : 1;
    size_t n = get_size(in) * m;
    if (b->p ? n > LIVE_MAX || live_bytes - b->n + n > LIVE_MAX : !fits(n))
      return;
    if (!b->p) {
      void *p = op % 16 == 14 ? hak_reallocarray(NULL, m, n / (m ? m : 1)) : hak_realloc(NULL, n);
      if (!p)
        bug("hak_realloc(NULL, %zu) failed", n);
      adopt(b, p, n, 0, seed, "hak_realloc(NULL)", false);
      return;
    }
    if (n == 0)
      return; /* op 11 covers realloc to 0 */
    check_blk(b, "realloc");
    size_t old = b->n;
    uint8_t oseed = b->seed;
    unsigned char *q = op % 16 == 14 ? hak_reallocarray(b->p, m, n / (m ? m : 1)) : hak_realloc(b->p, n);
    if (!q)
      bug("hak_realloc(%p, %zu) failed", (void *)b->p, n);
    size_t keep = old < n ? old : n;
    size_t off = verify(q, old, oseed, keep);
    if (off != (size_t)-1)
      bug("hak_realloc(%zu -> %zu) lost the contents at offset %zu", old, n, off);
    live_bytes -= old;
    b->p = NULL;
    adopt(b, q, n, 0, seed, "hak_realloc", false);
    return;
  }
  case 4:
  case 5: {
    blk_t *b = slot(in);
    if (b->p)
      release(b, op % 16 == 5);
    return;
  }
  case 6: {
    bool valid;
    size_t a = get_align(in, &valid), n = get_size(in);
    blk_t *b = free_slot();
    if (!b || !fits(n))
      return;
    void *p = (void *)&tab;
    int r = hak_posix_memalign(&p, a, n);
    (void)valid;
    bool ok_align = a && !(a & (a - 1)) && a >= sizeof(void *);
    if (ok_align && a > ((size_t)1 << 62)) {
      /* a power of two, but no block can be that aligned */
      if (r != ENOMEM)
        bug("hak_posix_memalign(align %zu, %zu) returned %d, expected ENOMEM", a, n, r);
      return;
    }
    if (!ok_align) {
      if (r != EINVAL)
        bug("hak_posix_memalign(align %zu, %zu) returned %d, expected EINVAL", a, n, r);
      if (p != (void *)&tab)
        bug("hak_posix_memalign failed but changed *out");
      return;
    }
    if (r != 0)
      bug("hak_posix_memalign(align %zu, %zu) returned %d", a, n, r);
    adopt(b, p, n, a, seed, "hak_posix_memalign", false);
    return;
  }
  case 7: {
    bool valid;
    size_t a = get_align(in, &valid), n = get_size(in);
    blk_t *b = free_slot();
    if (!b || !fits(n))
      return;
    errno = 0;
    void *p = hak_aligned_alloc(a, n);
    if (!valid) {
      /* glibc 2.36: a power of two is required (0 is not one) */
      if (a == 0 || (a & (a - 1))) {
        expect_err(p, EINVAL, "hak_aligned_alloc", a, n);
        return;
      }
    }
    if (!p) {
      if (a > ((size_t)1 << 62) && errno == ENOMEM)
        return;
      bug("hak_aligned_alloc(%zu, %zu) failed (errno %d)", a, n, errno);
    }
    adopt(b, p, n, a, seed, "hak_aligned_alloc", false);
    return;
  }
  case 8: {
    bool valid;
    size_t a = get_align(in, &valid), n = get_size(in);
    blk_t *b = free_slot();
    if (!b || !fits(n + 8192))
      return;
    unsigned which = seed % 3;
    errno = 0;
    void *p;
    size_t want_align;
    if (which == 0) {
      p = hak_memalign(a, n);
      /* glibc rounds a non-power of two up; huge ones fail */
      want_align = 1;
      while (want_align < a && want_align < ((size_t)1 << 62))
        want_align <<= 1;
      if (!p) {
        if (a > ((size_t)1 << 62) && (errno == EINVAL || errno == ENOMEM))
          return;
        bug("hak_memalign(%zu, %zu) failed (errno %d)", a, n, errno);
      }
    } else if (which == 1) {
      p = hak_valloc(n);
      want_align = 4096;
      if (!p)
        bug("hak_valloc(%zu) failed", n);
    } else {
      p = hak_pvalloc(n);
      want_align = 4096;
      if (!p)
        bug("hak_pvalloc(%zu) failed", n);
      size_t rounded = n ? (n + 4095) & ~(size_t)4095 : 4096;
      if (hak_malloc_usable_size(p) < rounded)
        bug("hak_pvalloc(%zu): usable %zu < %zu", n, hak_malloc_usable_size(p), rounded);
    }
    adopt(b, p, n, want_align, seed, which == 0 ? "hak_memalign" : which == 1 ? "hak_valloc" : "hak_pvalloc",
          false);
    return;
  }
  case 9: {
    blk_t *b = slot(in);
    if (!b->p)
      return;
    check_blk(b, "hand-off");
    w_blk = *b;
    worker_do(W_FREE);
    drop(b);
    return;
  }
  case 10: {
    size_t n = get_size(in);
    blk_t *b = free_slot();
    if (!b || !fits(n))
      return;
    w_blk.n = n;
    w_blk.seed = seed;
    worker_do(W_ALLOC);
    if (!w_blk.p)
      bug("hak_malloc(%zu) in the second thread failed", n);
    /* the worker patterned it; check the placement against the model */
    for (unsigned i = 0; i < SLOTS; i++) {
      const blk_t *o = &tab[i];
      if (o->p && w_blk.p < o->p + o->usable && o->p < w_blk.p + w_blk.usable)
        bug("block %p from the second thread overlaps live block %p", (void *)w_blk.p, (void *)o->p);
    }
    *b = w_blk;
    live_bytes += n;
    check_blk(b, "taken from the second thread");
    return;
  }
  case 11: {
    blk_t *b = slot(in);
    if (!b->p)
      return;
    check_blk(b, "realloc to 0");
    if (hak_realloc(b->p, 0) != NULL)
      bug("hak_realloc(p, 0) did not return NULL");
    drop(b);
    return;
  }
  case 12: {
    blk_t *b = slot(in);
    if (b->p)
      check_blk(b, "check");
    return;
  }
  case 13:
    hak_malloc_trim(0);
    return;
  case 15: {
    unsigned first = get8(in) % SLOTS, count = get8(in) % 16;
    for (unsigned i = 0; i < count; i++) {
      blk_t *b = &tab[(first + i) % SLOTS];
      if (b->p)
        release(b, false);
    }
    return;
  }
  }
}

/* No block lost: with every block freed, and each thread's caches and
 * pools trimmed (the main thread again last, to unmap what the second
 * thread's trim released), no SuperSlab may be left and every large block
 * allocated must have been freed. Run after the first input and every
 * 128th after it (a trim unmaps the caches, which makes the next input
 * slower): a crash file, run alone, is always checked. */
static unsigned long inputs_run;

static void leak_check(void)
{
  hak_malloc_trim(0);
  if (w_started)
    worker_do(W_TRIM);
  hak_malloc_trim(0);
  unsigned long long m, u, la, lf;
  if (hak_stats_get("superslabs_mapped", &m) != 0 || hak_stats_get("superslabs_unmapped", &u) != 0 ||
      hak_stats_get("large_allocs", &la) != 0 || hak_stats_get("large_frees", &lf) != 0)
    return; /* statistics compiled out */
  if (m != u)
    bug("leak: %llu SuperSlabs still mapped with every block freed and both threads trimmed "
        "(%llu mapped, %llu unmapped)", m - u, m, u);
  if (la != lf)
    bug("leak: %llu large blocks allocated, %llu freed, with every block freed", la, lf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  in_t in = {data, size, 0};
  unsigned ops = 0;
  while (in.i < in.n) {
    unsigned op = get8(&in);
    run_op(&in, op, (uint8_t)(in.i * 13 + ops));
    if (++ops % ALL_EVERY == 0)
      for (unsigned i = 0; i < SLOTS; i++)
        if (tab[i].p)
          check_blk(&tab[i], "periodic check");
  }
  for (unsigned i = 0; i < SLOTS; i++)
    if (tab[i].p)
      release(&tab[i], false);
  if (live_bytes != 0)
    bug("model out of step: %zu live bytes after freeing everything", live_bytes);
  if (inputs_run++ % 128 == 0)
    leak_check();
  return 0;
}

/*
 * test/programs/stress_mt.c — multi-threaded stress of the standard
 * allocation functions, served by hakmem because the program is linked with
 * it (or by whatever library is preloaded in front of it).
 *
 * Each of NTHREADS threads runs a fixed number of random operations on its
 * own table of live blocks: malloc, calloc, posix_memalign, aligned_alloc,
 * memalign, realloc, free (and free_sized / free_aligned_sized when the
 * library has them), and hand-offs of blocks through a shared array of
 * atomic slots, so that many blocks are freed or reallocated by a thread
 * other than the one that allocated them. Sizes: mostly 1..1024 bytes, some
 * up to 64 KiB, a few up to 1 MiB.
 *
 * Every block carries a pattern derived from (address, usable size, seed)
 * over its whole usable size (all of it for blocks up to 8 KiB, the ends and
 * one stripe per page above), checked before every free, realloc and
 * hand-off; realloc must keep the old prefix. Checked at each allocation:
 * the alignment asked for (and 16 bytes for every block of 16 bytes or
 * more), malloc_usable_size >= the size asked for, calloc's zeroes; and at
 * each free, that the usable size has not changed.
 *
 * At the end every block is freed and, in builds with statistics, the
 * counters read with hak_stats_get must have moved.
 *
 * Built with -DSTRESS_WITH_HAKMEM (linked with hakmem) or without it (any
 * malloc, for trying the test itself against glibc). Exit 0 on success;
 * a message on stderr and exit 1 on the first mismatch.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef STRESS_WITH_HAKMEM
#include "hakmem.h"
#endif

/* C23 names; glibc 2.36 does not declare them. Weak, so the program also
 * links against a malloc that lacks them. */
void free_sized(void *ptr, size_t size) __attribute__((weak));
void free_aligned_sized(void *ptr, size_t alignment, size_t size) __attribute__((weak));

#define NTHREADS        4
#define DEFAULT_OPS     300000L   /* per thread */
#define LOCAL_SLOTS     512
#define SHARED_SLOTS    256
#define FULL_CHECK_MAX  8192      /* blocks up to this are patterned fully */
#define STRIPE          64        /* bytes patterned per page above it */

enum how { HOW_MALLOC, HOW_CALLOC, HOW_POSIX_MEMALIGN, HOW_ALIGNED_ALLOC,
           HOW_MEMALIGN, HOW_REALLOC };
static const char *const how_name[] = { "malloc", "calloc", "posix_memalign",
                                        "aligned_alloc", "memalign", "realloc" };

/* What a thread knows about a live block. The record is itself allocated
 * with malloc and travels with the block between threads. */
struct blk {
  unsigned char *p;
  size_t size;        /* size asked for */
  size_t usable;      /* malloc_usable_size at allocation */
  size_t align;       /* alignment asked for (0: none) */
  uint64_t seed;
  enum how how;
  int owner;          /* thread that allocated (or last reallocated) it */
};

static _Atomic(struct blk *) shared_slot[SHARED_SLOTS];
static long ops_per_thread = DEFAULT_OPS;
static atomic_int failed;

struct counts {
  unsigned long allocs, frees, reallocs, handoffs, foreign_frees, sized_frees;
};

/* ------------------------------------------------------------------------ */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  atomic_store(&failed, 1);
  fprintf(stderr, "stress_mt: FAIL: %s\n", buf);
  fflush(stderr);
  _exit(1);
}

static inline uint64_t mix64(uint64_t x)
{
  x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27; x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

static inline uint64_t rnd(uint64_t *s)      /* xorshift64* */
{
  uint64_t x = *s;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dULL;
}

static size_t random_size(uint64_t *s)
{
  uint64_t r = rnd(s) % 1000;
  if (r < 900) return 1 + rnd(s) % 1024;                  /* 90%: small */
  if (r < 995) return 1025 + rnd(s) % (64 * 1024 - 1024); /* 9.5%: to 64 KiB */
  return 64 * 1024 + rnd(s) % (1024 * 1024 - 64 * 1024 + 1); /* 0.5%: to 1 MiB */
}

/* The patterned parts of a block of usable size u: [0, u) when small;
 * otherwise the first and last 512 bytes and STRIPE bytes at each page. */
typedef void (*range_fn)(unsigned char *p, size_t from, size_t to, uint64_t key,
                         const struct blk *b, const char *what);

static void for_each_range(unsigned char *p, size_t u, size_t limit, uint64_t key,
                           range_fn fn, const struct blk *b, const char *what)
{
  if (limit > u) limit = u;
  if (u <= FULL_CHECK_MAX) {
    fn(p, 0, limit, key, b, what);
    return;
  }
  fn(p, 0, limit < 512 ? limit : 512, key, b, what);
  for (size_t off = 4096; off + STRIPE <= u - 512; off += 4096)
    if (off < limit) fn(p, off, off + STRIPE < limit ? off + STRIPE : limit, key, b, what);
  if (u - 512 < limit) fn(p, u - 512, limit, key, b, what);
}

static inline unsigned char pattern_byte(uint64_t key, size_t i)
{
  return (unsigned char)(mix64(key + (i >> 3)) >> ((i & 7) * 8));
}

static void fill_range(unsigned char *p, size_t from, size_t to, uint64_t key,
                       const struct blk *b, const char *what)
{
  (void)b; (void)what;
  size_t i = from;
  for (; i < to && (i & 7); i++) p[i] = pattern_byte(key, i);
  for (; i + 8 <= to; i += 8) {
    uint64_t w = mix64(key + (i >> 3));
    memcpy(p + i, &w, 8);
  }
  for (; i < to; i++) p[i] = pattern_byte(key, i);
}

static void check_range(unsigned char *p, size_t from, size_t to, uint64_t key,
                        const struct blk *b, const char *what)
{
  for (size_t i = from; i < to; i++) {
    unsigned char want = pattern_byte(key, i);
    if (p[i] != want)
      die("%s: block %p (size %zu, usable %zu, from %s by thread %d) byte %zu is 0x%02x,"
          " expected 0x%02x: overwritten or handed out twice",
          what, (void *)b->p, b->size, b->usable, how_name[b->how], b->owner, i, p[i], want);
  }
}

static void zero_range(unsigned char *p, size_t from, size_t to, uint64_t key,
                       const struct blk *b, const char *what)
{
  (void)key;
  for (size_t i = from; i < to; i++)
    if (p[i] != 0)
      die("%s: calloc block %p (size %zu) byte %zu is 0x%02x, not zero",
          what, (void *)b->p, b->size, i, p[i]);
}

static uint64_t key_of(const struct blk *b)
{
  return mix64((uint64_t)(uintptr_t)b->p ^ mix64(b->usable) ^ b->seed);
}

static void fill_block(struct blk *b)
{
  for_each_range(b->p, b->usable, b->usable, key_of(b), fill_range, b, "fill");
}

static void check_block(const struct blk *b, const char *what)
{
  size_t u = malloc_usable_size(b->p);
  if (u != b->usable)
    die("%s: malloc_usable_size(%p) changed from %zu to %zu (block of %zu from %s)",
        what, (void *)b->p, b->usable, u, b->size, how_name[b->how]);
  for_each_range(b->p, b->usable, b->usable, key_of(b), check_range, b, what);
}

/* ------------------------------------------------------------------------ */

static void check_new(struct blk *b, const char *what)
{
  if (b->p == NULL)
    die("%s(%zu, align %zu) returned NULL (errno %d)", what, b->size, b->align, errno);
  uintptr_t a = (uintptr_t)b->p;
  size_t need = 16;
  if (b->size < 16) {                 /* fundamental alignment of what fits */
    need = 1;
    while (need * 2 <= b->size) need *= 2;
  }
  if (b->align > need) need = b->align;
  if (a % need != 0)
    die("%s(%zu, align %zu) returned %p, not aligned to %zu", what, b->size, b->align,
        (void *)b->p, need);
  b->usable = malloc_usable_size(b->p);
  if (b->usable < b->size)
    die("%s(%zu): malloc_usable_size(%p) = %zu is less than the size asked for",
        what, b->size, (void *)b->p, b->usable);
}

static struct blk *new_block(uint64_t *s, int self, struct counts *c)
{
  struct blk *b = malloc(sizeof *b);
  if (b == NULL) die("malloc(%zu) for a record returned NULL", sizeof *b);
  memset(b, 0, sizeof *b);
  b->size = random_size(s);
  b->seed = rnd(s);
  b->owner = self;
  uint64_t r = rnd(s) % 100;
  if (r < 70) {
    b->how = HOW_MALLOC;
    b->p = malloc(b->size);
  } else if (r < 82) {
    b->how = HOW_CALLOC;
    size_t n = 1 + rnd(s) % 8;
    b->size = (b->size + n - 1) / n * n;
    b->p = calloc(n, b->size / n);
  } else if (r < 90) {
    b->how = HOW_POSIX_MEMALIGN;
    b->align = sizeof(void *) << (rnd(s) % (rnd(s) % 50 == 0 ? 18 : 10)); /* 8 .. 1 MiB */
    void *p = NULL;
    int e = posix_memalign(&p, b->align, b->size);
    if (e != 0) die("posix_memalign(%zu, %zu) returned %d", b->align, b->size, e);
    b->p = p;
  } else if (r < 96) {
    b->how = HOW_ALIGNED_ALLOC;
    b->align = (size_t)16 << (rnd(s) % 9);                       /* 16 .. 4096 */
    b->size = (b->size + b->align - 1) & ~(b->align - 1); /* C11 wants a multiple */
    b->p = aligned_alloc(b->align, b->size);
  } else {
    b->how = HOW_MEMALIGN;
    b->align = (size_t)32 << (rnd(s) % 8);                       /* 32 .. 4096 */
    b->p = memalign(b->align, b->size);
  }
  check_new(b, how_name[b->how]);
  if (b->how == HOW_CALLOC)
    for_each_range(b->p, b->size, b->size, 0, zero_range, b, "calloc");
  fill_block(b);
  c->allocs++;
  return b;
}

static void free_block(struct blk *b, uint64_t *s, int self, struct counts *c)
{
  check_block(b, "free");
  if (b->owner != self) c->foreign_frees++;
  uint64_t r = rnd(s) % 4;
  if (r == 0 && b->how == HOW_ALIGNED_ALLOC && free_aligned_sized) {
    free_aligned_sized(b->p, b->align, b->size);
    c->sized_frees++;
  } else if (r == 0 && b->align == 0 && free_sized) {
    free_sized(b->p, b->size);
    c->sized_frees++;
  } else {
    free(b->p);
  }
  free(b);
  c->frees++;
}

static void realloc_block(struct blk *b, uint64_t *s, int self, struct counts *c)
{
  check_block(b, "realloc (before)");
  struct blk old = *b;
  const uint64_t old_key = key_of(&old); /* from the old address, before it is freed */
  size_t n = rnd(s) % 4 == 0 ? b->size + rnd(s) % 64 : random_size(s); /* some in place */
  errno = 0;
  void *np = realloc(b->p, n);
  if (np == NULL) die("realloc(%p, %zu) returned NULL (errno %d)", (void *)b->p, n, errno);
  b->p = np;
  b->size = n;
  b->align = 0;                        /* realloc keeps only malloc's alignment */
  b->how = HOW_REALLOC;
  b->owner = self;
  check_new(b, "realloc");
  /* The old contents up to the smaller size, with the old block's pattern
   * (reported at the new address: the old one is no longer a pointer). */
  size_t keep = old.size < n ? old.size : n;
  old.p = np;
  for_each_range(b->p, old.usable, keep, old_key, check_range, &old,
                 "realloc (kept prefix)");
  b->seed = rnd(s);
  fill_block(b);
  c->reallocs++;
}

struct thread_arg { int id; struct counts counts; };

static void *worker(void *argp)
{
  struct thread_arg *arg = argp;
  int self = arg->id;
  struct counts *c = &arg->counts;
  uint64_t s = 0x9e3779b97f4a7c15ULL * (uint64_t)(self + 1);
  struct blk *local[LOCAL_SLOTS] = { 0 };

  for (long op = 0; op < ops_per_thread && !atomic_load_explicit(&failed, memory_order_relaxed); op++) {
    unsigned i = (unsigned)(rnd(&s) % LOCAL_SLOTS);
    uint64_t r = rnd(&s) % 100;
    if (r < 40) {                                   /* allocate */
      if (local[i]) free_block(local[i], &s, self, c);
      local[i] = new_block(&s, self, c);
    } else if (r < 60) {                            /* free */
      if (local[i]) free_block(local[i], &s, self, c);
      local[i] = NULL;
    } else if (r < 75) {                            /* realloc */
      if (local[i]) realloc_block(local[i], &s, self, c);
      else local[i] = new_block(&s, self, c);
    } else {                                        /* hand off */
      if (local[i]) check_block(local[i], "hand-off (out)");
      unsigned j = (unsigned)(rnd(&s) % SHARED_SLOTS);
      struct blk *got = atomic_exchange(&shared_slot[j], local[i]);
      if (got) check_block(got, "hand-off (in)");
      local[i] = got;
      c->handoffs++;
    }
  }
  for (unsigned i = 0; i < LOCAL_SLOTS; i++)
    if (local[i]) free_block(local[i], &s, self, c);
  return NULL;
}

/* ------------------------------------------------------------------------ */

#ifdef STRESS_WITH_HAKMEM
static unsigned long long stat_or_die(const char *name)
{
  unsigned long long v = 0;
  if (hak_stats_get(name, &v) != 0) die("hak_stats_get(\"%s\") failed", name);
  return v;
}
#endif

/* Names the object that defines malloc for this process. */
static const char *malloc_provider(void)
{
  Dl_info info;
  void *sym = dlsym(RTLD_DEFAULT, "malloc");
  if (sym && dladdr(sym, &info) && info.dli_fname) return info.dli_fname;
  return "?";
}

int main(int argc, char **argv)
{
  if (argc > 1) ops_per_thread = strtol(argv[1], NULL, 10);
  if (getenv("STRESS_OPS")) ops_per_thread = strtol(getenv("STRESS_OPS"), NULL, 10);
  if (ops_per_thread <= 0) ops_per_thread = DEFAULT_OPS;

  const char *provider = malloc_provider();
#ifdef STRESS_WITH_HAKMEM
  const char *version = hak_version();
  const char *config = hak_config_string();
  if (version == NULL || strcmp(version, "") == 0) die("hak_version() returned nothing");
  printf("stress_mt: hakmem %s [%s], malloc from %s\n", version, config ? config : "?", provider);
  if (strstr(provider, "hakmem") == NULL)
    die("malloc resolves to %s, not to hakmem", provider);
  void *probe = malloc(100);
  if (probe == NULL || hak_malloc_usable_size(probe) < 100)
    die("a block from malloc is unknown to hak_malloc_usable_size");
  free(probe);
#else
  printf("stress_mt: built without hakmem, malloc from %s\n", provider);
#endif
  fflush(stdout);

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pthread_t th[NTHREADS];
  struct thread_arg args[NTHREADS];
  for (int t = 0; t < NTHREADS; t++) {
    memset(&args[t], 0, sizeof args[t]);
    args[t].id = t;
    int e = pthread_create(&th[t], NULL, worker, &args[t]);
    if (e) die("pthread_create: %s", strerror(e));
  }
  for (int t = 0; t < NTHREADS; t++) pthread_join(th[t], NULL);

  /* Blocks left in the shared slots: freed by the main thread, which
   * allocated none of them. */
  struct counts total = { 0 };
  uint64_t s = 42;
  for (unsigned j = 0; j < SHARED_SLOTS; j++) {
    struct blk *b = atomic_exchange(&shared_slot[j], NULL);
    if (b) free_block(b, &s, -1, &total);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  for (int t = 0; t < NTHREADS; t++) {
    total.allocs += args[t].counts.allocs;
    total.frees += args[t].counts.frees;
    total.reallocs += args[t].counts.reallocs;
    total.handoffs += args[t].counts.handoffs;
    total.foreign_frees += args[t].counts.foreign_frees;
    total.sized_frees += args[t].counts.sized_frees;
  }
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("stress_mt: %d threads x %ld ops in %.2f s: %lu allocs, %lu frees "
         "(%lu by another thread, %lu sized), %lu reallocs, %lu hand-offs\n",
         NTHREADS, ops_per_thread, secs, total.allocs, total.frees, total.foreign_frees,
         total.sized_frees, total.reallocs, total.handoffs);
  if (total.allocs != total.frees)
    die("%lu blocks allocated but %lu freed: the test lost track", total.allocs, total.frees);
  if (total.foreign_frees == 0) die("no block was freed by another thread: the test is broken");

#ifdef STRESS_WITH_HAKMEM
  bool stats_on = config && strstr(config, "stats=1") != NULL;
  unsigned long long v;
  if (!stats_on) {
    if (hak_stats_get("uc_hits", &v) == 0 && v != 0)
      die("statistics compiled out ([%s]) but uc_hits = %llu", config, v);
    printf("stress_mt: statistics compiled out, counters not checked\n");
  } else {
    unsigned long long uc = stat_or_die("uc_hits") + stat_or_die("uc_misses");
    unsigned long long warm = stat_or_die("warm_hits") + stat_or_die("warm_misses");
    unsigned long long mapped = stat_or_die("superslabs_mapped");
    unsigned long long large_a = stat_or_die("large_allocs");
    unsigned long long large_f = stat_or_die("large_frees");
    printf("stress_mt: stats uc_hits+uc_misses=%llu warm_hits+warm_misses=%llu "
           "superslabs_mapped=%llu large_allocs=%llu large_frees=%llu\n",
           uc, warm, mapped, large_a, large_f);
    if (hak_stats_get("no_such_counter", &v) == 0)
      die("hak_stats_get accepted an unknown counter name");
    bool uc_on = strstr(config, "unified_cache=1") != NULL;
    if (uc_on && uc < total.allocs / 2)
      die("uc_hits + uc_misses = %llu for %lu allocations: is hakmem serving them?",
          uc, total.allocs);
    if (mapped == 0) die("superslabs_mapped is 0 after %lu allocations", total.allocs);
    /* Blocks of 64 KiB .. 1 MiB are above the largest size class. */
    if (large_a == 0) die("large_allocs is 0 though blocks up to 1 MiB were allocated");
    if (large_f == 0 || large_f > large_a)
      die("large_frees = %llu with large_allocs = %llu after freeing everything",
          large_f, large_a);
  }
#endif
  printf("stress_mt: OK\n");
  return 0;
}

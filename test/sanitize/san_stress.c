/*
 * test/sanitize/san_stress.c — a multi-threaded stress test of the hak_*
 * entry points for the sanitizer builds (AddressSanitizer, UBSan,
 * ThreadSanitizer). The allocator is compiled with -DHAK_NO_STD_NAMES, so
 * malloc here is the sanitizer's and every block under test comes from
 * hak_malloc, hak_calloc, hak_realloc, hak_posix_memalign, hak_aligned_alloc.
 *
 * --rounds R (default 4) rounds of --threads T (default 4) threads, each
 * making --ops N (default 60000) random operations on its own table of 256
 * blocks: allocate (every entry point, with alignment and
 * hak_malloc_usable_size checked), free, realloc (contents kept), and swap
 * a block with one of 128 shared slots, so blocks are freed, reallocated
 * and measured by threads other than their allocator — also by threads of
 * later rounds, after the allocating thread has exited. One thread in each
 * round calls hak_malloc_trim(0) now and then, which unmaps SuperSlabs and
 * large blocks (after an RCU grace period) while the others look pointers
 * up under the registry's read lock. Sizes: mostly 1..1024 bytes, some up
 * to 32 KiB, a few large (up to 512 KiB). Every block is patterned and
 * checked before it is freed, reallocated or handed over; at the end all
 * are freed and the SuperSlab counters must show no block lost.
 *
 * Exit 0 on success; a message and exit 1 on the first mismatch. The
 * sanitizer's own reports (races, overflows, undefined behaviour) make the
 * run fail through the sanitizer's exit code.
 */
#include "faults.h"
#include "hakmem.h"

#include <pthread.h>
#include <stdatomic.h>

#define MAX_THREADS 16
#define LOCAL       256
#define SHARED      128

typedef struct blk {
  void *p;
  size_t n;
  uint64_t tag;
} blk_t;

/* A hand-off box: itself a hak_malloc block. */
static _Atomic(blk_t *) shared[SHARED];
static long ops_per_thread = 60000;
static _Atomic unsigned long n_ops, n_remote;

static size_t pick_size(rng_t *r)
{
  unsigned k = (unsigned)(rng_next(r) % 1000);
  if (k < 850)
    return rng_range(r, 1, 1024);
  if (k < 995)
    return rng_range(r, 1025, 32768);
  return rng_range(r, 32769, (size_t)512 << 10);
}

static void check(const blk_t *b, const char *what)
{
  size_t off = pat_check(b->p, b->n, b->tag);
  if (off != (size_t)-1)
    fail("%s: block %p (%zu bytes) corrupted at offset %zu", what, b->p, b->n, off);
  size_t u = hak_malloc_usable_size(b->p);
  if (u < b->n)
    fail("%s: hak_malloc_usable_size(%p) = %zu < %zu", what, b->p, u, b->n);
}

static void fresh(blk_t *b, rng_t *r)
{
  size_t n = pick_size(r), align = 0;
  void *p = NULL;
  switch (rng_next(r) % 8) {
  case 0:
  case 1:
    p = hak_calloc(1, n);
    if (p) {
      const unsigned char *c = p;
      for (size_t i = 0; i < n; i += (n > 4096 ? 61 : 1))
        if (c[i])
          fail("hak_calloc(%zu) = %p: byte %zu not zero", n, p, i);
    }
    break;
  case 2:
    align = (size_t)1 << rng_range(r, 3, 13);
    if (hak_posix_memalign(&p, align, n) != 0)
      p = NULL;
    break;
  case 3:
    align = (size_t)1 << rng_range(r, 4, 10);
    p = hak_aligned_alloc(align, n);
    break;
  default:
    p = hak_malloc(n);
    break;
  }
  if (!p)
    fail("allocation of %zu bytes failed", n);
  if (n >= 16 && (uintptr_t)p % 16)
    fail("%p (%zu bytes) not 16-byte aligned", p, n);
  if (align && (uintptr_t)p % align)
    fail("%p not aligned to %zu", p, align);
  if (hak_malloc_usable_size(p) < n)
    fail("hak_malloc_usable_size(%p) = %zu < %zu", p, hak_malloc_usable_size(p), n);
  b->p = p;
  b->n = n;
  b->tag = rng_next(r);
  pat_fill(p, n, b->tag);
}

typedef struct targ {
  unsigned id;
  int trimmer;
} targ_t;

static void *worker(void *arg)
{
  targ_t *ta = arg;
  rng_t r;
  rng_seed(&r, 0x5a5a + ta->id);
  blk_t tab[LOCAL];
  memset(tab, 0, sizeof tab);
  unsigned long remote = 0;
  for (long i = 0; i < ops_per_thread; i++) {
    blk_t *b = &tab[rng_next(&r) % LOCAL];
    if (ta->trimmer && i % 5000 == 4999)
      hak_malloc_trim(0);
    if (!b->p) {
      fresh(b, &r);
      continue;
    }
    unsigned op = (unsigned)(rng_next(&r) % 10);
    if (op < 4) {
      check(b, "free");
      if (rng_next(&r) & 1)
        hak_free(b->p);
      else
        hak_free_sized(b->p, b->n);
      b->p = NULL;
    } else if (op < 7) {
      check(b, "realloc");
      size_t m = pick_size(&r);
      unsigned char *q = hak_realloc(b->p, m);
      if (!q)
        fail("hak_realloc(%zu) failed", m);
      size_t keep = b->n < m ? b->n : m, lim = b->n <= PAT_FULL_MAX ? 1024 : 256;
      size_t off = pat_range_check(q, 0, keep < lim ? keep : lim, b->tag);
      if (off != (size_t)-1)
        fail("hak_realloc(%zu -> %zu) lost the contents at offset %zu", b->n, m, off);
      b->p = q;
      b->n = m;
      b->tag = rng_next(&r);
      pat_fill(q, m, b->tag);
    } else {
      check(b, "hand-off");
      blk_t *box = hak_malloc(sizeof *box);
      if (!box)
        fail("hak_malloc(box) failed");
      *box = *b;
      blk_t *old = atomic_exchange(&shared[rng_next(&r) % SHARED], box);
      if (old) {
        check(old, "taken over");
        *b = *old;
        hak_free(old);
        remote++;
      } else {
        b->p = NULL;
      }
    }
  }
  for (unsigned i = 0; i < LOCAL; i++)
    if (tab[i].p) {
      check(&tab[i], "thread end");
      hak_free(tab[i].p);
    }
  atomic_fetch_add(&n_ops, (unsigned long)ops_per_thread);
  atomic_fetch_add(&n_remote, remote);
  return NULL;
}

int main(int argc, char **argv)
{
  test_name = "san_stress";
  long rounds = arg_long(argc, argv, "--rounds", 4);
  long nthreads = arg_long(argc, argv, "--threads", 4);
  ops_per_thread = arg_long(argc, argv, "--ops", ops_per_thread);
  if (nthreads < 1 || nthreads > MAX_THREADS)
    fail("--threads 1..%d", MAX_THREADS);
  double t0 = now_s();
  for (long round = 0; round < rounds; round++) {
    pthread_t th[MAX_THREADS];
    targ_t ta[MAX_THREADS];
    for (long i = 0; i < nthreads; i++) {
      ta[i].id = (unsigned)(round * nthreads + i);
      ta[i].trimmer = i == 0;
      CHECK(pthread_create(&th[i], NULL, worker, &ta[i]) == 0, "pthread_create");
    }
    for (long i = 0; i < nthreads; i++)
      pthread_join(th[i], NULL);
  }
  /* The last blocks, handed over by threads that are all gone. */
  for (unsigned i = 0; i < SHARED; i++) {
    blk_t *b = atomic_exchange(&shared[i], NULL);
    if (b) {
      check(b, "final");
      hak_free(b->p);
      hak_free(b);
    }
  }
  hak_malloc_trim(0);
  long long alive = ss_alive();
  note("%ld rounds x %ld threads, %lu operations (%lu blocks taken over from other threads) in %.1f s; "
       "SuperSlabs alive after freeing everything and trimming: %lld",
       rounds, nthreads, atomic_load(&n_ops), atomic_load(&n_remote), now_s() - t0, alive);
  /* The main thread allocated nothing but hand-off boxes it freed; what is
   * left is at most its own pool (one SuperSlab per class it touched). */
  if (alive > 4)
    fail("%lld SuperSlabs alive with every block freed: blocks lost", alive);
  note("ok");
  return 0;
}

/*
 * backend/large.c — large blocks: one aligned mapping each, a header page
 * in front, a cache of recently freed mappings.
 *
 * Layout of a mapping at base (aligned to HAK_SS_SIZE or to the requested
 * alignment if larger): [ ... header page ][ block ... ]. The block starts
 * at base + offset, offset = max(page, alignment); the header is the page
 * just before the block. The registry tag LARGE is set on the chunk that
 * holds the block's start, which no other mapping can share.
 *
 * The cache holds up to CACHE_SLOTS mappings and CACHE_MAX_BYTES (default
 * offset only) under large_lock; an allocation takes the smallest that
 * fits; an entry older than CACHE_AGE_NS is given back on the next large
 * operation, and all of them on malloc_trim. Two kinds of freed mapping
 * are not kept, because a growing program never asks for them again: the
 * old table freed right after a bigger one was mapped fresh (a growth
 * step), and, when a request finds nothing that fits, every cached one
 * under half its size. A mapping leaving for good has its tag cleared and
 * is decommitted at once; the unmapping waits for a grace period, in
 * batches.
 *
 * realloc grows a block in place when the pages after its mapping are
 * free. Otherwise, if a cached mapping fits, the block is copied there (its
 * pages are warm, and the old mapping takes its place in the cache: a
 * program that grows and frees buffers over and over stays on the cache).
 * If none fits, the kernel moves the block's pages to a new aligned mapping
 * (mremap with MREMAP_DONTUNMAP): nothing is copied, and no second copy of
 * the block is ever resident, so a buffer grown by doubling costs neither
 * the copies nor a cache full of its old sizes. The old range stays mapped,
 * empty, until its grace period ends, like any retired mapping. Where the
 * kernel refuses (before Linux 5.7), the block is copied.
 */
#include "backend/large.h"
#include "backend/os.h"
#include "registry/registry.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define LARGE_MAGIC   0x48414b4cu /* "HAKL" */
#define CACHE_SLOTS   16u
/* A mapping unused for this long is given back. Faulting a block in again
 * costs about 3 us per page on the 2-core VM we measure on: 6 ms for 8 MiB,
 * under 2.5% of a reuse interval this long. Keeping mappings 2 s made
 * programs that grow tables by malloc, copy and free hold their old sizes
 * at their peak (python3 building a large dict: peak RSS 102.8 MB, against
 * 99.0 MB at 250 ms). */
#define CACHE_AGE_NS  (250ull * 1000 * 1000)
#define CACHE_MAX_BYTES ((size_t)64 << 20)
#define RETIRE_BATCH  16u
/* Reusing a mapping larger than this beyond the request gives the rest back. */
#define LARGE_TRIM_SLACK ((size_t)16 << 20)

typedef struct large_hdr {
  uint32_t magic;
  uint32_t pad;
  void    *block;      /* the address handed out */
  char    *map_base;
  size_t   map_size;
  size_t   size;       /* bytes last asked for (malloc or realloc) */
} large_hdr_t;

typedef struct cache_entry {
  char    *base;
  size_t   size;
  uint64_t stamp;
} cache_entry_t;

static pthread_mutex_t large_lock = PTHREAD_MUTEX_INITIALIZER;
static cache_entry_t cache[CACHE_SLOTS];
static unsigned cache_len;
static size_t cache_bytes;
static struct { char *base; size_t size; } retired[RETIRE_BATCH];
static unsigned retired_len;

static _Atomic uint64_t n_allocs, n_frees, n_cache_hits, n_moves;

uint64_t large_allocs(void) { return atomic_load_explicit(&n_allocs, memory_order_relaxed); }
uint64_t large_frees(void) { return atomic_load_explicit(&n_frees, memory_order_relaxed); }
uint64_t large_cache_hits(void) { return atomic_load_explicit(&n_cache_hits, memory_order_relaxed); }
uint64_t large_moves(void) { return atomic_load_explicit(&n_moves, memory_order_relaxed); }

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline large_hdr_t *hdr_of(const void *p)
{
  return (large_hdr_t *)((uintptr_t)p - HAK_PAGE_SIZE);
}

/* Retire (base, size): decommit now, unmap after a grace period. Called with
 * large_lock held; returns a batch to unmap after unlocking, if full. */
static unsigned retire_locked(char *base, size_t size, char **out_base, size_t *out_size)
{
  hak_os_decommit(base, size);
  retired[retired_len].base = base;
  retired[retired_len].size = size;
  retired_len++;
  if (retired_len < RETIRE_BATCH)
    return 0;
  unsigned n = retired_len;
  for (unsigned i = 0; i < n; i++) {
    out_base[i] = retired[i].base;
    out_size[i] = retired[i].size;
  }
  retired_len = 0;
  return n;
}

static void unmap_batch(unsigned n, char **base, size_t *size)
{
  if (!n)
    return;
  registry_synchronize();
  for (unsigned i = 0; i < n; i++)
    hak_os_unmap(base[i], size[i]);
}

/* Evict cache entries older than the age limit, all of them when force,
 * and those smaller than below. */
static size_t evict_locked(bool force, size_t below, char **ob, size_t *os, unsigned *nout)
{
  uint64_t now = force ? 0 : now_ns();
  unsigned kept = 0;
  size_t n = 0;
  for (unsigned i = 0; i < cache_len; i++) {
    if (force || now - cache[i].stamp > CACHE_AGE_NS || cache[i].size < below) {
      cache_bytes -= cache[i].size;
      n += cache[i].size;
      unsigned got = retire_locked(cache[i].base, cache[i].size, ob + *nout, os + *nout);
      *nout += got;
    } else {
      cache[kept++] = cache[i];
    }
  }
  cache_len = kept;
  return n;
}

/* Retire (base, size) for good: decommitted now, unmapped after a grace
 * period. Takes large_lock. */
static void retire(char *base, size_t size)
{
  char *ob[RETIRE_BATCH];
  size_t os_[RETIRE_BATCH];
  pthread_mutex_lock(&large_lock);
  unsigned n = retire_locked(base, size, ob, os_);
  pthread_mutex_unlock(&large_lock);
  unmap_batch(n, ob, os_);
}

static char *cache_take(size_t need, size_t *got, bool evict_smaller)
{
  char *base = NULL;
  char *ob[RETIRE_BATCH * 2];
  size_t os_[RETIRE_BATCH * 2];
  unsigned nout = 0;
  pthread_mutex_lock(&large_lock);
  if (cache_len) {
    evict_locked(false, 0, ob, os_, &nout);
    int best = -1;
    for (unsigned i = 0; i < cache_len; i++)
      if (cache[i].size >= need && (best < 0 || cache[i].size < cache[best].size))
        best = (int)i;
    if (best >= 0) {
      base = cache[best].base;
      *got = cache[best].size;
      cache_bytes -= cache[best].size;
      cache[best] = cache[--cache_len];
    } else if (evict_smaller) {
      /* Nothing cached fits: the program asks for more than it gave back,
       * as one growing a table (malloc the bigger one, copy, free the old)
       * does at every step. Its old sizes would wait here, resident at the
       * peak of the next step: give back those under half the request
       * (the cheap ones to fault in again). */
      evict_locked(false, need / 2, ob, os_, &nout);
    }
  }
  pthread_mutex_unlock(&large_lock);
  unmap_batch(nout, ob, os_);
  /* A much larger mapping keeps its size (the block may grow into it in
   * place), but the pages past what was asked for are given back, so a
   * small block does not hold a big one's memory. */
  if (base && *got - need > LARGE_TRIM_SLACK)
    hak_os_decommit(base + need, *got - need);
  return base;
}

/* Set by every large allocation: the size of the mapping it had to map
 * fresh, 0 when the cache served it. The next free that would cache a
 * mapping takes it (and leaves 0). */
static _Atomic size_t last_fresh_map;

/* A program growing a table mallocs the bigger one (1.5 to 4 times the
 * old: nothing cached fits, so it is mapped fresh), copies, and frees the
 * old one at once. That old one is the one size it will not ask for again:
 * it goes back now instead of waiting in the cache, resident, through the
 * next step (python3's dict, a C++ vector). */
static bool is_growth_leftover(size_t size)
{
  size_t fresh = atomic_exchange_explicit(&last_fresh_map, 0, memory_order_relaxed);
  return fresh >= size + size / 2 && fresh / 4 <= size;
}

static void cache_put(char *base, size_t size)
{
  char *ob[RETIRE_BATCH * 2];
  size_t os_[RETIRE_BATCH * 2];
  unsigned nout = 0;
  bool leftover = is_growth_leftover(size);
  pthread_mutex_lock(&large_lock);
  evict_locked(false, 0, ob, os_, &nout);
  if (size <= CACHE_MAX_BYTES / 2 && !leftover) {
    while (cache_len && (cache_len == CACHE_SLOTS || cache_bytes + size > CACHE_MAX_BYTES)) {
      unsigned oldest = 0;
      for (unsigned i = 1; i < cache_len; i++)
        if (cache[i].stamp < cache[oldest].stamp)
          oldest = i;
      cache_bytes -= cache[oldest].size;
      nout += retire_locked(cache[oldest].base, cache[oldest].size, ob + nout, os_ + nout);
      cache[oldest] = cache[--cache_len];
    }
    cache[cache_len].base = base;
    cache[cache_len].size = size;
    cache[cache_len].stamp = now_ns();
    cache_len++;
    cache_bytes += size;
  } else {
    nout += retire_locked(base, size, ob + nout, os_ + nout);
  }
  pthread_mutex_unlock(&large_lock);
  unmap_batch(nout, ob, os_);
}

/* large_alloc; with cache_only, NULL (errno untouched) unless a cached
 * mapping fits, and a miss then gives nothing back (realloc probes the
 * cache this way before it moves a block: a block it moves needs no new
 * memory, so the cache's smaller mappings may still serve what comes). */
static void *alloc_block(size_t size, size_t align, bool zero, bool cache_only)
{
  size_t offset = align > HAK_PAGE_SIZE ? align : HAK_PAGE_SIZE;
  if (size > (SIZE_MAX >> 2) - offset) {
    errno = ENOMEM;
    return NULL;
  }
  size_t need = hak_align_up(offset + size, HAK_PAGE_SIZE);
  size_t map_size = 0;
  char *base = NULL;
  bool from_cache = false;
  if (offset == HAK_PAGE_SIZE && (base = cache_take(need, &map_size, !cache_only)) != NULL)
    from_cache = true;
  if (!base && cache_only)
    return NULL;
  if (!base) {
    size_t map_align = align > HAK_SS_SIZE ? align : HAK_SS_SIZE;
    base = hak_os_map_aligned(need, map_align);
    if (!base) {
      errno = ENOMEM;
      return NULL;
    }
    map_size = need;
  }
  atomic_store_explicit(&last_fresh_map, from_cache ? 0 : map_size, memory_order_relaxed);
  char *block = base + offset;
  large_hdr_t *h = hdr_of(block);
  h->magic = LARGE_MAGIC;
  h->block = block;
  h->map_base = base;
  h->map_size = map_size;
  h->size = size;
  if (registry_set_tag(hak_ss_base_of(block), hak_tag_make(HAK_KIND_LARGE, 0)) != 0) {
    hak_os_unmap(base, map_size);
    errno = ENOMEM;
    return NULL;
  }
  if (from_cache) {
    atomic_fetch_add_explicit(&n_cache_hits, 1, memory_order_relaxed);
    if (zero)
      memset(block, 0, map_size - offset);
  }
  atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
  return block;
}

void *large_alloc(size_t size, size_t align, bool zero) { return alloc_block(size, align, zero, false); }

bool large_is_block(const void *p)
{
  if (((uintptr_t)p & (HAK_PAGE_SIZE - 1)) != 0)
    return false;
  const large_hdr_t *h = hdr_of(p);
  return h->magic == LARGE_MAGIC && h->block == p;
}

size_t large_usable_size(const void *p)
{
  const large_hdr_t *h = hdr_of(p);
  return (size_t)(h->map_base + h->map_size - (char *)p);
}

void large_free(void *p)
{
  large_hdr_t *h = hdr_of(p);
  char *base = h->map_base;
  size_t size = h->map_size;
  size_t offset = (size_t)((char *)p - base);
  /* Claim the block: of two racing frees, only one clears the tag. */
  if (!registry_swap_tag(hak_ss_base_of(p), hak_tag_make(HAK_KIND_LARGE, 0), 0))
    hak_os_fatal("free", "double free detected (large block)", p);
  h->magic = 0;
  atomic_fetch_add_explicit(&n_frees, 1, memory_order_relaxed);
  if (offset == HAK_PAGE_SIZE) {
    cache_put(base, size);
  } else {
    retire(base, size);
  }
}

/* Move live block p, now asked to hold size bytes, to a new mapping of
 * need bytes (more than its mapping's) by remapping its pages. Returns the
 * new block, or NULL when the kernel cannot move them (nothing changed). */
static void *move_block(void *p, size_t size, size_t need)
{
#ifdef MREMAP_DONTUNMAP
  static _Atomic bool unsupported; /* the kernel said EINVAL once */
  if (atomic_load_explicit(&unsupported, memory_order_relaxed))
    return NULL;
  large_hdr_t *h = hdr_of(p);
  char *old_base = h->map_base;
  size_t old_size = h->map_size;
  size_t offset = (size_t)((char *)p - old_base);
  char *base = hak_os_map_aligned(need, offset > HAK_SS_SIZE ? offset : HAK_SS_SIZE);
  if (!base)
    return NULL;
  char *block = base + offset;
  /* Tag first: the block is known to the registry the moment it exists.
   * Until the move, its header page reads as zero, which no lookup takes
   * for a block. */
  if (registry_set_tag(hak_ss_base_of(block), hak_tag_make(HAK_KIND_LARGE, 0)) != 0) {
    hak_os_unmap(base, need);
    return NULL;
  }
  int saved_errno = errno;
  if (mremap(old_base, old_size, old_size, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, base) ==
      MAP_FAILED) {
    if (errno == EINVAL)
      atomic_store_explicit(&unsupported, true, memory_order_relaxed);
    errno = saved_errno; /* the copy that follows may still succeed */
    registry_clear_tag(hak_ss_base_of(block));
    retire(base, need);
    return NULL;
  }
  h = hdr_of(block);
  h->block = block;
  h->map_base = base;
  h->map_size = need;
  h->size = size;
  if (!registry_swap_tag(hak_ss_base_of(p), hak_tag_make(HAK_KIND_LARGE, 0), 0))
    hak_os_fatal("realloc", "double free detected (large block)", p);
  retire(old_base, old_size);
  atomic_fetch_add_explicit(&n_moves, 1, memory_order_relaxed);
  return block;
#else
  (void)p;
  (void)size;
  (void)need;
  return NULL;
#endif
}

void *large_realloc(void *p, size_t size)
{
  large_hdr_t *h = hdr_of(p);
  size_t offset = (size_t)((char *)p - h->map_base);
  if (size > (SIZE_MAX >> 2) - offset) {
    errno = ENOMEM;
    return NULL;
  }
  size_t need = hak_align_up(offset + size, HAK_PAGE_SIZE);
  if (need <= h->map_size) {
    /* Fits in place. A block that shrinks gives back a large tail; one that
     * grows into a bigger mapping (a cached one, say) keeps its pages. */
    bool shrinks = size < h->size;
    h->size = size;
    if (shrinks && h->map_size - need >= HAK_SS_SIZE) {
      hak_os_unmap(h->map_base + need, h->map_size - need);
      h->map_size = need;
    }
    return p;
  }
  /* Grow in place when the pages after the mapping are free. */
  void *r = mremap(h->map_base, h->map_size, need, 0);
  if (r != MAP_FAILED) {
    h->map_size = need;
    h->size = size;
    return p;
  }
  /* Copy into a cached mapping if one fits (its pages are warm, and the
   * old block takes its place in the cache); otherwise move the pages. */
  size_t align = offset > HAK_PAGE_SIZE ? offset : 0;
  void *q = alloc_block(size, align, false, true);
  if (!q) {
    q = move_block(p, size, need);
    if (q)
      return q;
    q = large_alloc(size, align, false);
  }
  if (!q)
    return NULL;
  memcpy(q, p, large_usable_size(p) < size ? large_usable_size(p) : size);
  large_free(p);
  return q;
}

size_t large_trim(void)
{
  char *ob[RETIRE_BATCH * 3];
  size_t os_[RETIRE_BATCH * 3];
  unsigned nout = 0;
  pthread_mutex_lock(&large_lock);
  size_t bytes = cache_bytes;
  evict_locked(true, 0, ob, os_, &nout);
  for (unsigned i = 0; i < retired_len; i++) {
    ob[nout] = retired[i].base;
    os_[nout] = retired[i].size;
    nout++;
  }
  retired_len = 0;
  pthread_mutex_unlock(&large_lock);
  unmap_batch(nout, ob, os_);
  return bytes;
}

void large_fork_prepare(void) { pthread_mutex_lock(&large_lock); }
void large_fork_parent(void) { pthread_mutex_unlock(&large_lock); }
void large_fork_child(void) { pthread_mutex_init(&large_lock, NULL); }

/*
 * backend/large.c — large blocks: one aligned mapping each, a header page
 * in front, room reserved behind, a cache of recently freed mappings.
 *
 * Layout of a mapping at base (aligned to HAK_SS_SIZE or to the requested
 * alignment if larger):
 *
 *   [ ... header page ][ block ............ end ][ room ....... map_size ]
 *
 * The block starts at base + offset, offset = max(page, alignment); the
 * header is the page just before it. The registry tag LARGE is set on the
 * chunk that holds the block's start, which no other mapping can share.
 * The block's usable bytes end at end. The room after it is address space
 * only (its pages are never touched while it is room): a block grows into
 * it by realloc, and a cached mapping serves a bigger request from it,
 * without a system call and without moving a page (where the MMU is
 * virtualised with shadow page tables, the first touch of a page the
 * kernel moved costs a large part of what faulting it in costs). A
 * mapping is made with room for twice its first request (at most
 * LARGE_ROOM_MAX more), or exactly its size when the system refuses that
 * much address space or limits it (RLIMIT_AS, strict overcommit).
 * touched is the high-water mark of end since the pages were last given
 * back: the pages of [base, base + touched) may be resident, the rest are
 * not.
 *
 * Locks: large_lock is a leaf (backend/superslab.c, "Locks"). It guards
 * the cache, the batch of retired mappings and the recent peak. Mappings
 * leaving for good are decommitted under it; no munmap and no grace
 * period happen under it: what leaves is collected in an unmap_list_t and
 * unmapped after unlocking. Callers must not be inside a registry read
 * section (a grace period may be waited for).
 *
 * The cache: up to CACHE_SLOTS mappings (default offset only), each with
 * its resident bytes (its touched), kept by bytes under a budget and by
 * age.
 *  - Age: an entry unused for CACHE_AGE_NS is given back, by the next large
 *    operation or by large_purge (a helper thread), all on malloc_trim.
 *  - Bytes: the resident bytes of live large blocks plus the cache may not
 *    exceed the recent peak of the former (the largest over the last one or
 *    two age periods), or the live bytes plus CACHE_FLOOR_BYTES when that
 *    is more. A program that frees many big buffers and allocates them
 *    again keeps them all; the cache never raises the footprint of large
 *    blocks above what the program itself held a moment ago.
 *  - Fit: a request takes, among the mappings large enough (room
 *    included), the one with the fewest resident bytes that still cover it,
 *    or, if none does, the one with the most (the rest of the request is
 *    faulted in, in place). At most max(LARGE_TRIM_SLACK, request) past
 *    the request stays resident; the rest is given back. When no mapping is
 *    large enough, the one with the most resident bytes (at least half the
 *    request) is grown: in place if the address range after it is free,
 *    else the kernel moves its pages into a new mapping.
 *  - A request the cache's resident pages do not cover gives back the
 *    cached mappings with less than half of it resident (a program asking
 *    for more than it gave back would only hold them through its next
 *    step), and marks the next free: the block freed right after a
 *    request 1.5 to 4 times its size that was not served from warm pages
 *    is not kept, because a program growing a table (malloc the bigger
 *    one, copy, free the old) never asks for the old size again.
 * A mapping leaving for good has its tag cleared and is decommitted at
 * once; the unmapping waits for a grace period, in batches.
 *
 * realloc grows a block in place within its room, or when the address
 * range after its mapping is free. Otherwise, if a cached mapping holds
 * the new size in resident pages, the block is copied there (the old
 * mapping takes its place in the cache: a program that grows and frees
 * buffers over and over stays on the cache). If none does, the kernel
 * moves the block's pages to a new aligned mapping (mremap with
 * MREMAP_DONTUNMAP): nothing is copied, and no second copy of the block is
 * ever resident, so a buffer grown by doubling costs neither the copies
 * nor a cache full of its old sizes. The old range stays mapped, empty,
 * until its grace period ends, like any retired mapping. Where the kernel
 * refuses (before Linux 5.7), the block is copied.
 */
#include "backend/large.h"
#include "backend/os.h"
#include "backend/retire.h"
#include "hak/lock.h"
#include "hak/stats.h"
#include "registry/registry.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define LARGE_MAGIC   0x48414b4cu /* "HAKL" */
/* The cache's bytes and age bound what it holds; the slot count only has
 * to stay out of their way. With a smaller table, a program whose threads
 * each end by freeing dozens of big buffers lost most of them to overflow
 * and mapped them again on its next round. Lookups scan the table under
 * large_lock, beside a system call or page faults. */
#define CACHE_SLOTS   256u
/* A mapping unused for this long is given back. Faulting a block in again
 * costs a few microseconds per page: a small fraction of a reuse interval
 * this long. Keeping mappings for seconds made programs that grow tables by
 * malloc, copy and free hold their old sizes at their peak. */
#define CACHE_AGE_NS  (250ull * 1000 * 1000)
/* The cache may always hold this much above the live large bytes: a
 * program with a few big buffers in flight reuses them even while its live
 * bytes sit at their peak. */
#define CACHE_FLOOR_BYTES ((size_t)64 << 20)
/* A block keeps at most this much (or its own size, if larger) of a
 * cached mapping's resident pages past its request; the rest goes back. */
#define LARGE_TRIM_SLACK ((size_t)16 << 20)
/* The most address space reserved past a mapping's first request. Address
 * space costs nothing until touched, but it counts against RLIMIT_AS and,
 * under strict overcommit, against the commit limit. */
#define LARGE_ROOM_MAX ((size_t)64 << 20)

typedef struct large_hdr {
  uint32_t magic;
  uint32_t pad;
  void    *block;      /* the address handed out */
  char    *map_base;
  size_t   map_size;   /* the whole mapping, room included */
  size_t   end;        /* from map_base: the end of the block's usable bytes */
  size_t   touched;    /* from map_base: no page at or past it is resident */
  size_t   size;       /* bytes last asked for (malloc or realloc) */
} large_hdr_t;

typedef struct cache_entry {
  char    *base;
  size_t   size;       /* of the mapping */
  size_t   resident;   /* from base: no page at or past it is resident */
  uint64_t stamp;
} cache_entry_t;

/* Mappings to unmap once large_lock is released. One locked section
 * retires at most every cache entry and one more mapping, on top of a
 * pending batch short of full. */
#define UNMAP_LIST_MAX (CACHE_SLOTS + BACKEND_RETIRE_BATCH)
typedef struct unmap_list {
  unsigned n;
  backend_mapping_t m[UNMAP_LIST_MAX];
} unmap_list_t;

static hak_mutex_t large_lock = HAK_MUTEX_INIT;
static cache_entry_t cache[CACHE_SLOTS];
static unsigned cache_len;
static size_t cache_bytes; /* resident bytes of the cached mappings */
static backend_mapping_t retired[BACKEND_RETIRE_BATCH];
static unsigned retired_len;
/* The largest live bytes seen in the current age period and in the one
 * before it (0 when that one saw no free). */
static size_t peak_cur, peak_prev;
static uint64_t peak_since;

/* Resident bytes (touched) of live large blocks. */
static _Atomic size_t live_bytes;
/* Live large blocks and their usable bytes (large_info). */
static _Atomic size_t live_count, live_usable;

size_t large_live_bytes(void) { return atomic_load_explicit(&live_bytes, memory_order_relaxed); }

static void live_add(size_t n) { atomic_fetch_add_explicit(&live_bytes, n, memory_order_relaxed); }
static void live_sub(size_t n) { atomic_fetch_sub_explicit(&live_bytes, n, memory_order_relaxed); }

/* A live block's usable bytes change from from to to (0: it starts or ends). */
static void usable_move(size_t from, size_t to)
{
  if (to > from)
    atomic_fetch_add_explicit(&live_usable, to - from, memory_order_relaxed);
  else
    atomic_fetch_sub_explicit(&live_usable, from - to, memory_order_relaxed);
}

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Time from stamp to now; 0 when now is earlier (a caller's clock reading
 * may lag the one that stamped). */
static inline uint64_t age_of(uint64_t now, uint64_t stamp) { return now > stamp ? now - stamp : 0; }

static inline size_t min_size(size_t a, size_t b) { return a < b ? a : b; }
static inline size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

static inline large_hdr_t *hdr_of(const void *p)
{
  return (large_hdr_t *)((uintptr_t)p - HAK_PAGE_SIZE);
}

/* Is the commit limit strict (vm.overcommit_memory 2)? Then the kernel
 * charges every writable private mapping in full, MAP_NORESERVE or not.
 * Read once, with no allocation. */
static bool overcommit_strict(void)
{
  static _Atomic int known; /* 0: not read yet, 1: not strict, 2: strict */
  int k = atomic_load_explicit(&known, memory_order_relaxed);
  if (k == 0) {
    char c = '0';
    int saved_errno = errno;
    int fd = open("/proc/sys/vm/overcommit_memory", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      if (read(fd, &c, 1) != 1)
        c = '0';
      close(fd);
    }
    errno = saved_errno;
    k = c == '2' ? 2 : 1;
    atomic_store_explicit(&known, k, memory_order_relaxed);
  }
  return k == 2;
}

/* Room is address space only, which is plentiful, unless the process's
 * address space is limited (RLIMIT_AS, which a program may set at any
 * time: asked each time) or charged to the commit limit. There, room would
 * take what later blocks need: mappings are made exactly. */
static bool room_is_free(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    return false;
  return !overcommit_strict();
}

/* Mapping size for a first request of need bytes: room to grow to twice
 * it, where room is free. (need <= SIZE_MAX >> 2: no overflow.) */
static size_t span_for(size_t need)
{
  return room_is_free() ? need + min_size(need, LARGE_ROOM_MAX) : need;
}

/* A new mapping for need bytes aligned to align, with room when the system
 * grants the address space, exactly need bytes when not. *size is set. */
static char *map_span(size_t need, size_t align, size_t *size)
{
  size_t span = span_for(need);
  char *base = hak_os_map_aligned(span, align);
  if (!base && span > need) {
    span = need;
    base = hak_os_map_aligned(span, align);
  }
  *size = span;
  return base;
}

/* Move the whole pending batch to out, full or not. */
static void flush_retired_locked(unmap_list_t *out)
{
  hak_mutex_assert_held(&large_lock);
  for (unsigned i = 0; i < retired_len; i++)
    out->m[out->n++] = retired[i];
  retired_len = 0;
}

/* Retire the mapping (base, size): decommit its resident bytes now, unmap
 * it after a grace period (backend/retire.h). A full batch moves to out. */
static void retire_locked(char *base, size_t size, size_t resident, unmap_list_t *out)
{
  hak_mutex_assert_held(&large_lock);
  if (resident)
    hak_os_decommit(base, min_size(resident, size));
  retired[retired_len].base = base;
  retired[retired_len].size = size;
  retired_len++;
  if (retired_len == BACKEND_RETIRE_BATCH)
    flush_retired_locked(out);
}

static void unmap_list(const unmap_list_t *l) { backend_unmap_after_grace(l->m, l->n); }

static void cache_remove_locked(unsigned i)
{
  hak_mutex_assert_held(&large_lock);
  cache_bytes -= cache[i].resident;
  cache[i] = cache[--cache_len];
}

/* Give back cache entries older than the age limit (all of them when
 * force) and those with fewer resident bytes than below. Returns the
 * resident bytes given back. */
static size_t evict_locked(uint64_t now, bool force, size_t below, unmap_list_t *out)
{
  hak_mutex_assert_held(&large_lock);
  size_t n = 0;
  for (unsigned i = 0; i < cache_len;) {
    if (force || age_of(now, cache[i].stamp) > CACHE_AGE_NS || cache[i].resident < below) {
      n += cache[i].resident;
      retire_locked(cache[i].base, cache[i].size, cache[i].resident, out);
      cache_remove_locked(i);
    } else {
      i++;
    }
  }
  return n;
}

/* Retire (base, size) for good: its resident bytes decommitted now, the
 * mapping unmapped after a grace period. Takes large_lock. */
static void retire(char *base, size_t size, size_t resident)
{
  unmap_list_t out;
  out.n = 0;
  hak_mutex_lock(&large_lock);
  retire_locked(base, size, resident, &out);
  hak_mutex_unlock(&large_lock);
  unmap_list(&out);
}

/* The cache's byte budget when live bytes drop from live_before to live (a
 * free): the recent peak less what stays live, at least CACHE_FLOOR_BYTES.
 * The peak is sampled at frees only: between two frees the live bytes only
 * grow, so each maximum is seen by the free that ends it. */
static size_t cache_budget_locked(uint64_t now, size_t live_before, size_t live)
{
  hak_mutex_assert_held(&large_lock);
  uint64_t age = age_of(now, peak_since);
  if (age > CACHE_AGE_NS) {
    peak_prev = age > 2 * CACHE_AGE_NS ? 0 : peak_cur;
    peak_cur = 0;
    peak_since = now;
  }
  if (live_before > peak_cur)
    peak_cur = live_before;
  size_t peak = max_size(peak_cur, peak_prev);
  size_t room = peak > live ? peak - live : 0;
  return max_size(room, CACHE_FLOOR_BYTES);
}

typedef enum {
  TAKE_ANY,   /* large enough, room included; else one to grow */
  TAKE_WARM,  /* only one whose resident pages cover the request */
} take_mode_t;

/* What cache_take found for a request of need bytes. */
typedef struct cache_found {
  char  *base;     /* NULL: nothing */
  size_t size;     /* of the mapping; less than need when it is to grow */
  size_t resident; /* from base, after the trim of a far larger one */
} cache_found_t;

/* Is cached mapping a a better choice than b for need bytes, both large
 * enough: the fewest resident bytes that cover need, or the most. */
static bool better_fit(const cache_entry_t *a, const cache_entry_t *b, size_t need)
{
  bool a_warm = a->resident >= need, b_warm = b->resident >= need;
  if (a_warm != b_warm)
    return a_warm;
  if (a->resident != b->resident)
    return a_warm ? a->resident < b->resident : a->resident > b->resident;
  return a->size < b->size;
}

static cache_found_t cache_take(size_t need, take_mode_t mode)
{
  cache_found_t f = { NULL, 0, 0 };
  unmap_list_t out;
  out.n = 0;
  hak_mutex_lock(&large_lock);
  if (cache_len) {
    evict_locked(now_ns(), false, 0, &out);
    int best = -1;
    for (unsigned i = 0; i < cache_len; i++)
      if (cache[i].size >= need && (best < 0 || better_fit(&cache[i], &cache[best], need)))
        best = (int)i;
    if (best >= 0 && mode == TAKE_WARM && cache[best].resident < need)
      best = -1;
    if (best < 0 && mode == TAKE_ANY) {
      for (unsigned i = 0; i < cache_len; i++)
        if (cache[i].resident >= need / 2 && (best < 0 || cache[i].resident > cache[best].resident))
          best = (int)i;
    }
    if (best >= 0) {
      f.base = cache[best].base;
      f.size = cache[best].size;
      f.resident = cache[best].resident;
      cache_remove_locked((unsigned)best);
    }
    if (mode == TAKE_ANY && f.resident < need)
      evict_locked(0, false, need / 2, &out);
  }
  hak_mutex_unlock(&large_lock);
  unmap_list(&out);
  /* A much larger mapping keeps its size (the block may grow into it in
   * place), but past a bounded slack its pages are given back, so a small
   * block does not hold a big one's memory. */
  size_t slack = max_size(need, LARGE_TRIM_SLACK);
  if (f.base && f.resident > need && f.resident - need > slack) {
    hak_os_decommit(f.base + need + slack, f.resident - need - slack);
    f.resident = need + slack;
  }
  return f;
}

/* Set by every large allocation: the size it asked for when the cache's
 * resident pages did not cover it, 0 when they did. The next free that
 * would cache a mapping takes it (and leaves 0). */
static _Atomic size_t last_miss;

/* A program growing a table mallocs the bigger one (1.5 to 4 times the
 * old: nothing cached covers it), copies, and frees the old one at once.
 * That old one is the one size it will not ask for again: it goes back now
 * instead of waiting in the cache, resident, through the next step
 * (python3's dict, a C++ vector). */
static bool is_growth_leftover(size_t size)
{
  size_t miss = atomic_exchange_explicit(&last_miss, 0, memory_order_relaxed);
  return miss >= size + size / 2 && miss / 4 <= size;
}

/* Cache the freed mapping (base, size) of a block that ended at end, with
 * resident bytes from base; the live bytes have dropped by resident. */
static void cache_put(char *base, size_t size, size_t end, size_t resident)
{
  unmap_list_t out;
  out.n = 0;
  bool leftover = is_growth_leftover(end);
  uint64_t now = now_ns();
  size_t live = atomic_load_explicit(&live_bytes, memory_order_relaxed);
  hak_mutex_lock(&large_lock);
  evict_locked(now, false, 0, &out);
  size_t budget = cache_budget_locked(now, live + resident, live);
  if (!leftover && resident <= budget) {
    while (cache_len && (cache_len == CACHE_SLOTS || cache_bytes + resident > budget)) {
      unsigned oldest = 0;
      for (unsigned i = 1; i < cache_len; i++)
        if (cache[i].stamp < cache[oldest].stamp)
          oldest = i;
      retire_locked(cache[oldest].base, cache[oldest].size, cache[oldest].resident, &out);
      cache_remove_locked(oldest);
    }
    cache[cache_len].base = base;
    cache[cache_len].size = size;
    cache[cache_len].resident = resident;
    cache[cache_len].stamp = now;
    cache_len++;
    cache_bytes += resident;
  } else {
    retire_locked(base, size, resident, &out);
  }
  hak_mutex_unlock(&large_lock);
  unmap_list(&out);
}

/* Have the kernel move the pages of the mapping [from, from + size) to to,
 * the start of a mapping of ours of need >= size bytes that they replace,
 * and leave from mapped and empty (to be retired: a reader may still look
 * at its header). false when it cannot (nothing changed, errno kept).
 *
 * Two steps: pages moved straight into the head of to would stay a kernel
 * mapping apart from the rest of to (their page offsets differ), which
 * could then neither grow in place nor, before Linux 6.17, move again. So
 * they move first to where the kernel likes, then grow as they move to to,
 * one mapping. */
static bool move_pages(char *from, size_t size, char *to, size_t need)
{
#ifdef MREMAP_DONTUNMAP
  static _Atomic bool unsupported; /* the kernel said EINVAL once */
  if (atomic_load_explicit(&unsupported, memory_order_relaxed))
    return false;
  int saved_errno = errno;
  void *mid = mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
  if (mid == MAP_FAILED) {
    if (errno == EINVAL)
      atomic_store_explicit(&unsupported, true, memory_order_relaxed);
    errno = saved_errno;
    return false;
  }
  if (mremap(mid, size, need, MREMAP_MAYMOVE | MREMAP_FIXED, to) == MAP_FAILED) {
    /* Put the pages back over the empty range they left. */
    if (mremap(mid, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, from) == MAP_FAILED)
      hak_os_fatal("realloc", "cannot move a large block's pages back", from);
    errno = saved_errno;
    return false;
  }
  errno = saved_errno;
  return true;
#else
  (void)from;
  (void)size;
  (void)to;
  (void)need;
  return false;
#endif
}

/* Grow the cached mapping (base, *size), which nothing else references and
 * which holds *resident bytes, to hold need bytes, keeping its pages: in
 * place when the address range after it is free, else into a new aligned
 * mapping. Where the kernel cannot move pages the cached mapping goes back
 * and the new mapping is used as it is (*resident becomes 0). NULL when
 * nothing can be mapped. */
static char *grow_cached(char *base, size_t *size, size_t *resident, size_t need)
{
  size_t span = span_for(need);
  int saved_errno = errno;
  if (mremap(base, *size, span, 0) != MAP_FAILED) {
    *size = span;
    HAK_STAT_GLOBAL_ADD(large_cache_grows, 1);
    return base;
  }
  errno = saved_errno;
  char *to = map_span(need, HAK_SS_SIZE, &span);
  bool moved = to && move_pages(base, *size, to, span);
  retire(base, *size, moved ? 0 : *resident);
  *size = span;
  if (!moved)
    *resident = 0;
  else
    HAK_STAT_GLOBAL_ADD(large_cache_grows, 1);
  return to;
}

/* large_alloc; with cache_only, NULL (errno untouched) unless the resident
 * pages of a cached mapping cover the request, and a miss then neither
 * grows a mapping nor gives anything back (realloc probes the cache this
 * way before it moves a block: a block it moves needs no new memory, so
 * the cache's smaller mappings may still serve what comes). */
static void *alloc_block(size_t size, size_t align, bool zero, bool cache_only)
{
  size_t offset = align > HAK_PAGE_SIZE ? align : HAK_PAGE_SIZE;
  if (size > (SIZE_MAX >> 2) - offset) {
    errno = ENOMEM;
    return NULL;
  }
  size_t need = hak_align_up(offset + size, HAK_PAGE_SIZE);
  cache_found_t f = { NULL, 0, 0 };
  if (offset == HAK_PAGE_SIZE)
    f = cache_take(need, cache_only ? TAKE_WARM : TAKE_ANY);
  if (cache_only && !f.base)
    return NULL;
  char *base = f.base;
  size_t map_size = f.size;
  size_t resident = f.resident;
  bool in_place = base && map_size >= need;
  if (base && !in_place)
    base = grow_cached(base, &map_size, &resident, need);
  else if (!base)
    base = map_span(need, align > HAK_SS_SIZE ? align : HAK_SS_SIZE, &map_size);
  if (!base) {
    errno = ENOMEM;
    return NULL;
  }
  atomic_store_explicit(&last_miss, resident >= need ? 0 : need, memory_order_relaxed);
  size_t end = max_size(need, resident);
  char *block = base + offset;
  large_hdr_t *h = hdr_of(block);
  h->magic = LARGE_MAGIC;
  h->block = block;
  h->map_base = base;
  h->map_size = map_size;
  h->end = end;
  h->touched = end;
  h->size = size;
  if (registry_set_tag(hak_ss_base_of(block), hak_tag_make(HAK_KIND_LARGE, 0)) != 0) {
    h->magic = 0;
    retire(base, map_size, end);
    errno = ENOMEM;
    return NULL;
  }
  live_add(end);
  atomic_fetch_add_explicit(&live_count, 1, memory_order_relaxed);
  usable_move(0, end - offset);
  if (in_place)
    HAK_STAT_GLOBAL_ADD(large_cache_hits, 1);
  /* Pages that held another block's contents; the rest reads as zero. */
  if (zero && resident > offset)
    memset(block, 0, resident - offset);
  HAK_STAT_GLOBAL_ADD(large_allocs, 1);
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

bool large_was_freed(const void *p)
{
  if (((uintptr_t)p & (HAK_PAGE_SIZE - 1)) != 0)
    return false;
  bool found = false;
  hak_mutex_lock(&large_lock);
  for (unsigned i = 0; i < cache_len && !found; i++)
    found = cache[i].base + HAK_PAGE_SIZE == (const char *)p; /* cached blocks start a page in */
  hak_mutex_unlock(&large_lock);
  return found;
}

size_t large_usable_size(const void *p)
{
  const large_hdr_t *h = hdr_of(p);
  return (size_t)(h->map_base + h->end - (char *)p);
}

size_t large_mapping_size(const void *p) { return hdr_of(p)->map_size; }

void large_free(void *p)
{
  large_hdr_t *h = hdr_of(p);
  char *base = h->map_base;
  size_t size = h->map_size;
  size_t end = h->end;
  size_t touched = h->touched;
  size_t offset = (size_t)((char *)p - base);
  /* Claim the block: of two racing frees, only one clears the tag. */
  if (!registry_swap_tag(hak_ss_base_of(p), hak_tag_make(HAK_KIND_LARGE, 0), 0))
    hak_os_fatal("free", "double free detected (large block)", p);
  h->magic = 0;
  live_sub(touched);
  atomic_fetch_sub_explicit(&live_count, 1, memory_order_relaxed);
  usable_move(end - offset, 0);
  HAK_STAT_GLOBAL_ADD(large_frees, 1);
  if (offset == HAK_PAGE_SIZE) {
    cache_put(base, size, end, touched);
  } else {
    retire(base, size, touched);
  }
}

/* Set the end of live block h's usable bytes. */
static void set_end(large_hdr_t *h, size_t end)
{
  const size_t offset = (size_t)((char *)h->block - h->map_base);
  usable_move(h->end - offset, end - offset);
  h->end = end;
  if (end > h->touched) {
    live_add(end - h->touched);
    h->touched = end;
  }
}

/* Move live block p, now asked to hold size bytes, to a new mapping of
 * need bytes or more (more than its mapping's) by remapping its pages.
 * Returns the new block, or NULL when the kernel cannot move them (nothing
 * changed). */
static void *move_block(void *p, size_t size, size_t need)
{
  large_hdr_t *h = hdr_of(p);
  char *old_base = h->map_base;
  size_t old_size = h->map_size;
  size_t offset = (size_t)((char *)p - old_base);
  size_t span;
  char *base = map_span(need, offset > HAK_SS_SIZE ? offset : HAK_SS_SIZE, &span);
  if (!base)
    return NULL;
  char *block = base + offset;
  /* Tag first: the block is known to the registry the moment it exists.
   * Until the move, its header page reads as zero, which no lookup takes
   * for a block. */
  if (registry_set_tag(hak_ss_base_of(block), hak_tag_make(HAK_KIND_LARGE, 0)) != 0) {
    hak_os_unmap(base, span);
    return NULL;
  }
  if (!move_pages(old_base, old_size, base, span)) {
    registry_clear_tag(hak_ss_base_of(block));
    retire(base, span, 0);
    return NULL; /* the copy that follows may still succeed */
  }
  h = hdr_of(block);
  h->block = block;
  h->map_base = base;
  h->map_size = span;
  h->size = size;
  set_end(h, need);
  if (!registry_swap_tag(hak_ss_base_of(p), hak_tag_make(HAK_KIND_LARGE, 0), 0))
    hak_os_fatal("realloc", "double free detected (large block)", p);
  retire(old_base, old_size, 0);
  HAK_STAT_GLOBAL_ADD(large_moves, 1);
  return block;
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
  if (need <= h->end) {
    /* Fits. A block that shrinks far gives back its pages past the new
     * end, and the address space past the room a new block of its size
     * would have; one that grows into a bigger mapping (a cached one, say)
     * keeps its pages. */
    bool shrinks = size < h->size;
    h->size = size;
    if (shrinks && h->touched - need >= HAK_SS_SIZE) {
      hak_os_decommit(h->map_base + need, h->touched - need);
      live_sub(h->touched - need);
      usable_move(h->end - offset, need - offset);
      h->touched = h->end = need;
      size_t span = span_for(need);
      if (h->map_size > span && h->map_size - span >= HAK_SS_SIZE) {
        hak_os_unmap(h->map_base + span, h->map_size - span);
        h->map_size = span;
      }
    }
    return p;
  }
  /* Grow into the room, or in place when the pages after the mapping are
   * free. */
  if (need <= h->map_size) {
    h->size = size;
    set_end(h, need);
    return p;
  }
  int saved_errno = errno;
  size_t span = span_for(need);
  if (mremap(h->map_base, h->map_size, span, 0) == MAP_FAILED) {
    if (span == need || mremap(h->map_base, h->map_size, need, 0) == MAP_FAILED)
      span = 0;
    else
      span = need;
  }
  errno = saved_errno;
  if (span) {
    h->map_size = span;
    h->size = size;
    set_end(h, need);
    return p;
  }
  /* Copy into a cached mapping if its resident pages hold the block (they
   * are warm, and the old block takes its place in the cache); otherwise
   * move the pages. */
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
  memcpy(q, p, min_size(large_usable_size(p), size));
  large_free(p);
  return q;
}

size_t large_purge(uint64_t now)
{
  unmap_list_t out;
  out.n = 0;
  hak_mutex_lock(&large_lock);
  size_t bytes = evict_locked(now, false, 0, &out);
  /* The caller can afford the grace period that unmapping costs: pending
   * retirements go now, whether their batch is full or not. */
  flush_retired_locked(&out);
  hak_mutex_unlock(&large_lock);
  unmap_list(&out);
  return bytes;
}

void large_info(large_info_t *out)
{
  out->live = atomic_load_explicit(&live_count, memory_order_relaxed);
  out->live_usable = atomic_load_explicit(&live_usable, memory_order_relaxed);
  out->live_bytes = atomic_load_explicit(&live_bytes, memory_order_relaxed);
  hak_mutex_lock(&large_lock);
  out->cached = cache_len;
  out->cached_bytes = cache_bytes;
  hak_mutex_unlock(&large_lock);
}

size_t large_trim(void)
{
  unmap_list_t out;
  out.n = 0;
  hak_mutex_lock(&large_lock);
  size_t bytes = evict_locked(0, true, 0, &out);
  flush_retired_locked(&out);
  hak_mutex_unlock(&large_lock);
  unmap_list(&out);
  return bytes;
}

void large_fork_prepare(void) { hak_mutex_lock(&large_lock); }
void large_fork_parent(void) { hak_mutex_unlock(&large_lock); }
void large_fork_child(void) { hak_mutex_reinit(&large_lock); }

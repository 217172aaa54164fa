/*
 * front/alloc.c — every public allocation entry point.
 *
 * malloc: size → class (a table up to 1 KiB, a clz formula up to
 * HAK_CLASS_MAX), pop from the unified cache; a miss goes to the
 * out-of-line refill. Above the largest class, blocks are mapped
 * (backend/large).
 *
 * free: the registry tag of p's chunk says "small block of class c" in two
 * loads; an offset check (multiply and rotate) proves p is a block start;
 * the block is pushed on the unified cache. Everything else — NULL, medium
 * and large blocks, pointers hakmem did not hand out — goes to free_slow,
 * which checks under the registry read lock and aborts with a message on a
 * bad pointer.
 *
 * The standard names are aliases of the hak_* functions. Semantics and
 * errno values follow glibc 2.36.
 */
#include "hakmem.h"
#include "front/front.h"
#include "boxes/unified_cache/unified_cache.h"
#include "boxes/warm_pool/warm_pool.h"
#include "backend/size_class.h"
#include "backend/superslab.h"
#include "backend/large.h"
#include "backend/os.h"
#include "registry/registry.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#define HAK_MAX_REQUEST ((size_t)PTRDIFF_MAX)

/* ---- Allocation ---------------------------------------------------------- */

/* Out of memory (the system refused a mapping): give back everything
 * cached — this thread's and idle threads' pools, the free tier, the large
 * cache, mappings waiting for a grace period — and let the caller retry
 * once. Under an address-space limit the cached reservations are what is
 * missing. */
static HAK_COLD void reclaim_for_retry(void) { hak_malloc_trim(0); }

/* large_alloc with one retry after reclaiming. */
static void *large_alloc_retry(size_t n, size_t align, bool zero)
{
  void *p = large_alloc(n, align, zero);
  if (hak_unlikely(!p)) {
    reclaim_for_retry();
    p = large_alloc(n, align, zero);
  }
  return p;
}

/* The miss path: a block of class c with its first zero bytes cleared
 * (calloc; 0 for malloc). */
static HAK_NOINLINE void *alloc_refill_zeroed(unsigned c, size_t zero)
{
  if (hak_unlikely(hak_thread_state != HAK_THREAD_LIVE))
    hak_thread_setup();
  void *p = uc_refill(c, zero);
  if (hak_unlikely(!p)) {
    reclaim_for_retry();
    p = uc_refill(c, zero);
    if (!p)
      errno = ENOMEM;
  }
  return p;
}

static HAK_NOINLINE void *alloc_refill(unsigned c) { return alloc_refill_zeroed(c, 0); }

HAK_INLINE void *alloc_class(unsigned c)
{
  void *p = uc_pop(c);
  if (hak_likely(p != NULL))
    return p;
  return alloc_refill(c);
}

static HAK_NOINLINE void *alloc_slow(size_t n)
{
  if (n <= HAK_CLASS_MAX)
    return alloc_class(hak_class_of_small(n));
  if (hak_unlikely(n > HAK_MAX_REQUEST)) {
    errno = ENOMEM;
    return NULL;
  }
  return large_alloc_retry(n, 0, false);
}

/* The miss path of a size up to HAK_TINY_MAX takes the size, not the class:
 * the hot path then keeps no copy of the class for it. */
static HAK_NOINLINE void *alloc_refill_tiny(size_t n)
{
  return alloc_refill(hak_class_of_tiny(n));
}

HAK_HOT_EXPORT void *hak_malloc(size_t n)
{
  if (hak_likely(n <= HAK_TINY_MAX)) {
    void *p = uc_pop(hak_class_of_tiny(n));
    if (hak_likely(p != NULL))
      return p;
    return alloc_refill_tiny(n);
  }
  return alloc_slow(n);
}

/* ---- Pointer validation -------------------------------------------------- */

typedef enum { PTR_BAD, PTR_SMALL, PTR_LARGE } ptr_kind_t;

/* What p is, checked under the registry read lock so that the headers read
 * cannot be unmapped meanwhile. *cls gets a small block's class. */
static ptr_kind_t classify(const void *p, unsigned *cls)
{
  ptr_kind_t k = PTR_BAD;
  registry_read_lock();
  uint64_t tag = registry_tag(p);
  switch (hak_tag_kind(tag)) {
  case HAK_KIND_SMALL:
    if (backend_ss_is_block(hak_tag_hdr(tag), p)) {
      *cls = hak_tag_class(tag);
      k = PTR_SMALL;
    }
    break;
  case HAK_KIND_LARGE:
    if (large_is_block(p))
      k = PTR_LARGE;
    break;
  default:
    break;
  }
  registry_read_unlock();
  return k;
}

/* The fast test free uses: p is a block start of one of the table's
 * classes. *key_out gets p's class key (backend/size_class.h); key 0, not
 * a small block, fails the offset check, which also proves a block start
 * past the SuperSlab's header. */
HAK_INLINE bool is_table_block(const void *p, uintptr_t *key_out)
{
  uintptr_t ckey = registry_class_key(p);
  *key_out = ckey;
  return backend_ss_past_data_start(p) &&
         hak_class_key_is_block_offset(ckey, (uint32_t)((uintptr_t)p & (HAK_SLAB_SIZE - 1)));
}

/* The same test for any class of 64 KiB slabs: free's slow path takes the
 * blocks above the table's classes, which the fast test leaves out. */
HAK_INLINE bool is_small_block(const void *p, uintptr_t *key_out)
{
  uintptr_t ckey = registry_class_key(p);
  *key_out = ckey;
  /* ckey - 1 (the class) wraps for key 0 (not a small block), so one
   * compare rules it out */
  return ckey - 1 < HAK_NUM_SMALL_CLASSES && backend_ss_past_data_start(p) &&
         hak_class_is_block_offset((unsigned)ckey - 1, (uint32_t)((uintptr_t)p & (HAK_SLAB_SIZE - 1)));
}

/* ---- Free ---------------------------------------------------------------- */

static HAK_NOINLINE void free_slow(void *p, const char *fn)
{
  if (p == NULL)
    return;
  uintptr_t ckey;
  if (is_small_block(p, &ckey)) {
    uc_push_checked(ckey, p);
    return;
  }
  unsigned c;
  switch (classify(p, &c)) {
  case PTR_SMALL:
    uc_push(c, p);
    return;
  case PTR_LARGE:
    large_free(p);
    return;
  default:
    if (large_was_freed(p))
      hak_os_fatal(fn, "double free detected", p);
    hak_os_fatal(fn, "invalid pointer (not allocated by hakmem, or freed already)", p);
  }
}

/* Each entry point has its own slow path, which names it in the message
 * about a bad pointer. Taking only p, it is reached by a bare tail jump:
 * the hot path sets up no argument for it and stays shorter. */
static HAK_NOINLINE void free_slow_free(void *p) { free_slow(p, "free"); }
static HAK_NOINLINE void free_slow_sized(void *p) { free_slow(p, "free_sized"); }
static HAK_NOINLINE void free_slow_aligned_sized(void *p) { free_slow(p, "free_aligned_sized"); }

HAK_INLINE void free_named(void *p, void (*slow)(void *))
{
  uintptr_t ckey;
  if (hak_likely(is_table_block(p, &ckey))) {
    uc_push_by_key(ckey, p);
    return;
  }
  slow(p);
}

HAK_HOT_EXPORT void hak_free(void *p) { free_named(p, free_slow_free); }

HAK_HOT_EXPORT void hak_free_sized(void *p, size_t size)
{
  (void)size;
  free_named(p, free_slow_sized);
}

HAK_EXPORT void hak_free_aligned_sized(void *p, size_t alignment, size_t size)
{
  (void)alignment;
  (void)size;
  free_named(p, free_slow_aligned_sized);
}

/* ---- calloc, realloc ------------------------------------------------------ */

HAK_HOT_EXPORT void *hak_calloc(size_t nmemb, size_t size)
{
  size_t n;
  if (hak_unlikely(__builtin_mul_overflow(nmemb, size, &n) || n > HAK_MAX_REQUEST)) {
    errno = ENOMEM;
    return NULL;
  }
  if (n > HAK_CLASS_MAX)
    return large_alloc_retry(n, 0, true);
  /* a block carved from clean pages is cleared only where it was written */
  const unsigned c = hak_class_of(n);
  void *p = uc_pop_zeroed(c, n);
  if (hak_likely(p != NULL))
    return p;
  return alloc_refill_zeroed(c, n);
}

static size_t usable_of(void *p, const char *fn)
{
  unsigned c;
  uintptr_t ckey;
  if (hak_likely(is_table_block(p, &ckey)) || is_small_block(p, &ckey))
    return hak_class_size((unsigned)ckey - 1);
  switch (classify(p, &c)) {
  case PTR_SMALL:
    return hak_class_size(c);
  case PTR_LARGE:
    return large_usable_size(p);
  default:
    hak_os_fatal(fn, "invalid pointer (not allocated by hakmem)", p);
  }
}

HAK_HOT_EXPORT void *hak_realloc(void *p, size_t n)
{
  if (p == NULL)
    return hak_malloc(n);
  if (n == 0) {
    hak_free(p); /* glibc frees and returns NULL */
    return NULL;
  }
  unsigned c;
  uintptr_t ckey;
  size_t old;
  ptr_kind_t k = is_table_block(p, &ckey) || is_small_block(p, &ckey) ? (c = (unsigned)ckey - 1, PTR_SMALL)
                                                                  : classify(p, &c);
  if (k == PTR_BAD)
    hak_os_fatal("realloc", "invalid pointer (not allocated by hakmem)", p);
  if (hak_unlikely(n > HAK_MAX_REQUEST)) {
    errno = ENOMEM;
    return NULL;
  }
  bool to_mapping = false;
  if (k == PTR_SMALL) {
    old = hak_class_size(c);
    /* Keep the block if it fits and would not waste more than half. */
    if (n <= old && (n > old / 2 || old <= 32))
      return p;
    /* A block that grows past the small classes moves to a mapping of its
     * own, and its later growth is done in place (large_realloc) instead
     * of a copy into the next medium class at every step: a growing
     * buffer is likely to grow again. */
    to_mapping = n > old && n > HAK_SMALL_MAX;
  } else {
    if (n > HAK_SMALL_MAX) {
      void *q = large_realloc(p, n);
      if (hak_unlikely(!q)) {
        reclaim_for_retry();
        q = large_realloc(p, n);
      }
      return q;
    }
    old = large_usable_size(p);
  }
  void *q = to_mapping ? large_alloc_retry(n, 0, false) : hak_malloc(n);
  if (!q)
    return NULL;
  memcpy(q, p, old < n ? old : n);
  hak_free(p);
  return q;
}

HAK_EXPORT void *hak_reallocarray(void *p, size_t nmemb, size_t size)
{
  size_t n;
  if (__builtin_mul_overflow(nmemb, size, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  return hak_realloc(p, n);
}

/* ---- Aligned allocation ---------------------------------------------------- */

static void *alloc_aligned(size_t align, size_t n)
{
  /* every block malloc hands out is 16-byte aligned */
  if (align <= HAK_ALIGNMENT)
    return hak_malloc(n);
  if (hak_unlikely(n > HAK_MAX_REQUEST || align > HAK_MAX_REQUEST / 2)) {
    errno = ENOMEM;
    return NULL;
  }
  int c = hak_class_for_aligned(n ? n : 1, align);
  if (c >= 0)
    return alloc_class((unsigned)c);
  return large_alloc_retry(n, align, false);
}

static inline bool is_pow2(size_t a) { return a && !(a & (a - 1)); }

HAK_EXPORT int hak_posix_memalign(void **out, size_t align, size_t n)
{
  if (!is_pow2(align) || align % sizeof(void *) != 0)
    return EINVAL;
  int saved = errno;
  void *p = alloc_aligned(align, n);
  if (!p) {
    int e = errno;
    errno = saved;
    return e ? e : ENOMEM;
  }
  *out = p;
  return 0;
}

HAK_EXPORT void *hak_aligned_alloc(size_t align, size_t n)
{
  if (!is_pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  return alloc_aligned(align, n);
}

HAK_EXPORT void *hak_memalign(size_t align, size_t n)
{
  if (align > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return NULL;
  }
  if (!is_pow2(align)) {
    /* glibc rounds a non-power-of-two alignment up */
    size_t a = HAK_ALIGNMENT;
    while (a < align)
      a <<= 1;
    align = a;
  }
  return alloc_aligned(align, n);
}

HAK_EXPORT void *hak_valloc(size_t n) { return alloc_aligned(HAK_PAGE_SIZE, n); }

HAK_EXPORT void *hak_pvalloc(size_t n)
{
  if (n > HAK_MAX_REQUEST) {
    errno = ENOMEM;
    return NULL;
  }
  size_t r = n ? hak_align_up(n, HAK_PAGE_SIZE) : HAK_PAGE_SIZE;
  return alloc_aligned(HAK_PAGE_SIZE, r);
}

/* ---- Introspection and tuning --------------------------------------------- */

HAK_EXPORT size_t hak_malloc_usable_size(void *p)
{
  if (p == NULL)
    return 0;
  return usable_of(p, "malloc_usable_size");
}

HAK_EXPORT int hak_malloc_trim(size_t pad)
{
  (void)pad;
  size_t released = 0;
  if (hak_thread_state == HAK_THREAD_LIVE)
    uc_drain_all();
  released += warm_pool_trim(); /* this thread's pool, then help idle ones */
  released += backend_trim();
  released += large_trim();
  return released != 0;
}

HAK_EXPORT int hak_mallopt(int param, int value)
{
  (void)param;
  (void)value;
  return 1; /* accepted; hakmem's design is chosen at build time */
}

/* ---- The standard names ----------------------------------------------------- */

/* A build with -DHAK_NO_STD_NAMES provides only the hak_* functions: for
 * sanitizer and fuzzing builds, whose runtimes own malloc themselves. */
#ifndef HAK_NO_STD_NAMES

HAK_ALIAS(malloc, hak_malloc)
HAK_ALIAS(free, hak_free)
HAK_ALIAS(calloc, hak_calloc)
HAK_ALIAS(realloc, hak_realloc)
HAK_ALIAS(reallocarray, hak_reallocarray)
HAK_ALIAS(posix_memalign, hak_posix_memalign)
HAK_ALIAS(aligned_alloc, hak_aligned_alloc)
HAK_ALIAS(memalign, hak_memalign)
HAK_ALIAS(valloc, hak_valloc)
HAK_ALIAS(pvalloc, hak_pvalloc)
HAK_ALIAS(malloc_usable_size, hak_malloc_usable_size)
HAK_ALIAS(free_sized, hak_free_sized)
HAK_ALIAS(free_aligned_sized, hak_free_aligned_sized)
HAK_ALIAS(malloc_trim, hak_malloc_trim)
HAK_ALIAS(mallopt, hak_mallopt)
#endif /* HAK_NO_STD_NAMES */

/*
 * boxes/unified_cache — the per-thread front: for each size class a stack
 * of free blocks linked through their first word. malloc pops, free pushes;
 * nothing else happens on the hot path (one TLS block, no atomic, no lock).
 * Blocks above the table's classes come through uc_push_checked (free's
 * slow path), which with the warm pool on sends another thread's blocks
 * back to their owner in batches instead of caching them.
 *
 * Fill tracking: avail is how many more blocks the bin may take before it
 * is over its limit (limit - fill). A pop adds one, a push takes one and
 * flushes when it goes negative. With statistics, a push also counts itself
 * in pushes; the slow path derives the hits (pops) from avail and pushes
 * (see unified_cache.c), so malloc's path does one add. A thread's bins
 * start zeroed — an empty sentinel: the first pop misses and the first push
 * overflows, and the slow path sets the thread up.
 *
 * Refill and flush move blocks in batches to and from the warm pool. Each
 * bin's limit adapts: a bin that only overflows (its thread frees blocks it
 * does not allocate again) shrinks to a quarter, and grows back as soon as
 * it drains after a flush; a bin that cycles more of its thread's own
 * blocks than it holds grows past its usual limit, within a byte bound
 * (see unified_cache.c).
 *
 * Double free. A free block's second word holds the check word, a random
 * per-process secret (glibc's tcache keeps a key the same way); free tests
 * it before the push and writes it, and a pop clears it. A block that
 * holds the check word when it is freed is only a suspect: user data may
 * hold the same bytes, so the slow path (uc_check_suspect) looks for the
 * block where free blocks are — this thread's bin and foreign chain, its
 * slab's free list and its SuperSlab's remote chain (another thread's
 * SuperSlab only when its owner is not busy) — and aborts only when it
 * finds it there. A block carved from clean pages holds the backend's
 * fresh word there instead until it is handed out: calloc's pop
 * (uc_pop_zeroed) reads it first, and clears only the first words of
 * such a block.
 *
 * Hardened builds: links are stored as next ^ key ^ (address >> 4) with a
 * per-thread random key, and a popped link must lead to a block of the same
 * class or the process aborts; a freed block carries a canary in its second
 * word (a process secret ^ its address), cleared when it is handed out, so
 * freeing it again is caught wherever it sits.
 * With -Dunified_cache=false the same interface caches nothing: every pop
 * misses and every push is refused, so the front goes to the slow path.
 */
#ifndef HAK_UNIFIED_CACHE_H
#define HAK_UNIFIED_CACHE_H

#include "hak/common.h"
#include "hak/config.h"
#include "hak/link.h"
#include "registry/registry.h"
#include "boxes/warm_pool/warm_pool.h"

#include <string.h>

typedef struct uc_bin {
  void    *head;
  int32_t  avail;
  uint32_t pushes; /* with statistics: blocks pushed (wrapping) */
} uc_bin_t;

/* Indexed by class key (class + 1; entry 0 is never used): the free path
 * gets the key from the class map and indexes with it directly. */
extern __thread uc_bin_t uc_bins_by_key[HAK_NUM_CLASSES + 1] HAK_INTERNAL;
#define UC_BIN(c) (&uc_bins_by_key[(c) + 1])

#if !HAK_HARDENED
/* What a free block's second word holds (see above); set once, before the
 * first block is handed out, never 0. */
extern uintptr_t uc_check_word HAK_INTERNAL;
#endif
/* p, a block of class key ckey, holds the check word: abort if it is
 * free (uc_check_suspect), or return; uc_push_suspect then caches it. */
void uc_check_suspect(uintptr_t ckey, const void *p) HAK_INTERNAL;
void uc_push_suspect(uintptr_t ckey, void *p) HAK_INTERNAL;

#if HAK_HARDENED
extern __thread uintptr_t uc_link_secret HAK_INTERNAL;
extern uintptr_t uc_canary_secret HAK_INTERNAL;
__attribute__((noreturn)) void uc_bad_link(const void *p) HAK_INTERNAL;
HAK_INLINE void *uc_link(const void *at, void *v) { return hak_link_code(uc_link_secret, at, v); }
HAK_INLINE uintptr_t uc_canary(const void *p) { return uc_canary_secret ^ (uintptr_t)p; }
#else
HAK_INLINE void *uc_link(const void *at, void *v) { return hak_link_code(0, at, v); }
#endif

/* A free block of class c, or NULL (then call uc_refill). */
HAK_INLINE void *uc_pop(unsigned c)
{
#if HAK_UNIFIED_CACHE
  uc_bin_t *b = UC_BIN(c);
  void *p = b->head;
  if (hak_likely(p != NULL)) {
    void *next = uc_link(p, *(void **)p);
#if HAK_HARDENED
    if (hak_unlikely(next && (registry_class_key(next) != c + 1 || ((uintptr_t)next & 15))))
      uc_bad_link(p);
#endif
    ((uintptr_t *)p)[1] = 0; /* handed out: no check word, no canary */
    b->head = next;
    b->avail++;
  }
  return p;
#else
  (void)c;
  return NULL;
#endif
}

/* Clear the first n bytes of p, a block just handed out for n bytes. A
 * fresh one (warm_pool_block_is_fresh before the hand-out) can hold
 * something only in its first three words, two for 16-byte blocks (the
 * class of every n up to 16). */
HAK_INLINE void uc_clear(void *p, size_t n, bool fresh)
{
  if (fresh)
    memset(p, 0, n <= 16 ? 16 : 24);
  else
    memset(p, 0, n);
}

/* calloc's uc_pop: a block of class c whose first n bytes are zero, or
 * NULL (then call uc_refill(c, n)). */
HAK_INLINE void *uc_pop_zeroed(unsigned c, size_t n)
{
#if HAK_UNIFIED_CACHE
  const void *head = UC_BIN(c)->head;
  const bool fresh = head != NULL && warm_pool_block_is_fresh(head);
  void *p = uc_pop(c);
  if (p != NULL)
    uc_clear(p, n, fresh);
  return p;
#else
  (void)c, (void)n;
  return NULL;
#endif
}

/* Slow path of malloc and calloc: refill class c and return one block
 * (NULL = out of memory) with its first zero bytes cleared (0 for
 * malloc). */
void *uc_refill(unsigned c, size_t zero) HAK_INTERNAL;
/* Slow path of free: the bin of class c went over its limit. */
void uc_flush(unsigned c) HAK_INTERNAL;
/* Abort: p was freed already. */
__attribute__((noreturn)) void uc_double_free(void *p) HAK_INTERNAL;
/* Free p of class c without the cache (cache off, or thread gone). */
void uc_free_direct(unsigned c, void *p) HAK_INTERNAL;

/* Put p, a free block of class key ckey whose second word is set, on its
 * bin. */
HAK_INLINE void uc_bin_push(uintptr_t ckey, void *p)
{
  uc_bin_t *b = &uc_bins_by_key[ckey];
  *(void **)p = uc_link(p, b->head);
  b->head = p;
#if HAK_STATS
  b->pushes++;
#endif
  if (hak_unlikely(--b->avail < 0))
    uc_flush((unsigned)ckey - 1);
}

/* Cache p, a block of class key ckey (class ckey - 1): the free path has
 * the key at hand, and the bins are indexed by it. A suspect leaves by a
 * tail call, so the hot path saves no register for it. */
HAK_INLINE void uc_push_by_key(uintptr_t ckey, void *p)
{
#if HAK_UNIFIED_CACHE
#if HAK_HARDENED
  if (hak_unlikely(((uintptr_t *)p)[1] == uc_canary(p)))
    uc_double_free(p);
  ((uintptr_t *)p)[1] = uc_canary(p);
#else
  const uintptr_t check = uc_check_word;
  if (hak_unlikely(((uintptr_t *)p)[1] == check)) {
    uc_push_suspect(ckey, p);
    return;
  }
  ((uintptr_t *)p)[1] = check;
#endif
  uc_bin_push(ckey, p);
#else
  uc_free_direct((unsigned)ckey - 1, p);
#endif
}

/* Free p, a block of class key ckey above the table's classes (free's slow
 * path). With the warm pool on it goes on the bin only if the calling
 * thread owns it; another thread's block goes back to its owner in
 * batches (see unified_cache.c). */
void uc_push_checked(uintptr_t ckey, void *p) HAK_INTERNAL;

/* Cache p (a block of class c). */
HAK_INLINE void uc_push(unsigned c, void *p) { uc_push_by_key((uintptr_t)c + 1, p); }

/* Is p on the calling thread's bin for c, near the top (the last `depth`
 * blocks)? A cheap double-free probe for slow paths. */
bool uc_holds_recent(unsigned c, const void *p, unsigned depth) HAK_INTERNAL;
/* The calling thread's current limit for bin c (0 when not set up). */
unsigned uc_bin_limit(unsigned c) HAK_INTERNAL;
/* Blocks on the calling thread's bin for c (walks it). */
unsigned uc_bin_length(unsigned c) HAK_INTERNAL;
/* Other threads' blocks of class c the calling thread holds for them. */
unsigned uc_foreign_length(unsigned c) HAK_INTERNAL;

/* Set up the calling thread's bins (and the warm pool below them). */
void uc_thread_init(void) HAK_INTERNAL;
/* The box above registers how a whole thread is set up; the cache calls it
 * when a thread's first operation is a free. */
void uc_set_thread_setup(void (*setup)(void)) HAK_INTERNAL;
/* Give every cached block back; the bins then pass every push straight on. */
void uc_thread_exit(void) HAK_INTERNAL;
/* Give back every cached block of the calling thread (malloc_trim). */
void uc_drain_all(void) HAK_INTERNAL;
/* Fold the calling thread's unified-cache hits into its statistics. */
void uc_fold_stats(void) HAK_INTERNAL;

#endif /* HAK_UNIFIED_CACHE_H */

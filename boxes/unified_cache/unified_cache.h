/*
 * boxes/unified_cache — the per-thread front: for each size class a stack
 * of free blocks linked through their first word. malloc pops, free pushes;
 * nothing else happens on the hot path (one TLS block, no atomic, no lock).
 *
 * Fill tracking without a hot-path counter of its own: each bin counts
 * pushes and pops (pops double as the hit counter for the statistics), and
 * uc_slack[c] is how far pushes may run ahead of pops before the bin holds
 * more than its limit. The slow path re-bases both counters at every refill
 * and flush. A thread's bins start zeroed — an empty sentinel: the first pop
 * misses and the first push overflows, and the slow path sets the thread up.
 *
 * Refill and flush move blocks in batches to and from the warm pool.
 * With -Dunified_cache=false the same interface caches nothing: every pop
 * misses and every push is refused, so the front goes to the slow path.
 */
#ifndef HAK_UNIFIED_CACHE_H
#define HAK_UNIFIED_CACHE_H

#include "hak/common.h"
#include "hak/config.h"

typedef struct uc_bin {
  void    *head;
  uint32_t pushes;
  uint32_t pops;
} uc_bin_t;

extern __thread uc_bin_t uc_bins[HAK_NUM_CLASSES] HAK_INTERNAL;
extern __thread int32_t uc_slack[HAK_NUM_CLASSES] HAK_INTERNAL;

/* A free block of class c, or NULL (then call uc_refill). */
HAK_INLINE void *uc_pop(unsigned c)
{
#if HAK_UNIFIED_CACHE
  uc_bin_t *b = &uc_bins[c];
  void *p = b->head;
  if (hak_likely(p != NULL)) {
    b->head = *(void **)p;
    b->pops++;
  }
  return p;
#else
  (void)c;
  return NULL;
#endif
}

/* Slow path of malloc: refill class c and return one block (NULL = OOM). */
void *uc_refill(unsigned c) HAK_INTERNAL;
/* Slow path of free: the bin of class c went over its limit. */
void uc_flush(unsigned c) HAK_INTERNAL;
/* Abort: p is already the top of its bin. */
__attribute__((noreturn)) void uc_double_free(void *p) HAK_INTERNAL;
/* Free p of class c without the cache (cache off, or thread gone). */
void uc_free_direct(unsigned c, void *p) HAK_INTERNAL;

/* Cache p (a block of class c). */
HAK_INLINE void uc_push(unsigned c, void *p)
{
#if HAK_UNIFIED_CACHE
  uc_bin_t *b = &uc_bins[c];
  void *h = b->head;
  if (hak_unlikely(h == p)) /* freed twice in a row: would make a cycle */
    uc_double_free(p);
  *(void **)p = h;
  b->head = p;
  if (hak_unlikely((int32_t)(++b->pushes - b->pops) > uc_slack[c]))
    uc_flush(c);
#else
  uc_free_direct(c, p);
#endif
}

/* Is p on the calling thread's bin for c, near the top (the last `depth`
 * blocks)? A cheap double-free probe for slow paths. */
bool uc_holds_recent(unsigned c, const void *p, unsigned depth) HAK_INTERNAL;

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

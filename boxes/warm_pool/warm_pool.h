/*
 * boxes/warm_pool — per-thread, per-class LIFO of the SuperSlabs this thread
 * owns that have room. It supplies blocks to the unified cache and takes
 * them back.
 *
 * Refill: carve from the SuperSlab on top of the class's pool (a hit); an
 * exhausted one leaves the pool and floats until frees give it room again.
 * When the pool runs empty (a miss): first the thread's inbox (SuperSlabs
 * that other threads freed into), then the registry index (ownerless
 * SuperSlabs with room: a "registry scan"), then a new SuperSlab from the
 * backend; on a miss the pool can be prefilled with `prefill' extra
 * SuperSlabs so a working set of them builds up. The default is none: the
 * pool keeps every SuperSlab that regains room anyway, and each prefilled
 * one spreads the thread's blocks over one more SuperSlab, whose slabs stay
 * resident as long as one survivor is in them. The pool holds at most
 * `warm_pool_max' SuperSlabs per class and at most one empty one; the
 * rest go back to the registry or the backend.
 *
 * Prefill policy (`prefill_policy'): fixed spends `prefill' on every miss
 * after a class's first; adaptive keeps a budget per class in
 * 0..min(4 x prefill, warm_pool_max - 1), doubled by a miss and halved
 * when a prefilled SuperSlab goes back unused (see warm_pool.c).
 *
 * prefill, prefill_policy and warm_pool_max are run-time settings
 * (hak/settings.h; defaults from the build options), read on the miss and
 * give-back paths only. A setting changed while pools hold more than it
 * allows takes effect as they drain: nothing is given back for it.
 *
 * Statistics: warm_hits and warm_misses count refills the pool served or
 * not; a class's first refill in a thread (the pool cannot have anything
 * yet) is counted as warm_cold_misses instead.
 *
 * With -Dwarm_pool=false the same interface keeps no SuperSlab: every
 * refill is a miss that adopts one from the registry (or maps one), carves,
 * and hands it back ownerless.
 *
 * Thread-private: no lock and no atomic on this box's own state.
 */
#ifndef HAK_WARM_POOL_H
#define HAK_WARM_POOL_H

#include "hak/common.h"
#include "hak/config.h"

/* Set up / tear down the calling thread's pool. init returns false when
 * out of memory. exit releases every SuperSlab the thread owns: call it
 * after the unified cache has given its blocks back. */
bool warm_pool_thread_init(void) HAK_INTERNAL;
void warm_pool_thread_exit(void) HAK_INTERNAL;

/* Up to max blocks of class cls as a chain head..tail; 0 when out of memory. */
unsigned warm_pool_refill(unsigned cls, unsigned max, void **head, void **tail) HAK_INTERNAL;

/* Take back n blocks of class cls linked through their first word (plain
 * links). Blocks may belong to any thread's SuperSlab. Returns the n-th
 * block's link as it was (what followed them: a bin's next block). */
void *warm_pool_return(unsigned cls, void *head, unsigned n) HAK_INTERNAL;

/* Take back one block of class cls (its link is ignored): onto its slab
 * when the calling thread owns its SuperSlab (true), else to its owner.
 * The short path for a thread that frees its own blocks one at a time. */
bool warm_pool_return_one(unsigned cls, void *b) HAK_INTERNAL;

/* Plain builds: is b, a block a refill handed up and not handed out since,
 * zero from its fourth word on? Blocks carved from clean pages say so in
 * their second word (backend/superslab.h, "Fresh blocks"). */
extern uintptr_t backend_fresh_word HAK_INTERNAL;
HAK_INLINE bool warm_pool_block_is_fresh(const void *b)
{
  return !HAK_HARDENED && ((const uintptr_t *)b)[1] == backend_fresh_word;
}

/* Does the calling thread own the SuperSlab of p, a live small block? */
bool warm_pool_owns(const void *p) HAK_INTERNAL;
/* Is p (a block of class cls) free: on its slab's free list, in an idle
 * slab, on its SuperSlab's remote chain? Another thread's SuperSlab is
 * looked at only if its owner is not busy (false otherwise). */
bool warm_pool_holds_free(unsigned cls, const void *p) HAK_INTERNAL;

/* Of the blocks the calling thread's last warm_pool_return took, how many
 * went back to its own SuperSlabs (the others to their owners). */
unsigned warm_pool_last_local(void) HAK_INTERNAL;

/* Give back what the calling thread's pools hold idle. Bytes released. */
size_t warm_pool_trim(void) HAK_INTERNAL;

/* Current number of SuperSlabs in the calling thread's pool for cls. */
unsigned warm_pool_count(unsigned cls) HAK_INTERNAL;
/* The calling thread's prefill budget for cls's next miss. */
unsigned warm_pool_budget(unsigned cls) HAK_INTERNAL;

#endif /* HAK_WARM_POOL_H */

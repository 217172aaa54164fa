/*
 * backend/internal.h — what the backend's own files (superslab.c, slab.c,
 * owner.c) share with each other. The boxes above include superslab.h,
 * never this.
 */
#ifndef HAK_BACKEND_INTERNAL_H
#define HAK_BACKEND_INTERNAL_H

#include "backend/superslab.h"
#include "hak/debug.h"

/* ss->notify: the remote-free notification states (owner.c). */
enum { NOTIFY_ARMED = 0, NOTIFY_NOTIFYING = 1, NOTIFY_NOTIFIED = 2, NOTIFY_NEVER = 3 };

/* ss->used changes only in the hands of whoever may touch ss's slabs (its
 * owner, or for an ownerless one the holder of its class index lock), but
 * the census (backend_ss_census) reads it from any thread: it is stored
 * with relaxed atomic stores, the same plain stores on the usual targets. */
HAK_INLINE void backend_ss_set_used(hak_superslab_t *ss, uint32_t n)
{
  __atomic_store_n(&ss->used, n, __ATOMIC_RELAXED);
}

/* slab.c: set ss up for class cls, keeping what its slabs' dirt says of
 * its pages. */
void backend_ss_init(hak_superslab_t *ss, unsigned cls) HAK_INTERNAL;

/* superslab.c: the object pool of owners; the free tier (ss is empty and
 * reachable by no list). */
hak_owner_t *backend_owner_obj_get(void) HAK_INTERNAL;
void backend_owner_obj_put(hak_owner_t *o) HAK_INTERNAL;
void backend_ss_to_free_tier(hak_superslab_t *ss) HAK_INTERNAL;

/* owner.c: ss joins o's list of SuperSlabs; one decay pass over o's
 * SuperSlabs (o's lock held, by o or by a helper); the pass for owners
 * that have gone quiet (the global pass's part); fork. */
void backend_owner_link(hak_owner_t *o, hak_superslab_t *ss) HAK_INTERNAL;
bool backend_owner_decay_locked(hak_owner_t *o, uint32_t now, bool helping) HAK_INTERNAL;
bool backend_owners_decay_quiet(uint32_t now, uint32_t delay) HAK_INTERNAL;
void backend_owner_fork_parent(void) HAK_INTERNAL;
void backend_owner_fork_child(void) HAK_INTERNAL;

/* Checking builds: the validators (slab.c, "Validators"). */
#if HAK_DEBUG_CHECKS
void backend_slab_validate(hak_superslab_t *ss, unsigned s) HAK_INTERNAL;
void backend_ss_validate(hak_superslab_t *ss) HAK_INTERNAL;
#define SLAB_VALIDATE(ss, s) backend_slab_validate((ss), (s))
#define SS_VALIDATE(ss) backend_ss_validate(ss)
#else
#define SLAB_VALIDATE(ss, s) ((void)0)
#define SS_VALIDATE(ss) ((void)0)
#endif

#endif /* HAK_BACKEND_INTERNAL_H */

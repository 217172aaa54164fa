/*
 * hak/lock.h — the allocator's mutex: a pthread mutex that, in checking
 * builds (-Ddebug_checks=true), also records the thread inside it, so that
 * a function named *_locked can assert that its caller holds its lock
 * (hak_mutex_assert_held) and an unlock that the holder did not make
 * aborts. In other builds it is the pthread mutex and nothing more.
 *
 * A zeroed hak_mutex_t is unlocked (glibc's default mutex is all zeros), so
 * a lock works before any constructor has run; a fork child re-initialises
 * the locks its parent held across fork (hak_mutex_reinit). The order in
 * which the allocator's locks nest is stated once, at the top of
 * backend/superslab.c.
 */
#ifndef HAK_LOCK_H
#define HAK_LOCK_H

#include "hak/debug.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct hak_mutex {
  pthread_mutex_t m;
#if HAK_DEBUG_CHECKS
  _Atomic uintptr_t holder; /* pthread_self() of the thread inside, or 0 */
#endif
} hak_mutex_t;

#define HAK_MUTEX_INIT {.m = PTHREAD_MUTEX_INITIALIZER}

#if HAK_DEBUG_CHECKS
static inline uintptr_t hak_lock_self(void) { return (uintptr_t)pthread_self(); }
#endif

static inline void hak_mutex_lock(hak_mutex_t *l)
{
  pthread_mutex_lock(&l->m);
  HAK_DEBUG_ONLY(HAK_ASSERT(atomic_load_explicit(&l->holder, memory_order_relaxed) == 0);
                 atomic_store_explicit(&l->holder, hak_lock_self(), memory_order_relaxed);)
}

static inline bool hak_mutex_trylock(hak_mutex_t *l)
{
  if (pthread_mutex_trylock(&l->m) != 0)
    return false;
  HAK_DEBUG_ONLY(atomic_store_explicit(&l->holder, hak_lock_self(), memory_order_relaxed);)
  return true;
}

static inline void hak_mutex_unlock(hak_mutex_t *l)
{
  HAK_DEBUG_ONLY(HAK_ASSERT(atomic_load_explicit(&l->holder, memory_order_relaxed) == hak_lock_self());
                 atomic_store_explicit(&l->holder, 0, memory_order_relaxed);)
  pthread_mutex_unlock(&l->m);
}

/* Fork child: the parent's holders are gone; the lock starts unlocked. */
static inline void hak_mutex_reinit(hak_mutex_t *l)
{
  pthread_mutex_init(&l->m, NULL);
  HAK_DEBUG_ONLY(atomic_store_explicit(&l->holder, 0, memory_order_relaxed);)
}

/* The calling thread holds l (checked in checking builds only). */
#if HAK_DEBUG_CHECKS
#define hak_mutex_assert_held(l) \
  HAK_ASSERT(atomic_load_explicit(&(l)->holder, memory_order_relaxed) == hak_lock_self())
#else
#define hak_mutex_assert_held(l) ((void)(l))
#endif

#endif /* HAK_LOCK_H */

/*
 * backend/owner.c — owners: a thread's identity as an owner of SuperSlabs,
 * the owner lock, the list of live owners; SuperSlabs changing hands
 * (adopted from the registry index, released to it or to the free tier);
 * frees from other threads (remote chains) and the notification that
 * brings them back to the owner (its inbox); the help owners that have
 * gone quiet get from other threads (trim, decay).
 *
 * Notification protocol (ss->notify):
 *   ARMED      an owner exists; the next pusher that finds the remote list
 *              empty may notify it.
 *   NOTIFYING  a pusher won the right to notify and is reading the owner
 *              (a few instructions).
 *   NOTIFIED   the SuperSlab is on the owner's inbox, or is being pushed
 *              there (the state is set first).
 *   NEVER      no owner: pushers collect under the class index lock instead.
 * An owner releasing a SuperSlab moves ARMED → NEVER, waits out NOTIFYING,
 * and empties its inbox first if NOTIFIED, so an inbox never holds a
 * SuperSlab its owner gave away and a pusher never reads a retired owner.
 */
#include "backend/superslab.h"
#include "backend/internal.h"
#include "backend/os.h"
#include "hak/config.h"
#include "hak/debug.h"
#include "hak/list.h"

#include <sched.h>
#include <string.h>

static hak_mutex_t owners_lock = HAK_MUTEX_INIT; /* the live list */
static hak_list_node_t *owners_live;
static unsigned owners_live_count; /* written under owners_lock */
static _Atomic uint32_t next_tid = 1;

/* ---- The owner lock (see superslab.h) ----------------------------------- */

bool backend_owner_fenced;
static pthread_once_t owner_lock_once = PTHREAD_ONCE_INIT;

#if defined(__SANITIZE_THREAD__)
#define OWNER_LOCK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define OWNER_LOCK_TSAN 1
#endif
#endif
#ifndef OWNER_LOCK_TSAN
#define OWNER_LOCK_TSAN 0
#endif

static void owner_lock_choose(void)
{
  backend_owner_fenced = OWNER_LOCK_TSAN || !hak_os_membarrier_register();
}

/* The owner found a helper inside: step out of its way until it is done
 * (one pass over the owner's SuperSlabs), then try again. */
void backend_owner_lock_wait(hak_owner_t *o)
{
  do {
    atomic_store_explicit(&o->busy, 0, memory_order_release);
    while (atomic_load_explicit(&o->helper, memory_order_acquire))
      sched_yield();
  } while (!backend_owner_enter(o));
}

bool backend_owner_trylock(hak_owner_t *o)
{
  int none = 0;
  if (!atomic_compare_exchange_strong(&o->helper, &none, 1))
    return false; /* another helper */
  if (!backend_owner_fenced && !hak_os_membarrier()) { /* no barrier: nothing is known */
    backend_owner_helper_unlock(o);
    return false;
  }
  if (atomic_load_explicit(&o->busy, backend_owner_fenced ? memory_order_seq_cst : memory_order_acquire)) {
    backend_owner_helper_unlock(o);
    return false;
  }
  return true;
}

hak_owner_t *backend_owner_new(void)
{
  pthread_once(&owner_lock_once, owner_lock_choose);
  hak_owner_t *o = backend_owner_obj_get();
  if (!o)
    return NULL;
  memset(o, 0, sizeof *o);
  atomic_store_explicit(&o->busy, 0, memory_order_relaxed);
  atomic_store_explicit(&o->helper, 0, memory_order_relaxed);
  o->tid = atomic_fetch_add_explicit(&next_tid, 1, memory_order_relaxed);
  o->decay_ms = hak_clock_ms();
  hak_mutex_lock(&owners_lock);
  __atomic_store_n(&owners_live_count, owners_live_count + 1, __ATOMIC_RELAXED);
  hak_list_push(&owners_live, &o->live);
  hak_mutex_unlock(&owners_lock);
  return o;
}

void backend_owner_retire(hak_owner_t *o)
{
  /* Off the live list first: no trim can pick this owner up any more. */
  hak_mutex_lock(&owners_lock);
  hak_list_remove(&owners_live, &o->live);
  __atomic_store_n(&owners_live_count, owners_live_count - 1, __ATOMIC_RELAXED);
  hak_mutex_unlock(&owners_lock);
  backend_owner_lock(o); /* wait out a trim that is helping this owner */
  backend_owner_unlock(o);
  while (o->owned)
    backend_ss_release(o, hak_list_entry(o->owned, hak_superslab_t, own));
  /* Every SuperSlab was released, and release empties the inbox of each, so
   * no pusher can still reach this owner. */
  backend_owner_obj_put(o);
}

void backend_owner_link(hak_owner_t *o, hak_superslab_t *ss)
{
  hak_list_push(&o->owned, &ss->own);
  o->owned_count++;
}

static void owner_unlink(hak_owner_t *o, hak_superslab_t *ss)
{
  hak_list_remove(&o->owned, &ss->own);
  o->owned_count--;
}

/* ---- Hand-over, inbox and remote frees ---------------------------------- */

hak_superslab_t *backend_ss_adopt(hak_owner_t *o, unsigned cls)
{
  registry_index_lock(cls);
  hak_superslab_t *ss = hak_list_entry(registry_index_pop(cls), hak_superslab_t, index_link);
  if (ss) {
    backend_ss_drain(ss);
    SS_VALIDATE(ss);
    ss->tier = HAK_TIER_HOT;
    memset(ss->above, 0, sizeof ss->above);
    atomic_store_explicit(&ss->owner, o, memory_order_seq_cst);
    atomic_store_explicit(&ss->notify, NOTIFY_ARMED, memory_order_seq_cst);
    backend_owner_link(o, ss);
  }
  registry_index_unlock(cls);
  return ss;
}

static void owner_inbox_push(hak_owner_t *o, hak_superslab_t *ss)
{
  hak_superslab_t *old = atomic_load_explicit(&o->inbox, memory_order_relaxed);
  do {
    ss->inbox_next = old;
  } while (!atomic_compare_exchange_weak_explicit(&o->inbox, &old, ss, memory_order_release,
                                                  memory_order_relaxed));
}

/* Move the inbox onto the owner's private pending list, re-arming each. */
static void inbox_to_pending(hak_owner_t *o)
{
  hak_superslab_t *list = atomic_exchange_explicit(&o->inbox, NULL, memory_order_acquire);
  while (list) {
    hak_superslab_t *next = list->inbox_next;
    atomic_store_explicit(&list->notify, NOTIFY_ARMED, memory_order_seq_cst);
    if (!list->pending) {
      list->pending = 1;
      hak_list_push(&o->pending, &list->pend);
    }
    list = next;
  }
}

static void pending_unlink(hak_owner_t *o, hak_superslab_t *ss)
{
  if (!ss->pending)
    return;
  hak_list_remove(&o->pending, &ss->pend);
  ss->pending = 0;
}

hak_superslab_t *backend_inbox_take(hak_owner_t *o)
{
  if (atomic_load_explicit(&o->inbox, memory_order_relaxed) != NULL)
    inbox_to_pending(o);
  hak_list_node_t *first = o->pending;
  o->pending = NULL; /* the nodes keep their links: the caller walks them */
  hak_superslab_t *ss;
  hak_list_for_each(ss, first, pend) {
    ss->pending = 0;
    backend_ss_drain(ss);
  }
  return hak_list_entry(first, hak_superslab_t, pend);
}

/* Ownerless SuperSlab with fresh remote frees: collect them under the class
 * lock, and free the SuperSlab if that emptied it. Returns false if the
 * SuperSlab turned out to have an owner (the caller notifies it instead). */
static bool collect_ownerless(hak_superslab_t *ss)
{
  unsigned cls = ss->cls;
  registry_index_lock(cls);
  if (atomic_load_explicit(&ss->owner, memory_order_seq_cst) != NULL) {
    registry_index_unlock(cls);
    return false;
  }
  /* Someone else drained it meanwhile (an adopter, its releaser, another
   * pusher) and it went to the free tier, or has even been set up again:
   * the blocks this pusher added went with that drain, since a SuperSlab
   * is freed only once all of its blocks are back. Only an ownerless
   * SuperSlab of this class, released and not yet freed, is collected
   * here; freeing it twice would hand it out twice. */
  if (ss->tier != HAK_TIER_DRAINING || ss->cls != cls) {
    registry_index_unlock(cls);
    return true;
  }
  backend_ss_drain(ss);
  if (ss->used == 0) {
    registry_index_remove(cls, &ss->index_link);
    ss->tier = HAK_TIER_FREE; /* under the lock: a late pusher sees it */
    registry_index_unlock(cls);
    backend_ss_to_free_tier(ss);
    return true;
  }
  /* Its idle slabs keep their pages until the decay finds them unused for
   * the purge delay: an adopter may carve from them first. */
  if (backend_ss_has_room(ss))
    registry_index_push(cls, &ss->index_link);
  registry_index_unlock(cls);
  return true;
}

void backend_remote_free(hak_superslab_t *ss, void *head, void *tail)
{
  void *old = atomic_load_explicit(&ss->remote_head, memory_order_relaxed);
  do {
    *(void **)tail = old;
  } while (!atomic_compare_exchange_weak_explicit(&ss->remote_head, &old, head, memory_order_seq_cst,
                                                  memory_order_relaxed));
  if (old != NULL)
    return; /* whoever made the list non-empty takes care of it */
  for (;;) {
    uint32_t st = atomic_load_explicit(&ss->notify, memory_order_seq_cst);
    if (st == NOTIFY_ARMED) {
      if (!atomic_compare_exchange_strong(&ss->notify, &st, NOTIFY_NOTIFYING))
        continue;
      hak_owner_t *o = atomic_load_explicit(&ss->owner, memory_order_seq_cst);
      if (o == NULL) {
        /* Armed without an owner: it was freed and is being set up again
         * (ss_init arms it before the owner is stored). Whoever freed it
         * had drained this pusher's blocks first. */
        atomic_store_explicit(&ss->notify, NOTIFY_ARMED, memory_order_seq_cst);
        return;
      }
      /* NOTIFIED before the push: once the owner can see ss on its inbox it
       * may re-arm it at any time, and a late NOTIFIED would then stick on
       * a SuperSlab no inbox holds. A releasing owner that sees NOTIFIED
       * before the push lands waits for it. */
      atomic_store_explicit(&ss->notify, NOTIFY_NOTIFIED, memory_order_seq_cst);
      owner_inbox_push(o, ss);
      return;
    }
    if (st == NOTIFY_NEVER) {
      if (collect_ownerless(ss))
        return;
      continue; /* adopted meanwhile: notify the new owner */
    }
    return; /* NOTIFYING or NOTIFIED: the owner will look */
  }
}

void backend_ss_release(hak_owner_t *o, hak_superslab_t *ss)
{
  for (;;) {
    uint32_t st = atomic_load_explicit(&ss->notify, memory_order_seq_cst);
    if (st == NOTIFY_ARMED) {
      if (atomic_compare_exchange_strong(&ss->notify, &st, NOTIFY_NEVER))
        break;
    } else if (st == NOTIFY_NOTIFYING) {
      sched_yield();
    } else if (st == NOTIFY_NOTIFIED) {
      /* It is on our inbox, or about to be: move the inbox to the private
       * pending list (every SuperSlab on it stays ours, re-armed); retry. */
      if (atomic_load_explicit(&o->inbox, memory_order_acquire) == NULL)
        sched_yield(); /* the pusher has yet to push */
      inbox_to_pending(o);
    } else {
      break;
    }
  }
  pending_unlink(o, ss);
  owner_unlink(o, ss);
  unsigned cls = ss->cls;
  registry_index_lock(cls);
  ss->tier = HAK_TIER_DRAINING;
  memset(ss->above, 0, sizeof ss->above);
  atomic_store_explicit(&ss->owner, NULL, memory_order_seq_cst);
  backend_ss_drain(ss);
  SS_VALIDATE(ss);
  if (ss->used == 0) {
    ss->tier = HAK_TIER_FREE; /* under the lock: a late pusher sees it (collect_ownerless) */
    registry_index_unlock(cls);
    backend_ss_to_free_tier(ss);
    return;
  }
  if (backend_ss_has_room(ss)) /* its idle slabs decay as in collect_ownerless */
    registry_index_push(cls, &ss->index_link);
  registry_index_unlock(cls);
}

size_t backend_trim_others(hak_owner_t *self, const hak_owner_trim_ops_t *ops)
{
  size_t bytes = 0;
  hak_mutex_lock(&owners_lock);
  hak_owner_t *o;
  hak_list_for_each(o, owners_live, live) {
    if (o == self || !backend_owner_trylock(o))
      continue; /* busy owners do their own housekeeping */
    hak_superslab_t *ss = backend_inbox_take(o);
    while (ss) {
      hak_superslab_t *next = backend_inbox_next(ss);
      if (!ops->holds(ss) && backend_ss_has_room(ss)) {
        bytes += ss->used == 0 ? HAK_SS_SIZE : 0;
        backend_ss_release(o, ss);
      }
      ss = next;
    }
    if (o->user)
      bytes += ops->trim(o, o->user);
    hak_superslab_t *t;
    hak_list_for_each(t, o->owned, own)
      bytes += backend_ss_decommit_idle(t);
    backend_owner_helper_unlock(o);
  }
  hak_mutex_unlock(&owners_lock);
  return bytes;
}

bool backend_ss_holds_free_elsewhere(hak_owner_t *self, hak_superslab_t *ss, unsigned cls, const void *p)
{
  bool held = false;
  hak_mutex_lock(&owners_lock);
  hak_owner_t *owner = atomic_load_explicit(&ss->owner, memory_order_acquire), *o;
  hak_list_for_each(o, owners_live, live) {
    if (o != owner || o == self)
      continue;
    if (backend_owner_trylock(o)) {
      held = backend_ss_is_owner(ss, o) && ss->cls == cls && backend_ss_holds_free(ss, p);
      backend_owner_helper_unlock(o);
    }
    break;
  }
  if (owner == NULL) {
    registry_index_lock(cls);
    held = backend_ss_is_owner(ss, NULL) && ss->cls == cls && ss->tier != HAK_TIER_FREE &&
           backend_ss_holds_free(ss, p);
    registry_index_unlock(cls);
  }
  hak_mutex_unlock(&owners_lock);
  return held;
}

/* ---- Help for quiet owners: decay ---------------------------------------- */

unsigned backend_live_owners(void) { return __atomic_load_n(&owners_live_count, __ATOMIC_RELAXED); }

/* One decay pass over o's SuperSlabs (o's lock held). A helper (another
 * thread, o gone quiet) first drains their remote frees, so blocks other
 * threads gave back count as idle; the SuperSlabs stay on o's inbox, and o
 * files them as usual when it wakes. */
bool backend_owner_decay_locked(hak_owner_t *o, uint32_t now, bool helping)
{
  if (helping)
    backend_owner_assert_helped(o);
  else
    backend_owner_assert_held(o);
  bool pending = false;
  hak_superslab_t *ss;
  hak_list_for_each(ss, o->owned, own) {
    if (helping && backend_ss_has_remote(ss))
      backend_ss_drain(ss);
    backend_ss_decay(ss, &pending);
  }
  __atomic_store_n(&o->decay_ms, now, __ATOMIC_RELAXED);
  return pending;
}

/* Owners that ran no pass of their own for two delays (a thread that
 * stopped calling the allocator) get one from here. A busy owner (its lock
 * taken) is left alone: it is awake and runs its own. */
bool backend_owners_decay_quiet(uint32_t now, uint32_t delay)
{
  bool pending = false;
  hak_mutex_lock(&owners_lock);
  hak_owner_t *o;
  hak_list_for_each(o, owners_live, live) {
    if (hak_ms_since(now, __atomic_load_n(&o->decay_ms, __ATOMIC_RELAXED)) < 2 * delay)
      continue;
    if (!backend_owner_trylock(o))
      continue;
    pending |= backend_owner_decay_locked(o, now, true);
    backend_owner_helper_unlock(o);
  }
  hak_mutex_unlock(&owners_lock);
  return pending;
}

/* Fork (superslab.c runs the backend's handlers): owners_lock is taken
 * before the class index locks and released with the backend's. */
void backend_fork_prepare_owners(void) { hak_mutex_lock(&owners_lock); }

void backend_owner_fork_parent(void) { hak_mutex_unlock(&owners_lock); }

void backend_owner_fork_child(void)
{
  /* The child is a new process to membarrier; it has one thread now, so
   * the owner lock may change sides safely. */
  if (!backend_owner_fenced && !hak_os_membarrier_register())
    backend_owner_fenced = true;
  hak_mutex_reinit(&owners_lock);
}

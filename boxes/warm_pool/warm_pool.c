/*
 * boxes/warm_pool/warm_pool.c — see warm_pool.h.
 *
 * Invariants (per thread, per class k):
 *   - every SuperSlab on k's pool is owned by this thread, has in_pool set,
 *     and is on k.top's list through its node; k.count is their number;
 *   - k.empties counts pool SuperSlabs with no block out (empty_counted);
 *   - an owned SuperSlab not on the pool "floats": it had no room when it
 *     left, and goes back on the pool when a free gives it room.
 *
 * That per-SuperSlab state (wp_ss_t) lives in the bytes the backend keeps
 * for the box above in each header (ss->above): the backend zeroes them
 * when a SuperSlab changes hands, which is "not on a pool".
 */
#include "boxes/warm_pool/warm_pool.h"
#include "backend/superslab.h"
#include "hak/config.h"
#include "hak/settings.h"
#include "hak/stats.h"
#include "hak/list.h"

#include <stdatomic.h>

/* The warm pool's state of one SuperSlab, in its header's ss->above (bytes
 * to the backend: may_alias, so that reading them as this type is
 * defined). */
typedef struct __attribute__((may_alias)) wp_ss {
  hak_list_node_t node;         /* the class's pool, top first */
  uint8_t in_pool;
  uint8_t empty_counted;        /* counted in k.empties */
  uint8_t prefilled;            /* prefilled, not carved from yet */
} wp_ss_t;
_Static_assert(sizeof(wp_ss_t) <= HAK_SS_ABOVE_BYTES, "the pool's state fits the header's room for it");

static inline wp_ss_t *wp(const hak_superslab_t *ss) { return (wp_ss_t *)(uintptr_t)ss->above; }

/* The SuperSlab whose pool node n is (NULL for NULL). */
static inline hak_superslab_t *wp_ss_of(hak_list_node_t *n)
{
  return n ? (hak_superslab_t *)(void *)((char *)n - offsetof(wp_ss_t, node) - offsetof(hak_superslab_t, above))
           : NULL;
}

typedef struct wp_class {
  hak_list_node_t *top; /* the pool: SuperSlabs' wp_ss_t nodes */
  uint16_t count;
  uint16_t empties;
  uint8_t  budget;     /* prefill budget for the next miss (< warm_pool_max) */
  uint8_t  budget_peak;
  uint16_t acquired;   /* SuperSlabs this class has taken on a miss (saturates) */
} wp_class_t;
/* 16 bytes: a thread's pools live in static TLS, of which a library loaded
 * with dlopen gets little. */
_Static_assert(sizeof(wp_class_t) == 16, "a class's pool state stays 16 bytes");

/* A thread's pools. Only its owner lock's holder touches it: the thread
 * itself, or another thread's malloc_trim helping while it is idle. */
typedef struct wp_state {
  hak_owner_t *owner;
  unsigned last_local; /* blocks the last return put back on our own SuperSlabs */
  wp_class_t cls[HAK_NUM_CLASSES];
} wp_state_t;

static __thread wp_state_t wp_tls;

bool warm_pool_thread_init(void)
{
  if (wp_tls.owner)
    return true;
  wp_tls.owner = backend_owner_new();
  if (wp_tls.owner)
    wp_tls.owner->user = &wp_tls;
  return wp_tls.owner != NULL;
}

static void budget_on_unused(wp_state_t *st, hak_superslab_t *ss);

/* ---- Settings (hak/settings.h): read on the slow paths only -------------
 * The pool's capacity, and the prefill budget clipped to it: prefilled
 * SuperSlabs live in the pool next to the one being carved, so a budget
 * stays below the capacity (and fits budget's byte). */
static inline unsigned wp_capacity(void) { return (unsigned)hak_settings_get(HAK_SET_warm_pool_max); }

static inline unsigned wp_prefill(void)
{
  unsigned p = (unsigned)hak_settings_get(HAK_SET_prefill), cap = wp_capacity();
  return p < cap ? p : cap - 1;
}

static inline bool wp_adaptive(void) { return hak_settings_get(HAK_SET_prefill_policy) == HAK_SET_POLICY_ADAPTIVE; }

/* The adaptive policy's ceiling: HAK_PREFILL_GROWTH times the configured
 * budget, bounded by the pool. */
static inline unsigned wp_prefill_cap(void)
{
  unsigned g = (unsigned)hak_settings_get(HAK_SET_prefill) * HAK_PREFILL_GROWTH, cap = wp_capacity();
  return g < cap ? g : cap - 1;
}

static void pool_unlink(wp_class_t *k, hak_superslab_t *ss)
{
  wp_ss_t *w = wp(ss);
  hak_list_remove(&k->top, &w->node);
  w->in_pool = 0;
  k->count--;
  if (w->empty_counted) {
    w->empty_counted = 0;
    k->empties--;
  }
}

static void pool_link_top(wp_class_t *k, hak_superslab_t *ss)
{
  wp_ss_t *w = wp(ss);
  hak_list_push(&k->top, &w->node);
  w->in_pool = 1;
  k->count++;
  if (ss->used == 0) {
    w->empty_counted = 1;
    k->empties++;
  }
}

/* Put an owned SuperSlab with room on its pool, or give it up if the pool
 * is full (or if it would be a second empty one). Returns false when ss
 * was given up (the caller must not touch it). */
static bool pool_offer(hak_superslab_t *ss)
{
  wp_class_t *k = &wp_tls.cls[ss->cls];
  if (wp(ss)->in_pool)
    return true;
  if (!HAK_WARM_POOL || k->count >= wp_capacity() || (ss->used == 0 && k->empties > 0)) {
    budget_on_unused(&wp_tls, ss);
    backend_ss_release(wp_tls.owner, ss);
    return false;
  }
  pool_link_top(k, ss);
  return true;
}

/* ss just became empty on the pool: keep at most one empty per class.
 * Returns false when ss was given up (the caller must not touch it). */
static bool pool_note_empty(wp_state_t *st, hak_superslab_t *ss)
{
  wp_class_t *k = &st->cls[ss->cls];
  if (wp(ss)->empty_counted)
    return true;
  if (k->empties > 0) {
    pool_unlink(k, ss);
    budget_on_unused(st, ss);
    backend_ss_release(st->owner, ss);
    return false;
  } else {
    /* Kept for the next refill; its pages go back if it stays unused for
     * the purge delay (the backend's decay). */
    wp(ss)->empty_counted = 1;
    k->empties++;
    return true;
  }
}

static void take_inbox(void)
{
  hak_superslab_t *ss = backend_inbox_take(wp_tls.owner);
  while (ss) {
    hak_superslab_t *next = backend_inbox_next(ss);
    HAK_STAT_ADD(ss->cls, inbox_taken, 1);
    if (wp(ss)->in_pool) {
      if (ss->used == 0)
        pool_note_empty(&wp_tls, ss);
    } else if (backend_ss_has_room(ss)) {
      pool_offer(ss);
    }
    ss = next;
  }
}

/* A class's first refill in a thread finds the pool empty whatever the
 * design: a cold (compulsory) miss, counted apart so that warm_misses
 * measures the pool itself. */
static inline void count_miss(wp_class_t *k, unsigned cls)
{
  if (k->acquired == 0)
    HAK_STAT_ADD(cls, warm_cold_misses, 1);
  else
    HAK_STAT_ADD(cls, warm_misses, 1);
  (void)cls;
}

/* ---- Prefill budget ------------------------------------------------------
 * fixed: every miss after a class's first brings wp_prefill() extra
 * SuperSlabs. adaptive: each class starts at that budget; a miss (the
 * pool ran empty again) doubles it, up to wp_prefill_cap(); a prefilled
 * SuperSlab given back before anything was carved from it halves it. Only
 * the slow path moves it, and only from these events: the same sequence of
 * calls gives the same budgets. */

static void budget_set(wp_class_t *k, unsigned cls, unsigned b, bool mine)
{
  k->budget = (uint8_t)b;
  if (b > k->budget_peak)
    k->budget_peak = (uint8_t)b;
  if (mine) { /* the gauges are the calling thread's */
    HAK_STAT_GAUGE(cls, prefill_budget, k->budget);
    HAK_STAT_GAUGE(cls, prefill_budget_peak, k->budget_peak);
  }
}

/* The budget to spend on this miss (0 on a class's first). */
__attribute__((unused)) static unsigned budget_on_miss(wp_class_t *k, unsigned cls)
{
  if (k->acquired == 0) {
    budget_set(k, cls, wp_prefill(), true);
    return 0;
  }
  unsigned b = k->budget;
  if (wp_adaptive()) {
    unsigned next = b ? b * 2 : 1, cap = wp_prefill_cap();
    budget_set(k, cls, next > cap ? cap : next, true);
  }
  return b;
}

/* A prefilled SuperSlab leaves the pool unused: prefill was too eager. */
static void budget_on_unused(wp_state_t *st, hak_superslab_t *ss)
{
  if (!wp(ss)->prefilled)
    return;
  wp(ss)->prefilled = 0;
  if (wp_adaptive()) {
    wp_class_t *k = &st->cls[ss->cls];
    budget_set(k, ss->cls, k->budget / 2, st == &wp_tls);
  }
}

static hak_superslab_t *acquire(unsigned cls)
{
  HAK_STAT_ADD(cls, registry_scans, 1);
  hak_superslab_t *ss = backend_ss_adopt(wp_tls.owner, cls);
  if (!ss)
    ss = backend_ss_new(wp_tls.owner, cls);
  return ss;
}

#if HAK_WARM_POOL

static unsigned refill_locked(unsigned cls, unsigned max, void **head, void **tail)
{
  backend_owner_assert_held(wp_tls.owner);
  wp_class_t *k = &wp_tls.cls[cls];
  for (hak_superslab_t *ss = wp_ss_of(k->top); ss; ss = wp_ss_of(k->top)) {
    unsigned n = backend_ss_take(ss, max, head, tail);
    if (hak_likely(n)) {
      wp(ss)->prefilled = 0;
      if (wp(ss)->empty_counted) {
        wp(ss)->empty_counted = 0;
        k->empties--;
      }
      HAK_STAT_ADD(cls, warm_hits, 1);
      /* Blocks other threads freed into our SuperSlabs: take them back
       * now, not only when the pool runs dry (an atomic load when there are
       * none). After the take: the top's remote chain then goes out as it
       * is (backend_ss_take), not drained onto its slabs first. */
      if (atomic_load_explicit(&wp_tls.owner->inbox, memory_order_relaxed) != NULL)
        take_inbox();
      return n;
    }
    pool_unlink(k, ss); /* exhausted: it floats until a free gives it room */
  }
  count_miss(k, cls);
  take_inbox();
  if (!k->top) {
    hak_superslab_t *ss = acquire(cls);
    if (!ss)
      return 0;
    /* Prefill: a pool that runs empty again gets extra SuperSlabs, so the
     * next exhaustion is a hit instead of another registry scan. A class's
     * first SuperSlab comes alone: most classes of most threads never need
     * a second one, and each prefilled SuperSlab costs a header page. */
    unsigned budget = budget_on_miss(k, cls);
    k->acquired += k->acquired != UINT16_MAX;
    const unsigned capacity = wp_capacity();
    for (unsigned i = 0; i < budget && k->count + 1u < capacity; i++) {
      hak_superslab_t *extra = acquire(cls);
      if (!extra)
        break;
      HAK_STAT_ADD(cls, prefilled, 1);
      wp(extra)->prefilled = 1;
      pool_link_top(k, extra);
    }
    pool_link_top(k, ss);
  }
  hak_superslab_t *ss = wp_ss_of(k->top);
  unsigned n = backend_ss_take(ss, max, head, tail);
  wp(ss)->prefilled = 0;
  if (wp(ss)->empty_counted && n) {
    wp(ss)->empty_counted = 0;
    k->empties--;
  }
  return n;
}

#else /* no warm pool: every refill goes through the registry */

static unsigned refill_locked(unsigned cls, unsigned max, void **head, void **tail)
{
  backend_owner_assert_held(wp_tls.owner);
  wp_class_t *k = &wp_tls.cls[cls];
  count_miss(k, cls);
  k->acquired += k->acquired != UINT16_MAX;
  hak_superslab_t *ss = acquire(cls);
  if (!ss)
    return 0;
  unsigned n = backend_ss_take(ss, max, head, tail);
  backend_ss_release(wp_tls.owner, ss);
  return n;
}

#endif

unsigned warm_pool_refill(unsigned cls, unsigned max, void **head, void **tail)
{
  if (hak_unlikely(!wp_tls.owner) && !warm_pool_thread_init())
    return 0;
  backend_owner_lock(wp_tls.owner);
  unsigned n = refill_locked(cls, max, head, tail);
  backend_owner_unlock(wp_tls.owner);
  backend_tick(wp_tls.owner);
  return n;
}

static void *return_locked(unsigned cls, void *head, unsigned n);

void *warm_pool_return(unsigned cls, void *head, unsigned n)
{
  hak_owner_t *me = wp_tls.owner;
  if (me)
    backend_owner_lock(me);
  void *rest = return_locked(cls, head, n);
  if (me) {
    backend_owner_unlock(me);
    backend_tick(me);
  }
  return rest;
}

/* Owner lock held: blocks that went back on ss caused the transitions ev.
 * This may give the SuperSlab up: the caller must not touch it after. */
static void note_events(hak_superslab_t *ss, unsigned ev)
{
  if (!wp(ss)->in_pool)
    pool_offer(ss);
  else if ((ev & HAK_SS_BECAME_EMPTY) && !wp(ss)->empty_counted)
    pool_note_empty(&wp_tls, ss);
}

/* Owner lock held: one of our blocks goes back on its SuperSlab. */
static inline void return_local(hak_superslab_t *ss, void *b)
{
  unsigned ev = backend_ss_free_local(ss, b);
  if (hak_unlikely(ev))
    note_events(ss, ev);
}

bool warm_pool_owns(const void *p)
{
  return wp_tls.owner != NULL && backend_ss_is_owner(backend_ss_of(p), wp_tls.owner);
}

/* In a registry read section: the SuperSlab cannot be unmapped while its
 * lists are walked. */
bool warm_pool_holds_free(unsigned cls, const void *p)
{
  hak_owner_t *me = wp_tls.owner;
  bool mine = false, held = false;
  registry_read_lock();
  hak_superslab_t *ss = backend_ss_of(p);
  if (ss && me != NULL) {
    backend_owner_lock(me);
    mine = backend_ss_is_owner(ss, me);
    held = mine && ss->cls == cls && backend_ss_holds_free(ss, p);
    backend_owner_unlock(me);
  }
  if (ss && !mine)
    held = backend_ss_holds_free_elsewhere(me, ss, cls, p);
  registry_read_unlock();
  return held;
}

bool warm_pool_return_one(unsigned cls, void *b)
{
  hak_owner_t *me = wp_tls.owner;
  if (hak_likely(me != NULL)) {
    hak_superslab_t *ss = backend_ss_of(b);
    backend_owner_lock(me);
    if (hak_likely(backend_ss_is_owner(ss, me))) {
      return_local(ss, b);
      backend_owner_unlock(me);
      backend_tick(me);
      wp_tls.last_local = 1;
      return true;
    }
    backend_owner_unlock(me);
  }
  warm_pool_return(cls, b, 1);
  return false;
}

/* The blocks come in runs of one SuperSlab (a bin holds what its thread
 * freed, mostly in the order it allocated): the SuperSlab and whether we
 * own it are looked up once per run. A run of another thread's blocks is
 * already a chain and goes to its owner as it is (see backend_remote_run_cut). */
static void *return_locked(unsigned cls, void *head, unsigned n)
{
  HAK_ASSERT(!wp_tls.owner || atomic_load_explicit(&wp_tls.owner->busy, memory_order_relaxed) == 1);
  const unsigned n_in = n;
  hak_owner_t *me = wp_tls.owner;
  unsigned remote = 0;
  void *b = head;
  while (n) {
    const uintptr_t base = hak_ss_base_of(b);
    hak_superslab_t *ss = backend_ss_of(b);
    if (me && backend_ss_is_owner(ss, me)) {
      unsigned k;
      const unsigned ev = backend_ss_free_run(ss, b, n, &b, &k);
      n -= k;
      if (ev)
        note_events(ss, ev);
    } else {
      void *run = b, *tail;
      unsigned k = backend_remote_run_cut(run, base, n, hak_class_has_hint_word(cls), &tail, &b);
      backend_remote_free(ss, run, tail);
      remote += k;
      n -= k;
    }
  }
  if (remote)
    HAK_STAT_ADD(cls, remote_frees, remote);
  wp_tls.last_local = n_in - remote;
  return b;
}

/* Give back what st's pools hold idle: empty SuperSlabs, idle slabs of
 * the others. Owner lock held. */
static size_t pool_trim_state(wp_state_t *st)
{
  size_t bytes = 0;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    wp_class_t *k = &st->cls[c];
    hak_superslab_t *ss = wp_ss_of(k->top);
    while (ss) {
      hak_superslab_t *next = wp_ss_of(wp(ss)->node.next);
      if (ss->used == 0) {
        pool_unlink(k, ss);
        budget_on_unused(st, ss);
        backend_ss_release(st->owner, ss);
        bytes += HAK_SS_SIZE;
      } else {
        bytes += backend_ss_decommit_idle(ss);
      }
      ss = next;
    }
  }
  return bytes;
}

/* malloc_trim in another thread, helping this (idle) one. */
static size_t trim_helped(hak_owner_t *o, void *user)
{
  (void)o;
  return pool_trim_state(user);
}

static bool pool_holds(const hak_superslab_t *ss) { return wp(ss)->in_pool; }

static const hak_owner_trim_ops_t trim_ops = {.holds = pool_holds, .trim = trim_helped};

size_t warm_pool_trim(void)
{
  if (!wp_tls.owner)
    return backend_trim_others(NULL, &trim_ops);
  backend_owner_lock(wp_tls.owner);
  take_inbox();
  size_t bytes = pool_trim_state(&wp_tls);
  backend_owner_unlock(wp_tls.owner);
  return bytes + backend_trim_others(wp_tls.owner, &trim_ops);
}

unsigned warm_pool_last_local(void) { return wp_tls.last_local; }

unsigned warm_pool_count(unsigned cls)
{
  return wp_tls.cls[cls].count;
}

unsigned warm_pool_budget(unsigned cls)
{
  return wp_tls.cls[cls].budget;
}

void warm_pool_thread_exit(void)
{
  hak_owner_t *o = wp_tls.owner;
  if (!o)
    return;
  backend_owner_lock(o);
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    wp_class_t *k = &wp_tls.cls[c];
    while (k->top)
      pool_unlink(k, wp_ss_of(k->top));
  }
  backend_owner_unlock(o);
  backend_owner_retire(o);
  wp_tls.owner = NULL;
}

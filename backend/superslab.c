/*
 * backend/superslab.c — the SuperSlab memory life cycle: where SuperSlabs
 * come from (the reservation, the free tier: backend_ss_new), the object
 * pools of headers and owners, decay by time (the global pass), trim, and
 * unmapping after an RCU grace period. The backend's other files: slab.c
 * (carving, taking and returning blocks, validators), owner.c (owners,
 * hand-over, remote frees and their notification).
 *
 * Locks. This is the one statement of the allocator's locks and of the
 * order they nest in; other files point here. A thread that holds one
 * takes only locks further down the list, and holds at most one of each
 * kind (one owner's lock, one class index lock; the fork handler, below,
 * takes every class index lock).
 *
 *   output_lock        stats_output.c  the static snapshot the statistics
 *                                   output and hak_stats_get fill.
 *   owners_lock        owner.c      the list of live owners. Helpers (the
 *                                   purge pass, malloc_trim) hold it while
 *                                   they try other owners' locks.
 *   an owner's lock    superslab.h  not a mutex: the busy/helper flags ("The
 *                                   owner lock"). The owner's slow-path state
 *                                   (warm pool, owned and pending lists,
 *                                   decay stamp) and its SuperSlabs' slabs
 *                                   while a helper works on them. The owner
 *                                   holds it around every slow path; a
 *                                   helper only tries it, under owners_lock.
 *   class index lock   registry.c   one per class: that class's index of
 *                                   ownerless SuperSlabs, and everything in
 *                                   an ownerless SuperSlab (slabs, counts).
 *   backend_lock       superslab.c  the free tier, the retire list, the
 *                                   reservation, the tier's demand, and the
 *                                   object pools of owners and headers.
 *   registry mutex     registry.c   creating a leaf of the address map.
 *
 * Leaves, which nest nothing and come last in any order:
 *   large_lock         large.c      the large-block cache, its batch of
 *                                   retired mappings, the recent peak.
 *   stats_lock         stats.c      the list of per-thread counter blocks.
 *
 * RCU (liburcu-bp): a registry read section (registry_read_lock) may be
 * entered under any of these and takes none of them. registry_synchronize()
 * waits for every reader, so it is called with none of these locks held:
 * SuperSlabs and large mappings to unmap are collected under their lock and
 * unmapped after it (backend/retire.h).
 *
 * Fork (front/thread.c): the prepare handler takes output_lock, liburcu's
 * locks, then owners_lock, every class index lock, backend_lock,
 * large_lock, the registry mutex and stats_lock, in that order; owners'
 * locks are not taken (a helper holds one only under owners_lock). The
 * parent releases them all, the child re-initialises them.
 *
 * Checking builds (-Ddebug_checks=true) assert in every *_locked function
 * that its lock is held (hak/lock.h) and validate slabs and SuperSlabs
 * where their counts must agree (slab.c, "Validators").
 *
 * Headers (see superslab.h) come from a pool of 64 KiB chunks, like the
 * owners, and go back to it only once their SuperSlab is unmapped (after
 * registry_synchronize).
 */
#include "backend/superslab.h"
#include "backend/internal.h"
#include "backend/os.h"
#include "backend/retire.h"
#include "hak/config.h"
#include "hak/debug.h"
#include "hak/stats.h"

#include <limits.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

#define FREE_CLEAN_KEEP 8u   /* decommitted empty SuperSlabs kept for reuse */

static hak_mutex_t backend_lock = HAK_MUTEX_INIT;
/* Fresh SuperSlabs come from a reservation: one mapping of several
 * (MAP_NORESERVE, untouched until carved) handed out in address order.
 * Each mapping call, and each munmap that trims it to alignment, stops
 * every CPU running the process for a TLB flush; a reservation pays that
 * once for many SuperSlabs. Reservations start at RESERVE_MIN SuperSlabs
 * and double up to RESERVE_MAX, so a small process reserves little. */
#define RESERVE_MIN 4u
#define RESERVE_MAX 32u
static char *reserve_next, *reserve_end;
static unsigned reserve_size = RESERVE_MIN;
/* The free tier: empty SuperSlabs, those with pages still resident (reused
 * first: no fault) and those decommitted by the decay. */
static hak_superslab_t *free_dirty, *free_clean;
static unsigned free_dirty_len, free_clean_len;
/* Demand on the free tier: how many SuperSlabs were taken from it since
 * the last decay pass, and in each of the TIER_DEMAND_PASSES passes before
 * (see free_tier_decay). Under backend_lock. */
#define TIER_DEMAND_PASSES 5u
static unsigned tier_taken;
static unsigned tier_demand[TIER_DEMAND_PASSES], tier_demand_at;
static hak_superslab_t *retire_list;
static unsigned retire_len;
/* SuperSlabs mapped, until unmapped (the census; superslabs_live in the
 * statistics counts the same, but only where they are compiled in). */
static _Atomic uint64_t ss_mapped;


/* ---- Object pools --------------------------------------------------------
 * Owners and SuperSlab headers: fixed-size objects carved from 64 KiB
 * mappings that are never given back, recycled through a free list linked
 * by each free object's first word. Under backend_lock. */

#define POOL_CHUNK (64u * 1024u)

typedef struct obj_pool {
  void  *free;
  char  *next;   /* uncarved rest of the current chunk */
  size_t left;   /* objects it still holds */
  size_t size;
} obj_pool_t;

static obj_pool_t owner_pool = {.size = sizeof(hak_owner_t)};
_Static_assert(sizeof(hak_owner_t) % 64 == 0, "owners stay 64-byte aligned in a pool chunk");
static obj_pool_t hdr_pool = {.size = sizeof(hak_superslab_t)};

/* An object, or NULL when out of memory. */
static void *pool_get(obj_pool_t *p)
{
  hak_mutex_lock(&backend_lock);
  void *o = p->free;
  if (o) {
    p->free = *(void **)o;
  } else {
    if (p->left == 0) {
      void *m = mmap(NULL, POOL_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m == MAP_FAILED) {
        hak_mutex_unlock(&backend_lock);
        return NULL;
      }
      p->next = m;
      p->left = POOL_CHUNK / p->size;
    }
    o = p->next;
    p->next += p->size;
    p->left--;
  }
  hak_mutex_unlock(&backend_lock);
  return o;
}

static void pool_put(obj_pool_t *p, void *o)
{
  hak_mutex_lock(&backend_lock);
  *(void **)o = p->free;
  p->free = o;
  hak_mutex_unlock(&backend_lock);
}

/* A header for a new SuperSlab (64-byte aligned: its size is a multiple of
 * 64 and chunks are page-aligned), or NULL. */
hak_owner_t *backend_owner_obj_get(void) { return pool_get(&owner_pool); }
void backend_owner_obj_put(hak_owner_t *o) { pool_put(&owner_pool, o); }

static hak_superslab_t *hdr_alloc(void) { return pool_get(&hdr_pool); }
_Static_assert(sizeof(hak_superslab_t) % 64 == 0, "headers stay 64-byte aligned in a pool chunk");

/* Recycle the header of an unmapped SuperSlab (after its grace period). */
static void hdr_free(hak_superslab_t *h)
{
  h->magic = 0;
  pool_put(&hdr_pool, h);
}

/* ---- The free tier and unmapping ---------------------------------------- */

/* Unmap the SuperSlabs on list (linked by free_next, tags cleared) after a
 * grace period, a batch at a time (backend/retire.h); their headers go
 * back to their pool after it. */
static void unmap_retired(hak_superslab_t *list)
{
  while (list) {
    backend_mapping_t m[BACKEND_RETIRE_BATCH];
    hak_superslab_t *hdr[BACKEND_RETIRE_BATCH];
    unsigned n = 0;
    for (; list && n < BACKEND_RETIRE_BATCH; list = list->free_next, n++) {
      hdr[n] = list;
      m[n].base = list->base;
      m[n].size = HAK_SS_SIZE;
    }
    backend_unmap_after_grace(m, n);
    for (unsigned i = 0; i < n; i++) {
      HAK_STAT_CLASS_ADD(hdr[i]->cls, superslabs_unmapped, 1);
      HAK_STAT_GLOBAL_SUB(superslabs_live, 1);
      atomic_fetch_sub_explicit(&ss_mapped, 1, memory_order_relaxed);
      hdr_free(hdr[i]);
    }
  }
}

/* ss is empty and reachable by no list: clear its tag and keep it in the
 * free tier for reuse, pages and all: the decay gives them back once they
 * have stayed unused for the purge delay (backend_purge). */
void backend_ss_to_free_tier(hak_superslab_t *ss)
{
  registry_clear_tag((uintptr_t)ss->base);
  ss->tier = HAK_TIER_FREE;
  atomic_store_explicit(&ss->owner, NULL, memory_order_relaxed);
  hak_mutex_lock(&backend_lock);
  ss->free_next = free_dirty;
  free_dirty = ss;
  free_dirty_len++;
  hak_mutex_unlock(&backend_lock);
}

/* A fresh SuperSlab-sized mapping, aligned to its size; NULL when the
 * system refuses even one. */
static char *ss_map_fresh(void)
{
  hak_mutex_lock(&backend_lock);
  for (;;) {
    if (reserve_next != reserve_end) {
      char *base = reserve_next;
      reserve_next += HAK_SS_SIZE;
      hak_mutex_unlock(&backend_lock);
      return base;
    }
    unsigned n = reserve_size;
    hak_mutex_unlock(&backend_lock);
    char *m = hak_os_map_aligned((size_t)n * HAK_SS_SIZE, HAK_SS_SIZE);
    if (!m && n > 1) { /* address space is short: one at a time */
      n = 1;
      m = hak_os_map_aligned(HAK_SS_SIZE, HAK_SS_SIZE);
    }
    if (!m)
      return NULL;
    hak_mutex_lock(&backend_lock);
    if (reserve_next != reserve_end) { /* another thread refilled meanwhile */
      hak_mutex_unlock(&backend_lock);
      hak_os_unmap(m, (size_t)n * HAK_SS_SIZE);
      hak_mutex_lock(&backend_lock);
      continue;
    }
    reserve_next = m;
    reserve_end = m + (size_t)n * HAK_SS_SIZE;
    if (n > 1 && reserve_size < RESERVE_MAX)
      reserve_size *= 2;
  }
}

/* Give back the untouched rest of the reservation. */
static void reserve_release(void)
{
  hak_mutex_lock(&backend_lock);
  char *rest = reserve_next;
  size_t len = (size_t)(reserve_end - reserve_next);
  reserve_next = reserve_end = NULL;
  reserve_size = RESERVE_MIN;
  hak_mutex_unlock(&backend_lock);
  hak_os_unmap(rest, len);
}

/* The global pass (backend_purge) takes SuperSlabs off the free tier while
 * it decays them; a trim waits for it, and holds it off, so that it finds
 * every one of them. */
static _Atomic uint32_t purge_last_ms;   /* when the last global pass started */
static _Atomic int purge_busy;          /* a global pass or a trim is running */

static void purge_exclude(void)
{
  int idle = 0;
  while (!atomic_compare_exchange_weak(&purge_busy, &idle, 1)) {
    idle = 0;
    sched_yield();
  }
}

size_t backend_trim(void)
{
  purge_exclude();
  reserve_release();
  hak_mutex_lock(&backend_lock);
  hak_superslab_t *list = retire_list;
  size_t n = retire_len + free_dirty_len + free_clean_len;
  hak_superslab_t *tiers[2] = {free_dirty, free_clean};
  for (unsigned i = 0; i < 2; i++) {
    hak_superslab_t *t = tiers[i];
    while (t) {
      hak_superslab_t *next = t->free_next;
      t->free_next = list;
      list = t;
      t = next;
    }
  }
  free_dirty = free_clean = NULL;
  free_dirty_len = free_clean_len = 0;
  retire_list = NULL;
  retire_len = 0;
  hak_mutex_unlock(&backend_lock);
  atomic_store_explicit(&purge_busy, 0, memory_order_release);
  unmap_retired(list);
  return n * HAK_SS_SIZE;
}

/* ---- Where SuperSlabs come from ------------------------------------------ */

hak_superslab_t *backend_ss_new(hak_owner_t *o, unsigned cls)
{
  hak_mutex_lock(&backend_lock);
  hak_superslab_t *ss = free_dirty;
  if (ss) {
    free_dirty = ss->free_next;
    free_dirty_len--;
    tier_taken++;
  } else if ((ss = free_clean) != NULL) {
    free_clean = ss->free_next;
    free_clean_len--;
    tier_taken++;
  }
  hak_mutex_unlock(&backend_lock);
  if (!ss) {
    char *base = ss_map_fresh();
    if (!base)
      return NULL;
    ss = hdr_alloc();
    if (!ss) {
      hak_os_unmap(base, HAK_SS_SIZE);
      return NULL;
    }
    ss->base = base;
    ss->slab_shift = HAK_SLAB_SHIFT;
    for (unsigned s = 0; s < HAK_SLABS_PER_SS; s++)
      ss->slabs[s].dirty = HAK_SLAB_CLEAN;
    if (HAK_HARDENED) {
      /* guards: slab 0, and the SuperSlab's last page */
      mprotect(base, HAK_SLAB_SIZE, PROT_NONE);
      mprotect(base + HAK_SS_SIZE - HAK_PAGE_SIZE, HAK_PAGE_SIZE, PROT_NONE);
    }
    HAK_STAT_CLASS_ADD(cls, superslabs_mapped, 1);
    HAK_STAT_GLOBAL_ADD(superslabs_live, 1);
    atomic_fetch_add_explicit(&ss_mapped, 1, memory_order_relaxed);
  }
  backend_ss_init(ss, cls);
  atomic_store_explicit(&ss->owner, o, memory_order_relaxed);
  if (registry_set_tag((uintptr_t)ss->base, hak_tag_with_hdr(hak_tag_make(HAK_KIND_SMALL, cls), ss)) != 0) {
    hak_os_unmap(ss->base, HAK_SS_SIZE);
    hdr_free(ss);
    HAK_STAT_GLOBAL_SUB(superslabs_live, 1);
    atomic_fetch_sub_explicit(&ss_mapped, 1, memory_order_relaxed);
    return NULL;
  }
  backend_owner_link(o, ss);
  return ss;
}

/* ---- Census (superslab.h) ------------------------------------------------ */

static void census_one(uintptr_t base, uint64_t tag, void *arg)
{
  (void)base;
  hak_ss_census_t *c = arg;
  const hak_superslab_t *ss = hak_tag_hdr(tag);
  const unsigned cls = hak_tag_class(tag);
  c->ss[cls]++;
  c->used[cls] += __atomic_load_n(&ss->used, __ATOMIC_RELAXED);
  c->in_use++;
}

void backend_ss_census(hak_ss_census_t *out)
{
  memset(out, 0, sizeof *out);
  hak_mutex_lock(&backend_lock);
  out->free_tier = (uint64_t)free_dirty_len + free_clean_len + retire_len;
  hak_mutex_unlock(&backend_lock);
  registry_read_lock();
  registry_walk(HAK_KIND_SMALL, census_one, out);
  registry_read_unlock();
  /* Read after the walk: a SuperSlab is counted before it is tagged, so
   * one tagged during the walk is counted here too. One walked, then
   * untagged and unmapped since (by another thread) is in in_use still. */
  out->mapped = atomic_load_explicit(&ss_mapped, memory_order_relaxed);
  if (out->mapped < out->in_use)
    out->mapped = out->in_use;
}

/* ---- Decay by time ----------------------------------------------------- */

static _Atomic uint32_t purge_delay_ms = 100;

void backend_set_purge_delay(unsigned ms) { atomic_store_explicit(&purge_delay_ms, ms, memory_order_relaxed); }
unsigned backend_purge_delay(void) { return atomic_load_explicit(&purge_delay_ms, memory_order_relaxed); }

/* The free tier's pass: SuperSlabs with resident pages give them back once
 * two passes found them in the tier (unused for at least a delay); the
 * decommitted ones beyond FREE_CLEAN_KEEP are unmapped. The madvise calls
 * run outside backend_lock, on a list taken off the tier.
 *
 * Except what the tier is drawn on for: as many SuperSlabs as threads took
 * from it over the last TIER_DEMAND_PASSES passes keep their pages, the
 * most recently given up first. A program whose memory swings (a queue
 * between threads that fills and drains, a pool that hands SuperSlabs
 * back and takes them again) gave them back between its swings and
 * faulted them in at every one; memory that nobody comes back for still
 * goes back a few delays after the last take. */
static bool free_tier_decay(void)
{
  bool pending = false;
  hak_mutex_lock(&backend_lock);
  hak_superslab_t *list = free_dirty;
  free_dirty = NULL;
  free_dirty_len = 0;
  tier_demand[tier_demand_at] = tier_taken;
  tier_demand_at = (tier_demand_at + 1) % TIER_DEMAND_PASSES;
  tier_taken = 0;
  unsigned keep = 0;
  for (unsigned i = 0; i < TIER_DEMAND_PASSES; i++)
    keep += tier_demand[i];
  hak_mutex_unlock(&backend_lock);
  hak_superslab_t *still = NULL, *clean = NULL;
  while (list) {
    hak_superslab_t *ss = list, *next = ss->free_next;
    if (keep) {
      keep--;
      pending = true;
    } else {
      backend_ss_decay(ss, &pending);
    }
    bool dirty = false;
    for (unsigned s = HAK_SS_FIRST_SLAB; s < HAK_SLABS_PER_SS; s++)
      dirty |= ss->slabs[s].dirty != HAK_SLAB_CLEAN;
    if (dirty) {
      ss->free_next = still;
      still = ss;
    } else {
      ss->free_next = clean;
      clean = ss;
    }
    list = next;
  }
  hak_superslab_t *to_unmap = NULL;
  hak_mutex_lock(&backend_lock);
  while (still) { /* back on the tier, behind what came meanwhile */
    hak_superslab_t *next = still->free_next;
    still->free_next = free_dirty;
    free_dirty = still;
    free_dirty_len++;
    still = next;
  }
  while (clean) {
    hak_superslab_t *next = clean->free_next;
    if (free_clean_len < FREE_CLEAN_KEEP) {
      clean->free_next = free_clean;
      free_clean = clean;
      free_clean_len++;
    } else {
      clean->free_next = retire_list;
      retire_list = clean;
      retire_len++;
    }
    clean = next;
  }
  if (retire_len >= BACKEND_RETIRE_BATCH || (retire_len && !pending)) {
    to_unmap = retire_list;
    retire_list = NULL;
    retire_len = 0;
  }
  hak_mutex_unlock(&backend_lock);
  unmap_retired(to_unmap);
  return pending;
}

/* Ownerless SuperSlabs with room (the registry index): touched only under
 * their class lock. */
static bool ownerless_decay(void)
{
  bool pending = false;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    if (registry_index_length(c) == 0)
      continue;
    registry_index_lock(c);
    hak_superslab_t *ss;
    hak_list_for_each(ss, registry_index_first(c), index_link) {
      backend_ss_decay(ss, &pending);
    }
    registry_index_unlock(c);
  }
  return pending;
}

bool backend_purge(uint32_t now)
{
  int idle = 0;
  if (!atomic_compare_exchange_strong(&purge_busy, &idle, 1))
    return true; /* another thread is at it */
  atomic_store_explicit(&purge_last_ms, now, memory_order_relaxed);
  const uint32_t delay = backend_purge_delay();
  bool pending = backend_owners_decay_quiet(now, delay);
  pending |= ownerless_decay();
  pending |= free_tier_decay();
  atomic_store_explicit(&purge_busy, 0, memory_order_release);
  return pending;
}

void backend_tick_slow(hak_owner_t *o)
{
  o->ticks = 0;
  const uint32_t now = hak_clock_ms(), delay = backend_purge_delay();
  if (hak_ms_since(now, __atomic_load_n(&o->decay_ms, __ATOMIC_RELAXED)) >= delay) {
    backend_owner_lock(o);
    backend_owner_decay_locked(o, now, false);
    backend_owner_unlock(o);
  }
  /* The global pass is the purge thread's; a thread's slow path runs it
   * when it is overdue (no purge thread, or one that fell behind). */
  if (hak_ms_since(now, atomic_load_explicit(&purge_last_ms, memory_order_relaxed)) >= 2 * delay + 1)
    backend_purge(now);
}

void backend_fork_prepare(void) { hak_mutex_lock(&backend_lock); }
void backend_fork_parent(void)
{
  hak_mutex_unlock(&backend_lock);
  backend_owner_fork_parent();
}
void backend_fork_child(void)
{
  atomic_store_explicit(&purge_busy, 0, memory_order_relaxed); /* its runner is not in the child */
  hak_mutex_reinit(&backend_lock);
  backend_owner_fork_child();
}

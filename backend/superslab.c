/*
 * backend/superslab.c — SuperSlab life cycle, carving, local and remote
 * frees, ownership hand-over, the free tier and RCU-deferred unmapping.
 *
 * Locks. This is the one statement of the allocator's locks and of the
 * order they nest in; other files point here. A thread that holds one
 * takes only locks further down the list, and holds at most one of each
 * kind (one owner's lock, one class index lock; the fork handler, below,
 * takes every class index lock).
 *
 *   owners_lock        superslab.c  the list of live owners. Helpers (the
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
 *   stats_lock         front/stats.c  the list of per-thread counter blocks.
 *
 * RCU (liburcu-bp): a registry read section (registry_read_lock) may be
 * entered under any of these and takes none of them. registry_synchronize()
 * waits for every reader, so it is called with none of these locks held:
 * SuperSlabs and large mappings to unmap are collected under their lock and
 * unmapped after it (unmap_retired, unmap_list).
 *
 * Fork (front/thread.c): the prepare handler takes liburcu's locks, then
 * owners_lock, every class index lock, backend_lock, large_lock, the
 * registry mutex and stats_lock, in that order; owners' locks are not
 * taken (a helper holds one only under owners_lock). The parent releases
 * them all, the child re-initialises them.
 *
 * Checking builds (-Ddebug_checks=true) assert in every *_locked function
 * that its lock is held (hak/lock.h) and validate slabs and SuperSlabs
 * where their counts must agree (see "Validators").
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
 *
 * Hardened builds (HAK_HARDENED): a slab's free-list links are stored as
 * next ^ secret ^ (address >> 4) with a random secret per slab, and every
 * link read back must point into the same slab at a block start, or the
 * process aborts ("corrupted free list"); carving follows a random
 * permutation of the slab's blocks; slab 0 and the SuperSlab's last page
 * are PROT_NONE guards (slab 15 stops short of it), so an overflow off
 * either end of the data faults instead of reaching the next mapping.
 *
 * Headers (see superslab.h) come from a pool of 64 KiB chunks, like the
 * owners, and go back to it only once their SuperSlab is unmapped (after
 * registry_synchronize).
 */
#include "backend/superslab.h"
#include "backend/os.h"
#include "hak/config.h"
#include "hak/debug.h"
#include "hak/link.h"

#include <limits.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

/* Checking builds: the validators (see "Validators" below). */
#if HAK_DEBUG_CHECKS
static void slab_validate(hak_superslab_t *ss, unsigned s);
static void ss_validate(hak_superslab_t *ss);
#define SLAB_VALIDATE(ss, s) slab_validate((ss), (s))
#define SS_VALIDATE(ss) ss_validate(ss)
#else
#define SLAB_VALIDATE(ss, s) ((void)0)
#define SS_VALIDATE(ss) ((void)0)
#endif

enum { NOTIFY_ARMED = 0, NOTIFY_NOTIFYING = 1, NOTIFY_NOTIFIED = 2, NOTIFY_NEVER = 3 };

#define FREE_CLEAN_KEEP 8u   /* decommitted empty SuperSlabs kept for reuse */
#define RETIRE_BATCH  8u     /* unmap after one grace period for this many */

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
static hak_mutex_t owners_lock = HAK_MUTEX_INIT; /* the live list */
static hak_owner_t *owners_live;
static unsigned owners_live_count; /* written under owners_lock */
static _Atomic uint32_t next_tid = 1;

static _Atomic uint64_t ss_mapped[HAK_NUM_CLASSES];
static _Atomic uint64_t ss_unmapped[HAK_NUM_CLASSES];
static _Atomic uint64_t ss_live;

uint64_t backend_ss_mapped(unsigned c) { return atomic_load_explicit(&ss_mapped[c], memory_order_relaxed); }
uint64_t backend_ss_unmapped(unsigned c) { return atomic_load_explicit(&ss_unmapped[c], memory_order_relaxed); }
uint64_t backend_ss_live(void) { return atomic_load_explicit(&ss_live, memory_order_relaxed); }

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
static hak_superslab_t *hdr_alloc(void) { return pool_get(&hdr_pool); }
_Static_assert(sizeof(hak_superslab_t) % 64 == 0, "headers stay 64-byte aligned in a pool chunk");

/* Recycle the header of an unmapped SuperSlab (after its grace period). */
static void hdr_free(hak_superslab_t *h)
{
  h->magic = 0;
  pool_put(&hdr_pool, h);
}

/* ---- Owners ------------------------------------------------------------- */

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
  hak_owner_t *o = pool_get(&owner_pool);
  if (!o)
    return NULL;
  memset(o, 0, sizeof *o);
  atomic_store_explicit(&o->busy, 0, memory_order_relaxed);
  atomic_store_explicit(&o->helper, 0, memory_order_relaxed);
  o->tid = atomic_fetch_add_explicit(&next_tid, 1, memory_order_relaxed);
  o->decay_ms = hak_clock_ms();
  hak_mutex_lock(&owners_lock);
  __atomic_store_n(&owners_live_count, owners_live_count + 1, __ATOMIC_RELAXED);
  o->live_next = owners_live;
  if (owners_live)
    owners_live->live_prev = o;
  owners_live = o;
  hak_mutex_unlock(&owners_lock);
  return o;
}

void backend_owner_retire(hak_owner_t *o)
{
  /* Off the live list first: no trim can pick this owner up any more. */
  hak_mutex_lock(&owners_lock);
  if (o->live_prev)
    o->live_prev->live_next = o->live_next;
  else
    owners_live = o->live_next;
  if (o->live_next)
    o->live_next->live_prev = o->live_prev;
  __atomic_store_n(&owners_live_count, owners_live_count - 1, __ATOMIC_RELAXED);
  hak_mutex_unlock(&owners_lock);
  backend_owner_lock(o); /* wait out a trim that is helping this owner */
  backend_owner_unlock(o);
  while (o->owned)
    backend_ss_release(o, o->owned);
  /* Every SuperSlab was released, and release empties the inbox of each, so
   * no pusher can still reach this owner. */
  pool_put(&owner_pool, o);
}

static void owner_link(hak_owner_t *o, hak_superslab_t *ss)
{
  ss->own_prev = NULL;
  ss->own_next = o->owned;
  if (o->owned)
    o->owned->own_prev = ss;
  o->owned = ss;
  o->owned_count++;
}

static void owner_unlink(hak_owner_t *o, hak_superslab_t *ss)
{
  if (ss->own_prev)
    ss->own_prev->own_next = ss->own_next;
  else
    o->owned = ss->own_next;
  if (ss->own_next)
    ss->own_next->own_prev = ss->own_prev;
  ss->own_next = ss->own_prev = NULL;
  o->owned_count--;
}

/* ---- Slabs ---------------------------------------------------------------- */

/* ---- Free-list links (plain, or encoded in hardened builds) --------------- */

static inline void *slab_base(hak_superslab_t *ss, unsigned s);

/* A slab's free-list link, encoded with the slab's secret (hak/link.h). */
static inline void *link_code(const hak_slab_t *sl, const void *at, void *v)
{
  return hak_link_code(sl->secret, at, v);
}

#if HAK_HARDENED

/* next must be NULL or a block start of the same slab. */
static inline void link_check(hak_superslab_t *ss, unsigned s, const void *at, const void *next)
{
  uintptr_t off = (uintptr_t)next - (uintptr_t)slab_base(ss, s);
  if (next && (off >> ss->slab_shift || !hak_class_is_block_offset(ss->cls, (uint32_t)off)))
    hak_os_fatal("malloc", "corrupted free list (a freed block was overwritten)", at);
}

static void slab_randomize(hak_slab_t *sl)
{
  uint64_t r = hak_random64();
  sl->secret = hak_random64() | 1;
  unsigned n = sl->capacity ? sl->capacity : 1, m = (unsigned)(r % n) | 1;
  for (;; m += 2) { /* a multiplier coprime to n gives a permutation */
    unsigned a = m % n ? m % n : 1, b = n;
    while (b) {
      unsigned t = a % b;
      a = b;
      b = t;
    }
    if (a == 1)
      break;
  }
  sl->mul = (uint16_t)(m % n ? m % n : 1);
  sl->add = (uint16_t)((r >> 32) % n);
}

static inline size_t carve_index(const hak_slab_t *sl, unsigned k)
{
  return ((size_t)sl->mul * k + sl->add) % sl->capacity;
}

/* Where carving is: the k-th block carved is block idx. The random order
 * has no notion of pages: left (blocks to come in the current page) is
 * unbounded. */
typedef struct carve_pos {
  unsigned k, idx, left;
} carve_pos_t;

static inline void carve_seek(const hak_slab_t *sl, size_t bs, unsigned k, carve_pos_t *cp)
{
  (void)bs;
  cp->k = k;
  cp->idx = (unsigned)carve_index(sl, k);
  cp->left = UINT_MAX;
}

static inline void carve_next(const hak_slab_t *sl, size_t bs, carve_pos_t *cp)
{
  carve_seek(sl, bs, cp->k + 1, cp);
}
#else
static inline void link_check(hak_superslab_t *ss, unsigned s, const void *at, const void *next)
{
  (void)ss, (void)s, (void)at, (void)next;
}
static inline void slab_randomize(hak_slab_t *sl) { (void)sl; }

/* Plain builds carve page by page: from the colour's page (block sl->add
 * is the first block that starts in it) to the slab's end, then from block
 * 0. Within each page carving starts at the colour's line (the first block
 * at or past sl->line bytes into the page, counted round the blocks that
 * end in the page, so that close colours pick different blocks), wraps to
 * the page's first block,
 * and takes the block that runs over into the next page last. A page is
 * then full before the next one is touched. The cursor keeps the blocks
 * that start in the current page, [lo, hi), those of them that end in it,
 * [lo, in_hi), and how many are still to come (left), so that stepping
 * costs no division. */
typedef struct carve_pos {
  unsigned k, idx, lo, in_hi, hi, left;
} carve_pos_t;

static inline void carve_seek(const hak_slab_t *sl, size_t bs, unsigned k, carve_pos_t *cp)
{
  const size_t cap = sl->capacity;
  size_t j = (size_t)k + sl->add; /* in page order */
  j -= j >= cap ? cap : 0;
  const size_t page = j * bs / HAK_PAGE_SIZE * HAK_PAGE_SIZE; /* offset of j's page */
  size_t lo = (page + bs - 1) / bs, hi = (page + HAK_PAGE_SIZE + bs - 1) / bs;
  size_t in_hi = (page + HAK_PAGE_SIZE) / bs;
  hi = hi < cap ? hi : cap;
  in_hi = in_hi < hi ? in_hi : hi;
  size_t start = lo; /* the first block at or past the line, counted round the page's whole blocks */
  if (in_hi > lo)
    start = lo + ((page + sl->line + bs - 1) / bs - lo) % (in_hi - lo);
  size_t i = start + (j - lo);
  cp->k = k;
  cp->idx = (unsigned)(j >= in_hi ? j : i < in_hi ? i : i - (in_hi - lo));
  cp->lo = (unsigned)lo;
  cp->in_hi = (unsigned)in_hi;
  cp->hi = (unsigned)hi;
  cp->left = (unsigned)(hi - j);
}

static inline void carve_next(const hak_slab_t *sl, size_t bs, carve_pos_t *cp)
{
  if (--cp->left == 0) {
    carve_seek(sl, bs, cp->k + 1, cp);
    return;
  }
  cp->k++;
  if (cp->left == cp->hi - cp->in_hi) /* the one running over */
    cp->idx = cp->in_hi;
  else
    cp->idx = cp->idx + 1 < cp->in_hi ? cp->idx + 1 : cp->lo;
}
#endif

/* Cache colouring (plain builds). SuperSlabs are aligned to 1 MiB, so
 * without it the first blocks of every class — the ones a thread uses
 * most — sit at the same offsets and compete for the same cache sets
 * (the L1's period is 4 KiB, the L2's 64 KiB). Each SuperSlab's colour is
 * 19 cache lines more than the previous SuperSlab address's, modulo
 * 32 KiB: its page part picks the page carving starts from (pages before
 * it are left for last, untouched until then), its line part where
 * carving starts inside every page (see carve_seek). Every page carving
 * touches is filled before the next, so colouring costs no memory.
 * Hardened builds carve in a random order instead. */
static void slab_colour(hak_superslab_t *ss, hak_slab_t *sl, unsigned bs)
{
  sl->add = 0;
  sl->line = 0;
  if (HAK_HARDENED || !HAK_COLOUR || sl->capacity == 0)
    return;
  size_t colour = (((uintptr_t)ss->base >> HAK_SS_SHIFT) * (19u * 64u)) & (32u * 1024u - 1u);
  size_t page = colour & ~(size_t)(HAK_PAGE_SIZE - 1);
  sl->add = (uint16_t)((page + bs - 1) / bs % sl->capacity);
  sl->line = (uint16_t)(colour & (HAK_PAGE_SIZE - 1));
}

/* Cut ss into slabs of 1 << shift bytes, keeping what its slabs' dirt
 * says of its pages: a new slab is DIRTY if any part of it was. */
static void ss_set_geometry(hak_superslab_t *ss, unsigned shift)
{
  const unsigned old = ss->slab_shift;
  if (old == shift)
    return;
  bool touched[HAK_SLABS_PER_SS]; /* per 64 KiB of the SuperSlab */
  for (unsigned u = 0; u < HAK_SLABS_PER_SS; u++)
    touched[u] = ss->slabs[u >> (old - HAK_SLAB_SHIFT)].dirty != HAK_SLAB_CLEAN;
  for (unsigned s = 0; s < HAK_SLABS_PER_SS; s++)
    ss->slabs[s].dirty = HAK_SLAB_CLEAN;
  for (unsigned u = 0; u < HAK_SLABS_PER_SS; u++)
    if (touched[u])
      ss->slabs[u >> (shift - HAK_SLAB_SHIFT)].dirty = HAK_SLAB_DIRTY;
  ss->slab_shift = (uint8_t)shift;
}

/* Set ss up for class cls. Its slabs' dirt is kept: a SuperSlab reused
 * from the free tier may have pages resident, which the decay must still
 * see (a fresh one starts all CLEAN, see backend_ss_new). */
static void ss_init(hak_superslab_t *ss, unsigned cls)
{
  const hak_class_info_t *ci = &hak_class_info[cls];
  ss_set_geometry(ss, ci->slab_shift);
  ss->magic = HAK_SS_MAGIC;
  ss->cls = (uint8_t)cls;
  ss->tier = HAK_TIER_HOT;
  memset(ss->above, 0, sizeof ss->above);
  ss->block_size = ci->size;
  ss->used = 0;
  ss->capacity = backend_ss_capacity(cls);
  ss->room_mask = 0;
  ss->own_next = ss->own_prev = NULL;
  ss->free_next = ss->inbox_next = NULL;
  ss->pend_next = ss->pend_prev = NULL;
  ss->pending = 0;
  ss->index_link.next = ss->index_link.prev = NULL;
  ss->index_link.linked = false;
  atomic_store_explicit(&ss->remote_head, NULL, memory_order_relaxed);
  atomic_store_explicit(&ss->notify, NOTIFY_ARMED, memory_order_relaxed);
  for (unsigned s = 0; s < HAK_SLABS_PER_SS; s++) {
    hak_slab_t *sl = &ss->slabs[s];
    unsigned end = backend_slab_blocks(s, cls);
    sl->free = NULL;
    sl->used = 0;
    sl->carved = 0;
    if (sl->dirty == HAK_SLAB_IDLE_SEEN)
      sl->dirty = HAK_SLAB_DIRTY;
    sl->capacity = (uint16_t)end;
    slab_colour(ss, sl, ci->size);
    if (end) {
      ss->room_mask |= 1u << s;
      slab_randomize(sl);
    }
  }
  SS_VALIDATE(ss);
}

static inline void *slab_base(hak_superslab_t *ss, unsigned s)
{
  return ss->base + ((size_t)s << ss->slab_shift);
}

/* A slab whose blocks have all come back starts over as uncarved, so it is
 * carved again in address order and its pages can be given back. */
static inline void slab_reset_if_idle(hak_slab_t *sl)
{
  if (sl->used == 0) {
    sl->free = NULL;
    sl->carved = 0;
    slab_randomize(sl);
  }
}

/* A block coming back (freed locally, or on ss's remote chain) is out
 * (counted in used) and not on its slab's free list: anything else means
 * it was freed twice. */
static inline void block_out_check(hak_superslab_t *ss, void *b)
{
  const hak_slab_t *sl = &ss->slabs[backend_slab_index(ss, b)];
  if (hak_unlikely(sl->used == 0 || sl->free == b))
    hak_os_fatal("free", "double free detected", b);
}

static inline void remote_prefetch_hint(const hak_superslab_t *ss, const void *b)
{
#if !HAK_HARDENED
  if (hak_class_two_words(ss->cls)) /* one-word blocks carry no hint */
    __builtin_prefetch(((void *const *)b)[1], 1); /* the chain's hint, see superslab.h */
#else
  (void)ss;
  (void)b;
#endif
}

/* Put back the blocks of a remote chain from b on; returns how many. */
static unsigned drain_chain(hak_superslab_t *ss, void *b);

/* The first part of a take when other threads freed blocks into ss: up to
 * max blocks of the remote chain go out again as they are, linked already
 * and never put back, so no slab's count moves (they stay out): one walk
 * instead of a drain onto the slabs and a second walk over their lists.
 * The rest of the chain goes back on the slabs, so that the takes after
 * this one reuse slab by slab again (the blocks out stay on few slabs, and
 * the others can go idle and give their pages back). */
static unsigned take_remote(hak_superslab_t *ss, unsigned max, void **head_out, void **tail_out)
{
  void *b = atomic_exchange_explicit(&ss->remote_head, NULL, memory_order_acquire);
  void *tail = NULL;
  unsigned n = 0;
  *head_out = b;
  while (b && n < max) {
    void *next = *(void **)b;
    remote_prefetch_hint(ss, b);
    block_out_check(ss, b);
    tail = b;
    b = next;
    n++;
  }
  *tail_out = tail;
  if (b)
    drain_chain(ss, b);
  return n;
}

unsigned backend_ss_take(hak_superslab_t *ss, unsigned max, void **head_out, void **tail_out)
{
  void *head = NULL, *tail = NULL;
  unsigned n = 0;
  if (backend_ss_has_remote(ss)) {
    n = take_remote(ss, max, &head, &tail);
    if (n == max) {
      *head_out = head;
      *tail_out = tail;
      return n;
    }
  }
  const unsigned from_remote = n;
  const size_t bs = ss->block_size;
  while (n < max && ss->room_mask) {
    unsigned s = (unsigned)__builtin_ctz(ss->room_mask);
    hak_slab_t *sl = &ss->slabs[s];
    unsigned got = 0;
    bool page_end = false;
    while (n + got < max && sl->free) {
      void *b = sl->free;
      void *next = link_code(sl, b, *(void **)b);
      link_check(ss, s, b, next);
      sl->free = next;
      if (tail)
        *(void **)tail = b;
      else
        head = b;
      tail = b;
      got++;
    }
    if (n + got < max && sl->carved < sl->capacity) {
      char *base = (char *)slab_base(ss, s);
      unsigned k = max - n - got;
      if (k > (unsigned)(sl->capacity - sl->carved))
        k = sl->capacity - sl->carved;
      carve_pos_t cp;
      carve_seek(sl, bs, sl->carved, &cp);
      /* Carving stops at the end of the page it is in: a refill then
       * touches a new page only when the blocks of the last one are all
       * out, and the page it stops in is one the program uses anyway. */
      page_end = bs <= HAK_PAGE_SIZE / 2 && k > cp.left;
      if (page_end)
        k = cp.left;
      sl->carved = (uint16_t)(sl->carved + k);
      sl->dirty = HAK_SLAB_DIRTY;
      for (unsigned i = 0;;) {
        char *b = base + (size_t)cp.idx * bs;
        if (tail)
          *(void **)tail = b;
        else
          head = b;
        tail = b;
        if (++i == k)
          break;
        carve_next(sl, bs, &cp);
      }
      got += k;
    }
    sl->used = (uint16_t)(sl->used + got);
    if (got)
      sl->dirty = HAK_SLAB_DIRTY; /* in use again: not idle */
    n += got;
    if (!sl->free && sl->carved == sl->capacity)
      ss->room_mask &= ~(1u << s);
    SLAB_VALIDATE(ss, s);
    if (page_end)
      break;
  }
  ss->used += n - from_remote;
  *head_out = head;
  *tail_out = tail;
  return n;
}

static inline unsigned put_back(hak_superslab_t *ss, void *p)
{
  unsigned s = backend_slab_index(ss, p);
  hak_slab_t *sl = &ss->slabs[s];
  unsigned ev = ss->room_mask ? 0 : HAK_SS_BECAME_ROOMY;
  if (HAK_HARDENED && sl->free) /* the check on free: the head's link is intact */
    link_check(ss, s, sl->free, link_code(sl, sl->free, *(void **)sl->free));
  *(void **)p = link_code(sl, p, sl->free);
  sl->free = p;
  sl->used--;
  slab_reset_if_idle(sl);
  ss->room_mask |= 1u << s;
  if (--ss->used == 0)
    ev |= HAK_SS_BECAME_EMPTY;
  SLAB_VALIDATE(ss, s);
  return ev;
}

unsigned backend_ss_free_local(hak_superslab_t *ss, void *p)
{
  block_out_check(ss, p);
  return put_back(ss, p);
}

/* In the same slab s of ss? (A block of another SuperSlab, below or above
 * it, gives an index far out of range.) */
static inline bool in_slab(const hak_superslab_t *ss, unsigned s, const void *b)
{
  return (((uintptr_t)b - (uintptr_t)ss->base) >> ss->slab_shift) == s;
}

/* ---- Validators (checking builds) -----------------------------------------
 * Called by whoever may touch ss's slabs (its owner; for an ownerless one,
 * the holder of its class index lock) where the counts must agree. */

#if HAK_DEBUG_CHECKS
/* Slab s: counts within bounds; its free list, walked in full, holds
 * carved - used blocks, each a block start inside the slab, with no cycle;
 * a slab with a free block or uncarved room has its room-mask bit. */
static void slab_validate(hak_superslab_t *ss, unsigned s)
{
  hak_slab_t *sl = &ss->slabs[s];
  HAK_ASSERT(sl->capacity == backend_slab_blocks(s, ss->cls));
  HAK_ASSERT(sl->carved <= sl->capacity);
  HAK_ASSERT(sl->used <= sl->carved);
  const uintptr_t base = (uintptr_t)slab_base(ss, s);
  unsigned n = 0;
  for (void *b = sl->free; b; b = link_code(sl, b, *(void **)b)) {
    HAK_ASSERT(n < sl->carved); /* more blocks than were carved: a cycle */
    HAK_ASSERT(in_slab(ss, s, b));
    HAK_ASSERT(hak_class_is_block_offset(ss->cls, (uint32_t)((uintptr_t)b - base)));
    n++;
  }
  HAK_ASSERT(n == (unsigned)(sl->carved - sl->used));
  HAK_ASSERT(!(sl->free || sl->carved < sl->capacity) || (ss->room_mask & (1u << s)));
}

/* The whole SuperSlab: its header, every slab, and ss->used the sum of
 * theirs. */
static void ss_validate(hak_superslab_t *ss)
{
  HAK_ASSERT(ss->magic == HAK_SS_MAGIC);
  HAK_ASSERT(ss->cls < HAK_NUM_CLASSES);
  HAK_ASSERT(ss->block_size == hak_class_size(ss->cls));
  HAK_ASSERT(ss->slab_shift == hak_class_info[ss->cls].slab_shift);
  uint32_t used = 0;
  for (unsigned s = 0; s < HAK_SLABS_PER_SS; s++) {
    if (s < backend_ss_slabs(ss->cls))
      slab_validate(ss, s);
    else
      HAK_ASSERT(!(ss->room_mask & (1u << s)));
    used += ss->slabs[s].used;
  }
  HAK_ASSERT(used == ss->used);
  HAK_ASSERT(ss->used <= ss->capacity);
}
#endif

#if !HAK_HARDENED
/* Plain links: the blocks of one slab at the start of the chain at *bp (at
 * most max) are linked already, and go onto their slab's free list in one
 * splice, in the chain's order, its counts moved once; nothing is written
 * into them but the last one's link. *bp moves past them; returns how many.
 * A block on its slab's list already, or more blocks back than were out
 * (a block pushed twice: the chain then runs in a cycle), is a double free.
 * A remote chain carries prefetch hints (see superslab.h). */
static inline unsigned splice_slab_run(hak_superslab_t *ss, void **bp, unsigned max, bool remote)
{
  void *b = *bp;
  const unsigned s = backend_slab_index(ss, b);
  hak_slab_t *sl = &ss->slabs[s];
  void *const first = b, *const top = sl->free;
  const unsigned out = sl->used;
  void *last;
  unsigned k = 0;
  do {
    if (hak_unlikely(b == top || k == out))
      hak_os_fatal("free", "double free detected", b);
    if (remote)
      remote_prefetch_hint(ss, b);
    last = b;
    b = *(void **)b;
    k++;
  } while (k < max && in_slab(ss, s, b));
  *(void **)last = top;
  sl->free = first;
  sl->used = (uint16_t)(sl->used - k);
  slab_reset_if_idle(sl);
  ss->room_mask |= 1u << s;
  ss->used -= k;
  SLAB_VALIDATE(ss, s);
  *bp = b;
  return k;
}

/* A bin's run: it frees in the order its thread freed, mostly the order
 * it allocated, so its blocks come in stretches of one slab. */
unsigned backend_ss_free_run(hak_superslab_t *ss, void *b, unsigned n, void **rest,
                             unsigned *count)
{
  unsigned ev = ss->room_mask ? 0 : HAK_SS_BECAME_ROOMY;
  unsigned done = 0;
  while (done < n && (uintptr_t)b - (uintptr_t)ss->base < HAK_SS_SIZE)
    done += splice_slab_run(ss, &b, n - done, false);
  if (ss->used == 0)
    ev |= HAK_SS_BECAME_EMPTY;
  *rest = b;
  *count = done;
  return ev;
}
#else
/* Hardened links are encoded per block: one block at a time. */
unsigned backend_ss_free_run(hak_superslab_t *ss, void *b, unsigned n, void **rest,
                             unsigned *count)
{
  unsigned ev = 0, done = 0;
  while (done < n && (uintptr_t)b - (uintptr_t)ss->base < HAK_SS_SIZE) {
    void *next = *(void **)b;
    block_out_check(ss, b);
    ev |= put_back(ss, b);
    b = next;
    done++;
  }
  *rest = b;
  *count = done;
  return ev;
}
#endif

#if !HAK_HARDENED
/* A remote chain: a freeing thread sends what it freed in order, so its
 * blocks too come in stretches of one slab. */
static unsigned drain_chain(hak_superslab_t *ss, void *b)
{
  unsigned n = 0;
  while (b)
    n += splice_slab_run(ss, &b, UINT_MAX, true);
  return n;
}
#else
/* Hardened links are encoded per block: one block at a time. */
static unsigned drain_chain(hak_superslab_t *ss, void *b)
{
  unsigned n = 0;
  while (b) {
    void *next = *(void **)b;
    block_out_check(ss, b);
    put_back(ss, b);
    b = next;
    n++;
  }
  return n;
}
#endif

unsigned backend_ss_drain(hak_superslab_t *ss)
{
  return drain_chain(ss, atomic_exchange_explicit(&ss->remote_head, NULL, memory_order_acquire));
}

/* ---- The free tier and unmapping ---------------------------------------- */

static void unmap_retired(hak_superslab_t *list)
{
  if (!list)
    return;
  registry_synchronize();
  while (list) {
    hak_superslab_t *next = list->free_next;
    atomic_fetch_add_explicit(&ss_unmapped[list->cls], 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&ss_live, 1, memory_order_relaxed);
    hak_os_unmap(list->base, HAK_SS_SIZE);
    hdr_free(list);
    list = next;
  }
}

/* ss is empty and reachable by no list: clear its tag and keep it in the
 * free tier for reuse, pages and all: the decay gives them back once they
 * have stayed unused for the purge delay (backend_purge). */
static void ss_to_free_tier(hak_superslab_t *ss)
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

/* Give back the pages of ss's idle slabs: all of them (all_idle), or those
 * a previous pass already found idle, marking the others for the next one
 * (*pending set). Neighbouring slabs go back in one call. Returns the bytes
 * given back. */
static size_t ss_decommit_where(hak_superslab_t *ss, bool all_idle, bool *pending)
{
  size_t bytes = 0;
  unsigned run = 0, run_len = 0; /* slabs [run, run + run_len) to give back */
  const unsigned nslabs = (unsigned)(HAK_SS_SIZE >> ss->slab_shift);
  for (unsigned s = HAK_SS_FIRST_SLAB; s <= nslabs; s++) {
    bool give = false;
    if (s < nslabs) {
      hak_slab_t *sl = &ss->slabs[s];
      if (sl->used == 0 && sl->dirty != HAK_SLAB_CLEAN) {
        if (all_idle || sl->dirty == HAK_SLAB_IDLE_SEEN) {
          give = true;
          sl->free = NULL;
          sl->carved = 0;
          sl->dirty = HAK_SLAB_CLEAN;
          slab_randomize(sl);
        } else {
          sl->dirty = HAK_SLAB_IDLE_SEEN;
          *pending = true;
        }
      }
    }
    if (give) {
      if (run_len == 0)
        run = s;
      run_len++;
    } else if (run_len) {
      hak_os_decommit(slab_base(ss, run), (size_t)run_len << ss->slab_shift);
      bytes += (size_t)run_len << ss->slab_shift;
      run_len = 0;
    }
  }
  SS_VALIDATE(ss);
  return bytes;
}

size_t backend_ss_decommit_idle(hak_superslab_t *ss)
{
  bool pending = false;
  return ss_decommit_where(ss, true, &pending);
}

size_t backend_ss_decay(hak_superslab_t *ss, bool *pending)
{
  return ss_decommit_where(ss, false, pending);
}

/* ---- Ownership ---------------------------------------------------------- */

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
    atomic_fetch_add_explicit(&ss_mapped[cls], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ss_live, 1, memory_order_relaxed);
  }
  ss_init(ss, cls);
  atomic_store_explicit(&ss->owner, o, memory_order_relaxed);
  if (registry_set_tag((uintptr_t)ss->base, hak_tag_with_hdr(hak_tag_make(HAK_KIND_SMALL, cls), ss)) != 0) {
    hak_os_unmap(ss->base, HAK_SS_SIZE);
    hdr_free(ss);
    atomic_fetch_sub_explicit(&ss_live, 1, memory_order_relaxed);
    return NULL;
  }
  owner_link(o, ss);
  return ss;
}

hak_superslab_t *backend_ss_adopt(hak_owner_t *o, unsigned cls)
{
  registry_index_lock(cls);
  hak_reg_link_t *l = registry_index_pop(cls);
  hak_superslab_t *ss = NULL;
  if (l) {
    ss = (hak_superslab_t *)((char *)l - offsetof(hak_superslab_t, index_link));
    backend_ss_drain(ss);
    SS_VALIDATE(ss);
    ss->tier = HAK_TIER_HOT;
    memset(ss->above, 0, sizeof ss->above);
    atomic_store_explicit(&ss->owner, o, memory_order_seq_cst);
    atomic_store_explicit(&ss->notify, NOTIFY_ARMED, memory_order_seq_cst);
    owner_link(o, ss);
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
      list->pend_prev = NULL;
      list->pend_next = o->pending;
      if (o->pending)
        o->pending->pend_prev = list;
      o->pending = list;
    }
    list = next;
  }
}

static void pending_unlink(hak_owner_t *o, hak_superslab_t *ss)
{
  if (!ss->pending)
    return;
  if (ss->pend_prev)
    ss->pend_prev->pend_next = ss->pend_next;
  else
    o->pending = ss->pend_next;
  if (ss->pend_next)
    ss->pend_next->pend_prev = ss->pend_prev;
  ss->pend_next = ss->pend_prev = NULL;
  ss->pending = 0;
}

hak_superslab_t *backend_inbox_take(hak_owner_t *o)
{
  if (atomic_load_explicit(&o->inbox, memory_order_relaxed) != NULL)
    inbox_to_pending(o);
  hak_superslab_t *list = o->pending;
  o->pending = NULL;
  for (hak_superslab_t *ss = list; ss; ss = ss->pend_next) {
    ss->pending = 0;
    backend_ss_drain(ss);
  }
  return list;
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
    ss_to_free_tier(ss);
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
    ss_to_free_tier(ss);
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
  for (hak_owner_t *o = owners_live; o; o = o->live_next) {
    if (o == self || !backend_owner_trylock(o))
      continue; /* busy owners do their own housekeeping */
    hak_superslab_t *ss = backend_inbox_take(o);
    while (ss) {
      hak_superslab_t *next = ss->pend_next;
      if (!ops->holds(ss) && backend_ss_has_room(ss)) {
        bytes += ss->used == 0 ? HAK_SS_SIZE : 0;
        backend_ss_release(o, ss);
      }
      ss = next;
    }
    if (o->user)
      bytes += ops->trim(o, o->user);
    for (hak_superslab_t *t = o->owned; t; t = t->own_next)
      bytes += backend_ss_decommit_idle(t);
    backend_owner_helper_unlock(o);
  }
  hak_mutex_unlock(&owners_lock);
  return bytes;
}

/* ---- Decay by time ----------------------------------------------------- */

static _Atomic uint32_t purge_delay_ms = 100;

void backend_set_purge_delay(unsigned ms) { atomic_store_explicit(&purge_delay_ms, ms, memory_order_relaxed); }
unsigned backend_purge_delay(void) { return atomic_load_explicit(&purge_delay_ms, memory_order_relaxed); }
unsigned backend_live_owners(void) { return __atomic_load_n(&owners_live_count, __ATOMIC_RELAXED); }

/* One decay pass over o's SuperSlabs (o's lock held). A helper (another
 * thread, o gone quiet) first drains their remote frees, so blocks other
 * threads gave back count as idle; the SuperSlabs stay on o's inbox, and o
 * files them as usual when it wakes. */
static bool owner_decay_locked(hak_owner_t *o, uint32_t now, bool helping)
{
  if (helping)
    backend_owner_assert_helped(o);
  else
    backend_owner_assert_held(o);
  bool pending = false;
  for (hak_superslab_t *ss = o->owned; ss; ss = ss->own_next) {
    if (helping && backend_ss_has_remote(ss))
      backend_ss_drain(ss);
    backend_ss_decay(ss, &pending);
  }
  __atomic_store_n(&o->decay_ms, now, __ATOMIC_RELAXED);
  return pending;
}

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
  if (retire_len >= RETIRE_BATCH || (retire_len && !pending)) {
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
    for (hak_reg_link_t *l = registry_index_next(c, NULL); l; l = registry_index_next(c, l)) {
      hak_superslab_t *ss = (hak_superslab_t *)((char *)l - offsetof(hak_superslab_t, index_link));
      backend_ss_decay(ss, &pending);
    }
    registry_index_unlock(c);
  }
  return pending;
}

/* Owners that ran no pass of their own for two delays (a thread that
 * stopped calling the allocator) get one from here. A busy owner (its lock
 * taken) is left alone: it is awake and runs its own. */
static bool quiet_owners_decay(uint32_t now, uint32_t delay)
{
  bool pending = false;
  hak_mutex_lock(&owners_lock);
  for (hak_owner_t *o = owners_live; o; o = o->live_next) {
    if (hak_ms_since(now, __atomic_load_n(&o->decay_ms, __ATOMIC_RELAXED)) < 2 * delay)
      continue;
    if (!backend_owner_trylock(o))
      continue;
    pending |= owner_decay_locked(o, now, true);
    backend_owner_helper_unlock(o);
  }
  hak_mutex_unlock(&owners_lock);
  return pending;
}

bool backend_purge(uint32_t now)
{
  int idle = 0;
  if (!atomic_compare_exchange_strong(&purge_busy, &idle, 1))
    return true; /* another thread is at it */
  atomic_store_explicit(&purge_last_ms, now, memory_order_relaxed);
  const uint32_t delay = backend_purge_delay();
  bool pending = quiet_owners_decay(now, delay);
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
    owner_decay_locked(o, now, false);
    backend_owner_unlock(o);
  }
  /* The global pass is the purge thread's; a thread's slow path runs it
   * when it is overdue (no purge thread, or one that fell behind). */
  if (hak_ms_since(now, atomic_load_explicit(&purge_last_ms, memory_order_relaxed)) >= 2 * delay + 1)
    backend_purge(now);
}

void backend_fork_prepare_owners(void) { hak_mutex_lock(&owners_lock); }

void backend_fork_prepare(void) { hak_mutex_lock(&backend_lock); }
void backend_fork_parent(void)
{
  hak_mutex_unlock(&backend_lock);
  hak_mutex_unlock(&owners_lock);
}
void backend_fork_child(void)
{
  /* The child is a new process to membarrier; it has one thread now, so
   * the owner lock may change sides safely. */
  if (!backend_owner_fenced && !hak_os_membarrier_register())
    backend_owner_fenced = true;
  atomic_store_explicit(&purge_busy, 0, memory_order_relaxed); /* its runner is not in the child */
  hak_mutex_reinit(&backend_lock);
  hak_mutex_reinit(&owners_lock);
}

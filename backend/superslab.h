/*
 * backend/superslab.h — SuperSlabs: 1 MiB regions aligned to their size,
 * each serving one size class, cut into slabs that carve blocks (64 KiB
 * for the small classes, larger for the medium ones: ss->slab_shift).
 *
 * Ownership. A SuperSlab is owned by one thread (an hak_owner_t) or by no
 * one. Only the owner touches the slabs' free lists and counts of an owned
 * SuperSlab, with no lock and no atomic. Other threads free into it by
 * pushing onto its remote list (one CAS for a whole chain); the owner drains
 * that list. An ownerless SuperSlab is touched only under its class's
 * registry index lock; it sits in that index while it has room.
 *
 * Tiers: HOT (owned), DRAINING (ownerless, still has live blocks), FREE
 * (empty: kept for reuse, its pages resident until they have stayed unused
 * for the purge delay; a few decommitted ones kept, the rest unmapped after
 * an RCU grace period).
 *
 * Decay. Pages go back to the OS by time, never because a count says so:
 * a slab with no block out keeps its pages until it has stayed idle for
 * at least the purge delay (two decay passes a delay apart find it idle and
 * unused in between), so memory freed and reused within the delay faults
 * nothing in. The owner runs the passes over its SuperSlabs from its slow
 * paths (backend_tick); a global pass (backend_purge: the free tier, the
 * ownerless SuperSlabs, and owners that have gone quiet) runs from any
 * thread's slow path or from the front's purge thread.
 *
 * Remote-free notification. A SuperSlab that receives its first remote block
 * while its owner is not looking is pushed once onto the owner's inbox, so
 * an owner whose blocks are all freed elsewhere (producer/consumer) finds
 * them again instead of mapping new memory. ss->notify arbitrates between
 * the pusher and an owner releasing the SuperSlab (see owner.c).
 *
 * Counts. slab->used and ss->used count blocks handed out of the free lists
 * (in a thread cache or in use); they go down only when a block comes back
 * to a free list (local free or drain). Every path keeps them exact.
 */
#ifndef HAK_SUPERSLAB_H
#define HAK_SUPERSLAB_H

#include "hak/common.h"
#include "hak/config.h"
#include "backend/size_class.h"
#include "registry/registry.h"
#include "hak/list.h"

#include <stdatomic.h>

#define HAK_SS_MAGIC 0x48414b53u /* "HAKS" */
/* The first slab that carves blocks. The header lives apart from its
 * SuperSlab (see "Headers" below), so plain builds carve every slab, from
 * the SuperSlab's first byte; hardened builds keep slab 0 as a guard. */
#if HAK_HARDENED
#define HAK_SS_FIRST_SLAB 1u
#else
#define HAK_SS_FIRST_SLAB 0u
#endif

enum hak_ss_tier { HAK_TIER_HOT = 1, HAK_TIER_DRAINING = 2, HAK_TIER_FREE = 3 };

/* A slab's pages: CLEAN (decommitted or never touched: they cost no RSS),
 * DIRTY (touched; in use, or idle since the last decay pass), IDLE_SEEN
 * (touched, and idle at the last decay pass: the next pass that still
 * finds it idle gives its pages back). Carving from a slab makes it
 * DIRTY again. */
enum hak_slab_dirt { HAK_SLAB_CLEAN = 0, HAK_SLAB_DIRTY = 1, HAK_SLAB_IDLE_SEEN = 2 };

typedef struct hak_slab {
  void    *free;       /* local free list (owner only) */
  uint16_t used;       /* blocks out of this slab */
  uint16_t carved;     /* blocks carved so far */
  uint16_t capacity;   /* blocks the slab holds */
  uint16_t dirty;      /* enum hak_slab_dirt (above): CLEAN, DIRTY or IDLE_SEEN */
  /* Hardened builds: the free list's links are encoded with this secret,
   * and carving visits block (mul * k + add) % capacity for k = 0, 1, ...
   * Plain builds: carving starts at block add (the first block of the
   * cache colour's page) and at line bytes into every page (slab.c). */
  uint64_t secret;
  uint16_t mul, add;
  uint16_t line;
  uint16_t zero;       /* plain builds: the uncarved blocks read zero (see "Fresh blocks") */
} hak_slab_t;

typedef struct hak_owner hak_owner_t;

/* Bytes of each SuperSlab header that belong to the box above (ss->above). */
#define HAK_SS_ABOVE_BYTES 24

typedef struct hak_superslab {
  char    *base;               /* the SuperSlab: HAK_SS_SIZE bytes, aligned to it */
  uint32_t magic;
  uint8_t  cls;
  uint8_t  slab_shift;         /* log2 of its slabs' size (its class's geometry) */
  uint8_t  tier;
  uint32_t block_size;
  uint32_t used;               /* blocks out, all slabs */
  uint32_t capacity;
  uint32_t room_mask;          /* bit s: slab s has a free block or uncarved room */
  _Atomic(hak_owner_t *) owner;
  /* The box above's state for this SuperSlab (the warm pool's list links
   * and flags, boxes/warm_pool/warm_pool.c), owner-private: the backend
   * zeroes it whenever the SuperSlab changes hands (new, adopted,
   * released) and never reads it. */
  unsigned char above[HAK_SS_ABOVE_BYTES] __attribute__((aligned(8)));
  hak_list_node_t own;                           /* the owner's list of its SuperSlabs */
  struct hak_superslab *free_next;               /* free tier / retire list */
  struct hak_superslab *inbox_next;              /* the owner's inbox (pushed by others) */
  hak_list_node_t pend;                          /* owner-private: taken off the inbox */
  uint8_t pending;
  hak_list_node_t index_link;                    /* registry per-class index */
  /* written by other threads: its own cache line */
  _Atomic(void *) remote_head __attribute__((aligned(64)));
  _Atomic uint32_t notify;
  hak_slab_t slabs[HAK_SLABS_PER_SS] __attribute__((aligned(64)));
} hak_superslab_t;

/* Headers. A SuperSlab's header is not in the SuperSlab: headers are packed
 * together in arena chunks of their own (backend_ss_new/unmapping), and the
 * registry tag of the SuperSlab's chunk points at it. A SuperSlab's pages
 * then hold blocks only, whatever its carving colour, and a thread's
 * headers share pages. A header lives exactly as long as its SuperSlab's
 * mapping and is recycled only after the grace period that unmaps it, so a
 * reader under the registry read lock never finds a stale one. */
_Static_assert(sizeof(hak_superslab_t) <= HAK_PAGE_SIZE, "SuperSlab header must fit in one page");

/* Offset of the first byte a block may occupy (0, or a power of two so
 * that "past it" is one bit test on the free path). */
#if HAK_HARDENED
#define HAK_SS_DATA_START ((size_t)HAK_SLAB_SIZE)
#else
#define HAK_SS_DATA_START ((size_t)0)
#endif
_Static_assert((HAK_SS_DATA_START & (HAK_SS_DATA_START - 1)) == 0, "data start must be 0 or a power of two");

/* p's offset is at or past the data start. */
HAK_INLINE bool backend_ss_past_data_start(const void *p)
{
  return HAK_SS_DATA_START == 0 || ((uintptr_t)p & (HAK_SS_MASK & ~(HAK_SS_DATA_START - 1))) != 0;
}

/* Slabs a SuperSlab of class cls is cut into. */
HAK_INLINE unsigned backend_ss_slabs(unsigned cls)
{
  return (unsigned)(HAK_SS_SIZE >> hak_class_info[cls].slab_shift);
}

/* Blocks slab s of class cls carves (indexes 0..n-1; none past the
 * class's slabs). Hardened builds keep slab 0 and the SuperSlab's last page
 * as guards (they use no medium class: see HAK_CLASS_MAX). */
HAK_INLINE unsigned backend_slab_blocks(unsigned s, unsigned cls)
{
  if (s >= backend_ss_slabs(cls))
    return 0;
#if HAK_HARDENED
  if (s == 0) /* a guard */
    return 0;
  if (s == backend_ss_slabs(cls) - 1)
    return (unsigned)((((size_t)1 << hak_class_info[cls].slab_shift) - HAK_PAGE_SIZE) / hak_class_size(cls));
#endif
  return hak_class_info[cls].per_slab;
}

/* Blocks a SuperSlab of class cls holds. */
HAK_INLINE unsigned backend_ss_capacity(unsigned cls)
{
  unsigned n = 0;
  for (unsigned s = HAK_SS_FIRST_SLAB; s < HAK_SLABS_PER_SS; s++)
    n += backend_slab_blocks(s, cls);
  return n;
}

/* A thread's identity as an owner of SuperSlabs. Owners sit side by side
 * in a pool chunk: what other threads write (the inbox) and the lock have
 * cache lines of their own, so that one thread's slow paths never bounce a
 * line another thread is using. */
struct hak_owner {
  _Atomic(hak_superslab_t *) inbox __attribute__((aligned(64)));
  uint32_t tid __attribute__((aligned(64)));
  hak_list_node_t *pending;    /* owner-private: notified, not yet handed out (ss->pend) */
  hak_list_node_t *owned;      /* every SuperSlab this owner holds (ss->own) */
  size_t owned_count;
  hak_list_node_t live;                /* all live owners, under the owners lock */
  uint32_t decay_ms;   /* when the last decay pass over its SuperSlabs ran */
  uint32_t ticks;      /* owner-private: slow-path events since the clock was read */
  void *user;                          /* the box above's per-thread state */
  /* The owner lock (see "The owner lock" below): busy is the owner's
   * side, helper a helping thread's. */
  _Atomic int busy __attribute__((aligned(64)));
  _Atomic int helper;
};

/* The header of the SuperSlab holding p, from its registry tag. p must be
 * a block of a live SuperSlab (one the caller holds a block of or owns),
 * or the caller must hold the registry read lock. */
HAK_INLINE hak_superslab_t *backend_ss_of(const void *p)
{
  return (hak_superslab_t *)hak_tag_hdr(registry_tag(p));
}
HAK_INLINE unsigned backend_slab_index(const hak_superslab_t *ss, const void *p)
{
  return (unsigned)(((uintptr_t)p - (uintptr_t)ss->base) >> ss->slab_shift);
}
HAK_INLINE bool backend_ss_is_owner(const hak_superslab_t *ss, const hak_owner_t *o)
{
  return atomic_load_explicit(&((hak_superslab_t *)ss)->owner, memory_order_relaxed) == o;
}

/* Owners (one per thread). */
hak_owner_t *backend_owner_new(void) HAK_INTERNAL;
void         backend_owner_retire(hak_owner_t *o) HAK_INTERNAL;

/* A fresh SuperSlab of class cls owned by o: from the free tier, else newly
 * mapped. NULL when out of memory. */
hak_superslab_t *backend_ss_new(hak_owner_t *o, unsigned cls) HAK_INTERNAL;
/* Adopt an ownerless SuperSlab with room from the registry index; NULL if
 * there is none. */
hak_superslab_t *backend_ss_adopt(hak_owner_t *o, unsigned cls) HAK_INTERNAL;
/* Give up ownership. Empty → free tier; with room → registry index. */
void backend_ss_release(hak_owner_t *o, hak_superslab_t *ss) HAK_INTERNAL;

/* Owner only: take up to max blocks as a chain head..tail (the tail's link
 * is undefined). Blocks other threads freed into ss come first, straight
 * from their chain; the rest of that chain is drained.
 *
 * Fresh blocks (plain builds). A slab that starts carving on CLEAN pages
 * (never touched, or given back with MADV_DONTNEED) carves blocks whose
 * bytes are all zero; its zero flag says so until carving starts over. Each
 * such block is handed on with backend_fresh_word in its second word, and
 * every other carved block with 0 there (its memory may hold the word from
 * an earlier carving, of this class or of another one): a
 * free block's first three words are the only ones anybody writes (link,
 * check word, remote hint), and every free overwrites the second, so a
 * block that still holds it when it is handed out is zero from its fourth
 * word on. calloc then clears three words instead of the whole block, and
 * leaves the pages of a large one untouched. The word is a per-process
 * secret, never 0, that a program cannot read: every hand-out clears it. */
extern uintptr_t backend_fresh_word HAK_INTERNAL;
unsigned backend_ss_take(hak_superslab_t *ss, unsigned max, void **head, void **tail) HAK_INTERNAL;
/* Owner only: put one block back. Returns the transitions it caused. */
#define HAK_SS_BECAME_ROOMY 1u  /* had no room before */
#define HAK_SS_BECAME_EMPTY 2u  /* no block out any more */
unsigned backend_ss_free_local(hak_superslab_t *ss, void *p) HAK_INTERNAL;
/* Owner only: put back the run of ss's blocks that starts at b, a chain
 * linked through the blocks' first words (a bin's plain links): at most n
 * blocks, up to the first block of another SuperSlab. *rest gets the block
 * after the run, *count its length. Returns the transitions it caused. */
unsigned backend_ss_free_run(hak_superslab_t *ss, void *b, unsigned n, void **rest,
                             unsigned *count) HAK_INTERNAL;
/* Owner only: is block p of ss free (on its slab's free list, in an idle
 * slab, or on the remote chain)? The double-free check's confirmation. */
bool backend_ss_holds_free(hak_superslab_t *ss, const void *p) HAK_INTERNAL;
/* The same for a SuperSlab of class cls that self does not own: another
 * owner's (tried like a helper: false when that owner is busy) or an
 * ownerless one (under its class index lock). self holds no owner lock. */
bool backend_ss_holds_free_elsewhere(hak_owner_t *self, hak_superslab_t *ss, unsigned cls, const void *p)
  HAK_INTERNAL;

/* Owner only: move remote frees onto the slabs; returns how many. */
unsigned backend_ss_drain(hak_superslab_t *ss) HAK_INTERNAL;
HAK_INLINE bool backend_ss_has_room(const hak_superslab_t *ss) { return ss->room_mask != 0; }
HAK_INLINE bool backend_ss_has_remote(hak_superslab_t *ss)
{
  return atomic_load_explicit(&ss->remote_head, memory_order_relaxed) != NULL;
}

/* Any thread: free a chain of n blocks (head..tail, all in ss) that the
 * caller does not own. */
void backend_remote_free(hak_superslab_t *ss, void *head, void *tail) HAK_INTERNAL;

/* A chain for backend_remote_free is cut from a list of blocks linked
 * through their first word (a bin's blocks, in the order the bin held
 * them): the run of blocks that starts at the list's head and stays in one
 * SuperSlab. Its links are kept as they are. Plain builds also leave in
 * each block's third word, when its class has one (hints; the second is
 * the double-free check word), a prefetch hint: the block
 * HAK_REMOTE_AHEAD places further down the run, or NULL. The owner's
 * drain reads the chain one link at a time, and the blocks' lines are usually in the freeing
 * thread's cache, so each link is a miss on the critical path; the hint
 * lets the drain start the next misses early. The hint is only advice: any
 * value in it is safe. Hardened builds write no hint. */
#define HAK_REMOTE_AHEAD 4u

/* Cut the run at the head of the list head (at most max >= 1 blocks, all
 * in the SuperSlab at base, which holds head; hints: their class has a
 * third word, hak_class_has_hint_word). Returns its length; *tail gets its
 * last block, *rest the block that followed it (the last block's link,
 * whatever it is, when the run took max blocks). */
HAK_INLINE unsigned backend_remote_run_cut(void *head, uintptr_t base, unsigned max, bool hints, void **tail,
                                   void **rest)
{
  void *b = head;
#if !HAK_HARDENED
  void *behind = head; /* the block HAK_REMOTE_AHEAD places back */
#else
  (void)hints;
#endif
  unsigned n = 0;
  for (;;) {
    void *next = *(void **)b;
#if !HAK_HARDENED
    if (hints) {
      ((void **)b)[2] = NULL;
      if (n >= HAK_REMOTE_AHEAD) {
        ((void **)behind)[2] = b;
        behind = *(void **)behind;
      }
    }
#endif
    n++;
    if (n == max || hak_ss_base_of(next) != base) {
      *tail = b;
      *rest = next;
      return n;
    }
    b = next;
  }
}

/* Owner only: SuperSlabs that got remote frees since the owner last looked,
 * the first of a list walked with backend_inbox_next. Each is re-armed and
 * drained; the caller decides where it goes (it may release some while
 * walking: take the next one first). */
hak_superslab_t *backend_inbox_take(hak_owner_t *o) HAK_INTERNAL;
HAK_INLINE hak_superslab_t *backend_inbox_next(hak_superslab_t *ss) { return hak_list_next(ss, pend); }

/* The owner lock. The owner holds it around every slow-path operation on
 * its SuperSlabs (a thread in a free phase, for every free), so that
 * another thread — malloc_trim, the purge pass — can do the housekeeping
 * of an owner that has gone quiet. Helpers only ever try it, and only
 * while holding owners_lock (so none is inside at a fork).
 *
 * It is asymmetric, Dekker's mutual exclusion with the owner's fence
 * moved to the helpers: the owner stores busy = 1 and reads helper with
 * no fence between (a compiler barrier only), and a helper, after storing
 * helper = 1, has membarrier(2) run a full barrier on every CPU that runs
 * one of the process's threads before it reads busy. Either the owner's
 * store was before that barrier and the helper sees it (and backs off), or
 * the owner's read comes after it and sees helper (and waits). The owner
 * pays two plain stores and a load per slow path, no atomic
 * read-modify-write; a helper pays a system call. Where membarrier is
 * refused (old kernels, seccomp) and under ThreadSanitizer, which cannot
 * see it, both sides use sequentially consistent atomics instead
 * (backend_owner_fenced, chosen once, before the first owner exists). */
extern bool backend_owner_fenced HAK_INTERNAL;
void backend_owner_lock_wait(hak_owner_t *o) HAK_INTERNAL;
/* The owner's side: announce itself; true when no helper is inside. */
HAK_INLINE bool backend_owner_enter(hak_owner_t *o)
{
  if (backend_owner_fenced) {
    atomic_exchange_explicit(&o->busy, 1, memory_order_seq_cst);
    return !atomic_load_explicit(&o->helper, memory_order_seq_cst);
  }
  atomic_store_explicit(&o->busy, 1, memory_order_relaxed);
  atomic_signal_fence(memory_order_seq_cst);
  return !atomic_load_explicit(&o->helper, memory_order_acquire);
}
HAK_INLINE void backend_owner_lock(hak_owner_t *o)
{
  if (hak_unlikely(!backend_owner_enter(o)))
    backend_owner_lock_wait(o);
}
HAK_INLINE void backend_owner_unlock(hak_owner_t *o) { atomic_store_explicit(&o->busy, 0, memory_order_release); }
/* A helper: take o's lock unless its owner (or another helper) holds it. */
bool backend_owner_trylock(hak_owner_t *o) HAK_INTERNAL;
HAK_INLINE void backend_owner_helper_unlock(hak_owner_t *o)
{
  atomic_store_explicit(&o->helper, 0, memory_order_release);
}
/* Checking builds: o's owner holds its lock (only the owner sets busy),
 * or a helper does. */
#define backend_owner_assert_held(o) HAK_ASSERT(atomic_load_explicit(&(o)->busy, memory_order_relaxed) == 1)
#define backend_owner_assert_helped(o) \
  HAK_ASSERT(atomic_load_explicit(&(o)->helper, memory_order_relaxed) == 1)

/* What malloc_trim's help for other threads asks of the box above:
 * holds(ss): the box keeps ss (on a warm pool), so it stays with its
 * owner; trim(o, user): trim the box's own state for owner o (o->user). */
typedef struct hak_owner_trim_ops {
  bool   (*holds)(const hak_superslab_t *ss);
  size_t (*trim)(hak_owner_t *o, void *user);
} hak_owner_trim_ops_t;

/* malloc_trim's help for the other threads: for every other live owner not
 * busy right now, collect the frees other threads made into its
 * SuperSlabs, give back those the box above does not hold (ownerless with
 * room, or freed when empty), let the box trim its state (the owner's lock
 * held), and decommit the idle slabs of the rest. Returns the bytes given
 * back. */
size_t backend_trim_others(hak_owner_t *self, const hak_owner_trim_ops_t *ops) HAK_INTERNAL;

/* Give every cached empty SuperSlab back to the OS (malloc_trim). Returns
 * the number of bytes unmapped or decommitted. */
size_t backend_trim(void) HAK_INTERNAL;
/* Owner only: decommit the pages of slabs with no block out. */
size_t backend_ss_decommit_idle(hak_superslab_t *ss) HAK_INTERNAL;
/* Owner only (or under the lock that guards ss), one decay pass: decommit
 * the slabs that were already idle at the previous pass and still are (a
 * slab in steady use is never given back and faulted in again); mark the
 * other idle ones. *pending is set when some idle slab waits for a pass. */
size_t backend_ss_decay(hak_superslab_t *ss, bool *pending) HAK_INTERNAL;

/* ---- Decay by time (see "Decay" above) -------------------------------- */

/* The purge delay in milliseconds (0: idle pages go back at the next pass). */
void     backend_set_purge_delay(unsigned ms) HAK_INTERNAL;
unsigned backend_purge_delay(void) HAK_INTERNAL;

/* Slow-path events between two reads of the clock in backend_tick. */
#define HAK_TICK_EVERY 8u
void backend_tick_slow(hak_owner_t *o) HAK_INTERNAL;
/* The owner, from a slow path, with its lock NOT held: now and then, a
 * decay pass over its SuperSlabs, and the global pass when it is overdue. */
HAK_INLINE void backend_tick(hak_owner_t *o)
{
  if (hak_unlikely(++o->ticks >= HAK_TICK_EVERY))
    backend_tick_slow(o);
}

/* The global pass at time now (hak_clock_ms): the free tier, the ownerless
 * SuperSlabs, and the SuperSlabs of owners that ran no pass of their own
 * for two delays (their remote frees are drained first). Any thread, no
 * allocator lock held. Returns true when idle pages are still waiting for
 * a later pass (the caller's next pass is worth running). */
bool backend_purge(uint32_t now) HAK_INTERNAL;
/* Live owners (threads that have allocated and not exited). */
unsigned backend_live_owners(void) HAK_INTERNAL;

/* Rare-event counters, always kept (global atomics). */

/* ---- Census ---------------------------------------------------------------
 * What the SuperSlabs hold, for mallinfo2, malloc_stats and malloc_info
 * (front/info.c): counted when asked, from a walk of the registry's SMALL
 * tags and the count of SuperSlabs mapped (kept on the map and unmap slow
 * paths, whatever -Dstats says). No path that hands blocks out or takes
 * them back counts anything for it. ss->used is read with relaxed loads
 * while its owner may change it, so while other threads allocate the
 * figures are approximate: each SuperSlab's count is one it had during the
 * walk. Any thread, no allocator lock held, outside any read section. */
typedef struct hak_ss_census {
  uint64_t mapped;     /* SuperSlabs mapped, any tier, until unmapped (not
                        * the untouched reservation they come from) */
  uint64_t in_use;     /* of those, cut for a class (owned or ownerless);
                        * the others are empty */
  uint64_t free_tier;  /* empty ones in the free tier or waiting to be
                        * unmapped: what malloc_trim unmaps */
  uint64_t ss[HAK_NUM_CLASSES];    /* SuperSlabs in use, per class */
  uint64_t used[HAK_NUM_CLASSES];  /* their blocks out: in use, or in a
                                    * thread's cache (ss->used) */
} hak_ss_census_t;
void backend_ss_census(hak_ss_census_t *out) HAK_INTERNAL;

/* Validate p as a block of ss (inside a carved slab, at a block start).
 * Safe only while ss cannot be unmapped (owned, or under the read lock). */
HAK_INLINE bool backend_ss_is_block(const hak_superslab_t *ss, const void *p)
{
  if (hak_unlikely(!backend_ss_past_data_start(p) || hak_ss_base_of(p) != (uintptr_t)ss->base))
    return false;
  uint32_t off = (uint32_t)((uintptr_t)p & (((uintptr_t)1 << ss->slab_shift) - 1));
  return hak_class_is_block_offset(ss->cls, off);
}

/* Fork: the owners lock comes first of all allocator locks, the backend
 * lock after the registry's class index locks. */
void backend_fork_prepare_owners(void) HAK_INTERNAL;
void backend_fork_prepare(void) HAK_INTERNAL;
void backend_fork_parent(void) HAK_INTERNAL;
void backend_fork_child(void) HAK_INTERNAL;

#endif /* HAK_SUPERSLAB_H */

/*
 * backend/slab.c — slabs: the free-list links of a slab and their checks,
 * the order and cache colour carving follows, a SuperSlab's geometry for
 * its class (backend_ss_init), taking blocks out and putting them back
 * (one at a time, a bin's run, another thread's remote chain), giving the
 * pages of idle slabs back, and the validators of checking builds.
 *
 * Whoever calls these may touch the SuperSlab's slabs: its owner, or for
 * an ownerless one the holder of its class index lock (see superslab.h,
 * "Ownership"). Nothing here takes a lock.
 *
 * Hardened builds (HAK_HARDENED): a slab's free-list links are stored as
 * next ^ secret ^ (address >> 4) with a random secret per slab, and every
 * link read back must point into the same slab at a block start, or the
 * process aborts ("corrupted free list"); carving follows a random
 * permutation of the slab's blocks; slab 0 and the SuperSlab's last page
 * are PROT_NONE guards (slab 15 stops short of it), so an overflow off
 * either end of the data faults instead of reaching the next mapping.
 */
#include "backend/superslab.h"
#include "backend/internal.h"
#include "backend/os.h"
#include "hak/config.h"
#include "hak/debug.h"
#include "hak/link.h"

#include <limits.h>
#include <string.h>

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

uintptr_t backend_fresh_word; /* see "Fresh blocks" in superslab.h */

/* Set ss up for class cls. Its slabs' dirt is kept: a SuperSlab reused
 * from the free tier may have pages resident, which the decay must still
 * see (a fresh one starts all CLEAN, see backend_ss_new). */
void backend_ss_init(hak_superslab_t *ss, unsigned cls)
{
  if (__atomic_load_n(&backend_fresh_word, __ATOMIC_RELAXED) == 0) {
    uintptr_t zero = 0; /* once per process; never 0 */
    __atomic_compare_exchange_n(&backend_fresh_word, &zero, (uintptr_t)hak_random64() | 1, false,
                                __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  }
  const hak_class_info_t *ci = &hak_class_info[cls];
  ss_set_geometry(ss, ci->slab_shift);
  ss->magic = HAK_SS_MAGIC;
  ss->cls = (uint8_t)cls;
  ss->tier = HAK_TIER_HOT;
  memset(ss->above, 0, sizeof ss->above);
  ss->block_size = ci->size;
  backend_ss_set_used(ss, 0);
  ss->capacity = backend_ss_capacity(cls);
  ss->room_mask = 0;
  ss->own.next = ss->own.prev = NULL;
  ss->free_next = ss->inbox_next = NULL;
  ss->pend.next = ss->pend.prev = NULL;
  ss->pending = 0;
  ss->index_link.next = ss->index_link.prev = NULL;
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
  if (hak_class_has_hint_word(ss->cls)) /* two-word blocks carry no hint */
    __builtin_prefetch(((void *const *)b)[2], 1); /* the chain's hint, see superslab.h */
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
      if (sl->carved == 0) /* carving starts over: on clean pages? */
        sl->zero = sl->dirty == HAK_SLAB_CLEAN;
      /* plain builds' blocks of two words or more (hardened ones keep a
       * canary there, and one-word blocks have no second word) */
      const bool mark = !HAK_HARDENED && bs >= 2 * sizeof(uintptr_t);
      const uintptr_t fresh = sl->zero ? backend_fresh_word : 0;
      sl->carved = (uint16_t)(sl->carved + k);
      sl->dirty = HAK_SLAB_DIRTY;
      for (unsigned i = 0;;) {
        char *b = base + (size_t)cp.idx * bs;
        if (tail)
          *(void **)tail = b;
        else
          head = b;
        tail = b;
        /* written fresh or not: a block of an earlier carving, or of the
         * class the SuperSlab served before, may have left the word here */
        if (mark)
          ((uintptr_t *)b)[1] = fresh;
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
  backend_ss_set_used(ss, ss->used + n - from_remote);
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
  const uint32_t used = ss->used - 1;
  backend_ss_set_used(ss, used);
  if (used == 0)
    ev |= HAK_SS_BECAME_EMPTY;
  SLAB_VALIDATE(ss, s);
  return ev;
}

unsigned backend_ss_free_local(hak_superslab_t *ss, void *p)
{
  block_out_check(ss, p);
  return put_back(ss, p);
}

bool backend_ss_holds_free(hak_superslab_t *ss, const void *p)
{
  const unsigned s = backend_slab_index(ss, p);
  const hak_slab_t *sl = &ss->slabs[s];
  if (sl->used == 0)
    return true;
  unsigned left = sl->capacity; /* a bound, should a list be corrupt */
  for (const void *b = sl->free; b && left; b = link_code(sl, b, *(void *const *)b), left--)
    if (b == p)
      return true;
  /* Other threads only push in front of what is there, and only the owner
   * takes the chain: the blocks behind its head stay put while we walk. */
  left = ss->capacity;
  for (const void *b = atomic_load_explicit(&ss->remote_head, memory_order_acquire); b && left;
       b = *(void *const *)b, left--)
    if (b == p)
      return true;
  return false;
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
void backend_slab_validate(hak_superslab_t *ss, unsigned s)
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
void backend_ss_validate(hak_superslab_t *ss)
{
  HAK_ASSERT(ss->magic == HAK_SS_MAGIC);
  HAK_ASSERT(ss->cls < HAK_NUM_CLASSES);
  HAK_ASSERT(ss->block_size == hak_class_size(ss->cls));
  HAK_ASSERT(ss->slab_shift == hak_class_info[ss->cls].slab_shift);
  uint32_t used = 0;
  for (unsigned s = 0; s < HAK_SLABS_PER_SS; s++) {
    if (s < backend_ss_slabs(ss->cls))
      backend_slab_validate(ss, s);
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
  backend_ss_set_used(ss, ss->used - k);
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


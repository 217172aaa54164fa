/*
 * boxes/unified_cache/unified_cache.c — refill, flush and thread set-up of
 * the unified cache. The fill-tracking invariant (see unified_cache.h):
 *   blocks on bin c == base(c) - avail, base = limit(c) when the thread is
 *   live, 0 when new or gone (so every push then reaches the slow path).
 */
#include "boxes/unified_cache/unified_cache.h"
#include "boxes/warm_pool/warm_pool.h"
#include "backend/size_class.h"
#include "backend/os.h"
#include "hak/stats.h"

__thread uc_bin_t uc_bins_by_key[HAK_NUM_CLASSES + 1];
static __thread uint8_t uc_state; /* 0 new, 1 live, 2 gone */
static void (*uc_thread_setup_hook)(void);

void uc_set_thread_setup(void (*setup)(void)) { uc_thread_setup_hook = setup; }

enum { UC_NEW = 0, UC_LIVE = 1, UC_GONE = 2 };

/* How many blocks a bin usually holds at most (growth aside, see below):
 * about 16 KiB worth, at most 256, and at least 24 for the classes served
 * by the table (up to 1 KiB), 4 for the larger small ones. The medium
 * classes (above HAK_SMALL_MAX) have no bin: each of their blocks goes to
 * and comes from its slab, where the decay sees it. A bin of two blocks of
 * each medium class held several MiB per thread, and the slow path costs
 * little beside what a program does with 32 KiB or more. A bin's fill
 * swings by half its limit between a refill and a flush; at 16 blocks
 * (1 KiB) that swing was so short that random mixed took a slow path every
 * ~100 operations of its 576..1024 B classes. */
static inline int32_t uc_limit_max(unsigned c)
{
#if HAK_UNIFIED_CACHE
  const uint32_t size = (uint32_t)hak_class_size(c);
  if (size > HAK_SMALL_MAX)
    return 0;
  const uint32_t least = size <= HAK_TINY_MAX ? 24u : 4u;
  const uint32_t n = 16384u / size;
  return (int32_t)(n < least ? least : n > 256 ? 256 : n);
#else
  (void)c;
  return 0;
#endif
}

/* A sink's bin shrinks no lower than this: a quarter of the most (at most
 * 4 KiB of blocks), 4 blocks or more, so a flush still moves a batch. An
 * eighth held less but made the remote chains of a consumer short, and its
 * blocks' owner then drains them a miss at a time (cross_thread). */
static inline int32_t uc_limit_min(unsigned c)
{
  int32_t n = uc_limit_max(c) / 4;
  return n < 4 ? (uc_limit_max(c) < 4 ? uc_limit_max(c) : 4) : n;
}

/* Each bin's limit adapts between the two. A bin that overflows
 * UC_SINK_FLUSHES times in a row with no refill in between is a sink: its
 * thread frees blocks of that class and does not allocate them again (a
 * consumer of another thread's blocks, a class the thread is done with).
 * Its limit halves at every further overflow, so it keeps few blocks that
 * their owners or other threads could use, and little memory. A refill that
 * follows a flush (the bin drains and fills in turn: a burst of frees was
 * followed by allocations) gives it its whole limit back. Only the slow
 * paths move it. */
#define UC_SINK_FLUSHES 4u
static __thread uint16_t uc_lim[HAK_NUM_CLASSES];
static __thread uint8_t uc_flush_streak[HAK_NUM_CLASSES];

static inline int32_t uc_limit(unsigned c)
{
  return uc_lim[c];
}

/* Growth. A bin that runs over with its thread's own blocks and then dry
 * (a flush of local blocks, then a refill) holds less than its thread
 * cycles through: every block of the difference goes to its slab and comes
 * back, a slow path and a walk each way. Such a bin's ceiling doubles at
 * that refill, up to UC_GROW_BYTES of blocks (at most UC_GROW_BLOCKS),
 * while the thread's growth beyond the classes' usual limits stays within
 * UC_GROW_THREAD_BYTES: a thread whose working set of one class is a few
 * thousand small blocks keeps it in the bin, and what any thread can hold
 * there stays bounded. A flush that sent blocks to other threads does not
 * count (a consumer's bin stays small, so their owners get them back
 * soon), and a free phase (the thread tearing down) puts every ceiling
 * back. */
#define UC_GROW_BYTES 65536u
#define UC_GROW_BLOCKS 2048u
#define UC_GROW_THREAD_BYTES (256u << 10)
/* One byte a class: how many times its ceiling doubled (UC_DOUBLINGS),
 * and whether a flush since its last refill sent only its own blocks back
 * (UC_FLUSHED_OWN). Kept small: the thread's state is initial-exec TLS,
 * which a library loaded by dlopen takes from the few KiB of static TLS
 * the C library keeps spare (doc/hakmem.3). */
#define UC_DOUBLINGS 0x7fu
#define UC_FLUSHED_OWN 0x80u
static __thread uint8_t uc_grow[HAK_NUM_CLASSES];
static __thread uint32_t uc_grown_bytes;

static inline int32_t uc_grow_most(unsigned c)
{
  const int32_t most = (int32_t)(UC_GROW_BYTES / (uint32_t)hak_class_size(c));
  return most > (int32_t)UC_GROW_BLOCKS ? (int32_t)UC_GROW_BLOCKS : most;
}

static inline int32_t uc_limit_top(unsigned c)
{
  const unsigned doublings = uc_grow[c] & UC_DOUBLINGS;
  int32_t top = uc_limit_max(c);
  if (doublings) {
    const int32_t most = uc_grow_most(c);
    top = top << doublings < most ? top << doublings : most;
  }
  return top;
}

/* Bin c cycled at its ceiling: raise the ceiling if the bounds allow. */
static void bin_grow(unsigned c)
{
  const int32_t top = uc_limit_top(c), most = uc_grow_most(c);
  const int32_t next = top * 2 < most ? top * 2 : most;
  if (next <= top)
    return;
  const uint32_t more = (uint32_t)(next - top) * (uint32_t)hak_class_size(c);
  if (uc_grown_bytes + more > UC_GROW_THREAD_BYTES)
    return;
  uc_grown_bytes += more;
  uc_grow[c]++;
}

/* Every ceiling back to the class's usual limit. */
static void bins_ungrow(void)
{
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    uc_grow[c] = 0;
  uc_grown_bytes = 0;
}

/* The free phase. A thread that keeps sending its own blocks back to its
 * SuperSlabs (UC_FREE_PHASE_FLUSHES flushes in a row, no refill of any
 * class in between) is tearing something down, not cycling blocks. What
 * its bins would keep then only pins its slabs' pages (a slab's pages go
 * back only once all of its blocks are in), and if the thread then goes
 * quiet nobody can give them back: only the thread itself may touch its
 * bins. So every bin gives its blocks back and caches nothing until its
 * next refill: each free goes to its slab. A phase that runs on for
 * UC_FREE_PHASE_DIRECT such frees is a long teardown, where a slow path
 * per free would cost more than a little memory kept: the bins then hold
 * a batch each and give all of it back at each overflow, so what a thread
 * keeps when it stops is still bounded, and small beside what it has just
 * freed. A batch is UC_FREE_PHASE_BATCH_BYTES of blocks, within
 * UC_FREE_PHASE_BATCH_LEAST..UC_FREE_PHASE_BATCH_MOST blocks: the bytes
 * bound what the bins keep, and small blocks, which a teardown frees the
 * most of and whose slow path costs the most per byte, go back in longer
 * runs. The blocks a bin keeps are the last ones freed, mostly neighbours,
 * so a bin of small blocks pins a page or two, not one per block. The
 * thread's first refill of any class ends the phase. Blocks of other
 * threads (a consumer's frees) do not count: they go to their owners in
 * batches as before. */
#define UC_FREE_PHASE_FLUSHES 32u
#define UC_FREE_PHASE_DIRECT 4096u
#define UC_FREE_PHASE_BATCH_BYTES 4096u
#define UC_FREE_PHASE_BATCH_LEAST 16
#define UC_FREE_PHASE_BATCH_MOST 128
enum { UC_PHASE_NONE = 0, UC_PHASE_DIRECT = 1, UC_PHASE_BATCHED = 2 };
static __thread uint16_t uc_local_flushes;
static __thread uint8_t uc_free_phase;

static inline unsigned uc_batch(unsigned c)
{
  unsigned n = (unsigned)uc_limit(c) / 2;
  return n ? n : 1;
}

/* Refills start small and double up to uc_batch: a class a thread uses for
 * a handful of blocks carves (and touches) only a handful. */
static __thread uint8_t uc_refill_doublings[HAK_NUM_CLASSES];

static inline unsigned refill_batch(unsigned c)
{
  const unsigned full = uc_batch(c), n = 4u << uc_refill_doublings[c];
  if (n >= full)
    return full;
  uc_refill_doublings[c]++;
  return n;
}

static inline int32_t bin_base(unsigned c)
{
  return uc_state == UC_LIVE ? uc_limit(c) : 0;
}

static inline int32_t bin_fill(unsigned c)
{
  return bin_base(c) - UC_BIN(c)->avail;
}

#if HAK_STATS
/* The hit counter. Between two rebases only pops (+1) and pushes (-1) move
 * avail, so the pops since the last fold are the growth of avail plus the
 * pushes since then. The fast path counts pushes, not pops: the count stays
 * off malloc's path, which is the hotter one (tiny_hot was measurably
 * faster so), and free pays one add. */
static __thread int32_t uc_avail_folded[HAK_NUM_CLASSES];
static __thread uint32_t uc_pushes_folded[HAK_NUM_CLASSES];

/* Start counting bin c's hits afresh from its counters as they are. */
static inline void bin_fold_mark(unsigned c)
{
  uc_avail_folded[c] = UC_BIN(c)->avail;
  uc_pushes_folded[c] = UC_BIN(c)->pushes;
}

static inline void bin_fold_hits(unsigned c)
{
  const uc_bin_t *b = UC_BIN(c);
  const int64_t pops = (int64_t)b->avail - uc_avail_folded[c] + (uint32_t)(b->pushes - uc_pushes_folded[c]);
  HAK_STAT_ADD(c, uc_hits, (uint64_t)pops);
  bin_fold_mark(c);
}
#else
static inline void bin_fold_mark(unsigned c) { (void)c; }
static inline void bin_fold_hits(unsigned c) { (void)c; }
#endif

/* Record that bin c holds fill blocks, folding its hits into the statistics. */
static inline void bin_rebase(unsigned c, int32_t fill)
{
  bin_fold_hits(c);
  UC_BIN(c)->avail = bin_base(c) - fill;
  bin_fold_mark(c);
}

/* Live thread: change bin c's limit, keeping its blocks. */
static void bin_set_limit(unsigned c, int32_t lim)
{
  int32_t fill = bin_fill(c);
  uc_lim[c] = (uint16_t)lim;
  bin_rebase(c, fill);
}

unsigned uc_bin_limit(unsigned c)
{
  return uc_state == UC_LIVE ? (unsigned)uc_limit(c) : 0;
}

#if HAK_HARDENED
__thread uintptr_t uc_link_secret;
uintptr_t uc_canary_secret;

void uc_bad_link(const void *p)
{
  hak_os_fatal("malloc", "corrupted free list (a freed block was overwritten)", p);
}

/* Give the thread its link secret; a bin may already hold a block pushed
 * before set-up, encoded with the old secret: re-encode it. */
static void uc_secrets_init(void)
{
  if (__atomic_load_n(&uc_canary_secret, __ATOMIC_RELAXED) == 0) {
    uintptr_t zero = 0;
    __atomic_compare_exchange_n(&uc_canary_secret, &zero, (uintptr_t)hak_random64() | 1, false,
                                __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  }
  uintptr_t secret = (uintptr_t)hak_random64();
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    void *x = UC_BIN(c)->head;
    while (x) { /* decode to plain links */
      void *next = uc_link(x, *(void **)x);
      *(void **)x = next;
      x = next;
    }
  }
  uc_link_secret = secret;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    for (void *x = UC_BIN(c)->head; x;) {
      void *next = *(void **)x;
      *(void **)x = uc_link(x, next);
      x = next;
    }
}
#else
uintptr_t uc_check_word;

/* The check word, once per process (the first thread to get here). Its
 * low bit is set: never 0, which fresh memory holds. */
static void uc_secrets_init(void)
{
  if (__atomic_load_n(&uc_check_word, __ATOMIC_RELAXED) == 0) {
    uintptr_t zero = 0;
    __atomic_compare_exchange_n(&uc_check_word, &zero, (uintptr_t)hak_random64() | 1, false, __ATOMIC_RELAXED,
                                __ATOMIC_RELAXED);
  }
}
#endif

void uc_thread_init(void)
{
  if (uc_state == UC_LIVE)
    return;
  uc_secrets_init();
  warm_pool_thread_init();
  int32_t fill[HAK_NUM_CLASSES];
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    fill[c] = bin_fill(c); /* a push may have landed before set-up */
  uc_state = UC_LIVE;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    uc_lim[c] = (uint16_t)uc_limit_max(c);
    uc_flush_streak[c] = 0;
    bin_rebase(c, fill[c]);
  }
}

void *uc_refill(unsigned c, size_t zero)
{
  uc_local_flushes = 0;
  uc_free_phase = UC_PHASE_NONE;
  if (uc_flush_streak[c] && uc_state == UC_LIVE) {
    /* drained since its last flush: the bin is used both ways */
    if (uc_grow[c] & UC_FLUSHED_OWN)
      bin_grow(c);
    uc_flush_streak[c] = 0;
    if (uc_limit(c) < uc_limit_top(c))
      bin_set_limit(c, uc_limit_top(c));
  }
  uc_grow[c] &= (uint8_t)~UC_FLUSHED_OWN;
  void *head, *tail;
  unsigned n = warm_pool_refill(c, HAK_UNIFIED_CACHE && uc_state == UC_LIVE ? refill_batch(c) : 1, &head, &tail);
  HAK_STAT_ADD(c, uc_misses, 1);
  if (hak_unlikely(n == 0))
    return NULL;
  uc_bin_t *b = UC_BIN(c);
  int32_t fill = bin_fill(c);
  if (n > 1) {
    void *second = *(void **)head;
    if (HAK_HARDENED) /* the chain's links are plain: encode them */
      for (void *x = second; x != tail;) {
        void *next = *(void **)x;
        *(void **)x = uc_link(x, next);
        x = next;
      }
    *(void **)tail = uc_link(tail, b->head);
    b->head = second;
    fill += (int32_t)(n - 1);
  }
  bin_rebase(c, fill);
  const bool fresh = zero && warm_pool_block_is_fresh(head);
  ((uintptr_t *)head)[1] = 0; /* handed out: no check word, no canary */
  if (zero)
    uc_clear(head, zero, fresh);
  return head;
}

static void flush_n(unsigned c, int32_t fill, int32_t k)
{
  uc_bin_t *b = UC_BIN(c);
  void *first = b->head;
#if HAK_HARDENED
  void *last = first;
  for (int32_t i = 1; i < k; i++) { /* the chain handed on has plain links */
    void *next = uc_link(last, *(void **)last);
    *(void **)last = next;
    last = next;
  }
  b->head = uc_link(last, *(void **)last);
  warm_pool_return(c, first, (unsigned)k);
#else
  /* links are plain already: the pool's walk finds where the bin goes on */
  b->head = warm_pool_return(c, first, (unsigned)k);
#endif
  if (!uc_free_phase && warm_pool_last_local() == (unsigned)k)
    uc_grow[c] |= UC_FLUSHED_OWN;
  HAK_STAT_ADD(c, uc_flushes, 1);
  bin_rebase(c, fill - k);
}

static void free_phase_begin(void)
{
  uc_free_phase = UC_PHASE_DIRECT;
  uc_local_flushes = 0;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    int32_t fill = bin_fill(c);
    if (fill > 0 && UC_BIN(c)->head)
      flush_n(c, fill, fill);
    uc_flush_streak[c] = UC_SINK_FLUSHES; /* its next refill gives the limit back */
    bin_set_limit(c, 0);
  }
  bins_ungrow();
}

/* Bin c's batch in a long free phase (see UC_FREE_PHASE_BATCH_BYTES). */
static inline int32_t free_phase_batch_of(unsigned c)
{
  int32_t n = (int32_t)(UC_FREE_PHASE_BATCH_BYTES / (uint32_t)hak_class_size(c));
  if (n < UC_FREE_PHASE_BATCH_LEAST)
    n = UC_FREE_PHASE_BATCH_LEAST;
  if (n > UC_FREE_PHASE_BATCH_MOST)
    n = UC_FREE_PHASE_BATCH_MOST;
  return uc_limit_max(c) < n ? uc_limit_max(c) : n;
}

/* A long phase: bins that are empty now batch the rest of the frees. */
static void free_phase_batch(void)
{
  uc_free_phase = UC_PHASE_BATCHED;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    if (uc_limit(c) == 0)
      bin_set_limit(c, free_phase_batch_of(c));
}

/* After a flush of the live thread: count it towards the free phase. */
static inline void free_phase_note_flush(void)
{
  if (warm_pool_last_local() == 0)
    return;
  if (uc_free_phase == UC_PHASE_NONE) {
    if (++uc_local_flushes >= UC_FREE_PHASE_FLUSHES)
      free_phase_begin();
  } else if (uc_free_phase == UC_PHASE_DIRECT) {
    if (++uc_local_flushes >= UC_FREE_PHASE_DIRECT)
      free_phase_batch();
  }
}

#if !HAK_HARDENED
/* A free in the direct part of the free phase: bin c (limit 0) holds only
 * the block just pushed, and it goes straight to its slab. The short way
 * round flush_n: the phase sends thousands of frees down here in a row. */
static void flush_direct(unsigned c)
{
  uc_bin_t *b = UC_BIN(c);
  void *p = b->head;
  b->head = *(void **)p; /* what was under it: nothing, in this phase */
  b->avail = 0;
#if HAK_STATS
  uc_avail_folded[c]++; /* moved avail without a pop: keep the hits as they are */
#endif
  HAK_STAT_ADD(c, uc_flushes, 1);
  if (warm_pool_return_one(c, p) && ++uc_local_flushes >= UC_FREE_PHASE_DIRECT)
    free_phase_batch();
}
#endif

void uc_flush(unsigned c)
{
#if !HAK_HARDENED
  if (uc_free_phase == UC_PHASE_DIRECT && UC_BIN(c)->avail == -1 && uc_limit(c) == 0) {
    flush_direct(c);
    return;
  }
#endif
  if (uc_state == UC_NEW) {
    /* The thread's first free, before its first malloc: set the thread up
     * (the front's hook does all boxes), which counts the block pushed. */
    if (uc_thread_setup_hook)
      uc_thread_setup_hook();
    else
      uc_thread_init();
    if (uc_state == UC_LIVE && bin_fill(c) <= uc_limit(c))
      return;
  }
  if (uc_state == UC_LIVE && !uc_free_phase && uc_flush_streak[c] < 255 &&
      ++uc_flush_streak[c] >= UC_SINK_FLUSHES && uc_limit(c) > uc_limit_min(c))
    bin_set_limit(c, uc_limit(c) / 2 > uc_limit_min(c) ? uc_limit(c) / 2 : uc_limit_min(c));
  int32_t fill = bin_fill(c);
  if (fill <= 0) {
    bin_rebase(c, 0);
    return;
  }
  /* down to half the limit (to nothing in the free phase) */
  int32_t k = uc_state == UC_LIVE && !uc_free_phase ? fill - uc_limit(c) / 2 : fill;
  if (k > fill)
    k = fill;
  if (k > 0) {
    flush_n(c, fill, k);
    if (uc_state == UC_LIVE)
      free_phase_note_flush();
  } else {
    bin_rebase(c, fill);
  }
}

/* Other threads' blocks. A thread that frees another thread's block of a
 * class above the table's does not cache it: handed out again here, the
 * block would be written by this thread while its lines sit in its
 * owner's cache, and its owner would carve or fault in memory to replace
 * it. It waits in a chain that malloc never pops and goes to its owner
 * with the rest of the chain once the chain holds UC_FOREIGN_BATCH_BYTES
 * (UC_FOREIGN_BATCH_MOST blocks at most, one at least), when a block of
 * another class needs the chain's slot, or when the thread drains its
 * bins (exit, malloc_trim). The thread's state must stay small (see
 * UC_DOUBLINGS): UC_FOREIGN_SLOTS chains, class c in slot c % slots, and
 * a chain's head block keeps its class and length in its third word
 * (these blocks are over 1 KiB; the second is the check word). The
 * table's classes keep the bins' way: their blocks are cheap to write, and
 * producer/consumer programs pass them by the thousand, which the bins
 * batch best. */
#define UC_FOREIGN_SPLIT (HAK_UNIFIED_CACHE && HAK_WARM_POOL && !HAK_HARDENED)
#if UC_FOREIGN_SPLIT
#define UC_FOREIGN_BATCH_BYTES 65536u
#define UC_FOREIGN_BATCH_MOST 16u
#define UC_FOREIGN_SLOTS 16u
static __thread void *uc_foreign[UC_FOREIGN_SLOTS];

static inline unsigned foreign_batch_of(unsigned c)
{
  const unsigned n = UC_FOREIGN_BATCH_BYTES / (unsigned)hak_class_size(c);
  return n < 1 ? 1 : n > UC_FOREIGN_BATCH_MOST ? UC_FOREIGN_BATCH_MOST : n;
}

static inline uintptr_t foreign_meta(unsigned c, unsigned n) { return (uintptr_t)c << 16 | n; }

static void foreign_flush(unsigned slot)
{
  void *head = uc_foreign[slot];
  if (!head)
    return;
  const uintptr_t meta = ((uintptr_t *)head)[2];
  const unsigned c = (unsigned)(meta >> 16);
  uc_foreign[slot] = NULL;
  warm_pool_return(c, head, (unsigned)(meta & 0xffff));
  HAK_STAT_ADD(c, uc_flushes, 1);
}
#endif

#if !HAK_HARDENED
/* The slow paths' form of the hot path's test (uc_push_by_key): check p,
 * then give it the check word. */
static inline void uc_mark_free(uintptr_t ckey, void *p)
{
  if (hak_unlikely(((uintptr_t *)p)[1] == uc_check_word))
    uc_check_suspect(ckey, p);
  ((uintptr_t *)p)[1] = uc_check_word;
}
#endif

void uc_push_checked(uintptr_t ckey, void *p)
{
#if UC_FOREIGN_SPLIT
  const unsigned c = (unsigned)ckey - 1;
  if (uc_state == UC_LIVE && !warm_pool_owns(p)) {
    const unsigned slot = c % UC_FOREIGN_SLOTS;
    void *h = uc_foreign[slot];
    unsigned n = 0;
    uc_mark_free(ckey, p);
    if (h) {
      if ((unsigned)(((uintptr_t *)h)[2] >> 16) != c) {
        foreign_flush(slot);
        h = NULL;
      } else {
        n = (unsigned)(((uintptr_t *)h)[2] & 0xffff);
      }
    }
    *(void **)p = h; /* plain links: the chain ends in NULL */
    ((uintptr_t *)p)[2] = foreign_meta(c, n + 1);
    uc_foreign[slot] = p;
    if (n + 1 >= foreign_batch_of(c))
      foreign_flush(slot);
    return;
  }
#endif
  uc_push_by_key(ckey, p);
}

unsigned uc_foreign_length(unsigned c)
{
#if !UC_FOREIGN_SPLIT
  (void)c;
  return 0;
#else
  const void *h = uc_foreign[c % UC_FOREIGN_SLOTS];
  if (!h || (unsigned)(((const uintptr_t *)h)[2] >> 16) != c)
    return 0;
  return (unsigned)(((const uintptr_t *)h)[2] & 0xffff);
#endif
}

void uc_double_free(void *p)
{
  hak_os_fatal("free", "double free detected", p);
}

/* Is p on this thread's foreign chain for class c? */
static bool foreign_holds(unsigned c, const void *p)
{
#if UC_FOREIGN_SPLIT
  const void *q = uc_foreign[c % UC_FOREIGN_SLOTS];
  if (!q || (unsigned)(((const uintptr_t *)q)[2] >> 16) != c)
    return false;
  for (unsigned i = 0; q && i < UC_FOREIGN_BATCH_MOST; i++, q = *(void *const *)q)
    if (q == p)
      return true;
#else
  (void)c;
  (void)p;
#endif
  return false;
}

/* The places a free block can be that this thread may look at. A block in
 * another thread's bin, or on a SuperSlab another thread owns, is not
 * found: the free goes on (no worse than no check). The bin's walk is
 * bounded by its length, which the fill tracking knows. */
void uc_check_suspect(uintptr_t ckey, const void *p)
{
  const unsigned c = (unsigned)ckey - 1;
  HAK_STAT_ADD(c, uc_suspects, 1);
  if (uc_holds_recent(c, p, UINT32_MAX) || foreign_holds(c, p) || warm_pool_holds_free(c, p))
    uc_double_free((void *)p);
}

void uc_push_suspect(uintptr_t ckey, void *p)
{
  uc_check_suspect(ckey, p);
  uc_bin_push(ckey, p); /* its second word holds the check word already */
}

void uc_free_direct(unsigned c, void *p)
{
#if HAK_HARDENED
  if (((uintptr_t *)p)[1] == uc_canary(p))
    uc_double_free(p);
  ((uintptr_t *)p)[1] = uc_canary(p);
#else
  uc_mark_free((uintptr_t)c + 1, p);
#endif
  warm_pool_return(c, p, 1);
}

unsigned uc_bin_length(unsigned c)
{
  unsigned n = 0;
  for (void *q = UC_BIN(c)->head; q; q = uc_link(q, *(void **)q))
    n++;
  return n;
}

bool uc_holds_recent(unsigned c, const void *p, unsigned depth)
{
  const void *q = UC_BIN(c)->head;
  for (unsigned i = 0; q && i < depth; i++, q = uc_link(q, *(void *const *)q))
    if (q == p)
      return true;
  return false;
}

void uc_drain_all(void)
{
#if UC_FOREIGN_SPLIT
  for (unsigned slot = 0; slot < UC_FOREIGN_SLOTS; slot++)
    foreign_flush(slot);
#endif
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    int32_t fill = bin_fill(c);
    if (fill > 0 && UC_BIN(c)->head)
      flush_n(c, fill, fill);
    else
      bin_rebase(c, 0);
  }
}

void uc_thread_exit(void)
{
  uc_drain_all();
  uc_state = UC_GONE;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    bin_rebase(c, 0);
}

void uc_fold_stats(void)
{
  if (uc_state != UC_LIVE) /* a new thread has no hits; a gone one folded them */
    return;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    bin_fold_hits(c);
}

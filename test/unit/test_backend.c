/* Unit tests of backend/: size classes, SuperSlab carving and counts,
 * ownership hand-over, remote frees and notification, large blocks. */
#include "backend/superslab.h"
#include "hak/config.h"
#include "backend/large.h"
#include "backend/os.h"
#include "backend/size_class.h"
#include "hak/stats.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

START_TEST(classes_cover_sizes_with_bounded_waste)
{
  for (size_t n = 0; n <= HAK_MEDIUM_MAX; n++) {
    unsigned c = hak_class_of(n);
    size_t s = hak_class_size(c);
    ck_assert_uint_lt(c, HAK_NUM_CLASSES);
    ck_assert_uint_ge(s, n);
    /* multiples of 16 from the smallest request on: every block is
     * 16-byte aligned and has room for a link and the check word */
    ck_assert_uint_ge(c, 1);
    ck_assert_uint_eq(s % 16, 0);
    if (n > 16)
      ck_assert_uint_lt(hak_class_size(c - 1), n); /* the smallest class that fits */
    if (n > 128)
      ck_assert_msg((s - n) * 8 <= n, "waste over 12.5%% at %zu", n);
  }
  ck_assert_uint_eq(hak_class_size(HAK_NUM_SMALL_CLASSES - 1), HAK_SMALL_MAX);
  ck_assert_uint_eq(hak_class_size(HAK_NUM_CLASSES - 1), HAK_MEDIUM_MAX);
  /* Slabs: 64 KiB for the small classes; four to seven blocks each, in a
   * SuperSlab, for the medium ones. */
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    const hak_class_info_t *ci = &hak_class_info[c];
    const size_t slab = (size_t)1 << ci->slab_shift;
    ck_assert_uint_eq(ci->per_slab, slab / ci->size);
    if (c < HAK_NUM_SMALL_CLASSES) {
      ck_assert_uint_eq(slab, HAK_SLAB_SIZE);
    } else {
      ck_assert_uint_ge(ci->per_slab, 4);
      ck_assert_uint_le(ci->per_slab, 7);
      ck_assert_uint_le(slab, HAK_SS_SIZE);
    }
  }
}
END_TEST

START_TEST(block_offset_check_is_exact)
{
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    uint32_t bs = (uint32_t)hak_class_size(c);
    const uint32_t slab = (uint32_t)1 << hak_class_info[c].slab_shift;
    for (uint32_t off = 0; off < slab; off++) {
      bool want = off % bs == 0 && off / bs < hak_class_info[c].per_slab;
      if (hak_class_is_block_offset(c, off) != want)
        ck_abort_msg("class %u offset %u", c, off);
      /* free's fast check: the table's classes as above, others never */
      bool fast = off < HAK_SLAB_SIZE && c < HAK_NUM_TINY_CLASSES && want;
      if (off < HAK_SLAB_SIZE && hak_class_key_is_block_offset(c + 1, off) != fast)
        ck_abort_msg("fast check, class %u offset %u", c, off);
    }
  }
}
END_TEST

START_TEST(aligned_classes)
{
  for (size_t a = 32; a <= HAK_PAGE_SIZE; a <<= 1)
    for (size_t n = 1; n <= 5000; n += 37) {
      int c = hak_class_for_aligned(n, a);
      if (n > HAK_SMALL_MAX)
        continue;
      ck_assert_int_ge(c, 0);
      ck_assert_uint_ge(hak_class_size((unsigned)c), n);
      ck_assert_uint_eq(hak_class_size((unsigned)c) % a, 0);
    }
  ck_assert_int_eq(hak_class_for_aligned(100, 8192), -1);
}
END_TEST

static unsigned take_all(hak_superslab_t *ss, void **out, unsigned cap)
{
  unsigned total = 0;
  for (;;) {
    void *h, *t;
    unsigned n = backend_ss_take(ss, 64, &h, &t);
    if (!n)
      break;
    for (unsigned i = 0; i < n; i++) {
      ck_assert_uint_lt(total, cap);
      out[total++] = h;
      h = i + 1 < n ? *(void **)h : NULL;
    }
  }
  return total;
}

static int cmp_ptr(const void *a, const void *b)
{
  uintptr_t x = *(uintptr_t *)a, y = *(uintptr_t *)b;
  return x < y ? -1 : x > y;
}

START_TEST(carve_whole_superslab_exact_counts)
{
  hak_owner_t *o = backend_owner_new();
  ck_assert_ptr_nonnull(o);
  unsigned c = hak_class_of(100);
  hak_superslab_t *ss = backend_ss_new(o, c);
  ck_assert_ptr_nonnull(ss);
  ck_assert_uint_eq((uintptr_t)ss->base & HAK_SS_MASK, 0);
  ck_assert_uint_eq(hak_tag_kind(registry_tag(ss->base + 12345)), HAK_KIND_SMALL);
  ck_assert_ptr_eq(hak_tag_hdr(registry_tag(ss->base + 12345)), ss);
  static void *blocks[20000];
  unsigned n = take_all(ss, blocks, 20000);
  ck_assert_uint_eq(n, ss->capacity);
  ck_assert_uint_eq(ss->used, n);
  ck_assert(!backend_ss_has_room(ss));
  qsort(blocks, n, sizeof(void *), cmp_ptr);
  for (unsigned i = 0; i < n; i++) {
    ck_assert_uint_eq((uintptr_t)blocks[i] % 16, 0);
    ck_assert(backend_ss_is_block(ss, blocks[i]));
    ck_assert(!backend_ss_is_block(ss, (char *)blocks[i] + 8));
    if (i)
      ck_assert_uint_ge((uintptr_t)blocks[i] - (uintptr_t)blocks[i - 1], hak_class_size(c));
    memset(blocks[i], 0xab, hak_class_size(c));
  }
  /* The header lives outside its SuperSlab (the registry tag points at
   * it), is never handed out, and survives every block being written; plain
   * builds carve the whole SuperSlab, hardened builds keep slab 0 a guard. */
  ck_assert_uint_eq(ss->magic, HAK_SS_MAGIC);
  ck_assert_uint_eq(ss->cls, c);
  ck_assert_ptr_eq(backend_ss_of(blocks[n / 2]), ss);
  ck_assert_uint_ne(hak_ss_base_of(ss), (uintptr_t)ss->base);
  ck_assert(!backend_ss_is_block(ss, ss));
  ck_assert_uint_ge((uintptr_t)blocks[0] - (uintptr_t)ss->base, HAK_SS_DATA_START);
  if (HAK_HARDENED) {
    ck_assert_uint_eq(backend_slab_index(ss, blocks[0]), 1);
  } else {
    ck_assert_ptr_eq(blocks[0], ss->base);
    ck_assert_uint_eq(n, HAK_SLABS_PER_SS * hak_class_info[c].per_slab);
  }
  /* Free all: the first free makes it roomy, the last makes it empty. */
  unsigned ev = backend_ss_free_local(ss, blocks[0]);
  ck_assert_uint_eq(ev & HAK_SS_BECAME_ROOMY, HAK_SS_BECAME_ROOMY);
  for (unsigned i = 1; i < n; i++) {
    ev = backend_ss_free_local(ss, blocks[i]);
    ck_assert_uint_eq(ev & HAK_SS_BECAME_EMPTY, i == n - 1 ? HAK_SS_BECAME_EMPTY : 0);
  }
  ck_assert_uint_eq(ss->used, 0);
  /* Every slab started over: a second pass carves the same blocks. */
  unsigned n2 = take_all(ss, blocks, 20000);
  ck_assert_uint_eq(n2, n);
  for (unsigned i = 0; i < n2; i++)
    backend_ss_free_local(ss, blocks[i]);
  backend_owner_retire(o); /* releases ss: empty → free tier, tag cleared */
  ck_assert_uint_eq(registry_tag(ss->base + 12345), 0);
}
END_TEST

/* Every class: a SuperSlab hands out each of its blocks exactly once, in
 * whatever order carving takes them (coloured, random or plain), and two
 * SuperSlabs of a class start carving at different offsets when colouring
 * is on (at the data start when it is off). */
START_TEST(carving_visits_every_block_once)
{
  hak_owner_t *o = backend_owner_new();
  static void *blocks[HAK_SS_SIZE / 8]; /* the one-word class's SuperSlab */
  /* Empty free tier and reservation: a and b are then neighbours, 1 MiB
   * apart, and their colours 19 lines apart. */
  backend_trim();
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c += 5) {
    if (HAK_HARDENED && c >= HAK_NUM_SMALL_CLASSES)
      break; /* hardened builds use no medium class (see HAK_CLASS_MAX) */
    hak_superslab_t *a = backend_ss_new(o, c), *b = backend_ss_new(o, c);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    void *ha, *hb, *t;
    ck_assert_uint_eq(backend_ss_take(a, 1, &ha, &t), 1);
    ck_assert_uint_eq(backend_ss_take(b, 1, &hb, &t), 1);
    uintptr_t offa = (uintptr_t)ha & HAK_SS_MASK, offb = (uintptr_t)hb & HAK_SS_MASK;
    if (HAK_HARDENED) {
      ck_assert_uint_ge(offa, HAK_SLAB_SIZE);
    } else if (HAK_COLOUR) {
      if (hak_class_info[c].per_slab > 64) /* room for two colours */
        ck_assert_msg(offa != offb, "class %u: both start at %#lx", c, (unsigned long)offa);
    } else {
      size_t bs = hak_class_size(c);
      ck_assert_uint_eq(offa, (HAK_SS_DATA_START + bs - 1) / bs * bs);
      ck_assert_uint_eq(offb, offa);
    }
    unsigned n = take_all(a, blocks + 1, HAK_SS_SIZE / 8 - 1) + 1;
    blocks[0] = ha;
    ck_assert_uint_eq(n, a->capacity);
    if (!HAK_HARDENED) { /* page by page: carving never goes back to a page it left */
      static uint8_t seen[HAK_SS_SIZE / HAK_PAGE_SIZE];
      memset(seen, 0, sizeof seen);
      for (unsigned i = 0; i < n; i++) {
        size_t page = ((uintptr_t)blocks[i] & HAK_SS_MASK) / HAK_PAGE_SIZE;
        size_t prev = i ? ((uintptr_t)blocks[i - 1] & HAK_SS_MASK) / HAK_PAGE_SIZE : page;
        ck_assert_msg(page == prev || !seen[page], "class %u: block %u goes back to page %zu", c, i, page);
        seen[page] = 1;
      }
    }
    qsort(blocks, n, sizeof(void *), cmp_ptr);
    for (unsigned i = 0; i < n; i++) {
      ck_assert(backend_ss_is_block(a, blocks[i]));
      if (i)
        ck_assert_uint_ge((uintptr_t)blocks[i] - (uintptr_t)blocks[i - 1], hak_class_size(c));
    }
    for (unsigned i = 0; i < n; i++)
      backend_ss_free_local(a, blocks[i]);
    backend_ss_free_local(b, hb);
    ck_assert_uint_eq(a->used, 0);
    ck_assert_uint_eq(b->used, 0);
    backend_ss_release(o, a);
    backend_ss_release(o, b);
  }
  backend_owner_retire(o);
}
END_TEST

/* Carving a fresh slab stops at the end of the page it is in, so a refill
 * touches a new page only when the last one is used up. */
START_TEST(carving_stops_at_page_end)
{
  hak_owner_t *o = backend_owner_new();
  unsigned c = hak_class_of(48);
  size_t bs = hak_class_size(c);
  hak_superslab_t *ss = backend_ss_new(o, c);
  ck_assert_ptr_nonnull(ss);
  static void *blocks[8 * 1000];
  unsigned total = 0;
  for (unsigned round = 0; round < 8; round++) {
    void *h, *t;
    unsigned n = backend_ss_take(ss, 1000, &h, &t);
    ck_assert_uint_ge(n, 1);
    if (!HAK_HARDENED)
      ck_assert_uint_le(n, HAK_PAGE_SIZE / bs + 1);
    uintptr_t page = (uintptr_t)h / HAK_PAGE_SIZE;
    for (unsigned i = 0; i < n; i++) {
      ck_assert(backend_ss_is_block(ss, h));
      if (!HAK_HARDENED)
        ck_assert_uint_eq((uintptr_t)h / HAK_PAGE_SIZE, page);
      blocks[total++] = h;
      h = i + 1 < n ? *(void **)h : NULL;
    }
  }
  ck_assert_uint_eq(ss->used, total);
  for (unsigned i = 0; i < total; i++)
    backend_ss_free_local(ss, blocks[i]);
  ck_assert_uint_eq(ss->used, 0);
  backend_ss_release(o, ss);
  backend_owner_retire(o);
}
END_TEST

/* Fresh SuperSlabs come from one reservation: with the free tier and the
 * reservation emptied by a trim, the next ones are mapped side by side. */
START_TEST(fresh_superslabs_share_a_reservation)
{
  hak_owner_t *o = backend_owner_new();
  unsigned c = hak_class_of(64);
  backend_trim();
  hak_superslab_t *ss[3];
  for (unsigned i = 0; i < 3; i++) {
    ss[i] = backend_ss_new(o, c);
    ck_assert_ptr_nonnull(ss[i]);
  }
  ck_assert_ptr_eq(ss[1]->base, ss[0]->base + HAK_SS_SIZE);
  ck_assert_ptr_eq(ss[2]->base, ss[1]->base + HAK_SS_SIZE);
  for (unsigned i = 0; i < 3; i++)
    backend_ss_release(o, ss[i]);
  backend_trim();
  backend_owner_retire(o);
}
END_TEST

/* A SuperSlab of o with pages touched and no block out, or NULL. It makes
 * no check of its own: see free_tier_keeps_what_is_taken_again. */
static hak_superslab_t *touched_empty(hak_owner_t *o, unsigned c)
{
  hak_superslab_t *ss = backend_ss_new(o, c);
  void *h, *t;
  if (!ss || backend_ss_take(ss, 4, &h, &t) != 4)
    return NULL;
  for (unsigned i = 0; i < 4; i++) {
    void *next = i + 1 < 4 ? *(void **)h : NULL;
    backend_ss_free_local(ss, h);
    h = next;
  }
  return ss;
}

static bool tier_touched(const hak_superslab_t *ss)
{
  for (unsigned s = 0; s < HAK_SLABS_PER_SS; s++)
    if (ss->slabs[s].dirty != HAK_SLAB_CLEAN)
      return true;
  return false;
}

/* The free tier gives back the pages of SuperSlabs left unused for a
 * delay, but keeps as many as threads took from it lately: the ones given
 * up last. Once nobody takes any, all of them go back.
 *
 * The process allocates through hakmem (libcheck's ck_assert does), and
 * its main thread can give a SuperSlab to the tier, take one from it, or
 * run a pass on the real clock from its slow paths. So the scenario runs
 * with no allocation in it (its findings are checked at the end), on a
 * clock an hour ahead of the real one (a pass the slow paths would start
 * finds the last one fresh). */
START_TEST(free_tier_keeps_what_is_taken_again)
{
  hak_owner_t *o = backend_owner_new();
  backend_trim(); /* an empty free tier */
  const unsigned c = hak_class_of(64);
  uint32_t now = hak_clock_ms() + 3600u * 1000u;
  hak_superslab_t *old0 = touched_empty(o, c), *old1 = touched_empty(o, c);
  backend_ss_release(o, old0); /* empty: to the free tier, pages and all */
  backend_ss_release(o, old1);
  for (unsigned i = 0; i < 12; i++) /* no takes: both go back */
    backend_purge(now += 200);
  const bool old_back = !tier_touched(old0) && !tier_touched(old1);
  /* Both taken from the tier (a demand of two) and a fresh one; all three
   * touched and given up again, the fresh one last. */
  hak_superslab_t *a = touched_empty(o, c), *b = touched_empty(o, c);
  hak_superslab_t *x = touched_empty(o, c);
  const bool reused = (a == old0 && b == old1) || (a == old1 && b == old0);
  backend_ss_release(o, a);
  backend_ss_release(o, b);
  backend_ss_release(o, x);
  for (unsigned i = 0; i < 3; i++)
    backend_purge(now += 200);
  /* the last two given up keep their pages, the one below goes back */
  const bool kept = tier_touched(x) && tier_touched(b) && !tier_touched(a);
  for (unsigned i = 0; i < 12; i++) /* the demand runs out */
    backend_purge(now += 200);
  const bool all_back = !tier_touched(a) && !tier_touched(b) && !tier_touched(x);
  ck_assert(old0 && old1 && a && b && x);
  ck_assert(old_back);
  ck_assert(reused);
  ck_assert(kept);
  ck_assert(all_back);
  backend_owner_retire(o);
}
END_TEST

/* A SuperSlab from the free tier changes geometry with its class: a
 * medium class cuts it into larger slabs, whose blocks are found (slab
 * index, block check) in them, and the pages the small class touched are
 * still known to be resident, so the decay gives them back. */
START_TEST(medium_class_geometry_and_reuse)
{
  if (HAK_HARDENED)
    return; /* no medium class (see HAK_CLASS_MAX) */
  hak_owner_t *o = backend_owner_new();
  ck_assert_ptr_nonnull(o);
  backend_trim(); /* an empty free tier: the next two share one SuperSlab */
  const unsigned small = hak_class_of(100), medium = hak_class_of(100000);
  ck_assert_uint_ge(medium, HAK_NUM_SMALL_CLASSES);
  ck_assert_uint_eq(hak_class_info[medium].slab_shift, 19);
  hak_superslab_t *ss = backend_ss_new(o, small);
  ck_assert_ptr_nonnull(ss);
  char *base = ss->base;
  void *h, *t;
  /* the small class touches the first two 64 KiB slabs */
  static void *blocks[1000];
  unsigned n = 0;
  while (n < 1000) {
    unsigned got = backend_ss_take(ss, 1000 - n, &h, &t);
    ck_assert_uint_gt(got, 0);
    for (unsigned i = 0; i < got; i++, h = *(void **)h)
      blocks[n++] = h;
  }
  for (unsigned i = 0; i < n; i++)
    memset(blocks[i], 1, 100);
  for (unsigned i = 0; i < n; i++)
    backend_ss_free_local(ss, blocks[i]);
  backend_ss_release(o, ss); /* empty: to the free tier, pages and all */
  hak_superslab_t *m = backend_ss_new(o, medium);
  ck_assert_ptr_eq(m->base, base);
  ck_assert_uint_eq(m->slab_shift, 19);
  ck_assert_uint_eq(m->slabs[0].dirty, HAK_SLAB_DIRTY); /* holds the touched 128 KiB */
  ck_assert_uint_eq(m->slabs[1].dirty, HAK_SLAB_CLEAN);
  const unsigned per_slab = hak_class_info[medium].per_slab;
  ck_assert_uint_eq(m->capacity, 2 * per_slab);
  unsigned k = take_all(m, blocks, 1000);
  ck_assert_uint_eq(k, m->capacity);
  qsort(blocks, k, sizeof(void *), cmp_ptr);
  const size_t bs = hak_class_size(medium);
  for (unsigned i = 0; i < k; i++) {
    ck_assert(backend_ss_is_block(m, blocks[i]));
    ck_assert(!backend_ss_is_block(m, (char *)blocks[i] + HAK_PAGE_SIZE));
    ck_assert_uint_eq(backend_slab_index(m, blocks[i]), i / per_slab);
    const size_t off = (size_t)((char *)blocks[i] - base) & (((size_t)1 << 19) - 1);
    ck_assert_uint_le(off + bs, (size_t)1 << 19); /* inside its slab */
    if (i)
      ck_assert_uint_ge((uintptr_t)blocks[i] - (uintptr_t)blocks[i - 1], bs);
    memset(blocks[i], 2, bs);
  }
  for (unsigned i = 0; i < k; i++)
    backend_ss_free_local(m, blocks[i]);
  /* both slabs idle and touched: one decommit gives back both */
  ck_assert_uint_eq(backend_ss_decommit_idle(m), (size_t)2 << 19);
  ck_assert_uint_eq(backend_ss_decommit_idle(m), 0);
  /* and back to a small class: every 64 KiB slab clean, all carved anew */
  backend_ss_release(o, m);
  hak_superslab_t *s2 = backend_ss_new(o, small);
  ck_assert_ptr_eq(s2->base, base);
  ck_assert_uint_eq(s2->slab_shift, HAK_SLAB_SHIFT);
  for (unsigned s = 0; s < HAK_SLABS_PER_SS; s++)
    ck_assert_uint_eq(s2->slabs[s].dirty, HAK_SLAB_CLEAN);
  ck_assert_uint_eq(s2->capacity, HAK_SLABS_PER_SS * hak_class_info[small].per_slab);
  backend_owner_retire(o);
}
END_TEST

/* Fresh blocks (superslab.h): blocks carved from clean pages carry
 * backend_fresh_word in their second word, and no block carved from pages
 * that hold old bytes does, even where a block of the class the
 * SuperSlab served before left the word. calloc trusts it to skip the
 * clear. */
static bool zero_past_third_word(const void *b, size_t bs)
{
  for (size_t i = 24; i < bs; i++)
    if (((const unsigned char *)b)[i])
      return false;
  return true;
}

START_TEST(fresh_word_only_on_zero_memory)
{
  if (HAK_HARDENED)
    return; /* hardened builds clear every block */
  hak_owner_t *o = backend_owner_new();
  ck_assert_ptr_nonnull(o);
  backend_trim(); /* an empty free tier: the next two share one SuperSlab */
  const unsigned a = hak_class_of(64), b = hak_class_of(128);
  hak_superslab_t *ss = backend_ss_new(o, a);
  ck_assert_ptr_nonnull(ss);
  char *base = ss->base;
  static void *blocks[20000];
  unsigned n = 0; /* about two of its slabs */
  while (n < 2000) {
    void *h, *t;
    const unsigned got = backend_ss_take(ss, 2000 - n, &h, &t);
    ck_assert_uint_gt(got, 0);
    for (unsigned i = 0; i < got; i++, h = *(void **)h)
      blocks[n++] = h;
  }
  /* clean pages: every block is fresh. Write the odd 64-byte blocks in
   * full (as a program would) and leave the even ones as carved. */
  unsigned odd = 0;
  for (unsigned i = 0; i < n; i++) {
    ck_assert_uint_eq(((uintptr_t *)blocks[i])[1], backend_fresh_word);
    if (((uintptr_t)blocks[i] - (uintptr_t)base) / 64 % 2) {
      memset(blocks[i], 0xab, 64);
      odd++;
    }
  }
  ck_assert_uint_gt(odd, 0);
  for (unsigned i = 0; i < n; i++)
    backend_ss_free_local(ss, blocks[i]);
  backend_ss_release(o, ss); /* empty: to the free tier, pages and all */
  /* Class b over the same pages: each 128-byte block starts where an even
   * 64-byte block (still holding the word) did and ends with an odd one. */
  hak_superslab_t *s2 = backend_ss_new(o, b);
  ck_assert_ptr_eq(s2->base, base);
  bool was_clean[HAK_SLABS_PER_SS];
  unsigned n_clean = 0;
  for (unsigned k = 0; k < HAK_SLABS_PER_SS; k++)
    n_clean += was_clean[k] = s2->slabs[k].dirty == HAK_SLAB_CLEAN;
  ck_assert_uint_gt(n_clean, 0);
  ck_assert_uint_lt(n_clean, HAK_SLABS_PER_SS);
  const unsigned m = take_all(s2, blocks, 20000);
  ck_assert_uint_eq(m, s2->capacity);
  unsigned fresh = 0, stale = 0;
  for (unsigned i = 0; i < m; i++) {
    const bool dirty_slab = !was_clean[backend_slab_index(s2, blocks[i])];
    if (((uintptr_t *)blocks[i])[1] == backend_fresh_word) {
      fresh++;
      if (dirty_slab || !zero_past_third_word(blocks[i], 128))
        stale++;
    }
  }
  ck_assert_uint_eq(stale, 0);
  /* the slabs class a never reached are clean: their blocks are fresh */
  ck_assert_uint_gt(fresh, 0);
  for (unsigned i = 0; i < m; i++)
    backend_ss_free_local(s2, blocks[i]);
  backend_ss_release(o, s2);
  backend_owner_retire(o);
}
END_TEST

START_TEST(release_adopt_and_remote_free)
{
  hak_owner_t *a = backend_owner_new(), *b = backend_owner_new();
  unsigned c = hak_class_of(27000); /* a class nothing else in the process uses */
  hak_superslab_t *ss = backend_ss_new(a, c);
  void *h, *t;
  unsigned n = backend_ss_take(ss, 10, &h, &t);
  ck_assert_uint_eq(n, 10);
  void *blk[10];
  for (unsigned i = 0; i < n; i++, h = *(void **)h)
    blk[i] = h;
  /* Owner a gives it up: it has room, so it goes to the index... */
  backend_ss_release(a, ss);
  ck_assert_ptr_null(atomic_load(&ss->owner));
  /* ...where b finds it. */
  hak_superslab_t *got = backend_ss_adopt(b, c);
  ck_assert_ptr_eq(got, ss);
  ck_assert_ptr_eq(atomic_load(&ss->owner), b);
  ck_assert_ptr_null(backend_ss_adopt(b, c));
  /* A remote free notifies b once; b drains it on inbox_take. */
  backend_remote_free(ss, blk[0], blk[0]);
  *(void **)blk[2] = blk[1];
  backend_remote_free(ss, blk[2], blk[1]);
  hak_superslab_t *in = backend_inbox_take(b);
  ck_assert_ptr_eq(in, ss);
  ck_assert_ptr_null(backend_inbox_next(in));
  ck_assert_uint_eq(ss->used, 7);
  /* b releases; remote frees to the ownerless SuperSlab are collected at
   * once, and the last one sends it to the free tier. */
  backend_ss_release(b, ss);
  for (unsigned i = 3; i < 10; i++)
    backend_remote_free(ss, blk[i], blk[i]);
  ck_assert_uint_eq(registry_tag(ss), 0);
  backend_owner_retire(a);
  backend_owner_retire(b);
}
END_TEST

/* A chain for a remote free is cut from a list: the run of blocks of one
 * SuperSlab at its head, at most max of them, links kept; plain builds
 * leave in each block's third word the block HAK_REMOTE_AHEAD places on
 * (NULL near the run's end), hardened ones write no hint; the second word
 * (the check word, or the canary) is left alone. A take hands the chain's first blocks out as they are and puts
 * the rest back. */
START_TEST(remote_chain_links_and_hints)
{
  hak_owner_t *o = backend_owner_new();
  unsigned c = hak_class_of(48);
  hak_superslab_t *ss = backend_ss_new(o, c), *other = backend_ss_new(o, c);
  enum { N = 13 };
  void *blk[N];
  void *h, *t, *stranger;
  ck_assert_uint_eq(backend_ss_take(other, 1, &stranger, &t), 1);
  ck_assert_uint_eq(backend_ss_take(ss, N, &h, &t), N);
  for (unsigned i = 0; i < N; i++, h = *(void **)h) {
    blk[i] = h;
    ((uintptr_t *)h)[1] = 0x5eed + i;
    ((uintptr_t *)h)[2] = 0xfeed + i;
  }
  /* the list: blk[N-1] -> ... -> blk[0] (not carving order) -> stranger */
  for (unsigned i = 1; i < N; i++)
    *(void **)blk[i] = blk[i - 1];
  *(void **)blk[0] = stranger;
  const uintptr_t base = hak_ss_base_of(blk[N - 1]);
  void *tail, *rest;
  ck_assert_uint_eq(backend_remote_run_cut(blk[N - 1], base, 5, true, &tail, &rest), 5);
  ck_assert_ptr_eq(tail, blk[N - 5]);
  ck_assert_ptr_eq(rest, blk[N - 6]);
  ck_assert_uint_eq(backend_remote_run_cut(blk[N - 1], base, N + 1, true, &tail, &rest), N);
  ck_assert_ptr_eq(tail, blk[0]);
  ck_assert_ptr_eq(rest, stranger);
  for (unsigned i = 0; i < N; i++) {
    void *b = blk[N - 1 - i];
    if (i + 1 < N)
      ck_assert_ptr_eq(*(void **)b, blk[N - 2 - i]);
    /* the second word (the check word) is left alone; the hint is the
     * third */
    ck_assert_uint_eq(((uintptr_t *)b)[1], 0x5eed + (N - 1 - i));
    uintptr_t hint = ((uintptr_t *)b)[2];
    if (HAK_HARDENED)
      ck_assert_uint_eq(hint, 0xfeed + (N - 1 - i));
    else if (i + HAK_REMOTE_AHEAD < N)
      ck_assert_ptr_eq((void *)hint, blk[N - 1 - i - HAK_REMOTE_AHEAD]);
    else
      ck_assert_uint_eq(hint, 0);
  }
  backend_remote_free(ss, blk[N - 1], blk[0]);
  ck_assert_uint_eq(ss->used, N);
  /* 5 go straight out, in chain order; the other 8 go back on the slabs */
  ck_assert_uint_eq(backend_ss_take(ss, 5, &h, &t), 5);
  ck_assert(!backend_ss_has_remote(ss));
  ck_assert_uint_eq(ss->used, 5);
  for (unsigned i = 0; i < 5; i++, h = *(void **)h)
    ck_assert_ptr_eq(h, blk[N - 1 - i]);
  ck_assert_ptr_eq(t, blk[N - 5]);
  /* a take of more than the chain holds goes on with the slabs */
  *(void **)blk[N - 1] = blk[N - 2];
  backend_remote_free(ss, blk[N - 1], blk[N - 2]);
  ck_assert_uint_eq(backend_ss_take(ss, 3, &h, &t), 3);
  ck_assert_ptr_eq(h, blk[N - 1]);
  ck_assert_ptr_eq(*(void **)h, blk[N - 2]);
  ck_assert_uint_eq(ss->used, 6);
  /* and a drain takes a whole chain back */
  *(void **)blk[N - 1] = blk[N - 2];
  backend_remote_free(ss, blk[N - 1], blk[N - 2]);
  ck_assert_uint_eq(backend_ss_drain(ss), 2);
  ck_assert_uint_eq(ss->used, 4);
  backend_owner_retire(o);
}
END_TEST

/* A block freed twice by other threads: its second push links it to the
 * chain in front of it, so the chain runs in a cycle. The owner must stop
 * with the double-free message, not walk the cycle forever. in_drain picks
 * a drain or a take (which hands out 2 blocks and drains the rest). */
static void remote_cycle_aborts(bool in_drain)
{
  hak_owner_t *o = backend_owner_new();
  unsigned c = hak_class_of(80);
  hak_superslab_t *ss = backend_ss_new(o, c);
  void *h, *t;
  ck_assert_uint_eq(backend_ss_take(ss, 3, &h, &t), 3);
  void *x = h, *y = *(void **)h, *z = *(void **)y;
  backend_remote_free(ss, x, x);
  backend_remote_free(ss, y, y);
  backend_remote_free(ss, z, z);
  backend_remote_free(ss, x, x); /* x -> z -> y -> x -> ... */
  if (in_drain)
    backend_ss_drain(ss);
  else
    backend_ss_take(ss, 2, &h, &t);
  ck_abort_msg("a remote chain with a cycle was walked without an abort");
}

START_TEST(remote_double_free_aborts_in_drain) { remote_cycle_aborts(true); }
END_TEST

START_TEST(remote_double_free_aborts_in_take) { remote_cycle_aborts(false); }
END_TEST

/* A bin hands its blocks back as one chain. free_run puts back the run of
 * one SuperSlab (every slab it crosses), stops at a block of another
 * SuperSlab or after n blocks, reports the transitions, and the blocks come
 * out again in the order they went in. */
START_TEST(free_run_puts_back_a_chain_in_order)
{
  hak_owner_t *o = backend_owner_new();
  unsigned c = hak_class_of(256);
  hak_superslab_t *a = backend_ss_new(o, c), *b = backend_ss_new(o, c);
  static void *blocks[20000];
  unsigned n = take_all(a, blocks, 20000);
  ck_assert(!backend_ss_has_room(a));
  void *other = NULL, *t;
  ck_assert_uint_eq(backend_ss_take(b, 1, &other, &t), 1);
  /* chain: every block of a, then one of b */
  for (unsigned i = 0; i + 1 < n; i++)
    *(void **)blocks[i] = blocks[i + 1];
  *(void **)blocks[n - 1] = other;
  *(void **)other = NULL;
  void *rest;
  unsigned k;
  /* a part first: a full SuperSlab gets room */
  unsigned ev = backend_ss_free_run(a, blocks[0], 10, &rest, &k);
  ck_assert_uint_eq(k, 10);
  ck_assert_ptr_eq(rest, blocks[10]);
  ck_assert_uint_eq(ev, HAK_SS_BECAME_ROOMY);
  ck_assert_uint_eq(a->used, n - 10);
  /* the rest: the run ends at b's block, and a is empty */
  ev = backend_ss_free_run(a, rest, 100000, &rest, &k);
  ck_assert_uint_eq(k, n - 10);
  ck_assert_ptr_eq(rest, other);
  ck_assert_uint_eq(ev, HAK_SS_BECAME_EMPTY);
  ck_assert_uint_eq(a->used, 0);
  ck_assert_uint_eq(b->used, 1);
  /* half a slab back: the next take gives those blocks in order */
  static void *again[20000];
  unsigned m = take_all(a, again, 20000);
  ck_assert_uint_eq(m, n);
  unsigned s0 = backend_slab_index(a, again[0]);
  unsigned per = 0;
  while (per < m && backend_slab_index(a, again[per]) == s0)
    per++;
  for (unsigned i = 0; i + 1 < per / 2; i++)
    *(void **)again[i] = again[i + 1];
  *(void **)again[per / 2 - 1] = NULL;
  ev = backend_ss_free_run(a, again[0], 100000, &rest, &k);
  ck_assert_uint_eq(k, per / 2);
  ck_assert_ptr_null(rest);
  ck_assert_uint_eq(ev, HAK_SS_BECAME_ROOMY);
  void *h;
  ck_assert_uint_eq(backend_ss_take(a, per / 2, &h, &t), per / 2);
  for (unsigned i = 0; i < per / 2 && !HAK_HARDENED; i++) { /* hardened: LIFO */
    ck_assert_ptr_eq(h, again[i]);
    h = i + 1 < per / 2 ? *(void **)h : NULL;
  }
  for (unsigned i = 0; i < m; i++)
    backend_ss_free_local(a, again[i]);
  backend_ss_free_local(b, other);
  backend_owner_retire(o);
}
END_TEST

/* Plain builds: the same block twice in a bin's chain is caught when the
 * chain goes back: the run would hold more blocks than its slab had out. */
START_TEST(free_run_double_free_aborts)
{
  hak_owner_t *o = backend_owner_new();
  hak_superslab_t *ss = backend_ss_new(o, hak_class_of(32));
  void *h, *t;
  ck_assert_uint_eq(backend_ss_take(ss, 4, &h, &t), 4);
  void *x = h, *y = *(void **)h;
  *(void **)x = y;
  *(void **)y = x; /* x, y, x, y, ...: x was pushed twice */
  void *rest;
  unsigned k;
  backend_ss_free_run(ss, x, 100, &rest, &k);
}
END_TEST

/* Checking builds: a slab whose count disagrees with its free list is
 * caught by the validator at the next block that comes back. (One block
 * more counted out than was: the free list then holds one block more than
 * carved - used says.) */
START_TEST(validator_catches_a_count_that_disagrees)
{
  hak_owner_t *o = backend_owner_new();
  hak_superslab_t *ss = backend_ss_new(o, hak_class_of(64));
  void *h, *t;
  ck_assert_uint_eq(backend_ss_take(ss, 4, &h, &t), 4);
  void *second = *(void **)h;
  backend_ss_free_local(ss, h); /* valid: the validator lets it by */
  ss->slabs[backend_slab_index(ss, second)].used++;
  ss->used++;
  backend_ss_free_local(ss, second); /* aborts */
}
END_TEST

/* Producer/consumer at the backend level: every block freed remotely comes
 * back to its owner through the inbox, so the owner maps nothing new. */
static void *remote_freer(void *arg)
{
  void **blocks = arg;
  for (unsigned i = 0; blocks[i]; i++)
    backend_remote_free(backend_ss_of(blocks[i]), blocks[i], blocks[i]);
  return NULL;
}

START_TEST(remote_frees_come_back)
{
  hak_owner_t *o = backend_owner_new();
  unsigned c = hak_class_of(64);
  hak_superslab_t *ss = backend_ss_new(o, c);
  static void *blocks[20001];
  unsigned n = take_all(ss, blocks, 20000);
  blocks[n] = NULL;
  pthread_t th;
  pthread_create(&th, NULL, remote_freer, blocks);
  pthread_join(th, NULL);
  hak_superslab_t *in = backend_inbox_take(o);
  ck_assert_ptr_eq(in, ss);
  ck_assert_uint_eq(ss->used, 0);
  backend_owner_retire(o);
}
END_TEST

/* The large-block counters exist in builds with statistics only; there
 * the cache's behaviour is checked through them. */
#define CHECK_COUNTER_EQ(name, v)                       \
  do {                                                  \
    if (HAK_STATS)                                      \
      ck_assert_uint_eq(HAK_STAT_READ(name), (v));      \
  } while (0)
#define CHECK_COUNTER_GT(name, v)                       \
  do {                                                  \
    if (HAK_STATS)                                      \
      ck_assert_uint_gt(HAK_STAT_READ(name), (v));      \
  } while (0)

START_TEST(large_blocks)
{
  uint64_t before = HAK_STAT_READ(large_allocs);
  for (size_t n = HAK_SMALL_MAX + 1; n < (size_t)64 << 20; n = n * 3 + 4097) {
    char *p = large_alloc(n, 0, true);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % HAK_PAGE_SIZE, 0);
    ck_assert_uint_ge(large_usable_size(p), n);
    ck_assert(large_is_block(p));
    ck_assert_uint_eq(hak_tag_kind(registry_tag(p)), HAK_KIND_LARGE);
    ck_assert_int_eq(p[0] | p[n - 1], 0);
    memset(p, 1, n);
    large_free(p);
  }
  CHECK_COUNTER_GT(large_allocs, before);
  if (!HAK_STATS) /* -Dstats=false: nothing counts, the backend included */
    ck_assert_uint_eq(HAK_STAT_READ(large_allocs), 0);
  /* Aligned beyond a SuperSlab. */
  char *q = large_alloc(100000, (size_t)8 << 20, false);
  ck_assert_uint_eq((uintptr_t)q % ((size_t)8 << 20), 0);
  ck_assert(large_is_block(q));
  large_free(q);
  /* Reuse from the cache, zeroed when asked. */
  uint64_t hits = HAK_STAT_READ(large_cache_hits);
  char *r = large_alloc(200000, 0, false);
  memset(r, 7, 200000);
  large_free(r);
  r = large_alloc(200000, 0, true);
  CHECK_COUNTER_GT(large_cache_hits, hits);
  for (size_t i = 0; i < 200000; i += 4096)
    ck_assert_int_eq(r[i], 0);
  /* Grow and shrink in place or by moving, contents kept. */
  r = large_realloc(r, 5000000);
  ck_assert_ptr_nonnull(r);
  r[4999999] = 3;
  r = large_realloc(r, 100000);
  ck_assert_int_eq(r[99999], 0);
  large_free(r);
  /* malloc_trim gives the cache back: a block freed just now is in it. */
  char *t = large_alloc(100000, 0, false);
  large_free(t);
  ck_assert_uint_ge(large_trim(), 100000);
  ck_assert_uint_eq(large_trim(), 0);
  /* Absurd sizes fail with ENOMEM. */
  errno = 0;
  ck_assert_ptr_null(large_alloc(SIZE_MAX - 100, 0, false));
  ck_assert_int_eq(errno, ENOMEM);
}
END_TEST

/* Pages of [p, p + n) resident in memory (0 when the range is unmapped). */
static size_t resident_pages(const char *p, size_t n)
{
  size_t pages = n / HAK_PAGE_SIZE, count = 0;
  unsigned char *vec = malloc(pages);
  ck_assert_ptr_nonnull(vec);
  if (mincore((void *)p, n, vec) == 0)
    for (size_t i = 0; i < pages; i++)
      count += vec[i] & 1;
  free(vec);
  return count;
}

START_TEST(large_realloc_moves_pages_instead_of_copying)
{
  const size_t n = (size_t)3 << 20;
  large_trim(); /* no cached mapping fits: the grow must move or copy */
  char *p = large_alloc(n, 0, false);
  ck_assert_ptr_nonnull(p);
  for (size_t i = 0; i < n; i += 512)
    p[i] = (char)(i / 512 * 7 + 1);
  /* Take the address range right after the mapping, so that it cannot
   * grow in place past the room reserved behind the block. */
  char *end = p - HAK_PAGE_SIZE + large_mapping_size(p);
  void *guard = mmap(end, HAK_PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  ck_assert(guard == end);
  uint64_t moves = HAK_STAT_READ(large_moves), allocs = HAK_STAT_READ(large_allocs);
  /* Twice the size fits in the room: in place, nothing moves. */
  ck_assert_ptr_eq(large_realloc(p, 2 * n), p);
  ck_assert_uint_ge(large_usable_size(p), 2 * n);
  CHECK_COUNTER_EQ(large_moves, moves);
  char *q = large_realloc(p, 3 * n);
  ck_assert_ptr_nonnull(q);
  ck_assert_ptr_ne(q, p);
  CHECK_COUNTER_EQ(large_moves, moves + 1);
  CHECK_COUNTER_EQ(large_allocs, allocs); /* no second block: nothing copied */
  ck_assert(large_is_block(q));
  ck_assert_uint_eq(hak_tag_kind(registry_tag(q)), HAK_KIND_LARGE);
  ck_assert_uint_ne(hak_tag_kind(registry_tag(p)), HAK_KIND_LARGE);
  for (size_t i = 0; i < n; i += 512)
    ck_assert_int_eq(q[i], (char)(i / 512 * 7 + 1));
  /* The old range holds no page: the block's memory was moved, not doubled. */
  ck_assert_uint_eq(resident_pages(p - HAK_PAGE_SIZE, n), 0);
  ck_assert_uint_ge(resident_pages(q, n), n / HAK_PAGE_SIZE);
  memset(q + n, 5, n);
  munmap(guard, HAK_PAGE_SIZE);

  /* Growing inside a larger mapping keeps its pages; shrinking far below
   * gives the tail back. */
  size_t big = large_usable_size(q);
  large_free(q);
  char *r = large_alloc(200000, 0, false); /* the cached mapping */
  ck_assert_ptr_eq(r, q);
  ck_assert_ptr_eq(large_realloc(r, 400000), r);
  ck_assert_uint_eq(large_usable_size(r), big);
  ck_assert_ptr_eq(large_realloc(r, 1600000), r);
  ck_assert_uint_eq(large_usable_size(r), big);
  ck_assert_uint_eq(resident_pages(r + n, n), n / HAK_PAGE_SIZE); /* the tail stayed */
  ck_assert_int_eq(r[n + 12345], 5);
  ck_assert_ptr_eq(large_realloc(r, 100000), r);
  ck_assert_uint_lt(large_usable_size(r), 100000 + HAK_PAGE_SIZE);
  large_free(r);
}
END_TEST

static uint64_t monotonic_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *purge_later(void *arg)
{
  size_t *bytes = arg;
  *bytes = large_purge(monotonic_ns() + 1000000000ull); /* a second from now */
  return NULL;
}

START_TEST(large_purge_gives_back_aged_mappings)
{
  const size_t mb = (size_t)1 << 20;
  large_trim();
  char *p = large_alloc(4 * mb, 0, false);
  memset(p, 1, 4 * mb);
  large_free(p);
  ck_assert_uint_eq(resident_pages(p, 4 * mb), 4 * mb / HAK_PAGE_SIZE); /* cached */
  ck_assert_uint_eq(large_purge(monotonic_ns()), 0);                   /* too young */
  ck_assert_uint_eq(resident_pages(p, 4 * mb), 4 * mb / HAK_PAGE_SIZE);
  /* Any thread may purge, with no allocation happening. */
  size_t bytes = 0;
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, purge_later, &bytes), 0);
  pthread_join(th, NULL);
  ck_assert_uint_ge(bytes, 4 * mb);
  ck_assert_uint_eq(resident_pages(p - HAK_PAGE_SIZE, 4 * mb), 0);
  uint64_t hits = HAK_STAT_READ(large_cache_hits);
  char *q = large_alloc(4 * mb, 0, false);
  CHECK_COUNTER_EQ(large_cache_hits, hits); /* nothing left to reuse */
  large_free(q);
  large_trim();
}
END_TEST

START_TEST(large_cache_keeps_a_burst_of_frees)
{
  /* More than the cache's floor, freed together and allocated again: all
   * of it was live a moment ago, so all of it is reused. */
  enum { N = 6 };
  const size_t sz = (size_t)16 << 20;
  char *b[N];
  large_trim();
  for (int i = 0; i < N; i++) {
    b[i] = large_alloc(sz, 0, false);
    memset(b[i], i + 1, sz);
  }
  for (int i = 0; i < N; i++)
    large_free(b[i]);
  uint64_t hits = HAK_STAT_READ(large_cache_hits);
  for (int i = 0; i < N; i++) {
    b[i] = large_alloc(sz, 0, false);
    ck_assert_uint_eq(resident_pages(b[i], sz), sz / HAK_PAGE_SIZE);
  }
  CHECK_COUNTER_EQ(large_cache_hits, hits + N);
  for (int i = 0; i < N; i++)
    large_free(b[i]);
  ck_assert_uint_ge(large_trim(), N * sz);
}
END_TEST

START_TEST(large_cache_keeps_many_mappings)
{
  /* A hundred blocks just past the medium range, freed together (threads
   * that end by freeing what they kept) and allocated again: well inside
   * the cache's bytes, so every one comes back from it, pages resident. */
  enum { N = 100 };
  const size_t sz = 300000;
  static char *b[N];
  large_trim();
  for (int i = 0; i < N; i++) {
    b[i] = large_alloc(sz, 0, false);
    ck_assert_ptr_nonnull(b[i]);
    memset(b[i], i + 1, sz);
  }
  for (int i = 0; i < N; i++)
    large_free(b[i]);
  uint64_t hits = HAK_STAT_READ(large_cache_hits);
  for (int i = 0; i < N; i++) {
    b[i] = large_alloc(sz, 0, false);
    ck_assert_uint_eq(resident_pages(b[i], sz - sz % HAK_PAGE_SIZE), sz / HAK_PAGE_SIZE);
  }
  CHECK_COUNTER_EQ(large_cache_hits, hits + N);
  for (int i = 0; i < N; i++)
    large_free(b[i]);
  ck_assert_uint_ge(large_trim(), N * sz);
}
END_TEST

START_TEST(large_cache_serves_bigger_requests_in_place)
{
  const size_t mb = (size_t)1 << 20;
  large_trim();
  char *p = large_alloc(4 * mb, 0, false);
  memset(p, 1, 4 * mb);
  large_free(p);
  /* A bigger request fits in the room behind the cached block: same
   * address, its pages still resident, nothing moved. */
  uint64_t hits = HAK_STAT_READ(large_cache_hits), grows = HAK_STAT_READ(large_cache_grows);
  char *q = large_alloc(6 * mb, 0, false);
  ck_assert_ptr_eq(q, p);
  CHECK_COUNTER_EQ(large_cache_hits, hits + 1);
  CHECK_COUNTER_EQ(large_cache_grows, grows);
  ck_assert_uint_eq(resident_pages(q, 4 * mb), 4 * mb / HAK_PAGE_SIZE);
  memset(q, 2, 6 * mb);
  large_free(q);
  /* calloc from it: the old contents are zeroed, the fresh rest reads 0. */
  char *r = large_alloc(7 * mb, 0, true);
  ck_assert_ptr_eq(r, p);
  for (size_t i = 0; i < 7 * mb; i += 512)
    ck_assert_int_eq(r[i], 0);
  /* A block that filled its room, freed, serves a request beyond the room:
   * the mapping grows (in place or by moving its pages), no page is
   * faulted in again. */
  size_t full = large_mapping_size(r) - HAK_PAGE_SIZE;
  ck_assert_ptr_eq(large_realloc(r, full), r);
  memset(r, 3, full);
  large_free(r);
  grows = HAK_STAT_READ(large_cache_grows);
  char *s = large_alloc(full + 2 * mb, 0, false);
  CHECK_COUNTER_EQ(large_cache_grows, grows + 1);
  ck_assert_uint_eq(resident_pages(s, full), full / HAK_PAGE_SIZE);
  ck_assert_int_eq(s[full - 1], 3);
  large_free(s);
  large_trim();
}
END_TEST

START_TEST(large_cache_bounds_what_a_small_block_keeps)
{
  const size_t mb = (size_t)1 << 20;
  large_trim();
  char *p = large_alloc(40 * mb, 0, false);
  memset(p, 1, 40 * mb);
  large_free(p);
  /* A small request served by the big cached mapping keeps at most 16 MiB
   * of its pages past the request; the others go back. */
  char *q = large_alloc(mb, 0, false);
  ck_assert_ptr_eq(q, p);
  size_t kept = resident_pages(q, 40 * mb) * HAK_PAGE_SIZE;
  ck_assert_uint_le(kept, 17 * mb + HAK_PAGE_SIZE);
  ck_assert_uint_ge(kept, mb);
  ck_assert_uint_le(large_usable_size(q), 17 * mb + HAK_PAGE_SIZE);
  large_free(q);
  large_trim();
}
END_TEST

START_TEST(large_mapping_has_no_room_under_an_address_space_limit)
{
  const size_t mb = (size_t)1 << 20;
  large_trim();
  FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
  int mode = f ? fgetc(f) : '0';
  if (f)
    fclose(f);
  char *p = large_alloc(4 * mb, 0, false);
  if (mode != '2') /* strict overcommit: no room anywhere */
    ck_assert_uint_gt(large_mapping_size(p), 6 * mb); /* room behind the block */
  large_free(p);
  large_trim();
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  return; /* their shadow memory does not fit under an address-space limit */
#endif
  /* Under RLIMIT_AS room would take what later blocks need. */
  struct rlimit old, rl;
  ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
  rl = old;
  rl.rlim_cur = (rlim_t)1 << 46;
  ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
  char *q = large_alloc(4 * mb, 0, false);
  ck_assert_uint_eq(large_mapping_size(q), hak_align_up(HAK_PAGE_SIZE + 4 * mb, HAK_PAGE_SIZE));
  large_free(q);
  ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
  large_trim();
}
END_TEST

START_TEST(large_cache_skips_growth_leftovers)
{
  const size_t mb = (size_t)1 << 20;
  large_trim();
  /* A table grown by malloc, copy, free: the old one is not cached. */
  char *old = large_alloc(2 * mb, 0, false);
  memset(old, 1, 2 * mb);
  char *grown = large_alloc(4 * mb, 0, false); /* nothing cached fits: fresh */
  memcpy(grown, old, 2 * mb);
  large_free(old);
  ck_assert_uint_eq(resident_pages(old - HAK_PAGE_SIZE, 2 * mb), 0);
  uint64_t hits = HAK_STAT_READ(large_cache_hits);
  char *again = large_alloc(2 * mb, 0, false);
  CHECK_COUNTER_EQ(large_cache_hits, hits);
  /* A block freed after something else is cached as before. */
  memset(again, 2, 2 * mb);
  char *small = large_alloc(mb, 0, false); /* fresh, but smaller */
  large_free(again);
  hits = HAK_STAT_READ(large_cache_hits);
  char *reused = large_alloc(2 * mb, 0, false);
  CHECK_COUNTER_EQ(large_cache_hits, hits + 1);
  ck_assert_uint_eq(resident_pages(reused, 2 * mb), 2 * mb / HAK_PAGE_SIZE); /* warm */
  /* A request nothing cached fits gives back the cached blocks under half
   * its size: freed, they would only wait, resident. */
  large_free(small);
  ck_assert_ptr_eq(large_alloc(mb, 0, false), small); /* the cached one */
  memset(small, 3, mb);
  large_free(small);
  ck_assert_uint_eq(resident_pages(small, mb), mb / HAK_PAGE_SIZE);
  char *big = large_alloc(8 * mb, 0, false);
  ck_assert_uint_eq(resident_pages(small, mb), 0);
  large_free(big);
  large_free(reused);
  large_free(grown);
  large_trim();
}
END_TEST

int main(void)
{
  Suite *s = suite_create("backend");
  TCase *tc = tcase_create("classes");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, classes_cover_sizes_with_bounded_waste);
  tcase_add_test(tc, block_offset_check_is_exact);
  tcase_add_test(tc, aligned_classes);
  suite_add_tcase(s, tc);
  TCase *ts = tcase_create("superslab");
  tcase_add_test(ts, carve_whole_superslab_exact_counts);
  tcase_add_test(ts, carving_visits_every_block_once);
  tcase_add_test(ts, carving_stops_at_page_end);
  tcase_add_test(ts, fresh_superslabs_share_a_reservation);
  tcase_add_test(ts, medium_class_geometry_and_reuse);
  tcase_add_test(ts, fresh_word_only_on_zero_memory);
  tcase_add_test(ts, free_tier_keeps_what_is_taken_again);
  tcase_add_test(ts, release_adopt_and_remote_free);
  tcase_add_test(ts, remote_chain_links_and_hints);
  tcase_add_test(ts, remote_frees_come_back);
  tcase_add_test(ts, free_run_puts_back_a_chain_in_order);
  if (!HAK_HARDENED) /* hardened builds catch it in the bin (its canary) */
    tcase_add_test_raise_signal(ts, free_run_double_free_aborts, SIGABRT);
  tcase_add_test_raise_signal(ts, remote_double_free_aborts_in_drain, SIGABRT);
  tcase_add_test_raise_signal(ts, remote_double_free_aborts_in_take, SIGABRT);
  if (HAK_DEBUG_CHECKS)
    tcase_add_test_raise_signal(ts, validator_catches_a_count_that_disagrees, SIGABRT);
  suite_add_tcase(s, ts);
  TCase *tl = tcase_create("large");
  tcase_set_timeout(tl, 60);
  tcase_add_test(tl, large_blocks);
  tcase_add_test(tl, large_realloc_moves_pages_instead_of_copying);
  tcase_add_test(tl, large_cache_skips_growth_leftovers);
  tcase_add_test(tl, large_purge_gives_back_aged_mappings);
  tcase_add_test(tl, large_cache_keeps_a_burst_of_frees);
  tcase_add_test(tl, large_cache_keeps_many_mappings);
  tcase_add_test(tl, large_cache_serves_bigger_requests_in_place);
  tcase_add_test(tl, large_cache_bounds_what_a_small_block_keeps);
  tcase_add_test(tl, large_mapping_has_no_room_under_an_address_space_limit);
  suite_add_tcase(s, tl);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

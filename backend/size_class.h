/*
 * backend/size_class.h — size → class, class → block size, and the O(1)
 * check that an offset inside a slab is the start of a block.
 *
 * Class 0 (8 bytes, one word) is in the tables but never served: a free
 * block keeps its link in its first word and the double-free check word
 * in its second, so requests of up to 8 bytes take class 1 too.
 * Classes 1..8 are 16..128 bytes in 16-byte steps; classes 9..96 are eight
 * per doubling from 144 to 262144 bytes, so the waste above 128 bytes is
 * under 12.5%. Every class size from class 1 on is a multiple of 16, so
 * every block is 16-byte aligned (slabs start at 64 KiB boundaries), as
 * glibc's are.
 *
 * Slabs. The small classes (0..72, up to HAK_SMALL_MAX) carve 64 KiB
 * slabs. A medium class (73..96) carves slabs of four of its largest
 * blocks rounded up to a power of two: 256 KiB, 512 KiB or the whole
 * SuperSlab. Its slabs hold four to seven blocks, so its waste is at most
 * one block's worth of address space per slab (untouched: never resident),
 * and the decay can still give back a part of a SuperSlab.
 *
 * Class keys. A class key is a class + 1, and key 0 means "no class". The
 * registry's class map stores keys (0 for memory that holds no small
 * block), and the tables the free path reads are indexed by key
 * (hak_class_check_by_key, hak_class_info_by_key, the cache's
 * uc_bins_by_key): their entry 0 fails every test a real class passes, so
 * "not a small block" costs the hot path no test of its own. Names that
 * take or give a key say so (_key, _by_key; variables ckey).
 */
#ifndef HAK_SIZE_CLASS_H
#define HAK_SIZE_CLASS_H

#include "hak/common.h"

typedef struct hak_class_info {
  uint32_t size;        /* block size in bytes */
  uint32_t per_slab;    /* blocks carved from one slab */
  uint32_t inv;         /* inverse of the odd part of size, mod 2^32 */
  uint8_t  shift;       /* log2 of the power-of-two part of size */
  uint8_t  slab_shift;  /* log2 of the size of the slabs that carve it */
} hak_class_info_t;

/* What the free path's block check reads: hak_class_info's inv and shift
 * again, with per_slab for the table's classes only (up to HAK_TINY_MAX;
 * 0 for the others, so a larger block fails it and takes free's slow path,
 * which checks it with hak_class_is_block_offset or backend_ss_is_block
 * and asks who owns it). It is a table of its own because its entries are
 * 8 bytes, the largest scale an x86-64 address takes: indexed by a class
 * key, one load reaches an entry with no shift (hak_class_info's 16 bytes
 * cost every free one more instruction). Both tables come from the same
 * macros in size_class.c. Entry 0 never matches. */
typedef struct hak_class_check {
  uint32_t inv;
  uint16_t per_slab;
  uint8_t  shift;
  uint8_t  pad;
} hak_class_check_t;
extern const hak_class_check_t hak_class_check_by_key[HAK_NUM_CLASSES + 1] HAK_INTERNAL;

/* The class key of each size up to HAK_TINY_MAX, indexed by the size itself
 * (one load, no arithmetic on the hot path: the caches index their bins by
 * class key too). */
extern const uint8_t hak_tiny_class_key[HAK_TINY_MAX + 1] HAK_INTERNAL;
/* Indexed by class key; entry 0 describes no class (per_slab 0), so a
 * lookup with key 0 fails the block check without a branch. */
extern const hak_class_info_t hak_class_info_by_key[HAK_NUM_CLASSES + 1] HAK_INTERNAL;
#define hak_class_info (hak_class_info_by_key + 1)

HAK_INLINE unsigned hak_class_of_tiny(size_t n)  /* n <= HAK_TINY_MAX */
{
  return hak_tiny_class_key[n] - 1u;
}

HAK_INLINE unsigned hak_class_of_small(size_t n) /* HAK_TINY_MAX < n <= HAK_MEDIUM_MAX */
{
  unsigned k = 63u - (unsigned)__builtin_clzll((unsigned long long)(n - 1));
  return 9u + 8u * (k - 7u) + (unsigned)((n - 1 - ((size_t)1 << k)) >> (k - 3u));
}

HAK_INLINE unsigned hak_class_of(size_t n)       /* n <= HAK_MEDIUM_MAX */
{
  return n <= HAK_TINY_MAX ? hak_class_of_tiny(n) : hak_class_of_small(n);
}

HAK_INLINE size_t hak_class_size(unsigned c) { return hak_class_info[c].size; }

/* Do class c's blocks have a third word? A free block's first word is its
 * link and its second the check word; the third, where there is one, may
 * carry a remote chain's prefetch hint (superslab.h). All from 32 bytes. */
HAK_INLINE bool hak_class_has_hint_word(unsigned c) { return c >= 2; }

/* True when off (an offset inside a 64 KiB slab) is the start of one of
 * the slab's blocks: a multiply and a rotate, no division. */
HAK_INLINE bool hak_class_key_is_block_offset(uintptr_t ckey, uint32_t off)
{
  const hak_class_check_t *ci = &hak_class_check_by_key[ckey];
  uint32_t q = off * ci->inv;
  q = (q >> ci->shift) | (q << (-ci->shift & 31)); /* rotate right */
  return q < ci->per_slab;
}

/* The same for any class, off an offset inside one of its slabs. */
HAK_INLINE bool hak_class_is_block_offset(unsigned c, uint32_t off)
{
  const hak_class_info_t *ci = &hak_class_info[c];
  uint32_t q = off * ci->inv;
  q = (q >> ci->shift) | (q << (-ci->shift & 31)); /* rotate right */
  return q < ci->per_slab;
}

/* Smallest class whose blocks are all aligned to align (a power of two up
 * to HAK_PAGE_SIZE) and hold n bytes; -1 if none. */
int hak_class_for_aligned(size_t n, size_t align) HAK_INTERNAL;

#endif /* HAK_SIZE_CLASS_H */

/*
 * backend/size_class.c — the class tables, generated at compile time by
 * the macros below (no start-up work, read-only data).
 */
#include "backend/size_class.h"
#include "hak/config.h"

/* Class 0 is one word; class c >= 1 is step c - 1 of the 16-byte grid:
 * 16-byte steps up to 128, then 8 per doubling. */
#define GRID_SIZE(g) ((g) < 8 ? 16u * ((g) + 1u) \
                              : (128u << (((g) - 8u) / 8u)) + (((g) - 8u) % 8u + 1u) * (16u << (((g) - 8u) / 8u)))
#define CLS_SIZE(c) ((c) == 0 ? HAK_WORD_MAX : GRID_SIZE((c) - 1u))

/* Odd part and its inverse mod 2^32 (Newton's iteration, 5 steps). */
#define TZ(x) ((unsigned)__builtin_ctz(x))
#define ODD(x) ((x) >> TZ(x))
#define INV1(d, x) ((x) * (2u - (d) * (x)))
#define INV(d) INV1(d, INV1(d, INV1(d, INV1(d, INV1(d, (d))))))

/* log2 of the slab size: 64 KiB for the small classes; for a medium one,
 * four blocks of its doubling's largest class (see size_class.h). */
#define SLAB_SHIFT(c) ((c) < HAK_NUM_SMALL_CLASSES ? (unsigned)HAK_SLAB_SHIFT : ((c) - 9u) / 8u + 10u)
#define CI(c) { CLS_SIZE(c), (uint32_t)(((size_t)1 << SLAB_SHIFT(c)) / CLS_SIZE(c)), \
                INV(ODD(CLS_SIZE(c))), (uint8_t)TZ(CLS_SIZE(c)), (uint8_t)SLAB_SHIFT(c) }
#define CI8(c) CI(c), CI(c + 1), CI(c + 2), CI(c + 3), CI(c + 4), CI(c + 5), CI(c + 6), CI(c + 7)

const hak_class_info_t hak_class_info_by_key[HAK_NUM_CLASSES + 1] = {
  {0, 0, 0, 0, HAK_SLAB_SHIFT},
  CI(0), CI8(1), CI8(9), CI8(17), CI8(25), CI8(33), CI8(41), CI8(49), CI8(57), CI8(65),
  CI8(73), CI8(81), CI8(89),
};

#define CC(c) { INV(ODD(CLS_SIZE(c))), \
                (uint16_t)((c) < HAK_NUM_TINY_CLASSES ? HAK_SLAB_SIZE / CLS_SIZE(c) : 0), \
                (uint8_t)TZ(CLS_SIZE(c)), 0 }
#define CC8(c) CC(c), CC(c + 1), CC(c + 2), CC(c + 3), CC(c + 4), CC(c + 5), CC(c + 6), CC(c + 7)

const hak_class_check_t hak_class_check_by_key[HAK_NUM_CLASSES + 1] = {
  {0, 0, 0, 0},
  CC(0), CC8(1), CC8(9), CC8(17), CC8(25), CC8(33), CC8(41), CC8(49), CC8(57), CC8(65),
  CC8(73), CC8(81), CC8(89),
};
_Static_assert(sizeof(hak_class_check_t) == 8, "one scaled index");

/* size → class key for sizes up to HAK_TINY_MAX: step T of the 16-byte
 * grid, through i = (n + 15) / 16. Sizes up to 8 take 16 bytes as well: a
 * free block keeps the double-free check word in its second word (see
 * boxes/unified_cache/unified_cache.h), so class 0 is never handed out. */
#define T(i) ((i) <= 8 ? ((i) ? (i) - 1 : 0) : \
  (i) <= 16 ? 8 + (i) - 9 : (i) <= 32 ? 16 + ((i) - 17) / 2 : 24 + ((i) - 33) / 4)
#define S(n) (T(((n) + 15) / 16) + 2)
#define S4(n) S(n), S(n + 1), S(n + 2), S(n + 3)
#define S16(n) S4(n), S4(n + 4), S4(n + 8), S4(n + 12)
#define S64(n) S16(n), S16(n + 16), S16(n + 32), S16(n + 48)
#define S256(n) S64(n), S64(n + 64), S64(n + 128), S64(n + 192)
const uint8_t hak_tiny_class_key[HAK_TINY_MAX + 1] = {
  S256(0), S256(256), S256(512), S256(768), S(1024),
};

_Static_assert(CLS_SIZE(HAK_NUM_TINY_CLASSES - 1) == HAK_TINY_MAX, "the table's classes end at HAK_TINY_MAX");
_Static_assert(CLS_SIZE(HAK_NUM_SMALL_CLASSES - 1) == HAK_SMALL_MAX, "last small class must be HAK_SMALL_MAX");
_Static_assert(CLS_SIZE(HAK_NUM_CLASSES - 1) == HAK_MEDIUM_MAX, "last class must be HAK_MEDIUM_MAX");
_Static_assert(SLAB_SHIFT(73) == 18 && SLAB_SHIFT(81) == 19 && SLAB_SHIFT(96) == HAK_SS_SHIFT,
               "a medium slab holds four blocks of its doubling's largest class");
_Static_assert(CLS_SIZE(0) == 8 && CLS_SIZE(1) == 16 && CLS_SIZE(8) == 128 && CLS_SIZE(9) == 144 &&
               CLS_SIZE(16) == 256 && CLS_SIZE(17) == 288, "class layout");

int hak_class_for_aligned(size_t n, size_t align)
{
  if (n > HAK_SMALL_MAX || align > HAK_PAGE_SIZE)
    return -1;
  for (unsigned c = hak_class_of(n); c < HAK_NUM_CLASSES; c++)
    if ((hak_class_info[c].size & (align - 1)) == 0)
      return (int)c;
  return -1;
}

/*
 * backend/size_class.c — the class tables, generated at compile time by
 * the macros below (no start-up work, read-only data).
 */
#include "backend/size_class.h"

#define CLS_SIZE(c) ((c) < 8 ? 16u * ((c) + 1u) \
                             : (128u << (((c) - 8u) / 8u)) + (((c) - 8u) % 8u + 1u) * (16u << (((c) - 8u) / 8u)))

/* Odd part and its inverse mod 2^32 (Newton's iteration, 5 steps). */
#define TZ(x) ((unsigned)__builtin_ctz(x))
#define ODD(x) ((x) >> TZ(x))
#define INV1(d, x) ((x) * (2u - (d) * (x)))
#define INV(d) INV1(d, INV1(d, INV1(d, INV1(d, INV1(d, (d))))))

#define CI(c) { CLS_SIZE(c), (uint32_t)(HAK_SLAB_SIZE / CLS_SIZE(c)), \
                INV(ODD(CLS_SIZE(c))), (uint8_t)TZ(CLS_SIZE(c)) }
#define CI8(c) CI(c), CI(c + 1), CI(c + 2), CI(c + 3), CI(c + 4), CI(c + 5), CI(c + 6), CI(c + 7)

const hak_class_info_t hak_class_info[HAK_NUM_CLASSES] = {
  CI8(0), CI8(8), CI8(16), CI8(24), CI8(32), CI8(40), CI8(48), CI8(56), CI8(64),
};

/* (n + 15) >> 4 → class, for n up to HAK_TINY_MAX. */
#define T(i) ((i) <= 8 ? ((i) ? (i) - 1 : 0) : \
  (i) <= 16 ? 8 + (i) - 9 : (i) <= 32 ? 16 + ((i) - 17) / 2 : 24 + ((i) - 33) / 4)
#define T8(i) T(i), T(i + 1), T(i + 2), T(i + 3), T(i + 4), T(i + 5), T(i + 6), T(i + 7)
const uint8_t hak_tiny_class[(HAK_TINY_MAX >> 4) + 1] = {
  T8(0), T8(8), T8(16), T8(24), T8(32), T8(40), T8(48), T8(56), T(64),
};

_Static_assert(CLS_SIZE(71) == HAK_SMALL_MAX, "last class must be HAK_SMALL_MAX");
_Static_assert(CLS_SIZE(8) == 144 && CLS_SIZE(15) == 256 && CLS_SIZE(16) == 288, "class layout");

int hak_class_for_aligned(size_t n, size_t align)
{
  if (n > HAK_SMALL_MAX || align > HAK_PAGE_SIZE)
    return -1;
  for (unsigned c = hak_class_of(n); c < HAK_NUM_CLASSES; c++)
    if ((hak_class_info[c].size & (align - 1)) == 0)
      return (int)c;
  return -1;
}

/*
 * hak/common.h — definitions every box shares: branch hints, the geometry of
 * SuperSlabs and slabs, and the size-class count. Nothing here depends on the
 * build options.
 *
 * Geometry: a SuperSlab is HAK_SS_SIZE bytes aligned to its own size, so
 * p & ~HAK_SS_MASK is its base. A SuperSlab of a small class is cut into
 * HAK_SLABS_PER_SS slabs of HAK_SLAB_SIZE; one of a medium class into
 * fewer, larger slabs (four blocks or more each: see backend/size_class.h).
 * Each slab carves blocks of the SuperSlab's class from its start.
 */
#ifndef HAK_COMMON_H
#define HAK_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define hak_likely(x)   __builtin_expect(!!(x), 1)
#define hak_unlikely(x) __builtin_expect(!!(x), 0)
#define HAK_INLINE      static inline __attribute__((always_inline))
#define HAK_NOINLINE    __attribute__((noinline))
#define HAK_COLD        __attribute__((noinline, cold))
#define HAK_INTERNAL    __attribute__((visibility("hidden")))
#define HAK_EXPORT      __attribute__((visibility("default")))
/* A hot public entry point starts on a cache line: otherwise where the
 * linker happens to put malloc and free moves tiny_hot from build to
 * build. */
#define HAK_HOT_EXPORT  HAK_EXPORT __attribute__((aligned(64)))
#define HAK_STR_(x)     #x
#define HAK_STR(x)      HAK_STR_(x)

#define HAK_PAGE_SIZE      4096u
#define HAK_SS_SHIFT       20
#define HAK_SS_SIZE        ((size_t)1 << HAK_SS_SHIFT)
#define HAK_SS_MASK        (HAK_SS_SIZE - 1)
#define HAK_SLAB_SHIFT     16
#define HAK_SLAB_SIZE      ((size_t)1 << HAK_SLAB_SHIFT)
#define HAK_SLABS_PER_SS   ((unsigned)(HAK_SS_SIZE >> HAK_SLAB_SHIFT))

/* Size classes: 8 bytes, then 16-byte steps up to 128 bytes, then 8
 * classes per doubling (at most 12.5% internal waste) up to
 * HAK_MEDIUM_MAX. The small classes (up to HAK_SMALL_MAX) are carved from
 * 64 KiB slabs, which free's fast check knows; the medium ones above it
 * from larger slabs, checked on free's slow path. Above the largest class
 * a build uses (HAK_CLASS_MAX in hak/config.h), blocks are mapped on their
 * own (backend/large). */
#define HAK_TINY_MAX       1024u            /* served by the lookup table */
#define HAK_SMALL_MAX      32768u           /* largest class of 64 KiB slabs */
#define HAK_MEDIUM_MAX     262144u          /* largest class */
#define HAK_NUM_TINY_CLASSES 33u            /* the classes up to HAK_TINY_MAX */
#define HAK_NUM_SMALL_CLASSES 73u
#define HAK_NUM_CLASSES    97u

#define HAK_ALIGNMENT      16u              /* alignment of every block >= 16 B */
#define HAK_WORD_MAX       8u               /* blocks this small: one word, 8-aligned */

static inline uintptr_t hak_ss_base_of(const void *p)
{
  return (uintptr_t)p & ~(uintptr_t)HAK_SS_MASK;
}

#endif /* HAK_COMMON_H */

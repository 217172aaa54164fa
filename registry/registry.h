/*
 * registry/ — the super registry: address → SuperSlab tag, and the per-class
 * index of ownerless SuperSlabs with room.
 *
 * Address map. Every SuperSlab (and every large block) occupies chunks of
 * HAK_SS_SIZE aligned to that size. A two-level radix table maps a chunk
 * base to a 64-bit tag (kind and size class; 0 = not ours). The top level is
 * a static array covering the 48-bit user address space; leaves are mapped on
 * demand and published with rcu_assign_pointer. There is no capacity to fill:
 * every chunk of the address space has its slot.
 *
 * Readers. registry_tag() is lock-free and needs no read lock: a leaf, once
 * published, is never unmapped, so the two loads are always safe. What the
 * RCU read lock protects is the memory the tag points at: a reader that will
 * dereference a SuperSlab or large-block header it does not own brackets the
 * lookup and the use with registry_read_lock()/unlock(); the backend clears a
 * tag, calls registry_synchronize() (with no allocator lock held), and only
 * then unmaps.
 *
 * Writers. registry_set_tag() publishes a tag (creating the leaf under the
 * registry mutex if needed); tags are plain atomic stores.
 *
 * Class map. For the free fast path, one byte per chunk of the 47-bit user
 * address space (a 128 MiB zero-filled table: only the pages that hold
 * bytes of live chunks are ever touched) says "small SuperSlab of class c"
 * as c + 1, and 0 for anything else. It is written with the tag (set after,
 * cleared before) and, like the leaves, never shrunk: one load, no lock.
 *
 * Per-class index. An intrusive doubly-linked list per size class of
 * SuperSlabs that no thread owns and that have room, under a per-class mutex
 * that also serialises every operation on such ownerless SuperSlabs. O(1)
 * push, remove and pop: no scan.
 *
 * Where these locks nest among the allocator's: backend/superslab.c,
 * "Locks".
 */
#ifndef HAK_REGISTRY_H
#define HAK_REGISTRY_H

#include "hak/common.h"
#include "hak/tsan.h"
#include "hak/lock.h"
#include "hak/list.h"
#include <pthread.h>
#include <stdatomic.h>

#define _LGPL_SOURCE 1
#include <urcu-bp.h>

/* Tag layout: bits 0..7 size class, bits 8..15 kind, bits 16..63 the
 * address of the chunk's header >> 6 (SuperSlabs; headers are 64-byte
 * aligned user-space addresses), or 0. */
#define HAK_TAG_KIND_SHIFT 8
#define HAK_TAG_HDR_SHIFT 16
enum hak_tag_kind { HAK_KIND_NONE = 0, HAK_KIND_SMALL = 1, HAK_KIND_LARGE = 2 };

static inline uint64_t hak_tag_make(unsigned kind, unsigned cls)
{
  return ((uint64_t)kind << HAK_TAG_KIND_SHIFT) | cls;
}
static inline unsigned hak_tag_kind(uint64_t tag) { return (unsigned)(tag >> HAK_TAG_KIND_SHIFT) & 0xff; }
static inline unsigned hak_tag_class(uint64_t tag) { return (unsigned)tag & 0xff; }
static inline uint64_t hak_tag_with_hdr(uint64_t tag, const void *hdr)
{
  return tag | ((uint64_t)((uintptr_t)hdr >> 6) << HAK_TAG_HDR_SHIFT);
}
static inline void *hak_tag_hdr(uint64_t tag) { return (void *)(uintptr_t)((tag >> HAK_TAG_HDR_SHIFT) << 6); }

#define HAK_REG_ADDR_BITS  48
#define HAK_REG_LEAF_BITS  16
#define HAK_REG_TOP_BITS   (HAK_REG_ADDR_BITS - HAK_SS_SHIFT - HAK_REG_LEAF_BITS)
#define HAK_REG_TOP_SIZE   ((size_t)1 << HAK_REG_TOP_BITS)
#define HAK_REG_LEAF_SIZE  ((size_t)1 << HAK_REG_LEAF_BITS)

typedef struct hak_reg_leaf {
  _Atomic uint64_t tag[HAK_REG_LEAF_SIZE];
} hak_reg_leaf_t;

extern hak_reg_leaf_t *hak_reg_top[HAK_REG_TOP_SIZE] HAK_INTERNAL;

/* The tag of the chunk holding p; 0 when p is not in a registered chunk.
 * Lock-free, two loads, safe for any p (wild pointers included). */
HAK_INLINE uint64_t registry_tag(const void *p)
{
  uintptr_t a = (uintptr_t)p;
  uintptr_t top = a >> (HAK_SS_SHIFT + HAK_REG_LEAF_BITS);
  if (hak_unlikely(top >= HAK_REG_TOP_SIZE)) /* above the 48-bit user space */
    return 0;
  hak_reg_leaf_t *leaf = __atomic_load_n(&hak_reg_top[top], __ATOMIC_ACQUIRE);
  if (hak_unlikely(leaf == NULL))
    return 0;
  return atomic_load_explicit(&leaf->tag[(a >> HAK_SS_SHIFT) & (HAK_REG_LEAF_SIZE - 1)],
                              memory_order_acquire);
}

#define HAK_REG_MAP_BITS (47 - HAK_SS_SHIFT)
extern uint8_t hak_reg_classmap[(size_t)1 << HAK_REG_MAP_BITS] HAK_INTERNAL;

/* The class key (class + 1, backend/size_class.h) of the small-block
 * SuperSlab p lies in, else 0. */
HAK_INLINE uintptr_t registry_class_key(const void *p)
{
  uintptr_t i = (uintptr_t)p >> HAK_SS_SHIFT;
  if (hak_unlikely(i >= ((uintptr_t)1 << HAK_REG_MAP_BITS)))
    return 0;
  return __atomic_load_n(&hak_reg_classmap[i], __ATOMIC_RELAXED);
}

/* Publish a tag for the chunk at base (aligned to HAK_SS_SIZE). Returns -1
 * if a leaf could not be mapped (out of memory), 0 otherwise. */
int  registry_set_tag(uintptr_t base, uint64_t tag) HAK_INTERNAL;
void registry_clear_tag(uintptr_t base) HAK_INTERNAL;
/* Atomically replace expected by desired; false if the tag was not expected. */
bool registry_swap_tag(uintptr_t base, uint64_t expected, uint64_t desired) HAK_INTERNAL;

HAK_INLINE void registry_read_lock(void) { urcu_bp_read_lock(); }
HAK_INLINE void registry_read_unlock(void)
{
  HAK_TSAN_RELEASE(&hak_reg_top);
  urcu_bp_read_unlock();
}
/* Wait until every reader that might still see a cleared tag has left its
 * read section. Call with no allocator lock held and outside a read section. */
void registry_synchronize(void) HAK_INTERNAL;

/* Every chunk whose tag is of kind kind, in address order: fn(base, tag,
 * arg). For introspection (the census, backend/superslab.h), never a
 * malloc path: it reads every tag of every leaf mapped (a leaf is 512 KiB
 * of tags for 64 GiB of address space). Leaves are never unmapped, so the
 * walk itself needs no lock; what fn reads through a tag needs the read
 * lock, which the caller holds around the walk. */
void registry_walk(unsigned kind, void (*fn)(uintptr_t base, uint64_t tag, void *arg), void *arg) HAK_INTERNAL;

/* ---- Per-class index of ownerless SuperSlabs with room. ---------------- */

void            registry_index_lock(unsigned cls) HAK_INTERNAL;
void            registry_index_unlock(unsigned cls) HAK_INTERNAL;
/* The four below need the class lock held. An entry is a list node
 * (hak/list.h) in the SuperSlab's header; pushing one already there does
 * nothing, nor does removing one that is not. */
void             registry_index_push(unsigned cls, hak_list_node_t *link) HAK_INTERNAL;
void             registry_index_remove(unsigned cls, hak_list_node_t *link) HAK_INTERNAL;
hak_list_node_t *registry_index_pop(unsigned cls) HAK_INTERNAL;
/* The first entry: walk on with link->next. */
hak_list_node_t *registry_index_first(unsigned cls) HAK_INTERNAL;
size_t          registry_index_length(unsigned cls) HAK_INTERNAL;

/* Counters of the registry itself (always kept: these are slow-path events). */
uint64_t registry_leaves_mapped(void) HAK_INTERNAL;

/* Fork protection, in lock order (backend/superslab.c, "Locks"): the class
 * index locks, then later the map mutex; parent and child release or reset
 * all. */
void registry_fork_prepare_index(void) HAK_INTERNAL;
void registry_fork_prepare_map(void) HAK_INTERNAL;
void registry_fork_parent(void) HAK_INTERNAL;
void registry_fork_child(void) HAK_INTERNAL;

#endif /* HAK_REGISTRY_H */

/*
 * registry/registry.c — the address map (radix table of chunk tags) and the
 * per-class index of ownerless SuperSlabs. See registry.h for the contract.
 *
 * Leaves are 512 KiB of address space each, mapped with mmap (never malloc)
 * and never unmapped: the readers' fast lookup relies on that. Only the
 * pages that hold tags of live chunks are ever touched.
 */
#include "registry/registry.h"

#include <sys/mman.h>

hak_reg_leaf_t *hak_reg_top[HAK_REG_TOP_SIZE];
uint8_t hak_reg_classmap[(size_t)1 << HAK_REG_MAP_BITS];

static void classmap_set(uintptr_t base, uint64_t tag)
{
  uintptr_t i = base >> HAK_SS_SHIFT;
  if (i >= ((uintptr_t)1 << HAK_REG_MAP_BITS))
    return;
  uint8_t v = hak_tag_kind(tag) == HAK_KIND_SMALL ? (uint8_t)(hak_tag_class(tag) + 1) : 0;
  if (__atomic_load_n(&hak_reg_classmap[i], __ATOMIC_RELAXED) != v)
    __atomic_store_n(&hak_reg_classmap[i], v, __ATOMIC_RELEASE);
}

static hak_mutex_t reg_mutex = HAK_MUTEX_INIT;
static _Atomic uint64_t reg_leaves;

static hak_reg_leaf_t *leaf_for(uintptr_t base, bool create)
{
  size_t top = base >> (HAK_SS_SHIFT + HAK_REG_LEAF_BITS);
  if (top >= HAK_REG_TOP_SIZE)
    return NULL;
  hak_reg_leaf_t *leaf = __atomic_load_n(&hak_reg_top[top], __ATOMIC_ACQUIRE);
  if (leaf || !create)
    return leaf;
  hak_mutex_lock(&reg_mutex);
  leaf = __atomic_load_n(&hak_reg_top[top], __ATOMIC_ACQUIRE);
  if (!leaf) {
    void *m = mmap(NULL, sizeof(hak_reg_leaf_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m != MAP_FAILED) {
      leaf = m;
#ifdef HAK_TSAN
      __atomic_store_n(&hak_reg_top[top], leaf, __ATOMIC_RELEASE);
#else
      rcu_assign_pointer(hak_reg_top[top], leaf);
#endif
      atomic_fetch_add_explicit(&reg_leaves, 1, memory_order_relaxed);
    }
  }
  hak_mutex_unlock(&reg_mutex);
  return leaf;
}

static _Atomic uint64_t *slot_for(uintptr_t base, bool create)
{
  hak_reg_leaf_t *leaf = leaf_for(base, create);
  return leaf ? &leaf->tag[(base >> HAK_SS_SHIFT) & (HAK_REG_LEAF_SIZE - 1)] : NULL;
}

int registry_set_tag(uintptr_t base, uint64_t tag)
{
  _Atomic uint64_t *slot = slot_for(base, true);
  if (!slot)
    return -1;
  if (hak_tag_kind(tag) != HAK_KIND_SMALL)
    classmap_set(base, 0);   /* cleared before the tag changes... */
  atomic_store_explicit(slot, tag, memory_order_release);
  if (hak_tag_kind(tag) == HAK_KIND_SMALL)
    classmap_set(base, tag); /* ...and set after it */
  return 0;
}

void registry_clear_tag(uintptr_t base)
{
  _Atomic uint64_t *slot = slot_for(base, false);
  classmap_set(base, 0);
  if (slot)
    atomic_store_explicit(slot, 0, memory_order_release);
}

bool registry_swap_tag(uintptr_t base, uint64_t expected, uint64_t desired)
{
  _Atomic uint64_t *slot = slot_for(base, desired != 0);
  if (!slot)
    return expected == 0 && desired == 0;
  if (!atomic_compare_exchange_strong(slot, &expected, desired))
    return false;
  classmap_set(base, desired);
  return true;
}

void registry_synchronize(void)
{
  urcu_bp_synchronize_rcu();
  HAK_TSAN_ACQUIRE(&hak_reg_top);
}

void registry_walk(unsigned kind, void (*fn)(uintptr_t base, uint64_t tag, void *arg), void *arg)
{
  for (size_t top = 0; top < HAK_REG_TOP_SIZE; top++) {
    hak_reg_leaf_t *leaf = __atomic_load_n(&hak_reg_top[top], __ATOMIC_ACQUIRE);
    if (!leaf)
      continue;
    for (size_t i = 0; i < HAK_REG_LEAF_SIZE; i++) {
      uint64_t tag = atomic_load_explicit(&leaf->tag[i], memory_order_acquire);
      if (tag && hak_tag_kind(tag) == kind)
        fn(((top << HAK_REG_LEAF_BITS) | i) << HAK_SS_SHIFT, tag, arg);
    }
  }
}

uint64_t registry_leaves_mapped(void)
{
  return atomic_load_explicit(&reg_leaves, memory_order_relaxed);
}

/* ---- Per-class index ---------------------------------------------------- */

static struct {
  hak_mutex_t lock;
  hak_list_node_t *head;    /* popped first: the last pushed */
  size_t length;
} __attribute__((aligned(64))) reg_index[HAK_NUM_CLASSES];

/* A zeroed hak_mutex_t is unlocked and a zeroed list empty, so the index
 * works before any constructor ran; fork's child re-initialises. */
static void index_init_one(unsigned c)
{
  hak_mutex_reinit(&reg_index[c].lock);
}

void registry_index_lock(unsigned c) { hak_mutex_lock(&reg_index[c].lock); }
void registry_index_unlock(unsigned c) { hak_mutex_unlock(&reg_index[c].lock); }

void registry_index_push(unsigned c, hak_list_node_t *l)
{
  hak_mutex_assert_held(&reg_index[c].lock);
  if (hak_list_linked(&reg_index[c].head, l))
    return;
  hak_list_push(&reg_index[c].head, l);
  __atomic_store_n(&reg_index[c].length, reg_index[c].length + 1, __ATOMIC_RELAXED);
}

void registry_index_remove(unsigned c, hak_list_node_t *l)
{
  hak_mutex_assert_held(&reg_index[c].lock);
  if (!hak_list_linked(&reg_index[c].head, l))
    return;
  hak_list_remove(&reg_index[c].head, l);
  __atomic_store_n(&reg_index[c].length, reg_index[c].length - 1, __ATOMIC_RELAXED);
}

hak_list_node_t *registry_index_pop(unsigned c)
{
  hak_mutex_assert_held(&reg_index[c].lock);
  hak_list_node_t *l = reg_index[c].head;
  if (l)
    registry_index_remove(c, l);
  return l;
}

hak_list_node_t *registry_index_first(unsigned c)
{
  hak_mutex_assert_held(&reg_index[c].lock);
  return reg_index[c].head;
}

size_t registry_index_length(unsigned c) { return __atomic_load_n(&reg_index[c].length, __ATOMIC_RELAXED); }

void registry_fork_prepare_index(void)
{
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    hak_mutex_lock(&reg_index[c].lock);
}

void registry_fork_prepare_map(void) { hak_mutex_lock(&reg_mutex); }

void registry_fork_parent(void)
{
  hak_mutex_unlock(&reg_mutex);
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    hak_mutex_unlock(&reg_index[c].lock);
}

void registry_fork_child(void)
{
  hak_mutex_reinit(&reg_mutex);
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    index_init_one(c);
}

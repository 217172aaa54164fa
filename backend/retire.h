/*
 * backend/retire.h — mappings that leave the allocator for good: empty
 * SuperSlabs the free tier does not keep (superslab.c) and large mappings
 * the cache does not keep (large.c). Their registry tags are cleared
 * first, but a reader that found a tag before may still be reading the
 * header it points to, so the memory is unmapped only after an RCU grace
 * period: one registry_synchronize() for a batch. Both wait for
 * BACKEND_RETIRE_BATCH of them (or a trim, or nothing else pending) and
 * unmap through backend_unmap_after_grace, with no allocator lock held and
 * outside any registry read section.
 */
#ifndef HAK_BACKEND_RETIRE_H
#define HAK_BACKEND_RETIRE_H

#include "backend/os.h"
#include "registry/registry.h"

#define BACKEND_RETIRE_BATCH 16u

typedef struct backend_mapping {
  void  *base;
  size_t size;
} backend_mapping_t;

/* Wait out one grace period, then unmap the n mappings (none: no wait). */
static inline void backend_unmap_after_grace(const backend_mapping_t *m, unsigned n)
{
  if (n == 0)
    return;
  registry_synchronize();
  for (unsigned i = 0; i < n; i++)
    hak_os_unmap(m[i].base, m[i].size);
}

#endif /* HAK_BACKEND_RETIRE_H */

/*
 * backend/large.h — blocks above the largest size class, each in a mapping
 * of its own aligned to HAK_SS_SIZE, known to the registry (kind LARGE on the
 * chunk that holds the block's address) so free, realloc and
 * malloc_usable_size find them.
 *
 * A header sits in the page right before the block. Recently freed mappings
 * are kept in a small cache and reused, so a program that keeps allocating
 * and freeing big buffers does not fault its pages in again every time;
 * mappings that stay unused past a short age are given back. realloc
 * grows a block in place, into a cached mapping, or by having the kernel
 * move its pages (see large.c); it copies only when none of these works.
 */
#ifndef HAK_LARGE_H
#define HAK_LARGE_H

#include "hak/common.h"

/* NULL with errno ENOMEM on failure. align is a power of two; 0 = default.
 * zero: the block must read as zero. */
void  *large_alloc(size_t size, size_t align, bool zero) HAK_INTERNAL;
/* p must have been checked to be a live large block (large_lookup). */
void   large_free(void *p) HAK_INTERNAL;
void  *large_realloc(void *p, size_t size) HAK_INTERNAL;
size_t large_usable_size(const void *p) HAK_INTERNAL;
/* Under the registry read lock: is p exactly the start of a live large block? */
bool   large_is_block(const void *p) HAK_INTERNAL;
/* Drop the cache (malloc_trim); bytes given back. */
size_t large_trim(void) HAK_INTERNAL;

uint64_t large_allocs(void) HAK_INTERNAL;
uint64_t large_frees(void) HAK_INTERNAL;
uint64_t large_cache_hits(void) HAK_INTERNAL;
/* Blocks realloc moved by remapping their pages (no copy). */
uint64_t large_moves(void) HAK_INTERNAL;

void large_fork_prepare(void) HAK_INTERNAL;
void large_fork_parent(void) HAK_INTERNAL;
void large_fork_child(void) HAK_INTERNAL;

#endif /* HAK_LARGE_H */

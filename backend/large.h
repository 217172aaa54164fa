/*
 * backend/large.h — blocks above the largest size class, each in a mapping
 * of its own aligned to HAK_SS_SIZE, known to the registry (kind LARGE on the
 * chunk that holds the block's address) so free, realloc and
 * malloc_usable_size find them.
 *
 * A header sits in the page right before the block, and address space is
 * reserved after it, so that realloc and a later, bigger request reuse the
 * mapping in place. Recently freed mappings are kept in a cache and reused
 * (or grown into a request too big for them), so a program that keeps
 * allocating and freeing big buffers does not fault its pages in again
 * every time; the cache never holds more than the program's recent peak of
 * live large bytes less what is live, and mappings that stay unused past a
 * short age are given back. realloc grows a block in place, into a cached
 * mapping, or by having the kernel move its pages (see large.c); it copies
 * only when none of these works.
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
/* Bytes of the mapping that holds live block p: from the mapping's start
 * (the header page in front) to the end of the room reserved after it. */
size_t large_mapping_size(const void *p) HAK_INTERNAL;
/* Under the registry read lock: is p exactly the start of a live large block? */
bool   large_is_block(const void *p) HAK_INTERNAL;
/* Was p a large block whose mapping now waits in the cache (freed, not
 * handed out again)? Free's slow path names a double free with it. */
bool   large_was_freed(const void *p) HAK_INTERNAL;
/* Drop the cache (malloc_trim); bytes given back. */
size_t large_trim(void) HAK_INTERNAL;
/* Give back the cached mappings unused for longer than the age limit at
 * now_ns (CLOCK_MONOTONIC or CLOCK_MONOTONIC_COARSE, in nanoseconds), and
 * unmap the retired mappings waiting for a grace period; bytes given back.
 * For a helper thread that purges while the program makes no large
 * allocation: callable from any thread, it takes the large lock itself and
 * waits for a grace period when it has something to unmap, so the caller
 * holds no allocator lock and is outside any registry read section. */
size_t large_purge(uint64_t now_ns) HAK_INTERNAL;

/* Bytes of live large blocks' mappings that may be resident. Counts of
 * large blocks are statistics (hak/stats.h: large_allocs, large_frees,
 * large_cache_hits, large_cache_grows, large_moves). */
size_t   large_live_bytes(void) HAK_INTERNAL;

/* What the large blocks hold now (mallinfo2, malloc_info: front/info.c),
 * from gauges kept on the large paths whatever -Dstats says, and the
 * cache's own figures. Any thread; takes large_lock. */
typedef struct large_info {
  size_t live;          /* live large blocks */
  size_t live_usable;   /* their usable bytes (malloc_usable_size) */
  size_t live_bytes;    /* their mappings' bytes that may be resident: from
                         * the mapping's start (header page) to the block's
                         * end; not the room reserved after it */
  size_t cached;        /* freed mappings kept in the cache for reuse */
  size_t cached_bytes;  /* their resident bytes */
} large_info_t;
void large_info(large_info_t *out) HAK_INTERNAL;

void large_fork_prepare(void) HAK_INTERNAL;
void large_fork_parent(void) HAK_INTERNAL;
void large_fork_child(void) HAK_INTERNAL;

#endif /* HAK_LARGE_H */

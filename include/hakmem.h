/*
 * hakmem — a modular, high-performance malloc replacement.
 *
 * Linking with -lhakmem (or preloading libhakmem.so) replaces the standard
 * allocation functions (malloc, free, calloc, realloc, ...). The hak_*
 * functions below are the same allocator under names of its own, for
 * programs that want to call it explicitly next to another malloc.
 *
 * Semantics follow glibc: NULL with errno ENOMEM for sizes that cannot be
 * served, EINVAL for bad alignments (posix_memalign returns the code instead).
 */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>
#include <stdio.h>
#include <malloc.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HAKMEM_VERSION_MAJOR 0
#define HAKMEM_VERSION_MINOR 1
#define HAKMEM_VERSION_PATCH 0

void  *hak_malloc(size_t size);
void   hak_free(void *ptr);
void  *hak_calloc(size_t nmemb, size_t size);
void  *hak_realloc(void *ptr, size_t size);
void  *hak_reallocarray(void *ptr, size_t nmemb, size_t size);
int    hak_posix_memalign(void **out, size_t alignment, size_t size);
void  *hak_aligned_alloc(size_t alignment, size_t size);
void  *hak_memalign(size_t alignment, size_t size);
void  *hak_valloc(size_t size);
void  *hak_pvalloc(size_t size);
size_t hak_malloc_usable_size(void *ptr);
void   hak_free_sized(void *ptr, size_t size);
void   hak_free_aligned_sized(void *ptr, size_t alignment, size_t size);
int    hak_malloc_trim(size_t pad);
int    hak_mallopt(int param, int value);

/*
 * glibc's introspection functions, answered with hakmem's figures (see
 * hakmem(3), MEMORY FIGURES): the standard names are the same functions.
 * hak_mallinfo's int fields saturate at INT_MAX. hak_malloc_stats writes a
 * summary to stderr; hak_malloc_info writes XML (root <malloc
 * version="hakmem-1">) to fp, and fails with EINVAL when options is not 0.
 */
struct mallinfo2 hak_mallinfo2(void);
struct mallinfo  hak_mallinfo(void);
void   hak_malloc_stats(void);
int    hak_malloc_info(int options, FILE *fp);

/* The library's version string, e.g. "0.1.0". */
const char *hak_version(void);

/* The build configuration with the run-time settings in force, e.g.
 * "variant=default unified_cache=1 warm_pool=1 prefill=3 ...". */
const char *hak_config_string(void);

/*
 * Write the statistics to file descriptor fd: a readable table, or one JSON
 * object on one line when json is non-zero. Counters exist only in builds
 * with -Dstats=true; otherwise the output says so. Returns 0, or -1 if the
 * write failed.
 */
int hak_stats_write(int fd, int json);

/*
 * Read one total counter by name ("uc_hits", "warm_misses", ...). Returns 0
 * and stores the value, or -1 if the name is unknown or stats are compiled
 * out. Counts of threads still running are included up to their last slow
 * path.
 */
int hak_stats_get(const char *name, unsigned long long *value);

#ifdef __cplusplus
}
#endif

#endif /* HAKMEM_H */

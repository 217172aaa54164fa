/*
 * backend/os.h — the operating system behind one small interface: aligned
 * anonymous mappings, unmapping, and giving pages back. Nothing here
 * allocates with malloc, zeroes memory or populates pages.
 */
#ifndef HAK_OS_H
#define HAK_OS_H

#include "hak/common.h"

/* size bytes aligned to align (a power of two >= the page size); NULL when
 * the system refuses (errno is left as mmap set it). */
void *hak_os_map_aligned(size_t size, size_t align) HAK_INTERNAL;
void  hak_os_unmap(void *p, size_t size) HAK_INTERNAL;
/* The pages read as zero afterwards and no longer count in the RSS. */
void  hak_os_decommit(void *p, size_t size) HAK_INTERNAL;
/* Write a message to stderr with write(2) only, then abort(). */
__attribute__((noreturn, cold)) void hak_os_fatal(const char *fn, const char *what, const void *addr) HAK_INTERNAL;
/* Format helpers that never allocate: write decimal or hex into buf. */
size_t hak_fmt_u64(char *buf, unsigned long long v) HAK_INTERNAL;
size_t hak_fmt_hex(char *buf, unsigned long long v) HAK_INTERNAL;

/* 64 random bits: seeded once from getrandom(2), then a counter through a
 * mixing function. For secrets of the hardened build, not cryptography. */
uint64_t hak_random64(void) HAK_INTERNAL;

/* membarrier(2), private expedited: register the process (false when the
 * kernel or a seccomp filter refuses), then make every running thread of
 * the process execute a full memory barrier before returning (false when
 * it could not). */
bool hak_os_membarrier_register(void) HAK_INTERNAL;
bool hak_os_membarrier(void) HAK_INTERNAL;

/* Milliseconds on a coarse monotonic clock (a few ms of resolution; wraps
 * after 49 days: compare with differences). For slow paths only. */
uint32_t hak_clock_ms(void) HAK_INTERNAL;

/* Milliseconds from then to now on that clock, 0 when then is later: a
 * stamp another thread stored after this one read the clock is fresh, not
 * 49 days old. */
static inline uint32_t hak_ms_since(uint32_t now, uint32_t then)
{
  return (int32_t)(now - then) > 0 ? now - then : 0;
}

static inline size_t hak_align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

#endif /* HAK_OS_H */

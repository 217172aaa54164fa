/*
 * backend/os.c — mmap-based mappings for SuperSlabs and large blocks.
 *
 * Aligned mappings: map size + align, then unmap the head and the tail so
 * what remains starts on an align boundary. No MAP_POPULATE: fresh pages are
 * zero and are faulted in only when used.
 */
#include "backend/os.h"
#include "hak/debug.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/membarrier.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

void *hak_os_map_aligned(size_t size, size_t align)
{
  size_t span = size + align;
  if (span < size)
    return NULL;
  char *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED)
    return NULL;
  uintptr_t start = ((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1);
  size_t head = start - (uintptr_t)m;
  size_t tail = span - head - size;
  if (head)
    munmap(m, head);
  if (tail)
    munmap((char *)start + size, tail);
  return (void *)start;
}

void hak_os_unmap(void *p, size_t size)
{
  if (p && size)
    munmap(p, size);
}

void hak_os_decommit(void *p, size_t size)
{
  int saved = errno;
  madvise(p, size, MADV_DONTNEED);
  errno = saved;
}

bool hak_os_membarrier_register(void)
{
#ifdef SYS_membarrier
  int saved = errno;
  long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  bool ok = cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
            syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
  errno = saved;
  return ok;
#else
  return false;
#endif
}

bool hak_os_membarrier(void)
{
#ifdef SYS_membarrier
  int saved = errno;
  bool ok = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
  errno = saved;
  return ok;
#else
  return false;
#endif
}

size_t hak_fmt_u64(char *buf, unsigned long long v)
{
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++)
    buf[i] = tmp[n - 1 - i];
  return n;
}

size_t hak_fmt_hex(char *buf, unsigned long long v)
{
  static const char digits[] = "0123456789abcdef";
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = digits[v & 15];
    v >>= 4;
  } while (v);
  buf[0] = '0';
  buf[1] = 'x';
  for (size_t i = 0; i < n; i++)
    buf[2 + i] = tmp[n - 1 - i];
  return n + 2;
}

/* One line to stderr, "hakmem: " and the parts, with " at ADDR" when addr
 * is set (write(2) only: no allocation, no stdio), then abort(). */
__attribute__((noreturn)) static void fatal_line(const char *const *parts, unsigned nparts, const void *addr)
{
  char line[256];
  size_t n = 0;
  for (unsigned i = 0; i < nparts; i++) {
    size_t l = strlen(parts[i]);
    if (n + l > sizeof line - 32)
      l = sizeof line - 32 - n;
    memcpy(line + n, parts[i], l);
    n += l;
  }
  if (addr) {
    memcpy(line + n, " at ", 4);
    n += 4;
    n += hak_fmt_hex(line + n, (unsigned long long)(uintptr_t)addr);
  }
  line[n++] = '\n';
  ssize_t r = write(STDERR_FILENO, line, n);
  (void)r;
  abort();
}

void hak_os_fatal(const char *fn, const char *what, const void *addr)
{
  const char *parts[] = {"hakmem: ", fn, "(): ", what};
  fatal_line(parts, 4, addr);
}

#if HAK_DEBUG_CHECKS
void hak_assert_fail(const char *file, int line, const char *cond)
{
  char num[24];
  num[hak_fmt_u64(num, (unsigned long long)line)] = '\0';
  const char *parts[] = {"hakmem: assertion failed: ", file, ":", num, ": ", cond};
  fatal_line(parts, 6, NULL);
}
#endif

static _Atomic uint64_t random_state;

uint64_t hak_random64(void)
{
  uint64_t x = atomic_load_explicit(&random_state, memory_order_relaxed);
  if (hak_unlikely(x == 0)) {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      seed = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&seed;
    }
    uint64_t zero = 0;
    atomic_compare_exchange_strong(&random_state, &zero, seed | 1);
  }
  x = atomic_fetch_add_explicit(&random_state, 0x9e3779b97f4a7c15ull, memory_order_relaxed);
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint32_t hak_clock_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

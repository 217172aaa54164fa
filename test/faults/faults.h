/*
 * test/faults/faults.h — helpers the fault and limit tests share: failing
 * loudly, reading the RSS and the address-space size without allocating,
 * a small PRNG, block patterns, a clock.
 *
 * Everything here avoids malloc (no stdio streams for /proc, messages
 * formatted on the stack and written with write(2)), so a test can report
 * while the allocator under test is out of memory or in a bad state.
 */
#ifndef HAK_TEST_FAULTS_H
#define HAK_TEST_FAULTS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"

#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

static const char *test_name = "faults";

/* printf-style message to stderr with the test's name, no malloc. */
static inline void msgv(const char *tag, const char *fmt, va_list ap)
{
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "%s: %s", test_name, tag);
  if (n < 0)
    n = 0;
  if ((size_t)n < sizeof buf) {
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    if (m > 0)
      n += m;
  }
  if ((size_t)n >= sizeof buf - 1)
    n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  ssize_t r = write(STDERR_FILENO, buf, (size_t)n);
  (void)r;
}

__attribute__((format(printf, 1, 2))) static inline void note(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  msgv("", fmt, ap);
  va_end(ap);
}

/* Report a failure and exit 1 (from any thread: _exit, so that no
 * destructor runs into the state that made the test fail). */
__attribute__((format(printf, 1, 2), noreturn)) static inline void fail(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  msgv("FAIL: ", fmt, ap);
  va_end(ap);
  _exit(1);
}

#define CHECK(cond, ...)                                                 \
  do {                                                                   \
    if (!(cond))                                                         \
      fail(__VA_ARGS__);                                                 \
  } while (0)

/* ---- /proc without malloc ------------------------------------------------- */

/* Field `field` (0-based) of /proc/self/statm, in bytes. */
static inline size_t statm_field(int field)
{
  char buf[256];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fail("open /proc/self/statm: %s", strerror(errno));
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    fail("read /proc/self/statm");
  buf[n] = 0;
  char *p = buf;
  for (int i = 0; i < field; i++) {
    p = strchr(p, ' ');
    if (!p)
      fail("short /proc/self/statm");
    p++;
  }
  return (size_t)strtoull(p, NULL, 10) * (size_t)sysconf(_SC_PAGESIZE);
}

/* Resident set size (statm's second field). */
static inline size_t rss_bytes(void) { return statm_field(1); }
/* Address space in use (statm's first field, VmSize). */
static inline size_t vm_bytes(void) { return statm_field(0); }

static inline double mib(size_t b) { return (double)b / (double)MiB; }

static inline double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* SuperSlabs mapped and not yet unmapped (hak_stats_get), or -1 in a
 * build without statistics. */
static inline long long ss_alive(void)
{
  unsigned long long m = 0, u = 0;
  if (hak_stats_get("superslabs_mapped", &m) != 0 || hak_stats_get("superslabs_unmapped", &u) != 0)
    return -1;
  return (long long)m - (long long)u;
}

/* ---- PRNG (xorshift64*) ---------------------------------------------------- */

typedef struct { uint64_t s; } rng_t;

static inline void rng_seed(rng_t *r, uint64_t seed)
{
  r->s = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
  if (!r->s)
    r->s = 1;
}

static inline uint64_t rng_next(rng_t *r)
{
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545f4914f6cdd1dull;
}

/* Uniform in [lo, hi]. */
static inline size_t rng_range(rng_t *r, size_t lo, size_t hi)
{
  return lo + (size_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* ---- Block patterns ------------------------------------------------------- */

/* Word k of the pattern of a block tagged `tag`; byte i of the block is
 * byte (i % 8) of word i / 8 (little-endian). */
static inline uint64_t pat_word(uint64_t tag, size_t k)
{
  uint64_t x = tag + (uint64_t)k * 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  return x ^ (x >> 31);
}

static inline unsigned char pat_byte(uint64_t tag, size_t i)
{
  return (unsigned char)(pat_word(tag, i >> 3) >> ((i & 7) * 8));
}

/* Pattern a block of n bytes: all of it up to PAT_FULL_MAX bytes, else the
 * first and last 256 bytes and one word in every page. */
#define PAT_FULL_MAX 4096u

static inline void pat_range(unsigned char *b, size_t from, size_t to, uint64_t tag)
{
  size_t i = from;
  for (; i < to && (i & 7); i++)
    b[i] = pat_byte(tag, i);
  for (; i + 8 <= to; i += 8) {
    uint64_t w = pat_word(tag, i >> 3);
    memcpy(b + i, &w, 8);
  }
  for (; i < to; i++)
    b[i] = pat_byte(tag, i);
}

static inline size_t pat_range_check(const unsigned char *b, size_t from, size_t to, uint64_t tag)
{
  size_t i = from;
  for (; i < to && (i & 7); i++)
    if (b[i] != pat_byte(tag, i))
      return i;
  for (; i + 8 <= to; i += 8) {
    uint64_t w;
    memcpy(&w, b + i, 8);
    if (w != pat_word(tag, i >> 3))
      break;
  }
  for (; i < to; i++)
    if (b[i] != pat_byte(tag, i))
      return i;
  return (size_t)-1;
}

static inline void pat_fill(void *p, size_t n, uint64_t tag)
{
  unsigned char *b = p;
  if (n <= PAT_FULL_MAX) {
    pat_range(b, 0, n, tag);
    return;
  }
  pat_range(b, 0, 256, tag);
  pat_range(b, n - 256, n, tag);
  for (size_t i = 4096; i + 8 <= n - 256; i += 4096)
    pat_range(b, i, i + 8, tag);
}

/* Offset of the first byte that does not match, or (size_t)-1. */
static inline size_t pat_check(const void *p, size_t n, uint64_t tag)
{
  const unsigned char *b = p;
  size_t r;
  if (n <= PAT_FULL_MAX)
    return pat_range_check(b, 0, n, tag);
  if ((r = pat_range_check(b, 0, 256, tag)) != (size_t)-1)
    return r;
  if ((r = pat_range_check(b, n - 256, n, tag)) != (size_t)-1)
    return r;
  for (size_t i = 4096; i + 8 <= n - 256; i += 4096)
    if ((r = pat_range_check(b, i, i + 8, tag)) != (size_t)-1)
      return r;
  return (size_t)-1;
}

/* Parse "--name VALUE" options: returns the value of name or def. */
static inline long arg_long(int argc, char **argv, const char *name, long def)
{
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return strtol(argv[i + 1], NULL, 10);
  return def;
}

static inline const char *arg_str(int argc, char **argv, const char *name, const char *def)
{
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return argv[i + 1];
  return def;
}

#endif /* HAK_TEST_FAULTS_H */

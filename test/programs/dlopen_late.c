/*
 * test/programs/dlopen_late.c — the library loaded after start-up.
 *
 * hakmem keeps its per-thread state in initial-exec TLS, so a process that
 * loads it with dlopen(3) needs static TLS to spare; doc/hakmem.3 says to
 * reserve it with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=4096, and
 * meson.build runs this program with exactly that setting. The program is
 * not linked with hakmem: it dlopens the library named by its argument
 * (RTLD_LOCAL, so malloc stays glibc's and only the hak_* entry points
 * reach hakmem), then
 *   - allocates blocks of every small class and some large ones in the
 *     main thread, checks their usable size and fills them;
 *   - starts two threads (their TLS is set up after the load), each of
 *     which churns its own blocks and frees half of the main thread's;
 *   - checks every pattern before each free, frees the rest.
 * Exit 0 when all of it works; 1 (with dlerror's words) otherwise.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *(*malloc_fn)(size_t);
typedef void (*free_fn)(void *);
typedef size_t (*usable_fn)(void *);
typedef const char *(*version_fn)(void);

static malloc_fn h_malloc;
static free_fn h_free;
static usable_fn h_usable;

#define SHARED 2048
static unsigned char *shared[SHARED];
static size_t shared_n[SHARED];

static void fail(const char *what, size_t a)
{
  fprintf(stderr, "dlopen_late: FAIL: %s (%zu)\n", what, a);
  exit(1);
}

static unsigned char pattern(size_t i, size_t k) { return (unsigned char)(i * 31u + k * 7u + 1u); }

static void fill(unsigned char *p, size_t n, size_t i)
{
  for (size_t k = 0; k < n; k += 61)
    p[k] = pattern(i, k);
  p[n - 1] = pattern(i, n - 1);
}

static void check(const unsigned char *p, size_t n, size_t i)
{
  for (size_t k = 0; k < n; k += 61)
    if (p[k] != pattern(i, k))
      fail("a block's contents changed", i);
  if (p[n - 1] != pattern(i, n - 1))
    fail("a block's last byte changed", i);
}

static unsigned char *alloc_checked(size_t n, size_t i)
{
  unsigned char *p = h_malloc(n);
  if (!p)
    fail("hak_malloc returned NULL", n);
  if ((uintptr_t)p % (n > 8 ? 16 : 8) != 0)
    fail("a block is not aligned (16 bytes, 8 for up to 8 bytes)", n);
  if (h_usable(p) < n)
    fail("hak_malloc_usable_size is below the request", n);
  fill(p, n, i);
  return p;
}

static void *worker(void *arg)
{
  unsigned w = (unsigned)(uintptr_t)arg;
  uint64_t x = 0x9e3779b97f4a7c15ull * (w + 1);
  enum { LIVE = 512 };
  unsigned char *mine[LIVE] = { 0 };
  size_t mine_n[LIVE] = { 0 };
  for (size_t op = 0; op < 200000; op++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t s = (size_t)(x >> 32) % LIVE;
    size_t n = 1 + (size_t)(x % 4096);
    if (mine[s]) {
      check(mine[s], mine_n[s], s + 100000 * (w + 1));
      h_free(mine[s]);
    }
    mine[s] = alloc_checked(n, s + 100000 * (w + 1));
    mine_n[s] = n;
  }
  for (size_t s = 0; s < LIVE; s++) {
    check(mine[s], mine_n[s], s + 100000 * (w + 1));
    h_free(mine[s]);
  }
  /* Half of the main thread's blocks, freed from here. */
  for (size_t i = w; i < SHARED; i += 2) {
    check(shared[i], shared_n[i], i);
    h_free(shared[i]);
  }
  return NULL;
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: dlopen_late /path/to/libhakmem.so\n");
    return 2;
  }
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *tun = getenv("GLIBC_TUNABLES");
    fprintf(stderr, "dlopen_late: FAIL: dlopen: %s (GLIBC_TUNABLES=%s)\n", dlerror(), tun ? tun : "");
    return 1;
  }
  h_malloc = (malloc_fn)dlsym(h, "hak_malloc");
  h_free = (free_fn)dlsym(h, "hak_free");
  h_usable = (usable_fn)dlsym(h, "hak_malloc_usable_size");
  version_fn version = (version_fn)dlsym(h, "hak_version");
  if (!h_malloc || !h_free || !h_usable || !version) {
    fprintf(stderr, "dlopen_late: FAIL: dlsym: %s\n", dlerror());
    return 1;
  }
  /* Every small class (1 B to 32 KiB), then large blocks up to 1 MiB. */
  for (size_t i = 0; i < SHARED; i++) {
    size_t n = i < 2000 ? 1 + i * 16 : (size_t)64 << 10 << (i % 5);
    shared[i] = alloc_checked(n, i);
    shared_n[i] = n;
  }
  pthread_t th[2];
  for (unsigned w = 0; w < 2; w++)
    if (pthread_create(&th[w], NULL, worker, (void *)(uintptr_t)w) != 0)
      fail("pthread_create", w);
  for (unsigned w = 0; w < 2; w++)
    pthread_join(th[w], NULL);
  printf("dlopen_late: %s loaded after start-up served 2 threads and the main one\n", version());
  return 0;
}

/*
 * test/consumer/consumer.c — a program built OUTSIDE the hakmem tree against
 * the installed library, the way a user builds one:
 *
 *   cc -o consumer consumer.c $(pkg-config --cflags --libs hakmem)
 *
 * It checks that the header and the library agree on the version, that the
 * program's plain malloc/free/realloc/calloc/posix_memalign are served by
 * hakmem (hakmem's own malloc_usable_size accepts the blocks, and hakmem's
 * counters move), and that libc's internal allocations (stdio) work too.
 *
 * Usage: consumer EXPECTED_VERSION   (e.g. the output of
 *        pkg-config --modversion hakmem). Exit 0 on success, 1 on a failure,
 *        with one line per check on stdout.
 */
#include <hakmem.h>

#include <malloc.h> /* malloc_usable_size (glibc) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check(int ok, const char *what)
{
  printf("%s: %s\n", ok ? "ok" : "FAIL", what);
  if (!ok)
    failures++;
}

static unsigned long long counter(const char *name, int *have)
{
  unsigned long long v = 0;
  *have = hak_stats_get(name, &v) == 0;
  return v;
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: %s EXPECTED_VERSION\n", argv[0]);
    return 2;
  }

  /* The library, the header and pkg-config name the same version. */
  char hdr[64];
  snprintf(hdr, sizeof hdr, "%d.%d.%d", HAKMEM_VERSION_MAJOR, HAKMEM_VERSION_MINOR,
           HAKMEM_VERSION_PATCH);
  const char *lib = hak_version();
  printf("hak_version() = %s, header %s, pkg-config %s\n", lib, hdr, argv[1]);
  printf("hak_config_string() = %s\n", hak_config_string());
  check(strcmp(lib, argv[1]) == 0, "hak_version() matches pkg-config --modversion");
  check(strcmp(lib, hdr) == 0, "hak_version() matches HAKMEM_VERSION_* of hakmem.h");

  /* Plain malloc is hakmem's: hakmem's usable-size lookup accepts the block
   * (it aborts on a pointer it did not hand out) and agrees with the
   * standard name. */
  void *p = malloc(100);
  check(p != NULL, "malloc(100)");
  size_t us = hak_malloc_usable_size(p);
  check(us >= 100 && us == malloc_usable_size(p), "hakmem knows malloc's block");
  check(((unsigned long)p & 15) == 0, "malloc(100) is 16-byte aligned");
  p = realloc(p, 5000);
  check(p != NULL && hak_malloc_usable_size(p) >= 5000, "realloc grows a hakmem block");
  free(p);

  int *z = calloc(1000, sizeof *z);
  int zero = z != NULL;
  for (int i = 0; zero && i < 1000; i++)
    zero = z[i] == 0;
  check(zero, "calloc gives zeroed memory");
  free(z);

  void *a = NULL;
  check(posix_memalign(&a, 4096, 1000) == 0 && ((unsigned long)a & 4095) == 0,
        "posix_memalign(4096)");
  check(hak_malloc_usable_size(a) >= 1000, "hakmem knows posix_memalign's block");
  free(a);

  /* hakmem's counters move when the program allocates. */
  int have = 0;
  unsigned long long large0 = counter("large_allocs", &have);
  if (!have && strstr(hak_config_string(), "stats=0") != NULL) {
    printf("skip: statistics compiled out (stats=0)\n");
  } else {
    check(have, "hak_stats_get(\"large_allocs\") answers");
    void *big = malloc(4u << 20);
    memset(big, 1, 4u << 20);
    unsigned long long large1 = counter("large_allocs", &have);
    check(large1 == large0 + 1, "a 4 MiB malloc is counted in large_allocs");
    free(big);

    void *blocks[2000];
    for (int i = 0; i < 2000; i++)
      blocks[i] = malloc(48);
    for (int i = 0; i < 2000; i++)
      free(blocks[i]);
    unsigned long long mapped = counter("superslabs_mapped", &have);
    check(have && mapped > 0, "hakmem mapped SuperSlabs for small blocks");
  }

  /* libc's own allocations (a FILE buffer) go through the same malloc. */
  FILE *f = tmpfile();
  check(f != NULL && fprintf(f, "%d\n", 42) > 0 && fclose(f) == 0, "stdio works");

  printf("%s\n", failures ? "consumer: FAILED" : "consumer: all checks passed");
  return failures ? 1 : 0;
}

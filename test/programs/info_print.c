/* info_print: glibc's introspection functions as a program not linked
 * with hakmem sees them when the library is preloaded. It allocates a
 * little (64 blocks of 48 bytes, one of 8 MiB), then writes
 *   stdout: malloc_info(0, stdout), XML;
 *   stderr: one line "mallinfo2 arena=N ordblks=N ..." with the figures
 *           taken right before it (no allocation in between: stdout has a
 *           static buffer), "einval ok" when malloc_info(1, ...) fails
 *           with EINVAL, then malloc_stats().
 * check_info.py runs it under LD_PRELOAD and checks all of that; without
 * the preload it prints glibc's figures (useful to compare by hand). */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char out_buf[1 << 16];

int main(void)
{
  if (setvbuf(stdout, out_buf, _IOFBF, sizeof out_buf) != 0)
    return 2;
  void *small[64];
  for (int i = 0; i < 64; i++)
    small[i] = malloc(48);
  char *big = malloc((size_t)8 << 20);
  if (!big)
    return 2;
  memset(big, 1, 4096);

  const struct mallinfo2 m = mallinfo2();
  if (malloc_info(0, stdout) != 0)
    return 1;
  fflush(stdout);
  fprintf(stderr,
          "mallinfo2 arena=%zu ordblks=%zu smblks=%zu hblks=%zu hblkhd=%zu usmblks=%zu fsmblks=%zu "
          "uordblks=%zu fordblks=%zu keepcost=%zu\n",
          m.arena, m.ordblks, m.smblks, m.hblks, m.hblkhd, m.usmblks, m.fsmblks, m.uordblks,
          m.fordblks, m.keepcost);
  errno = 0;
  if (malloc_info(1, stdout) == -1 && errno == EINVAL)
    fprintf(stderr, "einval ok\n");
  malloc_stats();

  for (int i = 0; i < 64; i++)
    free(small[i]);
  free(big);
  return 0;
}

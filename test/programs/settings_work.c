/* settings_work: a single-threaded, deterministic workload for
 * check_settings.py, not linked with hakmem (the test preloads it). It
 * keeps several SuperSlabs' worth of 2000-byte blocks live, frees them,
 * and does it again, so that the warm pool of that class misses after its
 * first SuperSlab and the prefill settings show in the counters. It writes
 * each block, checks every block before freeing it, and prints one line
 * with a checksum on stdout (the same with or without the preload). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BLOCK = 2000, LIVE = 2600, ROUNDS = 3 };

int main(void)
{
  static unsigned char *blocks[LIVE];
  uint64_t sum = 0;
  for (int r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < LIVE; i++) {
      blocks[i] = malloc(BLOCK);
      if (!blocks[i]) {
        fprintf(stderr, "settings_work: malloc failed\n");
        return 1;
      }
      memset(blocks[i], (i + r) & 0xff, BLOCK);
    }
    for (int i = 0; i < LIVE; i++) {
      if (blocks[i][0] != ((i + r) & 0xff) || blocks[i][BLOCK - 1] != ((i + r) & 0xff)) {
        fprintf(stderr, "settings_work: block %d of round %d overwritten\n", i, r);
        return 1;
      }
      sum += blocks[i][BLOCK / 2];
      free(blocks[i]);
    }
  }
  printf("settings_work: ok %d rounds of %d blocks, sum %llu\n", ROUNDS, LIVE, (unsigned long long)sum);
  return 0;
}

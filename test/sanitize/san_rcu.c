/*
 * test/sanitize/san_rcu.c — the registry's read side against its reclaim
 * side, for the sanitizer builds (ThreadSanitizer above all: this is where
 * liburcu's grace periods need the HAK_TSAN_* annotations).
 *
 * Three readers repeatedly, under registry_read_lock: load the published
 * chunk pointer, look its tag up, and if the tag says SMALL read the
 * chunk's first word, which must be the magic value. The writer, 300
 * times: maps a chunk, writes the magic, sets the tag, publishes the
 * pointer; then unpublishes it, clears the tag, waits for a grace period
 * (registry_synchronize) and unmaps the chunk. A reader that saw the tag
 * must never read unmapped or reused memory: ASan would see nothing (the
 * mapping is not its heap) but a missing grace period faults or reads a
 * wrong value, and TSan reports the unannotated ordering as a race.
 *
 * Unlike test/unit/test_registry.c's rcu case, the writer starts only when
 * every reader has done at least one read, and keeps going until each has
 * done at least 1,000, so the readers really overlap the reclaim (there
 * the readers may not have started before the writer is done).
 */
#include "registry/registry.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define READERS 3
#define ROUNDS  300
#define MAGIC   0xfeedfacecafebeefull

static _Atomic int stop;
static _Atomic(uint64_t *) published;
static _Atomic unsigned long reads[READERS], hits[READERS];

static void *reader(void *arg)
{
  unsigned id = (unsigned)(uintptr_t)arg;
  unsigned long n = 0, seen = 0, bad = 0;
  while (!atomic_load(&stop)) {
    registry_read_lock();
    uint64_t *p = atomic_load_explicit(&published, memory_order_acquire);
    if (p && hak_tag_kind(registry_tag(p)) == HAK_KIND_SMALL) {
      seen++;
      if (*(volatile uint64_t *)p != MAGIC)
        bad++;
    }
    registry_read_unlock();
    n++;
    atomic_store_explicit(&reads[id], n, memory_order_relaxed);
    atomic_store_explicit(&hits[id], seen, memory_order_relaxed);
  }
  return (void *)(uintptr_t)bad;
}

static unsigned long min_reads(void)
{
  unsigned long m = ~0ul;
  for (unsigned i = 0; i < READERS; i++) {
    unsigned long r = atomic_load_explicit(&reads[i], memory_order_relaxed);
    m = r < m ? r : m;
  }
  return m;
}

int main(void)
{
  pthread_t th[READERS];
  for (unsigned i = 0; i < READERS; i++)
    if (pthread_create(&th[i], NULL, reader, (void *)(uintptr_t)i) != 0) {
      fprintf(stderr, "san_rcu: pthread_create failed\n");
      return 1;
    }
  while (min_reads() == 0)
    sched_yield();
  unsigned rounds = 0;
  while (rounds < ROUNDS || min_reads() < 1000) {
    char *m = mmap(NULL, HAK_SS_SIZE * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      fprintf(stderr, "san_rcu: mmap failed\n");
      return 1;
    }
    uint64_t *chunk = (uint64_t *)(((uintptr_t)m + HAK_SS_SIZE - 1) & ~(uintptr_t)HAK_SS_MASK);
    *chunk = MAGIC;
    if (registry_set_tag((uintptr_t)chunk, hak_tag_make(HAK_KIND_SMALL, 1)) != 0) {
      fprintf(stderr, "san_rcu: registry_set_tag failed\n");
      return 1;
    }
    atomic_store_explicit(&published, chunk, memory_order_release);
    /* let the readers find it now and then */
    if (rounds % 4 == 0)
      sched_yield();
    atomic_store_explicit(&published, NULL, memory_order_release);
    registry_clear_tag((uintptr_t)chunk);
    registry_synchronize();
    *chunk = 0; /* reclaimed: no reader may still be reading it */
    munmap(m, HAK_SS_SIZE * 2);
    rounds++;
  }
  atomic_store(&stop, 1);
  unsigned long bad = 0, total = 0, seen = 0;
  for (unsigned i = 0; i < READERS; i++) {
    void *r;
    pthread_join(th[i], &r);
    bad += (unsigned long)(uintptr_t)r;
    total += atomic_load(&reads[i]);
    seen += atomic_load(&hits[i]);
  }
  printf("san_rcu: %u reclaim rounds, %lu reads, %lu of them found the live chunk, %lu bad\n", rounds, total, seen,
         bad);
  if (bad) {
    fprintf(stderr, "san_rcu: FAIL: %lu reads saw a reclaimed chunk\n", bad);
    return 1;
  }
  return 0;
}

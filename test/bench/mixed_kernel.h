/*
 * mixed_kernel.h — the random-mixed loop shared by random_mixed (one thread)
 * and scaling (N threads, each with its own slots).
 *
 * One operation = one visit to a random slot: free the block there (after
 * checking its tag) if there is one, then malloc a block of a size uniform
 * in [min, max] and write its tag and last byte. After the working set has
 * filled, every operation is one free and one malloc.
 */
#ifndef HAK_BENCH_MIXED_KERNEL_H
#define HAK_BENCH_MIXED_KERNEL_H

#include "bench_common.h"

typedef struct {
    void *ptr;
    size_t size;
    uint64_t tag;
} mixed_slot_t;

/* Runs `ops` operations over `ws` slots; returns the number of bad blocks.
 * The slots are left holding live blocks: see mixed_release(). */
static inline uint64_t mixed_run(mixed_slot_t *slots, uint64_t ws, uint64_t ops,
                                 uint64_t min, uint64_t max, bench_rng_t *rng)
{
    uint64_t errors = 0;
    for (uint64_t i = 0; i < ops; i++) {
        mixed_slot_t *s = &slots[bench_rng_below(rng, ws)];
        if (s->ptr != NULL) {
            errors += bench_check(s->ptr, s->size, s->tag);
            free(s->ptr);
        }
        size_t size = (size_t)bench_rng_range(rng, min, max);
        void *p = malloc(size);
        if (BENCH_UNLIKELY(p == NULL))
            bench_alloc_failed("malloc", size);
        uint64_t tag = bench_tag(i);
        errors += bench_fill(p, size, tag);
        s->ptr = p;
        s->size = size;
        s->tag = tag;
    }
    return errors;
}

/* Frees what is left; returns the number of bad blocks. */
static inline uint64_t mixed_release(mixed_slot_t *slots, uint64_t ws)
{
    uint64_t errors = 0;
    for (uint64_t i = 0; i < ws; i++) {
        if (slots[i].ptr != NULL) {
            errors += bench_check(slots[i].ptr, slots[i].size, slots[i].tag);
            free(slots[i].ptr);
            slots[i].ptr = NULL;
        }
    }
    return errors;
}

#endif /* HAK_BENCH_MIXED_KERNEL_H */

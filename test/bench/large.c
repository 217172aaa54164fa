/*
 * large — big blocks with a small live set: `live` slots; each operation
 * picks a random slot, frees its block (after checking the tag) and
 * mallocs a new one of a size between min and max (log-uniform: a random
 * power-of-two band, then uniform inside it), then writes one byte in every
 * page of it, as a program that fills its buffer would. This measures how
 * the allocator reuses large mappings and how much page-fault work it
 * leaves to the program.
 *
 * Operation = one block's malloc, page touching and free (a pair).
 */
#include "bench_common.h"

typedef struct {
    unsigned char *ptr;
    size_t size;
    uint64_t tag;
} slot_t;

static inline size_t pick_size(bench_rng_t *rng, uint64_t min, uint64_t max)
{
    unsigned bands = 0;
    while ((min << (bands + 1)) <= max)
        bands++;
    uint64_t lo = min << bench_rng_below(rng, (uint64_t)bands + 1);
    uint64_t hi = lo * 2 - 1 < max ? lo * 2 - 1 : max;
    return (size_t)bench_rng_range(rng, lo, hi);
}

int main(int argc, char **argv)
{
    uint64_t live = 4, ops = 5000, min = 65536, max = 8 << 20, seed = 1;
    const bench_opt_t opts[] = {
        { "live", &live, 0, 1, 1 << 16, "blocks live at once (slots)" },
        { "ops", &ops, 0, 1, UINT64_MAX / 2, "operations (block replacements)" },
        { "min", &min, 1, 8, UINT64_C(1) << 36, "smallest block size in bytes" },
        { "max", &max, 1, 8, UINT64_C(1) << 36, "largest block size in bytes" },
        { "seed", &seed, 0, 0, UINT64_MAX, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
        "Large blocks (default 64 KiB..8 MiB), every page touched, few live.",
        opts, BENCH_NOPTS(opts));
    if (min > max)
        bench_die(64, "--min must not exceed --max");

    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    slot_t *slots = bench_map(live * sizeof *slots);
    bench_rng_t rng;
    bench_rng_seed(&rng, seed, 0);
    uint64_t errors = 0;

    double t0 = bench_now();
    for (uint64_t i = 0; i < ops; i++) {
        slot_t *s = &slots[bench_rng_below(&rng, live)];
        if (s->ptr != NULL) {
            errors += bench_check(s->ptr, s->size, s->tag);
            free(s->ptr);
        }
        size_t size = pick_size(&rng, min, max);
        unsigned char *p = malloc(size);
        if (BENCH_UNLIKELY(p == NULL))
            bench_alloc_failed("malloc", size);
        /* One byte per page, from the first page boundary after p; the
         * tag then covers the first bytes and the last byte. */
        for (size_t off = page - ((uintptr_t)p & (page - 1)); off < size; off += page)
            p[off] = (unsigned char)i;
        s->tag = bench_tag(i);
        errors += bench_fill(p, size, s->tag);
        s->ptr = p;
        s->size = size;
    }
    double t1 = bench_now();

    for (uint64_t i = 0; i < live; i++) {
        if (slots[i].ptr != NULL) {
            errors += bench_check(slots[i].ptr, slots[i].size, slots[i].tag);
            free(slots[i].ptr);
        }
    }
    bench_require_no_errors("large", errors);

    char params[96];
    snprintf(params, sizeof params, "live=%" PRIu64 " threads=1", live);
    bench_report("large", params, ops, t1 - t0);
    bench_unmap(slots, live * sizeof *slots);
    return 0;
}

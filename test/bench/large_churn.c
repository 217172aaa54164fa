/*
 * large_churn — multi-MiB blocks churned through a working set, the pattern
 * of mimalloc-bench's malloc-large: `slots` slots (default 20, as there),
 * each operation picks a random slot, frees its block and mallocs a new one
 * of a size uniform in min..max (5..25 MiB), then writes one byte every
 * `stride` bytes of it (default: one per 4 KiB page), as a program that
 * fills its buffer would. malloc-large zero-fills every byte; one byte per
 * page causes the same page faults on memory the allocator hands out fresh
 * from the kernel, without the memory bandwidth every allocator pays alike.
 * A larger --stride (say 1G: only the tag at the start and the last byte)
 * measures the allocator's own mapping work alone.
 *
 * So the figure shows whether the allocator reuses the freed multi-MiB
 * ranges (no faults: fast, but the memory stays resident) or returns them
 * to the kernel and maps new ones (a fault per page touched), and the peak
 * RSS shows what the reuse costs.
 *
 * The slots are filled first, outside the clock. Operation = one slot
 * replacement: the free of the old block, the malloc and the touching of the
 * new one. minflt = minor page faults of the process in the timed part.
 */
#include "bench_common.h"

typedef struct {
    unsigned char *ptr;
    size_t size;
    uint64_t tag;
} slot_t;

static unsigned char *fresh_block(bench_rng_t *rng, uint64_t min, uint64_t max,
                                  uint64_t stride, uint64_t serial, slot_t *s,
                                  uint64_t *errors)
{
    size_t size = (size_t)bench_rng_range(rng, min, max);
    unsigned char *p = malloc(size);
    if (BENCH_UNLIKELY(p == NULL))
        bench_alloc_failed("malloc", size);
    /* From the first stride boundary after p; the tag, written after, then
     * covers the first bytes and the last byte. */
    for (size_t off = stride - ((uintptr_t)p & (stride - 1)); off < size; off += stride)
        p[off] = (unsigned char)serial;
    s->tag = bench_tag(serial);
    *errors += bench_fill(p, size, s->tag);
    s->ptr = p;
    s->size = size;
    return p;
}

int main(int argc, char **argv)
{
    uint64_t slots = 20, ops = 50, min = 5 << 20, max = 25 << 20, stride = 4096,
             seed = 1;
    const bench_opt_t opts[] = {
        { "slots", &slots, 0, 1, 1 << 16, "blocks live at once" },
        { "ops", &ops, 0, 1, UINT64_MAX / 2, "operations (slot replacements)" },
        { "min", &min, 1, 8, UINT64_C(1) << 36, "smallest block size in bytes" },
        { "max", &max, 1, 8, UINT64_C(1) << 36, "largest block size in bytes" },
        { "stride", &stride, 1, 64, UINT64_C(1) << 40,
          "write one byte every STRIDE bytes (a power of 2)" },
        { "seed", &seed, 0, 0, UINT64_MAX, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
        "Multi-MiB blocks (default 5..25 MiB, 20 live) replaced at random, one\n"
        "byte per page of every new block written.",
        opts, BENCH_NOPTS(opts));
    if (min > max)
        bench_die(64, "--min must not exceed --max");
    if ((stride & (stride - 1)) != 0)
        bench_die(64, "--stride must be a power of 2");

    slot_t *slot = bench_map(slots * sizeof *slot);
    bench_rng_t rng;
    bench_rng_seed(&rng, seed, 0);
    uint64_t errors = 0, serial = 0;
    for (uint64_t i = 0; i < slots; i++)
        bench_escape(fresh_block(&rng, min, max, stride, serial++, &slot[i], &errors));

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = bench_now();
    for (uint64_t i = 0; i < ops; i++) {
        slot_t *s = &slot[bench_rng_below(&rng, slots)];
        errors += bench_check(s->ptr, s->size, s->tag);
        free(s->ptr);
        bench_escape(fresh_block(&rng, min, max, stride, serial++, s, &errors));
    }
    double t1 = bench_now();
    getrusage(RUSAGE_SELF, &ru1);

    for (uint64_t i = 0; i < slots; i++) {
        errors += bench_check(slot[i].ptr, slot[i].size, slot[i].tag);
        free(slot[i].ptr);
    }
    bench_require_no_errors("large_churn", errors);

    char params[192];
    snprintf(params, sizeof params,
             "slots=%" PRIu64 " min=%" PRIu64 " max=%" PRIu64 " stride=%" PRIu64
             " minflt=%ld threads=1",
             slots, min, max, stride, ru1.ru_minflt - ru0.ru_minflt);
    bench_report("large_churn", params, ops, t1 - t0);
    bench_unmap(slot, slots * sizeof *slot);
    return 0;
}

/*
 * random_mixed — one thread, a working set of `ws` slots; each operation
 * picks a random slot, frees the block in it (if any) and puts a new block of
 * a random size (uniform in min..max) there, writing a few bytes into it.
 *
 * Operation = one slot replacement (a malloc+free pair once the slots are
 * full). The standard working sets are 400 (fits in the caches) and 8192.
 */
#include "mixed_kernel.h"

int main(int argc, char **argv)
{
    uint64_t ws = 400, ops = 20000000, seed = 1, min = 16, max = 1024;
    const bench_opt_t opts[] = {
        { "ws", &ws, 0, 1, UINT64_C(1) << 28, "working set: number of slots" },
        { "ops", &ops, 0, 1, UINT64_MAX / 2, "operations (slot replacements)" },
        { "min", &min, 1, 1, UINT64_C(1) << 30, "smallest block size in bytes" },
        { "max", &max, 1, 1, UINT64_C(1) << 30, "largest block size in bytes" },
        { "seed", &seed, 0, 0, UINT64_MAX, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
        "Random mixed malloc/free on one thread over a working set of slots.",
        opts, BENCH_NOPTS(opts));
    if (min > max)
        bench_die(64, "--min must not exceed --max");

    mixed_slot_t *slots = bench_map(ws * sizeof *slots);
    bench_rng_t rng;
    bench_rng_seed(&rng, seed, 0);

    double t0 = bench_now();
    uint64_t errors = mixed_run(slots, ws, ops, min, max, &rng);
    double t1 = bench_now();
    errors += mixed_release(slots, ws);
    bench_require_no_errors("random_mixed", errors);

    char params[96];
    snprintf(params, sizeof params, "ws=%" PRIu64 " threads=1", ws);
    bench_report("random_mixed", params, ops, t1 - t0);
    bench_unmap(slots, ws * sizeof *slots);
    return 0;
}

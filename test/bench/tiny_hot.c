/*
 * tiny_hot — the allocator's hottest path: one fixed small size, a batch of
 * `batch` mallocs followed by the `batch` frees (in allocation order),
 * repeated `rounds` times on one thread. Standard sizes: 16 and 64 bytes.
 *
 * Operation = one block's malloc and its free (a pair), so
 * ops = rounds * batch. Each block gets a tag from its serial number
 * written at malloc and checked at free.
 */
#include "bench_common.h"

int main(int argc, char **argv)
{
    uint64_t size = 16, rounds = 500000, batch = 100;
    const bench_opt_t opts[] = {
        { "size", &size, 1, 1, UINT64_C(1) << 20, "block size in bytes" },
        { "rounds", &rounds, 0, 1, UINT64_MAX / 65536, "rounds of batch mallocs then batch frees" },
        { "batch", &batch, 0, 1, 65536, "blocks per round" },
    };
    bench_parse_args(argc, argv,
        "Fixed-size batch: N mallocs then N frees, repeated.",
        opts, BENCH_NOPTS(opts));

    void **blocks = bench_map(batch * sizeof *blocks);
    const size_t sz = (size_t)size;
    const uint64_t n = batch;
    uint64_t errors = 0;

    double t0 = bench_now();
    for (uint64_t r = 0, serial = 0; r < rounds; r++, serial += n) {
        for (uint64_t i = 0; i < n; i++) {
            void *p = malloc(sz);
            if (BENCH_UNLIKELY(p == NULL))
                bench_alloc_failed("malloc", sz);
            errors += bench_fill(p, sz, bench_tag(serial + i));
            blocks[i] = p;
        }
        bench_escape(blocks);
        for (uint64_t i = 0; i < n; i++) {
            errors += bench_check(blocks[i], sz, bench_tag(serial + i));
            free(blocks[i]);
        }
    }
    double t1 = bench_now();
    bench_require_no_errors("tiny_hot", errors);

    char params[96];
    snprintf(params, sizeof params, "size=%" PRIu64 " batch=%" PRIu64 " threads=1",
             size, batch);
    bench_report("tiny_hot", params, rounds * batch, t1 - t0);
    bench_unmap(blocks, batch * sizeof *blocks);
    return 0;
}

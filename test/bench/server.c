/*
 * server — larson-like: T threads share one array of `ws` slots. Each
 * operation mallocs a block of a random size (uniform in min..max), writes
 * its tag, swaps it into a random slot with an atomic exchange and frees the
 * block it took out (after checking that block's tag). The block taken out
 * was usually allocated by another thread, so most frees are remote, and
 * blocks migrate between threads the way they do in a server that hands
 * requests around.
 *
 * Operation = one slot replacement (a malloc+free pair once the slots are
 * full). --ops is per thread; the result line's ops= is the total. The
 * exchange is acq_rel: the tag written by the allocating thread is visible
 * to the thread that takes the block out, so the check is race-free. The
 * slots hold nothing but the pointer, so the tag is derived from the
 * address: it catches overlapping blocks, not one block handed out twice.
 */
#include "bench_common.h"

#include <stdatomic.h>

typedef struct {
    _Alignas(BENCH_CACHE_LINE) _Atomic(void *) *slots;
    uint64_t ws, ops, min, max, seed, index, errors;
    pthread_barrier_t *start;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    _Atomic(void *) *slots = w->slots;
    const uint64_t ws = w->ws, min = w->min, max = w->max;
    bench_rng_t rng;
    bench_rng_seed(&rng, w->seed, w->index + 1);
    uint64_t errors = 0;
    pthread_barrier_wait(w->start);
    for (uint64_t i = 0; i < w->ops; i++) {
        size_t size = (size_t)bench_rng_range(&rng, min, max);
        void *p = malloc(size);
        if (BENCH_UNLIKELY(p == NULL))
            bench_alloc_failed("malloc", size);
        errors += bench_fill(p, size, bench_tag_of(p));
        void *old = atomic_exchange_explicit(&slots[bench_rng_below(&rng, ws)], p,
                                             memory_order_acq_rel);
        if (old != NULL) {
            errors += bench_check(old, 8, bench_tag_of(old));
            free(old);
        }
    }
    w->errors = errors;
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t threads = 4, ws = 8192, ops = 5000000, min = 16, max = 1024, seed = 1;
    const bench_opt_t opts[] = {
        { "threads", &threads, 0, 1, 1024, "number of threads" },
        { "ws", &ws, 0, 1, UINT64_C(1) << 28, "slots in the shared array" },
        { "ops", &ops, 0, 1, UINT64_MAX / 2048, "operations per thread" },
        { "min", &min, 1, 8, UINT64_C(1) << 30, "smallest block size in bytes" },
        { "max", &max, 1, 8, UINT64_C(1) << 30, "largest block size in bytes" },
        { "seed", &seed, 0, 0, UINT64_MAX, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
        "Larson-like: threads replace random blocks in one shared array.",
        opts, BENCH_NOPTS(opts));
    if (min > max)
        bench_die(64, "--min must not exceed --max");

    _Atomic(void *) *slots = bench_map(ws * sizeof *slots);
    size_t wbytes = threads * sizeof(worker_t);
    worker_t *w = bench_map(wbytes);
    pthread_t *tid = bench_map(threads * sizeof *tid);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (uint64_t i = 0; i < threads; i++) {
        w[i].slots = slots;
        w[i].ws = ws;
        w[i].ops = ops;
        w[i].min = min;
        w[i].max = max;
        w[i].seed = seed;
        w[i].index = i;
        w[i].start = &start;
        bench_thread_start(&tid[i], worker, &w[i]);
    }
    pthread_barrier_wait(&start);
    double t0 = bench_now();
    for (uint64_t i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    double t1 = bench_now();

    uint64_t errors = 0;
    for (uint64_t i = 0; i < threads; i++)
        errors += w[i].errors;
    for (uint64_t i = 0; i < ws; i++) {
        void *p = atomic_load_explicit(&slots[i], memory_order_acquire);
        if (p != NULL) {
            errors += bench_check(p, 8, bench_tag_of(p));
            free(p);
        }
    }
    bench_require_no_errors("server", errors);
    pthread_barrier_destroy(&start);

    char params[96];
    snprintf(params, sizeof params, "ws=%" PRIu64 " threads=%" PRIu64, ws, threads);
    bench_report("server", params, ops * threads, t1 - t0);
    bench_unmap(tid, threads * sizeof *tid);
    bench_unmap(w, wbytes);
    bench_unmap(slots, ws * sizeof *slots);
    return 0;
}

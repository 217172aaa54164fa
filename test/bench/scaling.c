/*
 * scaling — the random-mixed workload in T threads at once, each thread with
 * its own slots and its own PRNG stream, so nothing is shared but the
 * allocator. Compare mops across T = 1, 2, 4, 8 (on a machine with fewer
 * cores than threads the figure shows oversubscription, not scaling).
 *
 * Operation = one slot replacement (a malloc+free pair once the slots are
 * full). --ops is per thread; the result line's ops= is the total.
 * Threads start together on a barrier; the time runs until the last one has
 * been joined (thread exit, and the allocator's thread teardown, included).
 */
#include "mixed_kernel.h"

typedef struct {
    _Alignas(BENCH_CACHE_LINE) mixed_slot_t *slots;
    uint64_t ws, ops, min, max, seed, index, errors;
    pthread_barrier_t *start;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    bench_rng_t rng;
    bench_rng_seed(&rng, w->seed, w->index + 1);
    pthread_barrier_wait(w->start);
    w->errors = mixed_run(w->slots, w->ws, w->ops, w->min, w->max, &rng);
    w->errors += mixed_release(w->slots, w->ws);
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t threads = 4, ws = 400, ops = 5000000, seed = 1, min = 16, max = 1024;
    const bench_opt_t opts[] = {
        { "threads", &threads, 0, 1, 1024, "number of threads" },
        { "ws", &ws, 0, 1, UINT64_C(1) << 26, "slots per thread" },
        { "ops", &ops, 0, 1, UINT64_MAX / 2048, "operations per thread" },
        { "min", &min, 1, 1, UINT64_C(1) << 30, "smallest block size in bytes" },
        { "max", &max, 1, 1, UINT64_C(1) << 30, "largest block size in bytes" },
        { "seed", &seed, 0, 0, UINT64_MAX, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
        "Random mixed malloc/free in T threads, each over its own slots.",
        opts, BENCH_NOPTS(opts));
    if (min > max)
        bench_die(64, "--min must not exceed --max");

    size_t wbytes = threads * sizeof(worker_t);
    worker_t *w = bench_map(wbytes);
    pthread_t *tid = bench_map(threads * sizeof *tid);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (uint64_t i = 0; i < threads; i++) {
        w[i].slots = bench_map(ws * sizeof(mixed_slot_t));
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
    for (uint64_t i = 0; i < threads; i++) {
        errors += w[i].errors;
        bench_unmap(w[i].slots, ws * sizeof(mixed_slot_t));
    }
    bench_require_no_errors("scaling", errors);
    pthread_barrier_destroy(&start);

    char params[96];
    snprintf(params, sizeof params, "ws=%" PRIu64 " threads=%" PRIu64, ws, threads);
    bench_report("scaling", params, ops * threads, t1 - t0);
    bench_unmap(tid, threads * sizeof *tid);
    bench_unmap(w, wbytes);
    return 0;
}

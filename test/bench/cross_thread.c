/*
 * cross_thread — every free is remote. `pairs` producer/consumer pairs; each
 * producer mallocs blocks of small mixed sizes (uniform in min..max), writes
 * their tag and passes them through a single-producer/single-consumer ring
 * to its consumer, which checks the tag and frees them.
 *
 * Operation = one block allocated by a producer and freed by a consumer
 * (a pair). --ops is per pair; the result line's ops= is the total and
 * threads= is 2 * pairs.
 *
 * The ring is a bounded Lamport queue: the producer owns `head`, the
 * consumer owns `tail`, each keeps a cached copy of the other's index and
 * reloads it (acquire) only when the ring looks full or empty, so in steady
 * state the ring costs one release store per block on each side. A thread
 * that must wait spins briefly and then yields (fewer cores than threads is
 * normal here). The rings are mmapped before the clock starts.
 */
#include "bench_common.h"

#include <stdatomic.h>

typedef struct {
    _Alignas(BENCH_CACHE_LINE) _Atomic uint64_t head;   /* written by producer */
    uint64_t tail_cache;                                 /* producer's view */
    _Alignas(BENCH_CACHE_LINE) _Atomic uint64_t tail;   /* written by consumer */
    uint64_t head_cache;                                 /* consumer's view */
    _Alignas(BENCH_CACHE_LINE) void **slot;
    uint64_t mask;
    uint64_t ops, min, max, seed, index;
    pthread_barrier_t *start;
    /* Each written once, by its own thread, after its loop. */
    _Alignas(BENCH_CACHE_LINE) uint64_t producer_errors;
    uint64_t consumer_errors;
} ring_t;

static void *producer(void *arg)
{
    ring_t *r = arg;
    bench_rng_t rng;
    bench_rng_seed(&rng, r->seed, r->index + 1);
    const uint64_t cap = r->mask + 1;
    uint64_t head = 0, errors = 0;
    pthread_barrier_wait(r->start);
    for (uint64_t i = 0; i < r->ops; i++) {
        size_t size = (size_t)bench_rng_range(&rng, r->min, r->max);
        void *p = malloc(size);
        if (BENCH_UNLIKELY(p == NULL))
            bench_alloc_failed("malloc", size);
        errors += bench_fill(p, size, bench_tag(i));
        if (BENCH_UNLIKELY(head - r->tail_cache == cap)) {
            unsigned spins = 0;
            while ((r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire))
                   + cap == head)
                bench_backoff(&spins);
        }
        r->slot[head & r->mask] = p;
        atomic_store_explicit(&r->head, ++head, memory_order_release);
    }
    r->producer_errors = errors;
    return NULL;
}

/* The ring is FIFO, so the i-th block out is the producer's i-th: its tag
 * is known. The size is not: check the first 8 bytes, which every block
 * here has (--min is at least 8). */
static void *consumer(void *arg)
{
    ring_t *r = arg;
    uint64_t tail = 0, errors = 0;
    pthread_barrier_wait(r->start);
    for (uint64_t i = 0; i < r->ops; i++) {
        if (BENCH_UNLIKELY(tail == r->head_cache)) {
            unsigned spins = 0;
            while ((r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire))
                   == tail)
                bench_backoff(&spins);
        }
        void *p = r->slot[tail & r->mask];
        atomic_store_explicit(&r->tail, ++tail, memory_order_release);
        errors += bench_check(p, 8, bench_tag(i));
        free(p);
    }
    r->consumer_errors = errors;
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t pairs = 1, ops = 10000000, min = 16, max = 256, ring = 1024, seed = 1;
    const bench_opt_t opts[] = {
        { "pairs", &pairs, 0, 1, 512, "producer/consumer pairs" },
        { "ops", &ops, 0, 1, UINT64_MAX / 1024, "blocks passed per pair" },
        { "min", &min, 1, 8, UINT64_C(1) << 20, "smallest block size in bytes" },
        { "max", &max, 1, 8, UINT64_C(1) << 20, "largest block size in bytes" },
        { "ring", &ring, 0, 2, UINT64_C(1) << 24, "ring capacity (rounded up to a power of 2)" },
        { "seed", &seed, 0, 0, UINT64_MAX, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
        "Producers malloc, consumers free through SPSC rings: all frees remote.",
        opts, BENCH_NOPTS(opts));
    if (min > max)
        bench_die(64, "--min must not exceed --max");
    uint64_t cap = 1;
    while (cap < ring)
        cap <<= 1;

    size_t rbytes = pairs * sizeof(ring_t);
    ring_t *rings = bench_map(rbytes);
    pthread_t *tid = bench_map(2 * pairs * sizeof *tid);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)(2 * pairs + 1));
    for (uint64_t i = 0; i < pairs; i++) {
        ring_t *r = &rings[i];
        r->slot = bench_map(cap * sizeof *r->slot);
        r->mask = cap - 1;
        r->ops = ops;
        r->min = min;
        r->max = max;
        r->seed = seed;
        r->index = i;
        r->start = &start;
        bench_thread_start(&tid[2 * i], producer, r);
        bench_thread_start(&tid[2 * i + 1], consumer, r);
    }
    pthread_barrier_wait(&start);
    double t0 = bench_now();
    for (uint64_t i = 0; i < 2 * pairs; i++)
        pthread_join(tid[i], NULL);
    double t1 = bench_now();

    uint64_t errors = 0;
    for (uint64_t i = 0; i < pairs; i++) {
        errors += rings[i].producer_errors + rings[i].consumer_errors;
        bench_unmap(rings[i].slot, cap * sizeof *rings[i].slot);
    }
    bench_require_no_errors("cross_thread", errors);
    pthread_barrier_destroy(&start);

    char params[96];
    snprintf(params, sizeof params, "pairs=%" PRIu64 " threads=%" PRIu64, pairs, 2 * pairs);
    bench_report("cross_thread", params, ops * pairs, t1 - t0);
    bench_unmap(tid, 2 * pairs * sizeof *tid);
    bench_unmap(rings, rbytes);
    return 0;
}

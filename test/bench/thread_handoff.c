/*
 * thread_handoff — threads created and joined continuously while blocks
 * pass between them, the pattern of mimalloc's test-stress and
 * mimalloc-bench's mstress and xmalloc-test: a run is `rounds`
 * generations; in each the main thread starts `threads` threads and joins
 * them all before starting the next. A thread does `ops` operations: it
 * mallocs a block (size uniform in min..max, or with probability
 * large-pct % uniform in 1 KiB..large-max) and puts it either into one of
 * the `shared` slots that all threads of all generations use (share-pct %
 * of the time; atomic exchange) or into one of its own `local` slots,
 * freeing what the slot held. At exit it frees its local blocks; the
 * shared ones stay, so most shared blocks are freed by another thread,
 * often of a later generation, after the thread that allocated them has
 * gone. This measures thread start-up and teardown in the allocator, frees
 * of blocks whose owner has exited, and how the memory of dead threads is
 * reused.
 *
 * Operation = one block allocated and, once its slot is full, the free of
 * the block it replaces (a malloc+free pair). ops= on the result line is
 * threads * ops * rounds; the time runs from the first generation's start
 * to the last one's join (thread creation and exit included); the blocks
 * still in the shared slots are freed after that. minflt = minor page
 * faults of the process over the timed region.
 *
 * Tags: a local slot keeps the block's full tag beside it. A shared slot
 * is one word: the pointer with the tag's top 16 bits in its top 16 bits
 * (user addresses on x86-64 and AArch64 fit in 48 bits; the program stops
 * if one does not), so a block handed out twice is caught with probability
 * 1 - 2^-16 per check.
 */
#include "bench_common.h"

#include <stdatomic.h>

#define ADDR_BITS 48
#define ADDR_MASK ((UINT64_C(1) << ADDR_BITS) - 1)

typedef struct {
    uint64_t threads, ops, min, max, large_pct, large_max, share_pct, seed;
    uint64_t nshared, nlocal;
    _Atomic uint64_t *shared;
} config_t;

typedef struct {
    _Alignas(BENCH_CACHE_LINE) const config_t *cfg;
    void **local;        /* nlocal slots, empty between generations */
    uint64_t *local_tag;
    uint64_t serial;     /* generation * threads + index: unique per thread */
    uint64_t errors;     /* accumulated over the generations */
} worker_t;

static inline unsigned check_shared(uint64_t word)
{
    uint64_t got;
    memcpy(&got, (const void *)(uintptr_t)(word & ADDR_MASK), sizeof got);
    return (got >> ADDR_BITS) != (word >> ADDR_BITS);
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    const config_t *c = w->cfg;
    bench_rng_t rng;
    bench_rng_seed(&rng, c->seed, w->serial + 1);
    uint64_t errors = 0;
    for (uint64_t i = 0; i < c->ops; i++) {
        size_t size = bench_rng_below(&rng, 100) < c->large_pct
            ? (size_t)bench_rng_range(&rng, 1024, c->large_max)
            : (size_t)bench_rng_range(&rng, c->min, c->max);
        uint64_t tag = bench_tag((w->serial << 32) | i);
        void *p = malloc(size);
        if (BENCH_UNLIKELY(p == NULL))
            bench_alloc_failed("malloc", size);
        errors += bench_fill(p, size, tag);
        if (bench_rng_below(&rng, 100) < c->share_pct) {
            uint64_t word = (uint64_t)(uintptr_t)p;
            if (BENCH_UNLIKELY((word & ~ADDR_MASK) != 0))
                bench_die(2, "block %p lies above 2^48: cannot tag a shared slot", p);
            word |= tag & ~ADDR_MASK;
            uint64_t old = atomic_exchange_explicit(
                &c->shared[bench_rng_below(&rng, c->nshared)], word,
                memory_order_acq_rel);
            if (old != 0) {
                errors += check_shared(old);
                free((void *)(uintptr_t)(old & ADDR_MASK));
            }
        } else {
            uint64_t j = bench_rng_below(&rng, c->nlocal);
            if (w->local[j] != NULL) {
                errors += bench_check(w->local[j], 8, w->local_tag[j]);
                free(w->local[j]);
            }
            w->local[j] = p;
            w->local_tag[j] = tag;
        }
    }
    for (uint64_t j = 0; j < c->nlocal; j++) {
        if (w->local[j] != NULL) {
            errors += bench_check(w->local[j], 8, w->local_tag[j]);
            free(w->local[j]);
            w->local[j] = NULL;
        }
    }
    w->errors += errors;
    return NULL;
}

int main(int argc, char **argv)
{
    config_t c = {
        .threads = 8, .ops = 2000, .min = 16, .max = 1024, .large_pct = 1,
        .large_max = 65536, .share_pct = 50, .seed = 1, .nshared = 1000,
        .nlocal = 256,
    };
    uint64_t rounds = 100;
    const bench_opt_t opts[] = {
        { "threads", &c.threads, 0, 1, 1024, "threads per generation" },
        { "rounds", &rounds, 0, 1, UINT32_MAX / 1024, "generations" },
        { "ops", &c.ops, 0, 1, UINT32_MAX, "blocks allocated per thread per generation" },
        { "min", &c.min, 1, 8, UINT64_C(1) << 20, "smallest small block, bytes" },
        { "max", &c.max, 1, 8, UINT64_C(1) << 20, "largest small block, bytes" },
        { "large-pct", &c.large_pct, 0, 0, 100, "percent of blocks of 1 KiB..large-max" },
        { "large-max", &c.large_max, 1, 1024, UINT64_C(1) << 30, "largest large block, bytes" },
        { "share-pct", &c.share_pct, 0, 0, 100, "percent of blocks put in a shared slot" },
        { "shared", &c.nshared, 0, 1, UINT64_C(1) << 24, "shared slots (all threads)" },
        { "local", &c.nlocal, 0, 1, UINT64_C(1) << 24, "local slots per thread" },
        { "seed", &c.seed, 0, 0, UINT64_MAX, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
        "Generations of threads, created and joined in turn, pass blocks through\n"
        "shared slots: blocks are freed by threads that did not allocate them,\n"
        "mostly after their owner exited.",
        opts, BENCH_NOPTS(opts));
    if (c.min > c.max)
        bench_die(64, "--min must not exceed --max");

    c.shared = bench_map(c.nshared * sizeof *c.shared);
    size_t wbytes = c.threads * sizeof(worker_t);
    worker_t *w = bench_map(wbytes);
    pthread_t *tid = bench_map(c.threads * sizeof *tid);
    for (uint64_t i = 0; i < c.threads; i++) {
        w[i].cfg = &c;
        w[i].local = bench_map(c.nlocal * sizeof *w[i].local);
        w[i].local_tag = bench_map(c.nlocal * sizeof *w[i].local_tag);
    }

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = bench_now();
    for (uint64_t g = 0; g < rounds; g++) {
        for (uint64_t i = 0; i < c.threads; i++) {
            w[i].serial = g * c.threads + i;
            bench_thread_start(&tid[i], worker, &w[i]);
        }
        for (uint64_t i = 0; i < c.threads; i++)
            pthread_join(tid[i], NULL);
    }
    double t1 = bench_now();
    getrusage(RUSAGE_SELF, &ru1);

    uint64_t errors = 0;
    for (uint64_t i = 0; i < c.nshared; i++) {
        uint64_t word = atomic_load_explicit(&c.shared[i], memory_order_relaxed);
        if (word != 0) {
            errors += check_shared(word);
            free((void *)(uintptr_t)(word & ADDR_MASK));
        }
    }
    for (uint64_t i = 0; i < c.threads; i++)
        errors += w[i].errors;
    bench_require_no_errors("thread_handoff", errors);

    char params[256];
    snprintf(params, sizeof params,
             "rounds=%" PRIu64 " ops_per_thread=%" PRIu64 " shared=%" PRIu64
             " local=%" PRIu64 " large_pct=%" PRIu64 " minflt=%ld threads=%" PRIu64,
             rounds, c.ops, c.nshared, c.nlocal, c.large_pct,
             ru1.ru_minflt - ru0.ru_minflt, c.threads);
    bench_report("thread_handoff", params, c.threads * c.ops * rounds, t1 - t0);

    for (uint64_t i = 0; i < c.threads; i++) {
        bench_unmap(w[i].local, c.nlocal * sizeof *w[i].local);
        bench_unmap(w[i].local_tag, c.nlocal * sizeof *w[i].local_tag);
    }
    bench_unmap(tid, c.threads * sizeof *tid);
    bench_unmap(w, wbytes);
    bench_unmap((void *)c.shared, c.nshared * sizeof *c.shared);
    return 0;
}

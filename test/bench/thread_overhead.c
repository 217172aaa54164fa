/*
 * thread_overhead — the memory a thread costs once it has used the
 * allocator: resident memory that stays behind after the thread allocated a
 * mixed working set and freed all of it, while the thread is still alive
 * (idle). This is the seed design's "< 200 KB memory overhead per thread".
 *
 * Each thread allocates `blocks` blocks of a size uniform in 16..1024 B plus
 * `large` blocks of 4..32 KiB, tags each one, then checks and frees them all
 * (in a shuffled order), tells the main thread it is done and waits on a
 * barrier: it neither allocates nor frees again until released.
 *
 * The main thread measures in two steps inside one process:
 *   1. start thread 1; when it is idle, read the resident set: rss1_kb;
 *   2. start threads 2..N; when all are idle, read it again: rssN_kb;
 * then releases and joins them. per_thread_kb = (rssN_kb - rss1_kb) / (N - 1):
 * what each thread beyond the first added, with the process's own start-up
 * and the allocator's global state (paid once, in step 1) left out. The
 * thread's stack pages and TLS are in the figure too, as they are for any
 * allocator; `--blocks 0 --large 0` measures that floor alone.
 *
 * The resident set comes from /proc/self/smaps_rollup ("Rss:", a walk of the
 * page tables: exact), falling back to VmRSS in /proc/self/status (a counter
 * that may lag by a few pages per CPU). Both are read with open/read into a
 * stack buffer, so reading them calls no malloc. The RSS figures are printed
 * as extra key=value pairs in the usual result line; ops is the number of
 * blocks the threads of step 2 allocated (and freed), seconds the time from
 * starting them to the last one going idle (thread creation included), so
 * mops is a rough figure only: this benchmark is about memory, and lower
 * per_thread_kb is better.
 */
#include "bench_common.h"

#include <semaphore.h>

typedef struct {
    _Alignas(BENCH_CACHE_LINE) uint64_t blocks, large, seed, index, errors;
    sem_t *idle;
    pthread_barrier_t *release;
} worker_t;

static const char *rss_source;

static long rss_kb(void) { return bench_rss_kb(&rss_source); }

/* Fisher-Yates over both arrays together. */
static void shuffle(void **ptr, size_t *size, uint64_t n, bench_rng_t *rng)
{
    for (uint64_t i = n; i > 1; i--) {
        uint64_t j = bench_rng_below(rng, i);
        void *tp = ptr[i - 1];
        size_t ts = size[i - 1];
        ptr[i - 1] = ptr[j];
        size[i - 1] = size[j];
        ptr[j] = tp;
        size[j] = ts;
    }
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    const uint64_t n = w->blocks + w->large;
    void **ptr = bench_map(n * sizeof *ptr);
    size_t *size = bench_map(n * sizeof *size);
    bench_rng_t rng;
    bench_rng_seed(&rng, w->seed, w->index + 1);
    uint64_t errors = 0;

    /* The sizes first, then shuffled: large and small blocks interleave as
     * a real thread would ask for them. */
    for (uint64_t i = 0; i < n; i++)
        size[i] = (size_t)(i < w->large ? bench_rng_range(&rng, 4096, 32768)
                                        : bench_rng_range(&rng, 16, 1024));
    shuffle(ptr, size, n, &rng);
    for (uint64_t i = 0; i < n; i++) {
        ptr[i] = malloc(size[i]);
        if (BENCH_UNLIKELY(ptr[i] == NULL))
            bench_alloc_failed("malloc", size[i]);
        errors += bench_fill(ptr[i], size[i], bench_tag_of(ptr[i]));
    }
    bench_escape(ptr);
    /* Freed in another random order, not LIFO. */
    shuffle(ptr, size, n, &rng);
    for (uint64_t i = 0; i < n; i++) {
        errors += bench_check(ptr[i], size[i], bench_tag_of(ptr[i]));
        free(ptr[i]);
    }
    bench_unmap(ptr, n * sizeof *ptr);
    bench_unmap(size, n * sizeof *size);
    w->errors = errors;

    sem_post(w->idle);
    pthread_barrier_wait(w->release);
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t threads = 64, blocks = 2000, large = 8, seed = 1;
    const bench_opt_t opts[] = {
        { "threads", &threads, 0, 2, 4096, "threads alive at the second reading" },
        { "blocks", &blocks, 0, 0, UINT64_C(1) << 24, "blocks of 16..1024 B per thread" },
        { "large", &large, 0, 0, UINT64_C(1) << 16, "blocks of 4..32 KiB per thread" },
        { "seed", &seed, 0, 0, UINT64_MAX, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
        "Resident memory per idle thread after it allocated and freed a mixed "
        "working set:\n(RSS with N threads - RSS with 1) / (N - 1).",
        opts, BENCH_NOPTS(opts));

    size_t wbytes = threads * sizeof(worker_t);
    worker_t *w = bench_map(wbytes);
    pthread_t *tid = bench_map(threads * sizeof *tid);
    sem_t idle;
    pthread_barrier_t release;
    if (sem_init(&idle, 0, 0) != 0)
        bench_die(2, "sem_init: %s", strerror(errno));
    pthread_barrier_init(&release, NULL, (unsigned)threads + 1);
    for (uint64_t i = 0; i < threads; i++) {
        w[i].blocks = blocks;
        w[i].large = large;
        w[i].seed = seed;
        w[i].index = i;
        w[i].idle = &idle;
        w[i].release = &release;
    }

    long rss0 = rss_kb();
    bench_thread_start(&tid[0], worker, &w[0]);
    while (sem_wait(&idle) != 0 && errno == EINTR)
        ;
    long rss1 = rss_kb();

    double t0 = bench_now();
    for (uint64_t i = 1; i < threads; i++)
        bench_thread_start(&tid[i], worker, &w[i]);
    for (uint64_t i = 1; i < threads; i++)
        while (sem_wait(&idle) != 0 && errno == EINTR)
            ;
    double t1 = bench_now();
    long rssn = rss_kb();

    pthread_barrier_wait(&release);
    for (uint64_t i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    uint64_t errors = 0;
    for (uint64_t i = 0; i < threads; i++)
        errors += w[i].errors;
    bench_require_no_errors("thread_overhead", errors);
    pthread_barrier_destroy(&release);
    sem_destroy(&idle);

    double per_thread = (double)(rssn - rss1) / (double)(threads - 1);
    char params[320];
    snprintf(params, sizeof params,
             "threads=%" PRIu64 " blocks=%" PRIu64 " large=%" PRIu64
             " rss_src=%s rss0_kb=%ld rss1_kb=%ld rssN_kb=%ld per_thread_kb=%.1f",
             threads, blocks, large, rss_source, rss0, rss1, rssn, per_thread);
    bench_report("thread_overhead", params, (blocks + large) * (threads - 1), t1 - t0);
    bench_unmap(tid, threads * sizeof *tid);
    bench_unmap(w, wbytes);
    return 0;
}

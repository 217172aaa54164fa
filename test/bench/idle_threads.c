/*
 * idle_threads — resident memory that threads keep after they used the
 * allocator and went quiet: N threads each allocate about `bytes` of blocks
 * of a size uniform in min..max (16..1040 B), free all of them in another
 * (shuffled) order, then block on a barrier without exiting. An allocator
 * that gives memory back only when the owning thread calls it again, or
 * only at thread exit, keeps it resident here for as long as the threads
 * sleep.
 *
 * The main thread reads the resident set at five points:
 *   rss_start   before any thread exists (after one malloc/free in main, so
 *               the allocator's one-time global set-up is already paid);
 *   rss_parked  with all N threads created and parked before their first
 *               malloc: their stacks, TLS and the kernel's share are in it;
 *   rss_busy    right after the last thread finished freeing;
 *   rss_100ms   100 ms later (or at the end of the idle wait if shorter);
 *   rss_idle    idle_ms after rss_busy.
 * rss_per_thread_kib_X = (rss_X - rss_parked) / N: what the allocator kept
 * per thread, stacks excluded; stack_kib_per_thread = (rss_parked -
 * rss_start) / N is the floor that is left out. Lower is better.
 *
 * The block sizes and the free order of every thread are drawn by the main
 * thread before rss_start into arrays from mmap, written through, so the
 * benchmark's own bookkeeping is resident in every reading and cancels out.
 * Each thread has its own PRNG stream (fixed seed), so runs repeat.
 *
 * The resident set comes from /proc/self/smaps_rollup ("Rss:", a walk of
 * the page tables: exact), falling back to VmRSS in /proc/self/status (a
 * counter that can lag by a few pages per CPU). Both are read with
 * open/read into a stack buffer: reading them calls no malloc.
 *
 * Result line: ops = blocks allocated (and freed) by all threads, seconds =
 * from releasing the parked threads to the last one finishing its frees,
 * so mops is a rough figure; minflt = minor page faults of the process in
 * that phase. This benchmark is about memory: run-peers leaves it out.
 */
#include "bench_common.h"

typedef struct {
    pthread_barrier_t parked;    /* all threads exist, none has allocated */
    pthread_barrier_t go;        /* the main thread has read rss_parked */
    pthread_barrier_t freed;     /* every thread has freed all its blocks */
    pthread_barrier_t release;   /* the idle readings are done: exit */
} phases_t;

typedef struct {
    _Alignas(BENCH_CACHE_LINE) void **ptr;
    uint32_t *size;      /* in allocation order */
    uint32_t *order;     /* free order: a permutation of 0..n-1 */
    uint64_t n;
    size_t map_bytes;
    uint64_t errors;
    phases_t *ph;
} worker_t;

static const char *rss_source;

static long rss_kb(void) { return bench_rss_kb(&rss_source); }

static long minflt_now(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_minflt : 0;
}

static void sleep_until(double deadline)
{
    struct timespec ts;
    ts.tv_sec = (time_t)deadline;
    ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* Sizes until their sum reaches `bytes`, and a shuffled free order; every
 * page of the arrays is written here, before the first reading. */
static void plan(worker_t *w, uint64_t bytes, uint64_t min, uint64_t max,
                 uint64_t seed, uint64_t index)
{
    const uint64_t cap = bytes / min + 1;
    w->map_bytes = cap * (sizeof *w->ptr + sizeof *w->size + sizeof *w->order);
    unsigned char *m = bench_map(w->map_bytes);
    w->ptr = (void **)m;
    w->size = (uint32_t *)(m + cap * sizeof *w->ptr);
    w->order = w->size + cap;
    bench_rng_t rng;
    bench_rng_seed(&rng, seed, index + 1);
    uint64_t n = 0, sum = 0;
    while (sum < bytes && n < cap) {
        w->size[n] = (uint32_t)bench_rng_range(&rng, min, max);
        sum += w->size[n];
        w->order[n] = (uint32_t)n;
        n++;
    }
    for (uint64_t i = n; i > 1; i--) {
        uint64_t j = bench_rng_below(&rng, i);
        uint32_t t = w->order[i - 1];
        w->order[i - 1] = w->order[j];
        w->order[j] = t;
    }
    for (uint64_t i = 0; i < n; i++)
        ((void *volatile *)w->ptr)[i] = NULL;
    w->n = n;
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    uint64_t errors = 0;
    pthread_barrier_wait(&w->ph->parked);
    pthread_barrier_wait(&w->ph->go);
    for (uint64_t i = 0; i < w->n; i++) {
        void *p = malloc(w->size[i]);
        if (BENCH_UNLIKELY(p == NULL))
            bench_alloc_failed("malloc", w->size[i]);
        errors += bench_fill(p, w->size[i], bench_tag_of(p));
        w->ptr[i] = p;
    }
    bench_escape(w->ptr);
    for (uint64_t k = 0; k < w->n; k++) {
        uint32_t i = w->order[k];
        errors += bench_check(w->ptr[i], w->size[i], bench_tag_of(w->ptr[i]));
        free(w->ptr[i]);
        w->ptr[i] = NULL;
    }
    w->errors = errors;
    pthread_barrier_wait(&w->ph->freed);
    pthread_barrier_wait(&w->ph->release);
    return NULL;
}

static double per_thread(long rss, long base, uint64_t threads)
{
    return (double)(rss - base) / (double)threads;
}

int main(int argc, char **argv)
{
    uint64_t threads = 64, bytes = 1 << 20, idle_ms = 1000, min = 16, max = 1040,
             seed = 1;
    const bench_opt_t opts[] = {
        { "threads", &threads, 0, 1, 4096, "threads, all alive at every reading" },
        { "bytes", &bytes, 1, 1, UINT64_C(1) << 32, "bytes allocated per thread" },
        { "idle-ms", &idle_ms, 0, 0, 600000, "idle wait after the frees, ms" },
        { "min", &min, 1, 16, UINT32_MAX, "smallest block size in bytes" },
        { "max", &max, 1, 16, UINT32_MAX, "largest block size in bytes" },
        { "seed", &seed, 0, 0, UINT64_MAX, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
        "Resident memory per idle thread after it allocated and freed --bytes of\n"
        "mixed blocks, relative to the threads parked before their first malloc\n"
        "(stacks excluded), right after the frees and after --idle-ms.",
        opts, BENCH_NOPTS(opts));
    if (min > max)
        bench_die(64, "--min must not exceed --max");

    size_t wbytes = threads * sizeof(worker_t);
    worker_t *w = bench_map(wbytes);
    pthread_t *tid = bench_map(threads * sizeof *tid);
    phases_t *ph = bench_map(sizeof *ph);
    unsigned count = (unsigned)threads + 1;
    pthread_barrier_init(&ph->parked, NULL, count);
    pthread_barrier_init(&ph->go, NULL, count);
    pthread_barrier_init(&ph->freed, NULL, count);
    pthread_barrier_init(&ph->release, NULL, count);
    uint64_t blocks = 0;
    for (uint64_t i = 0; i < threads; i++) {
        plan(&w[i], bytes, min, max, seed, i);
        w[i].ph = ph;
        blocks += w[i].n;
    }

    /* The allocator's global set-up belongs to the process, not to a thread. */
    void *first = malloc(64);
    bench_escape(first);
    free(first);

    long rss_start = rss_kb();
    for (uint64_t i = 0; i < threads; i++)
        bench_thread_start(&tid[i], worker, &w[i]);
    pthread_barrier_wait(&ph->parked);
    long rss_parked = rss_kb();

    long flt0 = minflt_now();
    double t0 = bench_now();
    pthread_barrier_wait(&ph->go);
    pthread_barrier_wait(&ph->freed);
    double t1 = bench_now();
    long flt1 = minflt_now();
    long rss_busy = rss_kb();

    double idle = (double)idle_ms / 1000.0;
    sleep_until(t1 + (idle < 0.1 ? idle : 0.1));
    long rss_100ms = rss_kb();
    sleep_until(t1 + idle);
    long rss_idle = rss_kb();

    pthread_barrier_wait(&ph->release);
    for (uint64_t i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    uint64_t errors = 0;
    for (uint64_t i = 0; i < threads; i++)
        errors += w[i].errors;
    bench_require_no_errors("idle_threads", errors);

    char params[640];
    snprintf(params, sizeof params,
             "threads=%" PRIu64 " bytes=%" PRIu64 " idle_ms=%" PRIu64
             " rss_src=%s rss_start_kb=%ld rss_parked_kb=%ld rss_busy_kb=%ld"
             " rss_100ms_kb=%ld rss_idle_kb=%ld stack_kib_per_thread=%.1f"
             " rss_per_thread_kib_busy=%.1f rss_per_thread_kib_100ms=%.1f"
             " rss_per_thread_kib_idle=%.1f minflt=%ld",
             threads, bytes, idle_ms, rss_source, rss_start, rss_parked, rss_busy,
             rss_100ms, rss_idle, per_thread(rss_parked, rss_start, threads),
             per_thread(rss_busy, rss_parked, threads),
             per_thread(rss_100ms, rss_parked, threads),
             per_thread(rss_idle, rss_parked, threads), flt1 - flt0);
    bench_report("idle_threads", params, blocks, t1 - t0);

    pthread_barrier_destroy(&ph->parked);
    pthread_barrier_destroy(&ph->go);
    pthread_barrier_destroy(&ph->freed);
    pthread_barrier_destroy(&ph->release);
    for (uint64_t i = 0; i < threads; i++)
        bench_unmap(w[i].ptr, w[i].map_bytes);
    bench_unmap(ph, sizeof *ph);
    bench_unmap(tid, threads * sizeof *tid);
    bench_unmap(w, wbytes);
    return 0;
}

/*
 * bench_common.h — what every hakmem benchmark shares: argument parsing,
 * timing, peak RSS, the PRNG, block tagging, and the one result line.
 *
 * The benchmarks are plain C programs that call malloc/free/realloc. They
 * never link hakmem: the allocator under test is chosen at run time with
 * LD_PRELOAD, and bench_allocator() reports who actually served malloc, so a
 * run can never silently measure the wrong allocator.
 *
 * Conventions shared by all programs:
 *  - An "operation" is one block lifetime: one allocation and the free that
 *    ends it (a malloc+free pair). mops = operations / seconds / 1e6. The one
 *    exception is the realloc benchmark, where an operation is one call to
 *    realloc; each program's header comment says so again.
 *  - --ops is per thread in the multi-threaded programs; the result line's
 *    ops= is always the total the figure was computed from.
 *  - The benchmark's own structures (slot arrays, rings, thread arguments)
 *    come from mmap, not malloc, so their cost is the same under every
 *    allocator and they never mix with the blocks being measured.
 *  - Every block gets a tag (from its serial number, or its address) in its
 *    first 8 bytes when allocated and has it checked when freed: two live
 *    blocks that overlap, or a block handed out twice, show up as an error
 *    and the program exits with status 3 instead of printing a figure.
 *  - peak_rss_kb is the program's peak resident set (VmHWM; see
 *    bench_peak_rss_kb() for why not ru_maxrss alone).
 *  - Exactly one result line goes to stdout, after the timed region:
 *      bench=NAME <params> threads=T ops=N seconds=S mops=M peak_rss_kb=K
 *      allocator=A [variant=V]
 *    Diagnostics go to stderr.
 */
#ifndef HAK_BENCH_COMMON_H
#define HAK_BENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BENCH_LIKELY(x)   __builtin_expect(!!(x), 1)
#define BENCH_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define BENCH_CACHE_LINE  64
#define BENCH_TAG_KEY     UINT64_C(0x9e3779b97f4a7c15)

/* ------------------------------------------------------------------------
 * Failure and the benchmark's own memory
 * ------------------------------------------------------------------------ */

__attribute__((noreturn, format(printf, 2, 3)))
static inline void bench_die(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(status);
}

/* Zeroed, page-aligned memory for the benchmark's own structures. */
static inline void *bench_map(size_t bytes)
{
    if (bytes == 0)
        bytes = 1;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        bench_die(2, "mmap(%zu) failed: %s", bytes, strerror(errno));
    return p;
}

static inline void bench_unmap(void *p, size_t bytes)
{
    if (p != NULL)
        munmap(p, bytes == 0 ? 1 : bytes);
}

/* Keeps the compiler from proving a block unused and deleting the
 * malloc/free pair around it (GCC does that for blocks that do not escape). */
static inline void bench_escape(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* ------------------------------------------------------------------------
 * Block tagging: the cheap correctness check every benchmark does
 * ------------------------------------------------------------------------ */

/*
 * A block's tag: derived from something unique to that allocation (its
 * serial number, or its address where the program keeps nothing else), so
 * that a block handed out twice, or two live blocks that overlap, leave one
 * of them with the other's tag.
 */
static inline uint64_t bench_tag(uint64_t serial)
{
    return (serial * UINT64_C(0xff51afd7ed558ccd)) ^ BENCH_TAG_KEY;
}

static inline uint64_t bench_tag_of(const void *p)
{
    return bench_tag((uint64_t)(uintptr_t)p);
}

/*
 * A fresh block of `size` bytes: write its tag (or as much of it as fits) at
 * the start and one byte at the end, so the allocator's memory is really
 * touched. Returns 1 if the block breaks the alignment rule (16 bytes for
 * sizes of 16 or more, 8 below that), 0 if it is fine.
 */
static inline unsigned bench_fill(void *p, size_t size, uint64_t tag)
{
    unsigned char *b = p;
    if (BENCH_LIKELY(size >= sizeof tag))
        memcpy(b, &tag, sizeof tag);
    else if (size > 0)
        memcpy(b, &tag, size);
    if (size > 0)
        b[size - 1] = (unsigned char)tag;
    uintptr_t mask = size >= 16 ? 15 : (size >= 8 ? 7 : 0);
    return ((uintptr_t)p & mask) != 0;
}

/* Returns 1 if a block filled by bench_fill() lost its tag, 0 if intact. */
static inline unsigned bench_check(const void *p, size_t size, uint64_t tag)
{
    uint64_t got = 0;
    if (BENCH_LIKELY(size >= sizeof tag)) {
        memcpy(&got, p, sizeof got);
        return got != tag;
    }
    if (size == 0)
        return 0;
    memcpy(&got, p, size);
    return memcmp(&got, &tag, size) != 0;
}

static inline void bench_require_no_errors(const char *bench, uint64_t errors)
{
    if (errors != 0)
        bench_die(3, "%s: %" PRIu64 " blocks were misaligned or corrupted "
                  "(overlapping live blocks?): no figure reported", bench, errors);
}

__attribute__((noreturn, cold))
static inline void bench_alloc_failed(const char *what, size_t size)
{
    bench_die(2, "%s(%zu) returned NULL", what, size);
}

/* ------------------------------------------------------------------------
 * PRNG: splitmix64 to seed, xorshift64* to draw (fast, deterministic)
 * ------------------------------------------------------------------------ */

typedef struct {
    uint64_t s;
} bench_rng_t;

static inline uint64_t bench_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* stream distinguishes threads that share a seed. */
static inline void bench_rng_seed(bench_rng_t *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * UINT64_C(0xd1342543de82ef95));
    r->s = bench_splitmix64(&x);
    if (r->s == 0)
        r->s = UINT64_C(0x2545f4914f6cdd1d);
}

static inline uint64_t bench_rng_next(bench_rng_t *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * UINT64_C(0x2545f4914f6cdd1d);
}

__extension__ typedef unsigned __int128 bench_u128_t;

/* Uniform in [0, n) by multiply-shift (bias < n / 2^64: irrelevant here). */
static inline uint64_t bench_rng_below(bench_rng_t *r, uint64_t n)
{
    return (uint64_t)(((bench_u128_t)bench_rng_next(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static inline uint64_t bench_rng_range(bench_rng_t *r, uint64_t lo, uint64_t hi)
{
    return lo + bench_rng_below(r, hi - lo + 1);
}

/* ------------------------------------------------------------------------
 * Time and memory
 * ------------------------------------------------------------------------ */

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "Key:   1234 kB" in the file at path; -1 if it cannot be read. */
static inline long bench_proc_kb(const char *path, const char *key)
{
    char buf[8192];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        if (have == sizeof buf - 1)
            break;
    }
    close(fd);
    buf[have] = '\0';
    size_t klen = strlen(key);
    for (const char *line = buf; line != NULL && *line != '\0';) {
        if (strncmp(line, key, klen) == 0)
            return strtol(line + klen, NULL, 10);
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return -1;
}

/* The resident set in KiB, from smaps_rollup (exact: the plain counters
 * can lag with many threads), else VmRSS; *source says which. Reads with
 * open/read only: no malloc. */
static inline long bench_rss_kb(const char **source)
{
    *source = "smaps_rollup";
    long kb = bench_proc_kb("/proc/self/smaps_rollup", "Rss:");
    if (kb >= 0)
        return kb;
    *source = "status";
    kb = bench_proc_kb("/proc/self/status", "VmRSS:");
    if (kb < 0)
        bench_die(2, "cannot read the resident set from /proc/self");
    return kb;
}

/*
 * Peak resident set size in KiB. getrusage(RUSAGE_SELF).ru_maxrss is not
 * enough on its own: Linux carries the high-water mark of the image that
 * called execve into the new program, so a benchmark started by a 30 MB
 * Python runner (fork or vfork, then exec) would report at least 30 MB.
 * VmHWM in /proc/self/status belongs to this program's own address space;
 * it is read with open/read so that reading it calls no malloc. ru_maxrss
 * is the fallback when /proc is not there.
 */
static inline long bench_peak_rss_kb(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n > 0) {
            buf[n] = '\0';
            const char *hwm = strstr(buf, "\nVmHWM:");
            if (hwm != NULL)
                return strtol(hwm + strlen("\nVmHWM:"), NULL, 10);
        }
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss;   /* Linux reports kilobytes */
}

/* Waiting for another thread: spin briefly, then give the CPU away (the
 * machine may have fewer cores than the benchmark has threads). */
static inline void bench_backoff(unsigned *spins)
{
    if (++*spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield();
    }
}

/* ------------------------------------------------------------------------
 * Who serves malloc
 * ------------------------------------------------------------------------ */

typedef struct {
    const char *name;       /* hakmem, mimalloc, jemalloc, tcmalloc, glibc */
    char variant[64];       /* hakmem only: the variant name, else "" */
    char malloc_from[512];  /* path of the object that defines malloc */
} bench_allocator_t;

static inline const char *bench_object_of(void *sym, char *buf, size_t len)
{
    Dl_info info;
    buf[0] = '\0';
    if (sym != NULL && dladdr(sym, &info) != 0 && info.dli_fname != NULL)
        snprintf(buf, len, "%s", info.dli_fname);
    return buf;
}

/* hak_config_string() gives "variant=NAME key=val ..." (the variant token
 * may be missing in older builds); fall back to the library's file name:
 * libhakmem.so* is "default", libhakmem-NAME.so is NAME. */
static inline void bench_hakmem_variant(bench_allocator_t *a, void *version_sym)
{
    void *config_sym = dlsym(RTLD_DEFAULT, "hak_config_string");
    const char *(*config)(void) = NULL;
    memcpy(&config, &config_sym, sizeof config);   /* POSIX: same size */
    const char *s = config != NULL ? config() : NULL;
    const char *v = NULL;
    if (s != NULL) {
        for (const char *q = s; (q = strstr(q, "variant=")) != NULL; q++) {
            if (q == s || q[-1] == ' ') {
                v = q + strlen("variant=");
                break;
            }
        }
    }
    if (v != NULL) {
        size_t n = strcspn(v, " \t\n");
        if (n >= sizeof a->variant)
            n = sizeof a->variant - 1;
        memcpy(a->variant, v, n);
        a->variant[n] = '\0';
        return;
    }
    char path[512];
    bench_object_of(version_sym, path, sizeof path);
    const char *file = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
    if (strncmp(file, "libhakmem-", 10) == 0) {
        size_t n = strcspn(file + 10, ".");
        snprintf(a->variant, sizeof a->variant, "%.*s", (int)n, file + 10);
    } else {
        snprintf(a->variant, sizeof a->variant, "%s",
                 file[0] != '\0' ? "default" : "unknown");
    }
}

/*
 * Identify the allocator by a symbol only it exports, then check that the
 * object exporting that symbol is also the one whose malloc the program
 * calls. A mismatch (say, a library that exports hak_version but lets glibc
 * keep malloc) is reported as allocator=mismatch, which the runner rejects.
 */
static inline bench_allocator_t bench_allocator(void)
{
    static const struct { const char *sym, *name; } probes[] = {
        { "hak_version", "hakmem" },
        { "mi_version", "mimalloc" },
        { "mallctl", "jemalloc" },
        { "tc_malloc", "tcmalloc" },
        { "MallocExtension_GetAllocatedSize", "tcmalloc" },
    };
    bench_allocator_t a;
    memset(&a, 0, sizeof a);
    a.name = "glibc";
    void *malloc_sym = dlsym(RTLD_DEFAULT, "malloc");
    bench_object_of(malloc_sym, a.malloc_from, sizeof a.malloc_from);
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        void *sym = dlsym(RTLD_DEFAULT, probes[i].sym);
        if (sym == NULL)
            continue;
        char from[512];
        bench_object_of(sym, from, sizeof from);
        if (strcmp(from, a.malloc_from) != 0) {
            fprintf(stderr, "bench: %s is exported by %s but malloc comes from %s\n",
                    probes[i].sym, from, a.malloc_from);
            a.name = "mismatch";
        } else {
            a.name = probes[i].name;
            if (strcmp(a.name, "hakmem") == 0)
                bench_hakmem_variant(&a, sym);
        }
        return a;
    }
    const char *base = strrchr(a.malloc_from, '/');
    if (strncmp(base != NULL ? base + 1 : a.malloc_from, "libc.so", 7) != 0) {
        fprintf(stderr, "bench: malloc comes from %s, which is not glibc and "
                "not a known allocator\n", a.malloc_from);
        a.name = "unknown";
    }
    return a;
}

/* ------------------------------------------------------------------------
 * Result line
 * ------------------------------------------------------------------------ */

/* params: the benchmark's own key=value pairs, e.g. "ws=400 threads=1". */
static inline void bench_report(const char *bench, const char *params,
                                uint64_t ops, double seconds)
{
    bench_allocator_t a = bench_allocator();
    double mops = seconds > 0 ? (double)ops / seconds / 1e6 : 0.0;
    /* At least four significant digits, never an exponent. */
    int digits = mops >= 100 ? 2 : mops >= 1 ? 3 : mops >= 0.01 ? 5 : 8;
    printf("bench=%s %s ops=%" PRIu64 " seconds=%.6f mops=%.*f peak_rss_kb=%ld "
           "allocator=%s",
           bench, params, ops, seconds, digits, mops, bench_peak_rss_kb(), a.name);
    if (a.variant[0] != '\0')
        printf(" variant=%s", a.variant);
    putchar('\n');
    fflush(stdout);
}

/* ------------------------------------------------------------------------
 * Arguments: "--name VALUE" or "--name=VALUE"
 * ------------------------------------------------------------------------ */

typedef struct {
    const char *name;   /* without the leading "--" */
    uint64_t *value;
    int is_size;        /* suffixes: 1 → k/K/M/G are 1024s; 0 → 1000s */
    uint64_t min, max;
    const char *help;
} bench_opt_t;

/*
 * Parse a whole number with an optional suffix: k, m, g (counts: ×1000ⁿ;
 * sizes: ×1024ⁿ); "Ki"/"Mi"/"Gi" are always binary.
 */
static inline int bench_parse_u64(const char *s, int is_size, uint64_t *out)
{
    if (s == NULL || *s == '\0' || *s == '-')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s)
        return -1;
    uint64_t mult = 1, base = is_size ? 1024 : 1000;
    int power = 0;
    switch (*end) {
    case 'k': case 'K': power = 1; break;
    case 'm': case 'M': power = 2; break;
    case 'g': case 'G': power = 3; break;
    case '\0': break;
    default: return -1;
    }
    if (power > 0) {
        end++;
        if (*end == 'i') {
            base = 1024;
            end++;
        }
        if (*end == 'B' || *end == 'b')
            end++;
    }
    if (*end != '\0')
        return -1;
    for (int i = 0; i < power; i++)
        mult *= base;
    if (v > UINT64_MAX / mult)
        return -1;
    *out = (uint64_t)v * mult;
    return 0;
}

static inline void bench_usage(FILE *f, const char *prog, const char *about,
                               const bench_opt_t *opts, size_t n)
{
    fprintf(f, "usage: %s [options]\n\n%s\n\noptions (--name VALUE or --name=VALUE):\n",
            prog, about);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "  --%-10s %s (default %" PRIu64 ", range %" PRIu64 "..%" PRIu64 ")\n",
                opts[i].name, opts[i].help, *opts[i].value, opts[i].min, opts[i].max);
    fprintf(f, "  --help       this text\n\n"
            "Numbers take a suffix: k, M, G (x1000 for counts, x1024 for sizes).\n"
            "Prints one line: bench=... ops=N seconds=S mops=M peak_rss_kb=K allocator=A\n"
            "Run it under another allocator with LD_PRELOAD=/abs/path/lib.so.\n");
}

static inline void bench_parse_args(int argc, char **argv, const char *about,
                                    const bench_opt_t *opts, size_t n)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            bench_usage(stdout, argv[0], about, opts, n);
            exit(0);
        }
        if (strncmp(arg, "--", 2) != 0)
            goto bad;
        arg += 2;
        size_t len = strcspn(arg, "=");
        const bench_opt_t *o = NULL;
        for (size_t k = 0; k < n; k++)
            if (strlen(opts[k].name) == len && strncmp(opts[k].name, arg, len) == 0)
                o = &opts[k];
        if (o == NULL)
            goto bad;
        const char *val = arg[len] == '=' ? arg + len + 1 : (i + 1 < argc ? argv[++i] : NULL);
        uint64_t v;
        if (bench_parse_u64(val, o->is_size, &v) != 0 || v < o->min || v > o->max) {
            fprintf(stderr, "%s: --%s needs a whole number in %" PRIu64 "..%" PRIu64
                    ", not \"%s\"\n", argv[0], o->name, o->min, o->max,
                    val != NULL ? val : "");
            exit(64);
        }
        *o->value = v;
        continue;
bad:
        fprintf(stderr, "%s: unknown argument \"%s\"\n", argv[0], argv[i]);
        bench_usage(stderr, argv[0], about, opts, n);
        exit(64);
    }
}

#define BENCH_NOPTS(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------
 * Threads: start together, time from the common start to the last join
 * ------------------------------------------------------------------------ */

static inline void bench_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc != 0)
        bench_die(2, "pthread_create: %s", strerror(rc));
}

#endif /* HAK_BENCH_COMMON_H */

/*
 * realloc — `buffers` buffers live at once, each following the life of a
 * growing string or vector:
 *   1. from 16 bytes, grow by small steps (+step_min..+step_max bytes) up to
 *      `small_max`;
 *   2. double until `max`;
 *   3. shrink by halving back to 16 bytes;
 * then it is freed and a new one starts from malloc(16). The buffers are
 * visited round robin and start at different points of their lives, so
 * their sizes are spread out at any moment.
 *
 * Operation = one call to realloc (the exception to the malloc+free-pair
 * rule of the other benchmarks); the free and fresh malloc at the end of a
 * life also count as one operation. After each call the buffer's first
 * 8 bytes must still hold the tag of its life, and its old last byte must
 * be intact when the buffer grew (realloc preserves content); the new last
 * byte is then written.
 */
#include "bench_common.h"

typedef struct {
    unsigned char *ptr;
    uint64_t tag;       /* what the first 8 bytes must hold, for the life */
    size_t size;        /* the current size */
    unsigned char mark; /* what the last byte, ptr[size - 1], must hold */
    uint32_t at;        /* position in this buffer's schedule */
    uint32_t len;       /* schedule length */
    uint32_t *sizes;    /* schedule: the size after each step */
} buffer_t;

static uint32_t build_schedule(uint32_t *out, uint32_t cap, bench_rng_t *rng,
                               uint64_t step_min, uint64_t step_max,
                               uint64_t small_max, uint64_t max)
{
    uint32_t n = 0;
    uint64_t size = 16;
    out[n++] = (uint32_t)size;
    while (n < cap && size + step_min <= small_max) {
        size += bench_rng_range(rng, step_min, step_max);
        out[n++] = (uint32_t)size;
    }
    while (n < cap && size * 2 <= max) {
        size *= 2;
        out[n++] = (uint32_t)size;
    }
    while (n < cap && size / 2 >= 16) {
        size /= 2;
        out[n++] = (uint32_t)size;
    }
    return n;
}

/* A new life: malloc the first size and tag it with the life's serial. */
static inline void start_buffer(buffer_t *b, uint64_t serial)
{
    size_t size = b->sizes[0];
    unsigned char *p = malloc(size);
    if (BENCH_UNLIKELY(p == NULL))
        bench_alloc_failed("malloc", size);
    b->tag = bench_tag(serial);
    memcpy(p, &b->tag, sizeof b->tag);
    b->mark = (unsigned char)serial;
    p[size - 1] = b->mark;
    b->ptr = p;
    b->size = size;
}

/*
 * Resize one buffer and check that realloc kept its content: the tag at the
 * start, and the last byte written before (when the buffer did not shrink
 * below it). Returns the number of errors found (0 or more).
 */
static inline unsigned resize_buffer(buffer_t *b, size_t size, unsigned char mark)
{
    unsigned char *p = realloc(b->ptr, size);
    if (BENCH_UNLIKELY(p == NULL))
        bench_alloc_failed("realloc", size);
    uint64_t got;
    memcpy(&got, p, sizeof got);
    unsigned errors = got != b->tag;
    if (size >= b->size)
        errors += p[b->size - 1] != b->mark;
    p[size - 1] = mark;
    b->mark = mark;
    b->ptr = p;
    b->size = size;
    return errors;
}

int main(int argc, char **argv)
{
    uint64_t buffers = 16, ops = 5000000, step_min = 16, step_max = 64;
    uint64_t small_max = 4096, max = 262144, seed = 1;
    const bench_opt_t opts[] = {
        { "buffers", &buffers, 0, 1, 1 << 20, "buffers live at once" },
        { "ops", &ops, 0, 1, UINT64_MAX / 2, "realloc calls" },
        { "step-min", &step_min, 1, 1, 1 << 20, "smallest growth step in bytes" },
        { "step-max", &step_max, 1, 1, 1 << 20, "largest growth step in bytes" },
        { "small-max", &small_max, 1, 16, UINT64_C(1) << 30, "grow by small steps up to this size" },
        { "max", &max, 1, 16, UINT64_C(1) << 30, "then double up to this size" },
        { "seed", &seed, 0, 0, UINT64_MAX, "PRNG seed" },
    };
    bench_parse_args(argc, argv,
        "Buffers grown by small steps, then by doubling, then shrunk, round robin.",
        opts, BENCH_NOPTS(opts));
    if (step_min > step_max)
        bench_die(64, "--step-min must not exceed --step-max");
    if (small_max > max)
        bench_die(64, "--small-max must not exceed --max");

    /* Schedule length bound: small steps, doublings, halvings, start. */
    uint64_t cap = small_max / step_min + 2 * 64 + 2;
    if (cap > UINT32_MAX / 2)
        bench_die(64, "--small-max / --step-min is too large");
    buffer_t *buf = bench_map(buffers * sizeof *buf);
    bench_rng_t rng;
    bench_rng_seed(&rng, seed, 0);
    for (uint64_t i = 0; i < buffers; i++) {
        buffer_t *b = &buf[i];
        b->sizes = bench_map(cap * sizeof *b->sizes);
        b->len = build_schedule(b->sizes, (uint32_t)cap, &rng, step_min, step_max,
                                small_max, max);
        b->at = (uint32_t)(i * b->len / buffers);
    }
    /* Bring each buffer to its starting point before the clock runs. */
    uint64_t errors = 0, i = 0, lives = 0;
    for (uint64_t k = 0; k < buffers; k++) {
        start_buffer(&buf[k], lives++);
        if (buf[k].at > 0)
            errors += resize_buffer(&buf[k], buf[k].sizes[buf[k].at], 0);
    }

    double t0 = bench_now();
    for (uint64_t op = 0; op < ops; op++) {
        buffer_t *b = &buf[i];
        if (++i == buffers)
            i = 0;
        if (BENCH_UNLIKELY(++b->at == b->len)) {
            uint64_t got;
            memcpy(&got, b->ptr, sizeof got);
            errors += got != b->tag;
            free(b->ptr);
            b->at = 0;
            start_buffer(b, lives++);
            continue;
        }
        errors += resize_buffer(b, b->sizes[b->at], (unsigned char)op);
    }
    double t1 = bench_now();

    for (uint64_t k = 0; k < buffers; k++) {
        uint64_t got;
        memcpy(&got, buf[k].ptr, sizeof got);
        errors += got != buf[k].tag;
        free(buf[k].ptr);
        bench_unmap(buf[k].sizes, cap * sizeof *buf[k].sizes);
    }
    if (errors != 0)
        bench_die(3, "realloc: %" PRIu64 " buffers lost their content: no figure reported",
                  errors);

    char params[160];
    snprintf(params, sizeof params, "buffers=%" PRIu64 " max=%" PRIu64 " threads=1",
             buffers, max);
    bench_report("realloc", params, ops, t1 - t0);
    bench_unmap(buf, buffers * sizeof *buf);
    return 0;
}

/*
 * test/faults/oom.c — out of memory: with the address space limited
 * (RLIMIT_AS = what the process uses + 64 MiB), every allocation entry point
 * must eventually return NULL with errno ENOMEM (posix_memalign: return
 * ENOMEM and leave *out alone), nothing may crash or corrupt a live block,
 * and once the blocks are freed, allocation must work again.
 *
 * Each case runs in a child process of its own (a fresh address space, and
 * a limit that does not outlive it); the parent checks that every child
 * exited 0 and none was killed by a signal, and reports every failed case.
 * A case reports all its failed expectations before it exits.
 *
 *   0..6  one kind each — small (16..1024 B), medium (1..32 KiB), large
 *         (32 KiB..4 MiB), calloc (zeroes checked), posix_memalign,
 *         aligned_alloc, memalign: allocate until the first ENOMEM (at
 *         least MIN_FIRST bytes must fit), 50 more attempts at the limit,
 *         free all, then the same kind again must get at least half as much;
 *   7     realloc growing one block until it fails (the old block must be
 *         intact; at least a quarter of the headroom must be reached);
 *   8     200,000 random operations at the edge of the limit (every kind,
 *         realloc, free), NULL allowed but only with ENOMEM; then, with
 *         every block freed, small mallocs must work again;
 *   9     every kind in turn in one process: what one kind freed must be
 *         usable by the next (at least MIN_FIRST each), and at the end a
 *         32 MiB block (half the headroom) must fit: freed memory must not
 *         stay unusable in the allocator's caches at the limit;
 *   10    the same sequence, then malloc_trim(0), then the 32 MiB block.
 *
 * Every live block carries a pattern that is checked before it is freed.
 * --case N runs one case; --edge-ops N sets case 8's operation count.
 */
#include "faults.h"

#include <malloc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define HEADROOM   ((size_t)64 << 20)
#define TAB_CAP    ((size_t)1 << 22)   /* 4M blocks: 64 MiB of 16-byte blocks */

enum kind { K_SMALL, K_MEDIUM, K_LARGE, K_CALLOC, K_MEMALIGN, K_ALIGNED, K_OLDMEMALIGN, K_COUNT };
static const char *const kind_name[K_COUNT] = {
  "small", "medium", "large", "calloc", "posix_memalign", "aligned_alloc", "memalign",
};

typedef struct blk {
  void *p;
  size_t n;
  uint64_t tag;
} blk_t;

static blk_t *tab;
static size_t vm_start;   /* address space when the limit was set */
static size_t live;
static uint64_t next_tag = 1;
static rng_t rng;
static int soft_failures;

/* A failed expectation after which the case can go on (to report more). */
__attribute__((format(printf, 1, 2))) static void soft_fail(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  msgv("FAIL: ", fmt, ap);
  va_end(ap);
  soft_failures++;
}

static void check_block(const blk_t *b, const char *when)
{
  size_t off = pat_check(b->p, b->n, b->tag);
  if (off != (size_t)-1)
    fail("%s: block %p (%zu bytes) corrupted at offset %zu", when, b->p, b->n, off);
}

static void add_block(void *p, size_t n, size_t align, const char *what)
{
  if (n >= 16 && (uintptr_t)p % 16)
    fail("%s(%zu) = %p: not 16-byte aligned", what, n, p);
  if (align && (uintptr_t)p % align)
    fail("%s(%zu, align %zu) = %p: misaligned", what, n, align, p);
  size_t u = malloc_usable_size(p);
  if (u < n)
    fail("%s(%zu) = %p: malloc_usable_size %zu", what, n, p, u);
  if (live == TAB_CAP)
    fail("table full: the limit does not seem to apply");
  blk_t *b = &tab[live++];
  b->p = p;
  b->n = n;
  b->tag = next_tag++ * 0x100000001b3ull ^ (uintptr_t)p;
  pat_fill(p, n, b->tag);
}

static void free_all(const char *when)
{
  /* random order, each checked first */
  while (live) {
    size_t i = (size_t)(rng_next(&rng) % live);
    check_block(&tab[i], when);
    free(tab[i].p);
    tab[i] = tab[--live];
  }
}

/* One allocation of kind k. Returns the block, or NULL with *err set to
 * the error the entry point reported. */
static void *alloc_kind(enum kind k, size_t *n_out, size_t *align_out, int *err)
{
  size_t n, align = 0;
  void *p = NULL;
  errno = 0;
  switch (k) {
  case K_SMALL:
    n = rng_range(&rng, 16, 1024);
    p = malloc(n);
    break;
  case K_MEDIUM:
    n = rng_range(&rng, 1025, 32768);
    p = malloc(n);
    break;
  case K_LARGE:
    n = rng_range(&rng, 32769, (size_t)4 << 20);
    p = malloc(n);
    break;
  case K_CALLOC: {
    size_t m = rng_range(&rng, 1, 64), s = rng_range(&rng, 1, (rng_next(&rng) & 7) ? 512 : 65536);
    n = m * s;
    p = calloc(m, s);
    if (p) {
      const unsigned char *b = p;
      for (size_t i = 0; i < n; i += (n > 8192 ? 61 : 1))
        if (b[i])
          fail("calloc(%zu, %zu) = %p: byte %zu is %u, not 0", m, s, p, i, b[i]);
    }
    break;
  }
  case K_MEMALIGN: {
    align = (size_t)1 << rng_range(&rng, 3, 12);
    n = rng_range(&rng, 1, (rng_next(&rng) & 3) ? 4096 : 200000);
    void *out = (void *)&tab; /* a sentinel: must stay untouched on failure */
    int r = posix_memalign(&out, align, n);
    if (r) {
      if (out != (void *)&tab)
        fail("posix_memalign failed with %d but changed *out", r);
      *err = r;
      *n_out = n;
      return NULL;
    }
    p = out;
    break;
  }
  case K_ALIGNED:
    align = (size_t)1 << rng_range(&rng, 4, 16);
    n = rng_range(&rng, 1, (rng_next(&rng) & 3) ? 8192 : 300000);
    p = aligned_alloc(align, n);
    break;
  case K_OLDMEMALIGN:
    align = (size_t)1 << rng_range(&rng, 5, 13);
    n = rng_range(&rng, 1, (rng_next(&rng) & 3) ? 2048 : 100000);
    p = memalign(align, n);
    break;
  default:
    abort();
  }
  *n_out = n;
  *align_out = align;
  *err = p ? 0 : errno;
  return p;
}

/* Allocate kind k until the first failure (or until `goal` bytes when goal
 * is non-zero). Returns the bytes obtained. */
static size_t fill_kind(enum kind k, size_t goal, size_t *blocks)
{
  size_t bytes = 0, n0 = live;
  for (;;) {
    size_t n, align;
    int err;
    void *p = alloc_kind(k, &n, &align, &err);
    if (!p) {
      if (err != ENOMEM)
        fail("%s(%zu): NULL with error %d (%s), not ENOMEM", kind_name[k], n, err, strerror(err));
      break;
    }
    add_block(p, n, align, kind_name[k]);
    bytes += n;
    if (bytes > 16 * HEADROOM)
      fail("%s: %zu MiB allocated under a %zu MiB headroom: the limit does not apply", kind_name[k],
           bytes >> 20, HEADROOM >> 20);
    if (goal && bytes >= goal)
      break;
  }
  *blocks = live - n0;
  return bytes;
}

/* The least a kind must obtain before its first ENOMEM: an eighth of the
 * headroom. Not more: a class-segregated allocator keeps a partly used
 * 1 MiB SuperSlab per size class in play (about 40 classes between 1 and
 * 32 KiB) and maps 2 MiB to cut an aligned 1 MiB out of it, so even a
 * healthy one can hit the limit with a fraction of the headroom in blocks.
 * An eighth still catches a NULL that comes long before the limit. */
#define MIN_FIRST (HEADROOM / 8)

static void phase_kind(enum kind k)
{
  size_t nb1, nb2;
  size_t first = fill_kind(k, 0, &nb1);
  /* At the limit, more attempts fail cleanly again. */
  for (int i = 0; i < 50; i++) {
    size_t n, align;
    int err;
    void *p = alloc_kind(k, &n, &align, &err);
    if (p)
      add_block(p, n, align, kind_name[k]);
    else if (err != ENOMEM)
      fail("%s(%zu) at the limit: error %d, not ENOMEM", kind_name[k], n, err);
  }
  size_t vm_full = vm_bytes();
  free_all(kind_name[k]);
  size_t vm_freed = vm_bytes();
  size_t again = fill_kind(k, first / 2, &nb2);
  free_all(kind_name[k]);
  note("%-15s %6zu blocks, %7.1f MiB before ENOMEM; after freeing them, %.1f MiB again "
       "(address space above the start: %.1f MiB full, %.1f MiB freed)",
       kind_name[k], nb1, mib(first), mib(again), mib(vm_full - vm_start), mib(vm_freed - vm_start));
  if (first < MIN_FIRST)
    soft_fail("%s: only %zu KiB obtained under a %zu MiB headroom (expected at least %zu MiB)", kind_name[k],
              first >> 10, HEADROOM >> 20, MIN_FIRST >> 20);
  if (again < first / 2)
    soft_fail("%s: after freeing %zu KiB, only %zu KiB could be allocated again (expected half)", kind_name[k],
              first >> 10, again >> 10);
}

static void phase_realloc_growth(void)
{
  size_t n = 16;
  uint64_t tag = 0x5eed;
  unsigned char *p = malloc(n);
  CHECK(p, "malloc(16) failed");
  pat_fill(p, n, tag);
  for (;;) {
    size_t m = n + n / 4 + 16;
    errno = 0;
    unsigned char *q = realloc(p, m);
    if (!q) {
      if (errno != ENOMEM)
        fail("realloc(%p, %zu): NULL with errno %d, not ENOMEM", (void *)p, m, errno);
      size_t off = pat_check(p, n, tag);
      if (off != (size_t)-1)
        fail("realloc to %zu failed and the old block (%zu bytes) changed at %zu", m, n, off);
      break;
    }
    size_t off = pat_check(q, n, tag);
    if (off != (size_t)-1)
      fail("realloc(%zu -> %zu) lost the contents at offset %zu", n, m, off);
    if (malloc_usable_size(q) < m)
      fail("realloc(%zu) = %p: malloc_usable_size %zu", m, (void *)q, malloc_usable_size(q));
    tag++;
    pat_fill(q, m, tag);
    p = q;
    n = m;
    if (n > 16 * HEADROOM)
      fail("realloc grew to %zu MiB: the limit does not apply", n >> 20);
  }
  note("%-15s one block grew to %.1f MiB before ENOMEM, contents kept (address space above the start "
       "%.1f MiB)", "realloc growth", mib(n), mib(vm_bytes() - vm_start));
  free(p);
  /* One block and its copy during a move fit twice in the headroom. */
  if (n < HEADROOM / 4)
    soft_fail("realloc growth of one block stopped at %zu KiB under a %zu MiB headroom (expected %zu MiB)",
              n >> 10, HEADROOM >> 20, (HEADROOM / 4) >> 20);
}

/* Random operations of every kind at the edge of the limit. */
static void phase_edge(long ops)
{
  size_t nulls = 0, okays = 0;
  /* start near the limit: medium and small blocks up to the first failure */
  size_t dummy;
  fill_kind(K_MEDIUM, 0, &dummy);
  for (long i = 0; i < ops; i++) {
    unsigned op = (unsigned)(rng_next(&rng) % 10);
    if (op < 4 && live) {
      size_t j = (size_t)(rng_next(&rng) % live);
      check_block(&tab[j], "edge free");
      free(tab[j].p);
      tab[j] = tab[--live];
    } else if (op < 6 && live) {
      size_t j = (size_t)(rng_next(&rng) % live);
      blk_t *b = &tab[j];
      check_block(b, "edge realloc");
      size_t m = (rng_next(&rng) & 7) ? rng_range(&rng, 1, 40000) : rng_range(&rng, 40000, (size_t)3 << 20);
      errno = 0;
      void *q = realloc(b->p, m);
      if (!q) {
        if (errno != ENOMEM)
          fail("edge realloc(%zu): errno %d", m, errno);
        check_block(b, "edge realloc failure");
        nulls++;
        continue;
      }
      size_t keep = b->n < m ? b->n : m;
      size_t off = pat_range_check(q, 0, keep < 256 ? keep : 256, b->tag);
      if (off != (size_t)-1)
        fail("edge realloc(%zu -> %zu) lost the contents at %zu", b->n, m, off);
      tab[j] = tab[--live];
      add_block(q, m, 0, "edge realloc");
      okays++;
    } else {
      enum kind k = (enum kind)(rng_next(&rng) % K_COUNT);
      size_t n, align;
      int err;
      void *p = alloc_kind(k, &n, &align, &err);
      if (!p) {
        if (err != ENOMEM)
          fail("edge %s(%zu): error %d, not ENOMEM", kind_name[k], n, err);
        nulls++;
        continue;
      }
      add_block(p, n, align, kind_name[k]);
      okays++;
    }
  }
  free_all("edge");
  if (nulls == 0)
    fail("edge: %ld operations near the limit and not one ENOMEM", ops);
  note("%-15s %ld operations at the limit: %zu succeeded, %zu gave ENOMEM", "edge", ops, okays, nulls);
}

/* Address space above the start, signed (a trim can go below it). */
static double vm_above(void) { return ((double)vm_bytes() - (double)vm_start) / (double)MiB; }

static void big_block(const char *when)
{
  size_t n = HEADROOM / 2;
  errno = 0;
  char *p = malloc(n);
  if (!p) {
    soft_fail("%s: every block is freed, yet malloc(%zu MiB) fails (errno %d) with %.1f MiB of the "
              "%zu MiB headroom still mapped (SuperSlabs alive: %lld)", when, n >> 20, errno, vm_above(),
              HEADROOM >> 20, ss_alive());
    return;
  }
  memset(p, 0x33, n);
  free(p);
  note("%s: a %zu MiB block with every block freed: ok", when, n >> 20);
}

/* Set up a fresh child: the table, a warm-up of every path (so the
 * registry leaf, the thread's state and the fork/exit hooks exist before the
 * limit), then the limit. */

static void child_setup(const char *name)
{
  static char nm[64];
  snprintf(nm, sizeof nm, "oom[%s]", name);
  test_name = nm;
  rng_seed(&rng, 20240917);
  tab = mmap(NULL, TAB_CAP * sizeof(blk_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
             -1, 0);
  CHECK(tab != MAP_FAILED, "mmap of the table failed");
  for (enum kind k = 0; k < K_COUNT; k++) {
    size_t n, align;
    int err;
    void *p = alloc_kind(k, &n, &align, &err);
    CHECK(p, "warm-up %s failed", kind_name[k]);
    free(p);
  }
  vm_start = vm_bytes();
  struct rlimit rl = {vm_start + HEADROOM, vm_start + HEADROOM};
  CHECK(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit: %s", strerror(errno));
}

/* Every kind in turn in one process: what one kind freed must be usable by
 * the next (at least a quarter of the headroom each), and at the end a
 * block of half the headroom must fit, without and with malloc_trim. */
static void sequence(void)
{
  for (enum kind k = 0; k < K_COUNT; k++) {
    size_t nb;
    size_t got = fill_kind(k, 0, &nb);
    double vm = vm_above();
    free_all(kind_name[k]);
    note("%-15s %7.1f MiB before ENOMEM (address space above the start: %.1f MiB at the limit, %.1f MiB "
         "after freeing; SuperSlabs alive %lld)", kind_name[k], mib(got), vm, vm_above(), ss_alive());
    if (got < MIN_FIRST)
      soft_fail("%s: only %zu KiB obtained after the earlier kinds' blocks were all freed "
                "(expected at least %zu MiB)", kind_name[k], got >> 10, MIN_FIRST >> 20);
  }
  big_block("without malloc_trim");
}

static void sequence_trim(void)
{
  for (enum kind k = 0; k < K_COUNT; k++) {
    size_t nb;
    fill_kind(k, 0, &nb);
    free_all(kind_name[k]);
  }
  note("address space above the start after freeing everything: %.1f MiB", vm_above());
  malloc_trim(0);
  note("after malloc_trim(0): %.1f MiB", vm_above());
  big_block("after malloc_trim(0)");
}

static long edge_ops;

static void run_case(int c)
{
  if (c < K_COUNT) {
    child_setup(kind_name[c]);
    phase_kind((enum kind)c);
  } else if (c == K_COUNT) {
    child_setup("realloc");
    phase_realloc_growth();
  } else if (c == K_COUNT + 1) {
    child_setup("edge");
    phase_edge(edge_ops);
    note("address space above the start after freeing everything: %.1f MiB (SuperSlabs alive %lld)", vm_above(),
         ss_alive());
    for (int i = 0; i < 1000; i++) {
      size_t n = (size_t)rng_range(&rng, 1, 5000);
      void *p = malloc(n);
      if (!p) {
        soft_fail("every block is freed, yet malloc(%zu) fails (errno %d)", n, errno);
        break;
      }
      free(p);
    }
  } else if (c == K_COUNT + 2) {
    child_setup("sequence");
    sequence();
  } else {
    child_setup("sequence+trim");
    sequence_trim();
  }
}

#define N_CASES (K_COUNT + 4)

static const char *case_name(int c)
{
  static const char *const extra[] = {"realloc growth", "edge", "sequence", "sequence+trim"};
  return c < K_COUNT ? kind_name[c] : extra[c - K_COUNT];
}

int main(int argc, char **argv)
{
  test_name = "oom";
  edge_ops = arg_long(argc, argv, "--edge-ops", 200000);
  long only = arg_long(argc, argv, "--case", -1);
  int failed = 0;
  /* Each case in a child of its own: a fresh address space, and a limit
   * that does not outlive it. */
  for (int c = 0; c < N_CASES; c++) {
    if (only >= 0 && c != only)
      continue;
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
      run_case(c);
      _exit(soft_failures ? 1 : 0);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
    if (WIFSIGNALED(st)) {
      note("FAIL: case %d (%s): the child was killed by signal %d (%s)", c, case_name(c), WTERMSIG(st),
           strsignal(WTERMSIG(st)));
      failed++;
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      note("FAIL: case %d (%s): the child exited with status %d", c, case_name(c), WEXITSTATUS(st));
      failed++;
    }
  }
  if (failed)
    fail("%d of %d cases failed", failed, only >= 0 ? 1 : N_CASES);
  note("ok");
  return 0;
}

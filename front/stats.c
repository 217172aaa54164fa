/*
 * front/stats.c — per-thread counter blocks, their merge, and the output
 * that HAKMEM_STATS asks for.
 *
 * Each live thread has a block of counters (mapped, recycled, never freed)
 * on a list under stats_lock; an exiting thread adds its block into the
 * global totals and gives the block back. Readers sum the totals and the
 * live blocks with relaxed loads. Output is formatted into a mapped buffer
 * and written with write(2): no stdio, no malloc.
 *
 * Environment: HAKMEM_STATS=1 (table) or json (one JSON object on one line),
 * to stderr or appended to HAKMEM_STATS_FILE.
 */
#include "front/front.h"
#include "hakmem.h"
#include "hak/stats.h"
#include "boxes/unified_cache/unified_cache.h"
#include "boxes/warm_pool/warm_pool.h"
#include "backend/superslab.h"
#include "backend/large.h"
#include "backend/size_class.h"
#include "backend/os.h"
#include "hak/lock.h"
#include "registry/registry.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *const stat_names[HAK_STAT_COUNT] __attribute__((unused)) = {
#define HAK_STAT_NAME(name) #name,
  HAK_STAT_COUNTERS(HAK_STAT_NAME)
#undef HAK_STAT_NAME
};

#if HAK_STATS
static hak_thread_stats_t stats_sink;
__thread hak_thread_stats_t *hak_tls_stats = &stats_sink;
static hak_thread_stats_t stats_global;   /* folded from exited threads */
static hak_thread_stats_t *stats_live;
static hak_thread_stats_t *stats_free;
static hak_mutex_t stats_lock = HAK_MUTEX_INIT;

void hak_stats_thread_start(void)
{
  if (hak_tls_stats != &stats_sink)
    return;
  hak_mutex_lock(&stats_lock);
  hak_thread_stats_t *ts = stats_free;
  if (ts) {
    stats_free = ts->next;
  } else {
    void *m = mmap(NULL, sizeof *ts, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ts = m == MAP_FAILED ? NULL : m;
  }
  if (ts) {
    memset(ts->cls, 0, sizeof ts->cls);
    memset(ts->budget, 0, sizeof ts->budget);
    memset(ts->budget_peak, 0, sizeof ts->budget_peak);
    ts->prev = NULL;
    ts->next = stats_live;
    if (stats_live)
      stats_live->prev = ts;
    stats_live = ts;
    hak_tls_stats = ts;
  }
  hak_mutex_unlock(&stats_lock);
}

static inline void max_u16(uint16_t *dst, const uint16_t *src)
{
  uint16_t v = __atomic_load_n(src, __ATOMIC_RELAXED);
  if (v > *dst)
    *dst = v;
}

/* Counters add up; gauges keep the maximum. A thread folding in at exit
 * passes its peak on, not its current budget (it has none any more). */
static void add_block(hak_thread_stats_t *dst, const hak_thread_stats_t *src, bool live)
{
  hak_mutex_assert_held(&stats_lock);
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    if (live)
      max_u16(&dst->budget[c], &src->budget[c]);
    max_u16(&dst->budget_peak[c], &src->budget_peak[c]);
  }
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    for (unsigned i = 0; i < HAK_STAT_COUNT; i++) {
      uint64_t v = __atomic_load_n(&src->cls[c].v[i], __ATOMIC_RELAXED);
      __atomic_store_n(&dst->cls[c].v[i], __atomic_load_n(&dst->cls[c].v[i], __ATOMIC_RELAXED) + v,
                       __ATOMIC_RELAXED);
    }
}

void hak_stats_thread_fold(void)
{
  uc_fold_stats();
  hak_thread_stats_t *ts = hak_tls_stats;
  if (ts == &stats_sink)
    return;
  hak_mutex_lock(&stats_lock);
  add_block(&stats_global, ts, false);
  if (ts->prev)
    ts->prev->next = ts->next;
  else
    stats_live = ts->next;
  if (ts->next)
    ts->next->prev = ts->prev;
  ts->next = stats_free;
  stats_free = ts;
  hak_tls_stats = &stats_sink;
  hak_mutex_unlock(&stats_lock);
}

/* Sum of everything: exited threads, live threads, the sink. */
static void stats_collect(hak_thread_stats_t *out)
{
  uc_fold_stats();
  memset(out, 0, sizeof *out);
  hak_mutex_lock(&stats_lock);
  add_block(out, &stats_global, true);
  for (hak_thread_stats_t *ts = stats_live; ts; ts = ts->next)
    add_block(out, ts, true);
  add_block(out, &stats_sink, true);
  hak_mutex_unlock(&stats_lock);
}

void hak_stats_fork_prepare(void) { hak_mutex_lock(&stats_lock); }
void hak_stats_fork_parent(void) { hak_mutex_unlock(&stats_lock); }
void hak_stats_fork_child(void) { hak_mutex_reinit(&stats_lock); }
#else
void hak_stats_thread_start(void) {}
void hak_stats_thread_fold(void) {}
void hak_stats_fork_prepare(void) {}
void hak_stats_fork_parent(void) {}
void hak_stats_fork_child(void) {}
#endif

/* ---- Output -------------------------------------------------------------- */

typedef struct outbuf {
  char *p;
  size_t len, cap;
} outbuf_t;

static void out_str(outbuf_t *o, const char *s)
{
  size_t room = o->cap - o->len; /* len never passes cap */
  for (; *s && room; s++, room--)
    o->p[o->len++] = *s;
}

static void out_u64(outbuf_t *o, unsigned long long v)
{
  char b[24];
  b[hak_fmt_u64(b, v)] = 0;
  out_str(o, b);
}

static void out_pad(outbuf_t *o, const char *s, size_t width, bool right)
{
  size_t l = strlen(s);
  if (right)
    for (size_t i = l; i < width; i++)
      out_str(o, " ");
  out_str(o, s);
  if (!right)
    for (size_t i = l; i < width; i++)
      out_str(o, " ");
}

__attribute__((unused)) static void out_u64_pad(outbuf_t *o, unsigned long long v, size_t width)
{
  char b[24];
  b[hak_fmt_u64(b, v)] = 0;
  out_pad(o, b, width, true);
}

#define EXTRA_COUNTERS(X) X(superslabs_mapped) X(superslabs_unmapped)

#if HAK_PREFILL_ADAPTIVE
#define HAK_PREFILL_POLICY_NAME "adaptive"
#else
#define HAK_PREFILL_POLICY_NAME "fixed"
#endif

static void config_json(outbuf_t *o)
{
  out_str(o, "{\"unified_cache\":");
  out_u64(o, HAK_UNIFIED_CACHE);
  out_str(o, ",\"warm_pool\":");
  out_u64(o, HAK_WARM_POOL);
  out_str(o, ",\"prefill\":");
  out_u64(o, HAK_PREFILL);
  out_str(o, ",\"warm_pool_max\":");
  out_u64(o, HAK_WARM_POOL_MAX);
  out_str(o, ",\"prefill_policy\":\"");
  out_str(o, HAK_PREFILL_POLICY_NAME);
  out_str(o, "\",\"stats\":");
  out_u64(o, HAK_STATS);
  out_str(o, ",\"colour\":");
  out_u64(o, HAK_COLOUR);
  out_str(o, ",\"hardened\":");
  out_u64(o, HAK_HARDENED);
  out_str(o, ",\"purge_delay_ms\":");
  out_u64(o, HAK_PURGE_DELAY_MS);
  out_str(o, ",\"purge_thread\":");
  out_u64(o, HAK_PURGE_THREAD);
  out_str(o, ",\"debug_checks\":");
  out_u64(o, HAK_DEBUG_CHECKS);
  out_str(o, "}");
}

static const char *config_string(void)
{
  /* clang-format off */
  return "variant=" HAK_VARIANT
         " unified_cache=" HAK_STR(HAK_UNIFIED_CACHE)
         " warm_pool=" HAK_STR(HAK_WARM_POOL)
         " prefill=" HAK_STR(HAK_PREFILL)
         " prefill_policy=" HAK_PREFILL_POLICY_NAME
         " warm_pool_max=" HAK_STR(HAK_WARM_POOL_MAX)
         " stats=" HAK_STR(HAK_STATS)
         " colour=" HAK_STR(HAK_COLOUR)
         " hardened=" HAK_STR(HAK_HARDENED)
         " purge_delay_ms=" HAK_STR(HAK_PURGE_DELAY_MS)
         " purge_thread=" HAK_STR(HAK_PURGE_THREAD)
         " debug_checks=" HAK_STR(HAK_DEBUG_CHECKS);
  /* clang-format on */
}

HAK_EXPORT const char *hak_config_string(void) { return config_string(); }
HAK_EXPORT const char *hak_version(void) { return HAK_VERSION; }

#if HAK_STATS
static void format_json(outbuf_t *o, const hak_thread_stats_t *s)
{
  uint64_t tot[HAK_STAT_COUNT] = {0};
  uint64_t mapped = 0, unmapped = 0;
  out_str(o, "{\"allocator\":\"hakmem\",\"version\":\"" HAK_VERSION "\",\"variant\":\"" HAK_VARIANT "\",\"pid\":");
  out_u64(o, (unsigned long long)getpid());
  out_str(o, ",\"config\":");
  config_json(o);
  out_str(o, ",\"classes\":[");
  bool first = true;
  /* One reading of the backend's counters, so that the classes add up to
   * the totals even while other threads map and unmap. */
  uint64_t ss_map[HAK_NUM_CLASSES], ss_unmap[HAK_NUM_CLASSES];
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    ss_map[c] = backend_ss_mapped(c);
    ss_unmap[c] = backend_ss_unmapped(c);
  }
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    bool any = ss_map[c] != 0;
    for (unsigned i = 0; i < HAK_STAT_COUNT; i++) {
      tot[i] += s->cls[c].v[i];
      any |= s->cls[c].v[i] != 0;
    }
    mapped += ss_map[c];
    unmapped += ss_unmap[c];
    if (!any)
      continue;
    out_str(o, first ? "{\"class\":" : ",{\"class\":");
    first = false;
    out_u64(o, c);
    out_str(o, ",\"size\":");
    out_u64(o, hak_class_size(c));
    for (unsigned i = 0; i < HAK_STAT_COUNT; i++) {
      out_str(o, ",\"");
      out_str(o, stat_names[i]);
      out_str(o, "\":");
      out_u64(o, s->cls[c].v[i]);
    }
    out_str(o, ",\"superslabs_mapped\":");
    out_u64(o, ss_map[c]);
    out_str(o, ",\"superslabs_unmapped\":");
    out_u64(o, ss_unmap[c]);
    out_str(o, ",\"prefill_budget\":");
    out_u64(o, s->budget[c]);
    out_str(o, ",\"prefill_budget_peak\":");
    out_u64(o, s->budget_peak[c]);
    out_str(o, "}");
  }
  out_str(o, "],\"totals\":{");
  for (unsigned i = 0; i < HAK_STAT_COUNT; i++) {
    out_str(o, i ? ",\"" : "\"");
    out_str(o, stat_names[i]);
    out_str(o, "\":");
    out_u64(o, tot[i]);
  }
  out_str(o, ",\"superslabs_mapped\":");
  out_u64(o, mapped);
  out_str(o, ",\"superslabs_unmapped\":");
  out_u64(o, unmapped);
  out_str(o, ",\"superslabs_live\":");
  out_u64(o, backend_ss_live());
  out_str(o, ",\"large_allocs\":");
  out_u64(o, large_allocs());
  out_str(o, ",\"large_frees\":");
  out_u64(o, large_frees());
  out_str(o, ",\"large_cache_hits\":");
  out_u64(o, large_cache_hits());
  out_str(o, ",\"large_moves\":");
  out_u64(o, large_moves());
  out_str(o, ",\"registry_leaves\":");
  out_u64(o, registry_leaves_mapped());
  out_str(o, "}}\n");
}

static void format_table(outbuf_t *o, const hak_thread_stats_t *s)
{
  static const char *const cols[] = {"uc_hits",   "uc_misses",      "warm_hits",   "warm_misses",
                                     "warm_cold",  "prefilled", "registry_scans", "remote_frees"};
  static const unsigned ids[] = {HAK_STAT_uc_hits,         HAK_STAT_uc_misses, HAK_STAT_warm_hits,
                                 HAK_STAT_warm_misses,     HAK_STAT_warm_cold_misses, HAK_STAT_prefilled,
                                 HAK_STAT_registry_scans, HAK_STAT_remote_frees};
  const unsigned ncols = sizeof ids / sizeof ids[0];
  uint64_t tot[HAK_STAT_COUNT] = {0};
  out_str(o, "hakmem " HAK_VERSION " statistics (pid ");
  out_u64(o, (unsigned long long)getpid());
  out_str(o, ")\nconfig: ");
  out_str(o, config_string());
  out_str(o, "\n\nclass   size");
  for (unsigned i = 0; i < ncols; i++)
    out_pad(o, cols[i], 15, true);
  out_pad(o, "ss_mapped", 11, true);
  out_str(o, "   warm hit%\n");
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    bool any = false;
    for (unsigned i = 0; i < HAK_STAT_COUNT; i++) {
      tot[i] += s->cls[c].v[i];
      any |= s->cls[c].v[i] != 0;
    }
    if (!any)
      continue;
    out_u64_pad(o, c, 5);
    out_u64_pad(o, hak_class_size(c), 7);
    for (unsigned i = 0; i < ncols; i++)
      out_u64_pad(o, s->cls[c].v[ids[i]], 15);
    out_u64_pad(o, backend_ss_mapped(c), 11);
    uint64_t h = s->cls[c].v[HAK_STAT_warm_hits], m = s->cls[c].v[HAK_STAT_warm_misses];
    out_u64_pad(o, h + m ? (h * 1000 / (h + m)) / 10 : 0, 10);
    out_str(o, ".");
    out_u64(o, h + m ? (h * 1000 / (h + m)) % 10 : 0);
    out_str(o, "\n");
  }
  out_str(o, "total       ");
  for (unsigned i = 0; i < ncols; i++)
    out_u64_pad(o, tot[ids[i]], 15);
  uint64_t mapped = 0;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    mapped += backend_ss_mapped(c);
  out_u64_pad(o, mapped, 11);
  uint64_t h = tot[HAK_STAT_warm_hits], m = tot[HAK_STAT_warm_misses];
  out_u64_pad(o, h + m ? (h * 1000 / (h + m)) / 10 : 0, 10);
  out_str(o, ".");
  out_u64(o, h + m ? (h * 1000 / (h + m)) % 10 : 0);
  out_str(o, "\n\nlarge blocks: ");
  out_u64(o, large_allocs());
  out_str(o, " allocated, ");
  out_u64(o, large_frees());
  out_str(o, " freed, ");
  out_u64(o, large_cache_hits());
  out_str(o, " served from the cache, ");
  out_u64(o, large_moves());
  out_str(o, " moved by realloc without a copy\nsuperslabs live: ");
  out_u64(o, backend_ss_live());
  out_str(o, "\n");
}

/* HAKMEM_WARM_POOL_STATS=1: the warm pool's own table. */
static void format_warm_table(outbuf_t *o, const hak_thread_stats_t *s)
{
  out_str(o, "hakmem warm pool (pid ");
  out_u64(o, (unsigned long long)getpid());
  out_str(o, "): policy " HAK_PREFILL_POLICY_NAME ", prefill " HAK_STR(HAK_PREFILL) ", capacity " HAK_STR(
    HAK_WARM_POOL_MAX) "\nclass   size       hits     misses       cold   prefills  budget  peak   hit%\n");
  uint64_t th = 0, tm = 0, tc = 0, tp = 0;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    const uint64_t *v = s->cls[c].v;
    uint64_t h = v[HAK_STAT_warm_hits], m = v[HAK_STAT_warm_misses], cold = v[HAK_STAT_warm_cold_misses],
             p = v[HAK_STAT_prefilled];
    if (!(h | m | cold | p))
      continue;
    th += h, tm += m, tc += cold, tp += p;
    out_u64_pad(o, c, 5);
    out_u64_pad(o, hak_class_size(c), 7);
    out_u64_pad(o, h, 11);
    out_u64_pad(o, m, 11);
    out_u64_pad(o, cold, 11);
    out_u64_pad(o, p, 11);
    out_u64_pad(o, s->budget[c], 8);
    out_u64_pad(o, s->budget_peak[c], 6);
    out_u64_pad(o, h + m ? h * 100 / (h + m) : 0, 6);
    out_str(o, "%\n");
  }
  out_str(o, "total       ");
  out_u64_pad(o, th, 11);
  out_u64_pad(o, tm, 11);
  out_u64_pad(o, tc, 11);
  out_u64_pad(o, tp, 11);
  out_str(o, "              ");
  out_u64_pad(o, th + tm ? th * 100 / (th + tm) : 0, 6);
  out_str(o, "%\n");
}
#endif

static int write_all(int fd, const char *p, size_t n)
{
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int stats_write_mode(int fd, int mode);

HAK_EXPORT int hak_stats_write(int fd, int json)
{
  return stats_write_mode(fd, json ? 1 : 0);
}

/* mode: 0 table, 1 JSON, 2 the warm pool's table. */
static int stats_write_mode(int fd, int mode)
{
  int json = mode == 1;
  size_t cap = 256 * 1024;
  char *buf = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED)
    return -1;
  outbuf_t o = {buf, 0, cap};
#if HAK_STATS
  static hak_thread_stats_t snapshot; /* large: not on the stack */
  stats_collect(&snapshot);
  if (mode == 2)
    format_warm_table(&o, &snapshot);
  else if (json)
    format_json(&o, &snapshot);
  else
    format_table(&o, &snapshot);
#else
  if (json) {
    out_str(&o, "{\"allocator\":\"hakmem\",\"version\":\"" HAK_VERSION "\",\"variant\":\"" HAK_VARIANT "\",\"pid\":");
    out_u64(&o, (unsigned long long)getpid());
    out_str(&o, ",\"config\":");
    config_json(&o);
    out_str(&o, "}\n");
  } else {
    out_str(&o, "hakmem " HAK_VERSION ": statistics are compiled out (-Dstats=false)\nconfig: ");
    out_str(&o, config_string());
    out_str(&o, "\n");
  }
#endif
  int r = write_all(fd, o.p, o.len);
  munmap(buf, cap);
  return r;
}

HAK_EXPORT int hak_stats_get(const char *name, unsigned long long *value)
{
#if HAK_STATS
  static hak_thread_stats_t snapshot;
  stats_collect(&snapshot);
  unsigned long long v = 0;
  for (unsigned i = 0; i < HAK_STAT_COUNT; i++)
    if (strcmp(name, stat_names[i]) == 0) {
      for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
        v += snapshot.cls[c].v[i];
      *value = v;
      return 0;
    }
  if (strcmp(name, "superslabs_mapped") == 0 || strcmp(name, "superslabs_unmapped") == 0) {
    bool m = name[11] == 'm';
    for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
      v += m ? backend_ss_mapped(c) : backend_ss_unmapped(c);
    *value = v;
    return 0;
  }
  if (strcmp(name, "large_allocs") == 0) {
    *value = large_allocs();
    return 0;
  }
  if (strcmp(name, "large_frees") == 0) {
    *value = large_frees();
    return 0;
  }
#else
  (void)name;
  (void)value;
#endif
  return -1;
}

/* Programs such as GNU coreutils close stderr before exit; a private copy
 * taken at start-up still reaches the terminal or file it pointed to. */
static int stats_stderr = -1;

void hak_stats_at_start(void)
{
  const char *mode = getenv("HAKMEM_STATS");
  const char *file = getenv("HAKMEM_STATS_FILE");
  const char *wp = getenv("HAKMEM_WARM_POOL_STATS");
  if ((mode && *mode && strcmp(mode, "0") != 0 && !(file && *file)) || (wp && strcmp(wp, "1") == 0))
    stats_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
}

void hak_stats_at_exit(void)
{
  const char *wp = getenv("HAKMEM_WARM_POOL_STATS");
  if (wp && strcmp(wp, "1") == 0)
    stats_write_mode(stats_stderr >= 0 ? stats_stderr : STDERR_FILENO, 2);
  const char *mode = getenv("HAKMEM_STATS");
  if (!mode || !*mode || strcmp(mode, "0") == 0)
    return;
  int json = strcmp(mode, "json") == 0;
  const char *file = getenv("HAKMEM_STATS_FILE");
  int fd = stats_stderr >= 0 ? stats_stderr : STDERR_FILENO;
  if (file && *file) {
    fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
      return;
  }
  hak_stats_write(fd, json);
  if (fd != STDERR_FILENO && fd != stats_stderr)
    close(fd);
}

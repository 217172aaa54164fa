/*
 * front/stats.c — what the statistics show the user: HAKMEM_STATS (a table,
 * or one JSON object on one line) at exit, to stderr or appended to
 * HAKMEM_STATS_FILE; HAKMEM_WARM_POOL_STATS=1 (the warm pool's table);
 * hak_stats_write, hak_stats_get and hak_config_string. The counters and
 * their storage are below the boxes (hak/stats.h, backend/stats.c); the
 * writers are here because they print the variant's configuration, which
 * only the variant's own objects know. Each writer is one loop over
 * HAK_STATS_LIST. Output is formatted into a mapped buffer and written
 * with write(2): no stdio, no malloc.
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

/* Held while a snapshot is taken and written out (the snapshots are
 * static); outermost of the allocator's locks (backend/superslab.c,
 * "Locks"): fork takes it first. */
static hak_mutex_t output_lock = HAK_MUTEX_INIT;

void hak_stats_output_fork_prepare(void) { hak_mutex_lock(&output_lock); }
void hak_stats_output_fork_parent(void) { hak_mutex_unlock(&output_lock); }
void hak_stats_output_fork_child(void) { hak_mutex_reinit(&output_lock); }

#if HAK_STATS
/* Everything counted, as of now: what the boxes above keep in counters of
 * their own is folded in first. */
static void stats_collect(hak_stats_snapshot_t *out)
{
  hak_mutex_assert_held(&output_lock);
  uc_fold_stats();
  hak_stats_snapshot(out);
}
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
static bool per_class(unsigned id) { return hak_stat_desc[id].kind != HAK_STAT_GLOBAL; }

/* Did class c count anything? (The output leaves the others out.) */
static bool class_counted(const hak_stats_snapshot_t *s, unsigned c)
{
  for (unsigned id = 0; id < HAK_STAT_COUNT; id++)
    if (per_class(id) && s->cls[c][id] != 0)
      return true;
  return false;
}

static void format_json(outbuf_t *o, const hak_stats_snapshot_t *s)
{
  out_str(o, "{\"allocator\":\"hakmem\",\"version\":\"" HAK_VERSION "\",\"variant\":\"" HAK_VARIANT "\",\"pid\":");
  out_u64(o, (unsigned long long)getpid());
  out_str(o, ",\"config\":");
  config_json(o);
  out_str(o, ",\"classes\":[");
  bool first = true;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    if (!class_counted(s, c))
      continue;
    out_str(o, first ? "{\"class\":" : ",{\"class\":");
    first = false;
    out_u64(o, c);
    out_str(o, ",\"size\":");
    out_u64(o, hak_class_size(c));
    for (unsigned id = 0; id < HAK_STAT_COUNT; id++) {
      if (!per_class(id))
        continue;
      out_str(o, ",\"");
      out_str(o, hak_stat_desc[id].name);
      out_str(o, "\":");
      out_u64(o, s->cls[c][id]);
    }
    out_str(o, "}");
  }
  out_str(o, "],\"totals\":{");
  for (unsigned id = 0; id < HAK_STAT_COUNT; id++) {
    out_str(o, id ? ",\"" : "\"");
    out_str(o, hak_stat_desc[id].name);
    out_str(o, "\":");
    out_u64(o, s->total[id]);
  }
  out_str(o, "}}\n");
}

/* One line of the table: the per-class columns (those with a heading). */
static void table_row(outbuf_t *o, const uint64_t *v)
{
  for (unsigned id = 0; id < HAK_STAT_COUNT; id++)
    if (per_class(id) && hak_stat_desc[id].heading[0])
      out_u64_pad(o, v[id], 15);
  uint64_t h = v[HAK_STAT_warm_hits], m = v[HAK_STAT_warm_misses];
  out_u64_pad(o, h + m ? (h * 1000 / (h + m)) / 10 : 0, 10);
  out_str(o, ".");
  out_u64(o, h + m ? (h * 1000 / (h + m)) % 10 : 0);
  out_str(o, "\n");
}

static void format_table(outbuf_t *o, const hak_stats_snapshot_t *s)
{
  out_str(o, "hakmem " HAK_VERSION " statistics (pid ");
  out_u64(o, (unsigned long long)getpid());
  out_str(o, ")\nconfig: ");
  out_str(o, config_string());
  out_str(o, "\n\nclass   size");
  for (unsigned id = 0; id < HAK_STAT_COUNT; id++)
    if (per_class(id) && hak_stat_desc[id].heading[0])
      out_pad(o, hak_stat_desc[id].heading, 15, true);
  out_str(o, "   warm hit%\n");
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    if (!class_counted(s, c))
      continue;
    out_u64_pad(o, c, 5);
    out_u64_pad(o, hak_class_size(c), 7);
    table_row(o, s->cls[c]);
  }
  out_str(o, "total       ");
  table_row(o, s->total);
  out_str(o, "\n");
  for (unsigned id = 0; id < HAK_STAT_COUNT; id++)
    if (!per_class(id) && hak_stat_desc[id].heading[0]) {
      out_pad(o, hak_stat_desc[id].heading, 20, false);
      out_u64_pad(o, s->total[id], 15);
      out_str(o, "\n");
    }
}

/* HAKMEM_WARM_POOL_STATS=1: the warm pool's own table. */
static void format_warm_table(outbuf_t *o, const hak_stats_snapshot_t *s)
{
  out_str(o, "hakmem warm pool (pid ");
  out_u64(o, (unsigned long long)getpid());
  out_str(o, "): policy " HAK_PREFILL_POLICY_NAME ", prefill " HAK_STR(HAK_PREFILL) ", capacity " HAK_STR(
    HAK_WARM_POOL_MAX) "\nclass   size       hits     misses       cold   prefills  budget  peak   hit%\n");
  uint64_t th = 0, tm = 0, tc = 0, tp = 0;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    const uint64_t *v = s->cls[c];
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
    out_u64_pad(o, v[HAK_STAT_prefill_budget], 8);
    out_u64_pad(o, v[HAK_STAT_prefill_budget_peak], 6);
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
  static hak_stats_snapshot_t snapshot; /* large: not on the stack */
  hak_mutex_lock(&output_lock);
  stats_collect(&snapshot);
  if (mode == 2)
    format_warm_table(&o, &snapshot);
  else if (json)
    format_json(&o, &snapshot);
  else
    format_table(&o, &snapshot);
  hak_mutex_unlock(&output_lock);
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
  for (unsigned id = 0; id < HAK_STAT_COUNT; id++)
    if (strcmp(name, hak_stat_desc[id].name) == 0) {
      static hak_stats_snapshot_t snapshot;
      hak_mutex_lock(&output_lock);
      stats_collect(&snapshot);
      *value = snapshot.total[id];
      hak_mutex_unlock(&output_lock);
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

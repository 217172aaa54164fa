/*
 * backend/stats_output.c — the statistics as the user reads them: the
 * table, the JSON object (one line) and the warm pool's table, written to
 * a file descriptor (hak_stats_write), and one counter by name
 * (hak_stats_get). Each writer is one loop over HAK_STATS_LIST; a new
 * counter shows up in all of them without a line here.
 *
 * What the output says about the library (variant, options) comes from
 * the front, the only part that knows its variant's options: it hands a
 * description over once (hak_stats_describe). The JSON adds the run-time
 * settings in force and where each came from (hak/settings.h) beside the
 * build's "config". Counters the boxes above
 * keep for themselves are folded in through the description's hook first.
 *
 * Output is formatted into a mapped buffer and written with write(2): no
 * stdio, no malloc, so it works from an exit hook and under any lock a
 * caller of malloc may hold. output_lock (outermost of the allocator's
 * locks, backend/superslab.c, "Locks") guards the static snapshots.
 */
#include "hak/stats.h"
#include "hak/settings.h"
#include "hak/lock.h"
#include "hak/outbuf.h"
#include "hakmem.h"
#include "backend/os.h"
#include "backend/size_class.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static hak_mutex_t output_lock = HAK_MUTEX_INIT;
static const hak_stats_about_t about_unknown = {"?", "?", "{}", "variant=?", "", NULL};
static const hak_stats_about_t *_Atomic about = &about_unknown;

void hak_stats_describe(const hak_stats_about_t *a) { atomic_store(&about, a); }

void hak_stats_output_fork_prepare(void) { hak_mutex_lock(&output_lock); }
void hak_stats_output_fork_parent(void) { hak_mutex_unlock(&output_lock); }
void hak_stats_output_fork_child(void) { hak_mutex_reinit(&output_lock); }

/* The JSON object's and the table's first words. */
static void out_head(hak_out_t *o, const hak_stats_about_t *a, bool json)
{
  if (json) {
    hak_out_str(o, "{\"allocator\":\"hakmem\",\"version\":\"");
    hak_out_str(o, a->version);
    hak_out_str(o, "\",\"variant\":\"");
    hak_out_str(o, a->variant);
    hak_out_str(o, "\",\"pid\":");
    hak_out_u64(o, (unsigned long long)getpid());
    hak_out_str(o, ",\"config\":");
    hak_out_str(o, a->config_json);
    hak_out_str(o, ",\"settings\":");
    o->len += hak_settings_format_json(o->p + o->len, o->cap - o->len);
    hak_out_str(o, ",\"settings_source\":");
    o->len += hak_settings_format_sources_json(o->p + o->len, o->cap - o->len);
  } else {
    hak_out_str(o, "hakmem ");
    hak_out_str(o, a->version);
    hak_out_str(o, " statistics (pid ");
    hak_out_u64(o, (unsigned long long)getpid());
    hak_out_str(o, ")\nconfig: ");
    hak_out_str(o, a->config_text);
    hak_out_str(o, "\n");
  }
}

#if HAK_STATS
/* Everything counted, as of now: what the boxes above keep in counters of
 * their own is folded in first. */
static void stats_collect(const hak_stats_about_t *a, hak_stats_snapshot_t *out)
{
  hak_mutex_assert_held(&output_lock);
  if (a->fold)
    a->fold();
  hak_stats_snapshot(out);
}

static bool per_class(unsigned id) { return hak_stat_desc[id].kind != HAK_STAT_GLOBAL; }

/* Did class c count anything? (The output leaves the others out.) */
static bool class_counted(const hak_stats_snapshot_t *s, unsigned c)
{
  for (unsigned id = 0; id < HAK_STAT_COUNT; id++)
    if (per_class(id) && s->cls[c][id] != 0)
      return true;
  return false;
}

static void format_json(hak_out_t *o, const hak_stats_about_t *a, const hak_stats_snapshot_t *s)
{
  out_head(o, a, true);
  hak_out_str(o, ",\"classes\":[");
  bool first = true;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    if (!class_counted(s, c))
      continue;
    hak_out_str(o, first ? "{\"class\":" : ",{\"class\":");
    first = false;
    hak_out_u64(o, c);
    hak_out_str(o, ",\"size\":");
    hak_out_u64(o, hak_class_size(c));
    for (unsigned id = 0; id < HAK_STAT_COUNT; id++) {
      if (!per_class(id))
        continue;
      hak_out_str(o, ",\"");
      hak_out_str(o, hak_stat_desc[id].name);
      hak_out_str(o, "\":");
      hak_out_u64(o, s->cls[c][id]);
    }
    hak_out_str(o, "}");
  }
  hak_out_str(o, "],\"totals\":{");
  for (unsigned id = 0; id < HAK_STAT_COUNT; id++) {
    hak_out_str(o, id ? ",\"" : "\"");
    hak_out_str(o, hak_stat_desc[id].name);
    hak_out_str(o, "\":");
    hak_out_u64(o, s->total[id]);
  }
  hak_out_str(o, "}}\n");
}

/* One line of the table: the per-class columns (those with a heading). */
static void table_row(hak_out_t *o, const uint64_t *v)
{
  for (unsigned id = 0; id < HAK_STAT_COUNT; id++)
    if (per_class(id) && hak_stat_desc[id].heading[0])
      hak_out_u64_right(o, v[id], 15);
  uint64_t h = v[HAK_STAT_warm_hits], m = v[HAK_STAT_warm_misses];
  hak_out_u64_right(o, h + m ? (h * 1000 / (h + m)) / 10 : 0, 10);
  hak_out_str(o, ".");
  hak_out_u64(o, h + m ? (h * 1000 / (h + m)) % 10 : 0);
  hak_out_str(o, "\n");
}

static void format_table(hak_out_t *o, const hak_stats_about_t *a, const hak_stats_snapshot_t *s)
{
  out_head(o, a, false);
  hak_out_str(o, "\nclass   size");
  for (unsigned id = 0; id < HAK_STAT_COUNT; id++)
    if (per_class(id) && hak_stat_desc[id].heading[0])
      hak_out_str_right(o, hak_stat_desc[id].heading, 15);
  hak_out_str(o, "   warm hit%\n");
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    if (!class_counted(s, c))
      continue;
    hak_out_u64_right(o, c, 5);
    hak_out_u64_right(o, hak_class_size(c), 7);
    table_row(o, s->cls[c]);
  }
  hak_out_str(o, "total       ");
  table_row(o, s->total);
  hak_out_str(o, "\n");
  for (unsigned id = 0; id < HAK_STAT_COUNT; id++)
    if (!per_class(id) && hak_stat_desc[id].heading[0]) {
      const size_t from = o->len;
      hak_out_str(o, hak_stat_desc[id].heading);
      hak_out_pad(o, from, 20);
      hak_out_u64_right(o, s->total[id], 15);
      hak_out_str(o, "\n");
    }
}

/* The warm pool's own table (HAKMEM_WARM_POOL_STATS=1). */
static void format_warm_table(hak_out_t *o, const hak_stats_about_t *a, const hak_stats_snapshot_t *s)
{
  hak_out_str(o, "hakmem warm pool (pid ");
  hak_out_u64(o, (unsigned long long)getpid());
  hak_out_str(o, "): ");
  hak_out_str(o, a->warm_pool);
  hak_out_str(o, "\nclass   size       hits     misses       cold   prefills  budget  peak   hit%\n");
  uint64_t th = 0, tm = 0, tc = 0, tp = 0;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    const uint64_t *v = s->cls[c];
    uint64_t h = v[HAK_STAT_warm_hits], m = v[HAK_STAT_warm_misses], cold = v[HAK_STAT_warm_cold_misses],
             p = v[HAK_STAT_prefilled];
    if (!(h | m | cold | p))
      continue;
    th += h, tm += m, tc += cold, tp += p;
    hak_out_u64_right(o, c, 5);
    hak_out_u64_right(o, hak_class_size(c), 7);
    hak_out_u64_right(o, h, 11);
    hak_out_u64_right(o, m, 11);
    hak_out_u64_right(o, cold, 11);
    hak_out_u64_right(o, p, 11);
    hak_out_u64_right(o, v[HAK_STAT_prefill_budget], 8);
    hak_out_u64_right(o, v[HAK_STAT_prefill_budget_peak], 6);
    hak_out_u64_right(o, h + m ? h * 100 / (h + m) : 0, 6);
    hak_out_str(o, "%\n");
  }
  hak_out_str(o, "total       ");
  hak_out_u64_right(o, th, 11);
  hak_out_u64_right(o, tm, 11);
  hak_out_u64_right(o, tc, 11);
  hak_out_u64_right(o, tp, 11);
  hak_out_str(o, "              ");
  hak_out_u64_right(o, th + tm ? th * 100 / (th + tm) : 0, 6);
  hak_out_str(o, "%\n");
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

int hak_stats_print(int fd, enum hak_stats_view view)
{
  const hak_stats_about_t *a = atomic_load(&about);
  size_t cap = 256 * 1024;
  char *buf = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED)
    return -1;
  hak_out_t o = {buf, 0, cap};
#if HAK_STATS
  static hak_stats_snapshot_t snapshot; /* large: not on the stack */
  hak_mutex_lock(&output_lock);
  stats_collect(a, &snapshot);
  switch (view) {
  case HAK_STATS_VIEW_TABLE: format_table(&o, a, &snapshot); break;
  case HAK_STATS_VIEW_JSON: format_json(&o, a, &snapshot); break;
  case HAK_STATS_VIEW_WARM_POOL: format_warm_table(&o, a, &snapshot); break;
  }
  hak_mutex_unlock(&output_lock);
#else
  if (view == HAK_STATS_VIEW_JSON) {
    out_head(&o, a, true);
    hak_out_str(&o, "}\n");
  } else {
    hak_out_str(&o, "hakmem ");
    hak_out_str(&o, a->version);
    hak_out_str(&o, ": statistics are compiled out (-Dstats=false)\nconfig: ");
    hak_out_str(&o, a->config_text);
    hak_out_str(&o, "\n");
  }
#endif
  int r = write_all(fd, o.p, o.len);
  munmap(buf, cap);
  return r;
}

HAK_EXPORT int hak_stats_write(int fd, int json)
{
  return hak_stats_print(fd, json ? HAK_STATS_VIEW_JSON : HAK_STATS_VIEW_TABLE);
}

HAK_EXPORT int hak_stats_get(const char *name, unsigned long long *value)
{
#if HAK_STATS
  for (unsigned id = 0; id < HAK_STAT_COUNT; id++)
    if (strcmp(name, hak_stat_desc[id].name) == 0) {
      static hak_stats_snapshot_t snapshot;
      hak_mutex_lock(&output_lock);
      stats_collect(atomic_load(&about), &snapshot);
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

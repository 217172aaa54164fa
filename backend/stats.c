/*
 * backend/stats.c — the storage of the statistics (hak/stats.h): each
 * thread's block of counters, the process's atomics, the fold of an
 * exiting thread and the snapshot every reader works from. Below every
 * box, so that any of them counts without reaching up; the output (JSON,
 * table) is stats_output.c's.
 *
 * Each live thread has a block (mapped, recycled, never freed) on a list
 * under stats_lock; until then, and after it exits, its counts go to a
 * shared sink. An exiting thread adds its block into the totals and gives
 * the block back. Readers sum the totals, the live blocks and the sink
 * with relaxed loads.
 */
#include "hak/stats.h"
#include "hak/lock.h"
#include "registry/registry.h"

#include <string.h>
#include <sys/mman.h>

const hak_stat_desc_t hak_stat_desc[HAK_STAT_COUNT] = {
#define HAK_STAT_DESC(name, kind, heading) {#name, heading, HAK_STAT_##kind},
  HAK_STATS_LIST(HAK_STAT_DESC)
#undef HAK_STAT_DESC
};

/* THREAD counters come first in the list: their ids index a block. */
#define HAK_STAT_ORDER(name, kind, heading) \
  _Static_assert(HAK_STAT_##kind != HAK_STAT_THREAD || (int)HAK_STAT_##name < (int)HAK_STAT_THREAD_COUNT, \
                 #name ": THREAD counters first");
HAK_STATS_LIST(HAK_STAT_ORDER)
#undef HAK_STAT_ORDER

_Atomic uint64_t hak_stats_class_atomic[HAK_STAT_COUNT][HAK_NUM_CLASSES];
_Atomic uint64_t hak_stats_global_atomic[HAK_STAT_COUNT];

static hak_thread_stats_t stats_sink;
__thread hak_thread_stats_t *hak_tls_stats = &stats_sink;
static hak_thread_stats_t stats_exited;   /* folded from exited threads */
static hak_list_node_t *stats_live;
static hak_list_node_t *stats_free;   /* blocks of exited threads, for reuse */
static hak_mutex_t stats_lock = HAK_MUTEX_INIT;

void hak_stats_thread_start(void)
{
  if (hak_tls_stats != &stats_sink)
    return;
  hak_mutex_lock(&stats_lock);
  hak_thread_stats_t *ts = hak_list_entry(stats_free, hak_thread_stats_t, node);
  if (ts) {
    hak_list_remove(&stats_free, &ts->node);
  } else {
    void *m = mmap(NULL, sizeof *ts, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ts = m == MAP_FAILED ? NULL : m;
  }
  if (ts) {
    memset(ts->cls, 0, sizeof ts->cls);
    memset(ts->prefill_budget, 0, sizeof ts->prefill_budget);
    memset(ts->prefill_budget_peak, 0, sizeof ts->prefill_budget_peak);
    hak_list_push(&stats_live, &ts->node);
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
      max_u16(&dst->prefill_budget[c], &src->prefill_budget[c]);
    max_u16(&dst->prefill_budget_peak[c], &src->prefill_budget_peak[c]);
  }
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    for (unsigned i = 0; i < HAK_STAT_THREAD_COUNT; i++) {
      uint64_t v = __atomic_load_n(&src->cls[c].v[i], __ATOMIC_RELAXED);
      __atomic_store_n(&dst->cls[c].v[i], __atomic_load_n(&dst->cls[c].v[i], __ATOMIC_RELAXED) + v,
                       __ATOMIC_RELAXED);
    }
}

void hak_stats_thread_fold(void)
{
  hak_thread_stats_t *ts = hak_tls_stats;
  if (ts == &stats_sink)
    return;
  hak_mutex_lock(&stats_lock);
  add_block(&stats_exited, ts, false);
  hak_list_remove(&stats_live, &ts->node);
  hak_list_push(&stats_free, &ts->node);
  hak_tls_stats = &stats_sink;
  hak_mutex_unlock(&stats_lock);
}

void hak_stats_snapshot(hak_stats_snapshot_t *out)
{
  static hak_thread_stats_t sum; /* large: not on the stack; under stats_lock */
  memset(out, 0, sizeof *out);
  hak_mutex_lock(&stats_lock);
  memset(&sum, 0, sizeof sum);
  add_block(&sum, &stats_exited, true);
  hak_thread_stats_t *ts;
  hak_list_for_each(ts, stats_live, node)
    add_block(&sum, ts, true);
  add_block(&sum, &stats_sink, true);
  for (unsigned id = 0; id < HAK_STAT_COUNT; id++) {
    uint64_t *total = &out->total[id];
    for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
      uint64_t v = 0;
      switch (hak_stat_desc[id].kind) {
      case HAK_STAT_THREAD: v = sum.cls[c].v[id]; break;
      case HAK_STAT_GAUGE: v = sum.prefill_budget[c]; break;
      case HAK_STAT_PEAK: v = sum.prefill_budget_peak[c]; break;
      case HAK_STAT_CLASS:
        v = atomic_load_explicit(&hak_stats_class_atomic[id][c], memory_order_relaxed);
        break;
      case HAK_STAT_GLOBAL: continue;
      }
      out->cls[c][id] = v;
      if (hak_stat_desc[id].kind == HAK_STAT_GAUGE || hak_stat_desc[id].kind == HAK_STAT_PEAK)
        *total = v > *total ? v : *total;
      else
        *total += v;
    }
    if (hak_stat_desc[id].kind == HAK_STAT_GLOBAL)
      *total = id == HAK_STAT_registry_leaves
        ? registry_leaves_mapped()
        : atomic_load_explicit(&hak_stats_global_atomic[id], memory_order_relaxed);
  }
  hak_mutex_unlock(&stats_lock);
}

void hak_stats_fork_prepare(void) { hak_mutex_lock(&stats_lock); }
void hak_stats_fork_parent(void) { hak_mutex_unlock(&stats_lock); }
void hak_stats_fork_child(void) { hak_mutex_reinit(&stats_lock); }

/*
 * hak/stats.h — statistics counters: an X-macro list, kept per thread and
 * per size class, merged when read. With -Dstats=false every HAK_STAT_ADD
 * compiles to nothing. Only slow paths count: the unified cache's hits are
 * derived from its pop counter, which the hot path keeps anyway.
 *
 * A thread's counters are written by that thread only (relaxed atomic
 * stores, so a reader in another thread sees whole values) and folded into
 * the global totals when the thread exits.
 */
#ifndef HAK_STATS_H
#define HAK_STATS_H

#include "hak/config.h"
#include "hak/common.h"

#define HAK_STAT_COUNTERS(X) \
  X(uc_hits)                 \
  X(uc_misses)               \
  X(uc_flushes)              \
  X(warm_hits)               \
  X(warm_misses)             \
  X(warm_cold_misses)        \
  X(prefilled)               \
  X(registry_scans)          \
  X(inbox_taken)             \
  X(remote_frees)

enum hak_stat_id {
#define HAK_STAT_ENUM(name) HAK_STAT_##name,
  HAK_STAT_COUNTERS(HAK_STAT_ENUM)
#undef HAK_STAT_ENUM
  HAK_STAT_COUNT
};

typedef struct hak_class_stats {
  uint64_t v[HAK_STAT_COUNT];
} hak_class_stats_t;

typedef struct hak_thread_stats {
  hak_class_stats_t cls[HAK_NUM_CLASSES];
  /* Gauges (merged by maximum, not summed): each class's prefill budget
   * now and at its highest. */
  uint16_t budget[HAK_NUM_CLASSES];
  uint16_t budget_peak[HAK_NUM_CLASSES];
  struct hak_thread_stats *next;   /* list of live threads' counters */
  struct hak_thread_stats *prev;
} hak_thread_stats_t;

#if HAK_STATS
extern __thread hak_thread_stats_t *hak_tls_stats HAK_INTERNAL;
#define HAK_STAT_ADD(cls_, name, n)                                                   \
  do {                                                                              \
    uint64_t *hak_stat_p_ = &hak_tls_stats->cls[(cls_)].v[HAK_STAT_##name];         \
    __atomic_store_n(hak_stat_p_, __atomic_load_n(hak_stat_p_, __ATOMIC_RELAXED) + (n), \
                     __ATOMIC_RELAXED);                                             \
  } while (0)
#define HAK_STAT_GAUGE(cls_, name, v) \
  __atomic_store_n(&hak_tls_stats->name[(cls_)], (uint16_t)(v), __ATOMIC_RELAXED)
#else
#define HAK_STAT_ADD(cls_, name, n) ((void)(cls_), (void)(n))
#define HAK_STAT_GAUGE(cls_, name, v) ((void)(cls_), (void)(v))
#endif

#endif /* HAK_STATS_H */

/*
 * hak/stats.h — the statistics: every counter of the allocator in one list
 * (HAK_STATS_LIST), the storage behind it (backend/stats.c, below every
 * box), the snapshot, and the output (backend/stats_output.c): the JSON,
 * the table and hak_stats_get are each one loop over the list.
 *
 * Kinds of counter:
 *   THREAD  per class, counted by the thread that does the work
 *           (HAK_STAT_ADD: relaxed stores into its own block, no atomic
 *           read-modify-write), summed over threads; an exiting thread's
 *           block is folded into the totals. Only slow paths count: the
 *           unified cache's hits are derived from a counter the hot path
 *           keeps anyway (uc_fold_stats).
 *   GAUGE   per class and thread, merged by maximum over the live threads
 *           (HAK_STAT_GAUGE; a thread's state now, such as its budget).
 *   PEAK    per class and thread, merged by maximum over all threads.
 *   CLASS   per class, one atomic for the process (HAK_STAT_CLASS_ADD).
 *   GLOBAL  one atomic for the process (HAK_STAT_GLOBAL_ADD), or read from
 *           the registry (registry_leaves).
 * With -Dstats=false every counter compiles to nothing (the backend's
 * objects are built per value of the option, like hardened and colour).
 *
 * The list keeps the THREAD counters first: their ids index a thread's
 * block directly.
 */
#ifndef HAK_STATS_H
#define HAK_STATS_H

#include "hak/config.h"
#include "hak/common.h"
#include "hak/list.h"

#include <stdatomic.h>

/* X(name, kind, heading in the table at exit, or "" for none) */
#define HAK_STATS_LIST(X)                              \
  X(uc_hits,             THREAD, "uc_hits")            \
  X(uc_misses,           THREAD, "uc_misses")          \
  X(uc_flushes,          THREAD, "")                   \
  X(uc_suspects,         THREAD, "")                   /* frees that found the check word */ \
  X(warm_hits,           THREAD, "warm_hits")          \
  X(warm_misses,         THREAD, "warm_misses")        \
  X(warm_cold_misses,    THREAD, "warm_cold")          \
  X(prefilled,           THREAD, "prefilled")          \
  X(registry_scans,      THREAD, "registry_scans")     \
  X(inbox_taken,         THREAD, "")                   \
  X(remote_frees,        THREAD, "remote_frees")       \
  X(superslabs_mapped,   CLASS,  "ss_mapped")          \
  X(superslabs_unmapped, CLASS,  "")                   \
  X(prefill_budget,      GAUGE,  "")                   \
  X(prefill_budget_peak, PEAK,   "")                   \
  X(superslabs_live,     GLOBAL, "superslabs_live")    \
  X(large_allocs,        GLOBAL, "large_allocs")       \
  X(large_frees,         GLOBAL, "large_frees")        \
  X(large_cache_hits,    GLOBAL, "large_cache_hits")   \
  X(large_moves,         GLOBAL, "large_moves")        \
  X(large_cache_grows,   GLOBAL, "")                   /* served by growing a cached mapping */ \
  X(registry_leaves,     GLOBAL, "registry_leaves")

enum hak_stat_kind { HAK_STAT_THREAD, HAK_STAT_GAUGE, HAK_STAT_PEAK, HAK_STAT_CLASS, HAK_STAT_GLOBAL };

/* HAK_STAT_<name>: a counter's id, its place in the list. */
enum hak_stat_id {
#define HAK_STAT_ID(name, kind, heading) HAK_STAT_##name,
  HAK_STATS_LIST(HAK_STAT_ID)
#undef HAK_STAT_ID
  HAK_STAT_COUNT
};

/* How many of each kind (the storage of each is indexed from 0). */
#define HAK_STAT_COUNT_KIND(name, kind, heading) +(HAK_STAT_##kind == HAK_STAT_THREAD)
enum { HAK_STAT_THREAD_COUNT = 0 HAK_STATS_LIST(HAK_STAT_COUNT_KIND) };
#undef HAK_STAT_COUNT_KIND

typedef struct hak_stat_desc {
  const char *name;
  const char *heading;
  enum hak_stat_kind kind;
} hak_stat_desc_t;
extern const hak_stat_desc_t hak_stat_desc[HAK_STAT_COUNT] HAK_INTERNAL;

/* A thread's block: its THREAD counters and its gauges, per class. */
typedef struct hak_class_stats {
  uint64_t v[HAK_STAT_THREAD_COUNT];
} hak_class_stats_t;

typedef struct hak_thread_stats {
  hak_class_stats_t cls[HAK_NUM_CLASSES];
  uint16_t prefill_budget[HAK_NUM_CLASSES];
  uint16_t prefill_budget_peak[HAK_NUM_CLASSES];
  hak_list_node_t node;   /* on the list of live blocks, or of free ones */
} hak_thread_stats_t;

/* Every counter at one moment: per class (0 for GLOBAL ones) and for the
 * process (the sum over classes; for GAUGE and PEAK the maximum). */
typedef struct hak_stats_snapshot {
  uint64_t cls[HAK_NUM_CLASSES][HAK_STAT_COUNT];
  uint64_t total[HAK_STAT_COUNT];
} hak_stats_snapshot_t;

/* The calling thread's block (a shared sink until hak_stats_thread_start). */
extern __thread hak_thread_stats_t *hak_tls_stats HAK_INTERNAL;
extern _Atomic uint64_t hak_stats_class_atomic[HAK_STAT_COUNT][HAK_NUM_CLASSES] HAK_INTERNAL;
extern _Atomic uint64_t hak_stats_global_atomic[HAK_STAT_COUNT] HAK_INTERNAL;

/* Storage (backend/stats.c). The caller of thread_fold and snapshot first
 * folds what the boxes above keep in their own counters (uc_fold_stats). */
void hak_stats_thread_start(void) HAK_INTERNAL;
void hak_stats_thread_fold(void) HAK_INTERNAL;
void hak_stats_snapshot(hak_stats_snapshot_t *out) HAK_INTERNAL;
void hak_stats_fork_prepare(void) HAK_INTERNAL;
void hak_stats_fork_parent(void) HAK_INTERNAL;
void hak_stats_fork_child(void) HAK_INTERNAL;

/* Output (backend/stats_output.c). What it says of the library comes from
 * the front, which alone knows its variant's options; fold, if set, adds
 * the calling thread's counters kept above the backend (uc_fold_stats). */
typedef struct hak_stats_about {
  const char *version;
  const char *variant;
  const char *config_json; /* the options as one JSON object */
  const char *config_text; /* the options as name=value words */
  const char *warm_pool;   /* the warm pool's settings, for its table */
  void (*fold)(void);
} hak_stats_about_t;
enum hak_stats_view { HAK_STATS_VIEW_TABLE, HAK_STATS_VIEW_JSON, HAK_STATS_VIEW_WARM_POOL };

void hak_stats_describe(const hak_stats_about_t *about) HAK_INTERNAL;
int hak_stats_print(int fd, enum hak_stats_view view) HAK_INTERNAL;
/* Fork: the output's lock, taken before every other lock. */
void hak_stats_output_fork_prepare(void) HAK_INTERNAL;
void hak_stats_output_fork_parent(void) HAK_INTERNAL;
void hak_stats_output_fork_child(void) HAK_INTERNAL;

#if HAK_STATS
#define HAK_STAT_ADD(cls_, name, n)                                                       \
  do {                                                                                    \
    _Static_assert((int)HAK_STAT_##name < (int)HAK_STAT_THREAD_COUNT, #name " is a THREAD counter"); \
    uint64_t *hak_stat_p_ = &hak_tls_stats->cls[(cls_)].v[HAK_STAT_##name];               \
    __atomic_store_n(hak_stat_p_, __atomic_load_n(hak_stat_p_, __ATOMIC_RELAXED) + (n),   \
                     __ATOMIC_RELAXED);                                                   \
  } while (0)
#define HAK_STAT_GAUGE(cls_, name, v) \
  __atomic_store_n(&hak_tls_stats->name[(cls_)], (uint16_t)(v), __ATOMIC_RELAXED)
#else
#define HAK_STAT_ADD(cls_, name, n) ((void)(cls_), (void)(n))
#define HAK_STAT_GAUGE(cls_, name, v) ((void)(cls_), (void)(v))
#endif

/* The process-wide counters (CLASS and GLOBAL). HAK_STAT_READ reads one
 * (0 with -Dstats=false). */
#if HAK_STATS
#define HAK_STAT_CLASS_ADD(cls_, name, n) \
  atomic_fetch_add_explicit(&hak_stats_class_atomic[HAK_STAT_##name][(cls_)], (n), memory_order_relaxed)
#define HAK_STAT_GLOBAL_ADD(name, n) \
  atomic_fetch_add_explicit(&hak_stats_global_atomic[HAK_STAT_##name], (n), memory_order_relaxed)
#define HAK_STAT_GLOBAL_SUB(name, n) \
  atomic_fetch_sub_explicit(&hak_stats_global_atomic[HAK_STAT_##name], (n), memory_order_relaxed)
#else
#define HAK_STAT_CLASS_ADD(cls_, name, n) ((void)(cls_), (void)(n))
#define HAK_STAT_GLOBAL_ADD(name, n) ((void)(n))
#define HAK_STAT_GLOBAL_SUB(name, n) ((void)(n))
#endif
#define HAK_STAT_READ(name) atomic_load_explicit(&hak_stats_global_atomic[HAK_STAT_##name], memory_order_relaxed)

#endif /* HAK_STATS_H */

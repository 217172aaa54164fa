/*
 * hak/config.h — the one place where Meson's raw option values become HAK_*
 * macros. Code tests these macros, never Meson. Every value has a default so
 * a box can be compiled on its own (the unit tests do), and combinations that
 * make no sense stop the build here.
 */
#ifndef HAK_CONFIG_H
#define HAK_CONFIG_H

#ifdef HAK_RAW_CONFIG_HEADER
#include HAK_RAW_CONFIG_HEADER
#endif

#ifndef HAK_RAW_UNIFIED_CACHE
#define HAK_RAW_UNIFIED_CACHE 1
#endif
#ifndef HAK_RAW_WARM_POOL
#define HAK_RAW_WARM_POOL 1
#endif
#ifndef HAK_RAW_PREFILL
#define HAK_RAW_PREFILL 3
#endif
#ifndef HAK_RAW_WARM_POOL_MAX
#define HAK_RAW_WARM_POOL_MAX 16
#endif
#ifndef HAK_RAW_STATS
#define HAK_RAW_STATS 1
#endif
#ifndef HAK_RAW_PREFILL_ADAPTIVE
#define HAK_RAW_PREFILL_ADAPTIVE 0
#endif
#ifndef HAK_RAW_HARDENED
#define HAK_RAW_HARDENED 0
#endif
#ifndef HAK_RAW_COLOUR
#define HAK_RAW_COLOUR 1
#endif
#ifndef HAK_RAW_PURGE_DELAY_MS
#define HAK_RAW_PURGE_DELAY_MS 100
#endif
#ifndef HAK_RAW_PURGE_THREAD
#define HAK_RAW_PURGE_THREAD 1
#endif
#ifndef HAK_RAW_MEDIUM
#define HAK_RAW_MEDIUM 1
#endif
#ifndef HAK_RAW_DEBUG_CHECKS
#define HAK_RAW_DEBUG_CHECKS 0
#endif
#ifndef HAK_RAW_VARIANT
#define HAK_RAW_VARIANT "default"
#endif
#ifndef HAK_RAW_VERSION
#define HAK_RAW_VERSION "0.0.0"
#endif

#define HAK_UNIFIED_CACHE HAK_RAW_UNIFIED_CACHE
#define HAK_WARM_POOL     HAK_RAW_WARM_POOL
#define HAK_PREFILL       HAK_RAW_PREFILL
#define HAK_WARM_POOL_MAX HAK_RAW_WARM_POOL_MAX
#define HAK_STATS         HAK_RAW_STATS
#define HAK_PREFILL_ADAPTIVE HAK_RAW_PREFILL_ADAPTIVE
#define HAK_HARDENED      HAK_RAW_HARDENED
#define HAK_COLOUR        HAK_RAW_COLOUR
#define HAK_PURGE_DELAY_MS HAK_RAW_PURGE_DELAY_MS
#define HAK_PURGE_THREAD  HAK_RAW_PURGE_THREAD
#define HAK_MEDIUM        HAK_RAW_MEDIUM
/* Build-wide, not per variant: -Ddebug_checks sets it for every object. */
#define HAK_DEBUG_CHECKS  HAK_RAW_DEBUG_CHECKS
#define HAK_VARIANT       HAK_RAW_VARIANT
#define HAK_VERSION       HAK_RAW_VERSION

/* The largest block served by a size class; larger ones are mapped on
 * their own. Hardened builds keep a guard slab and a guard page in every
 * SuperSlab, which a medium class's larger slabs would swallow: their
 * medium-sized blocks are mapped on their own, each with its header page. */
#if HAK_MEDIUM && !HAK_HARDENED
#define HAK_CLASS_MAX HAK_MEDIUM_MAX
#else
#define HAK_CLASS_MAX HAK_SMALL_MAX
#endif

#if HAK_PREFILL < 0 || HAK_PREFILL > 64
#error "prefill must be within 0..64"
#endif
#if HAK_PURGE_DELAY_MS < 0 || HAK_PURGE_DELAY_MS > 10000
#error "purge_delay_ms must be within 0..10000"
#endif
#if HAK_WARM_POOL_MAX < 1 || HAK_WARM_POOL_MAX > 256
#error "warm_pool_max must be within 1..256"
#endif
/* HAK_PREFILL, HAK_PREFILL_ADAPTIVE, HAK_WARM_POOL_MAX, HAK_PURGE_DELAY_MS
 * and HAK_PURGE_THREAD are the defaults of run-time settings of the same
 * names (hak/settings.h); the warm pool clips the prefill budget to the
 * pool's capacity at run time.
 *
 * The adaptive policy moves each class's budget within 0..HAK_PREFILL_GROWTH
 * times the configured budget, bounded by the pool. Without a warm pool
 * there is no budget to adapt: the policy is moot. */
#define HAK_PREFILL_GROWTH 4

#endif /* HAK_CONFIG_H */

/*
 * front/stats.c — the statistics' environment variables and exit hook:
 * HAKMEM_STATS (1 a table, json one JSON object on one line) at exit, to
 * stderr or appended to HAKMEM_STATS_FILE; HAKMEM_WARM_POOL_STATS=1 (the
 * warm pool's table). And the description of this variant that the output
 * prints (its options are known only here): hak_config_string, and what
 * hak_stats_describe hands to the writers in backend/stats_output.c.
 */
#include "front/front.h"
#include "hakmem.h"
#include "hak/stats.h"
#include "boxes/unified_cache/unified_cache.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if HAK_PREFILL_ADAPTIVE
#define HAK_PREFILL_POLICY_NAME "adaptive"
#else
#define HAK_PREFILL_POLICY_NAME "fixed"
#endif

/* clang-format off */
#define HAK_CONFIG_JSON \
  "{\"unified_cache\":" HAK_STR(HAK_UNIFIED_CACHE) \
  ",\"warm_pool\":" HAK_STR(HAK_WARM_POOL) \
  ",\"prefill\":" HAK_STR(HAK_PREFILL) \
  ",\"warm_pool_max\":" HAK_STR(HAK_WARM_POOL_MAX) \
  ",\"prefill_policy\":\"" HAK_PREFILL_POLICY_NAME "\"" \
  ",\"stats\":" HAK_STR(HAK_STATS) \
  ",\"colour\":" HAK_STR(HAK_COLOUR) \
  ",\"hardened\":" HAK_STR(HAK_HARDENED) \
  ",\"purge_delay_ms\":" HAK_STR(HAK_PURGE_DELAY_MS) \
  ",\"purge_thread\":" HAK_STR(HAK_PURGE_THREAD) \
  ",\"debug_checks\":" HAK_STR(HAK_DEBUG_CHECKS) "}"

#define HAK_CONFIG_TEXT \
  "variant=" HAK_VARIANT \
  " unified_cache=" HAK_STR(HAK_UNIFIED_CACHE) \
  " warm_pool=" HAK_STR(HAK_WARM_POOL) \
  " prefill=" HAK_STR(HAK_PREFILL) \
  " prefill_policy=" HAK_PREFILL_POLICY_NAME \
  " warm_pool_max=" HAK_STR(HAK_WARM_POOL_MAX) \
  " stats=" HAK_STR(HAK_STATS) \
  " colour=" HAK_STR(HAK_COLOUR) \
  " hardened=" HAK_STR(HAK_HARDENED) \
  " purge_delay_ms=" HAK_STR(HAK_PURGE_DELAY_MS) \
  " purge_thread=" HAK_STR(HAK_PURGE_THREAD) \
  " debug_checks=" HAK_STR(HAK_DEBUG_CHECKS)
/* clang-format on */

static const hak_stats_about_t this_variant = {
  .version = HAK_VERSION,
  .variant = HAK_VARIANT,
  .config_json = HAK_CONFIG_JSON,
  .config_text = HAK_CONFIG_TEXT,
  .warm_pool = "policy " HAK_PREFILL_POLICY_NAME ", prefill " HAK_STR(HAK_PREFILL) ", capacity " HAK_STR(
    HAK_WARM_POOL_MAX),
  .fold = uc_fold_stats,
};

void hak_stats_describe_variant(void) { hak_stats_describe(&this_variant); }

HAK_EXPORT const char *hak_config_string(void) { return HAK_CONFIG_TEXT; }
HAK_EXPORT const char *hak_version(void) { return HAK_VERSION; }

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
    hak_stats_print(stats_stderr >= 0 ? stats_stderr : STDERR_FILENO, HAK_STATS_VIEW_WARM_POOL);
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
  hak_stats_print(fd, json ? HAK_STATS_VIEW_JSON : HAK_STATS_VIEW_TABLE);
  if (fd != STDERR_FILENO && fd != stats_stderr)
    close(fd);
}

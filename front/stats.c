/*
 * front/stats.c — the statistics' exit hook, as the settings ask
 * (hak/settings.h): stats (table or json) at exit, to stderr or appended
 * to stats_file; warm_pool_stats (the warm pool's table). And the
 * description of this variant that the output prints (its options are
 * known only here): hak_config_string, and what hak_stats_describe hands
 * to the writers in backend/stats_output.c.
 *
 * The description is made once, in the process's set-up, right after the
 * settings are loaded: the build's options, with the run-time settings'
 * values in force (prefill, prefill_policy, warm_pool_max, purge_delay_ms,
 * purge_thread); when none of those was set, the build's own text serves
 * (nothing to format at start-up). The JSON's "config" object stays the
 * build's; the writers add the settings in force beside it.
 */
#include "front/front.h"
#include "hakmem.h"
#include "hak/outbuf.h"
#include "hak/settings.h"
#include "hak/stats.h"
#include "boxes/unified_cache/unified_cache.h"

#include <fcntl.h>
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

/* The build's own text: what hak_config_string says until the set-up ran. */
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

static char config_text[sizeof HAK_CONFIG_TEXT + 64];
static char warm_pool_text[96];

#define HAK_WARM_POOL_TEXT \
  "policy " HAK_PREFILL_POLICY_NAME ", prefill " HAK_STR(HAK_PREFILL) ", capacity " HAK_STR(HAK_WARM_POOL_MAX)

static hak_stats_about_t this_variant = {
  .version = HAK_VERSION,
  .variant = HAK_VARIANT,
  .config_json = HAK_CONFIG_JSON,
  .config_text = HAK_CONFIG_TEXT,
  .warm_pool = HAK_WARM_POOL_TEXT,
  .fold = uc_fold_stats,
};

static void text_setting(hak_out_t *t, const char *label, enum hak_settings_id id)
{
  char b[32];
  hak_settings_value_text(id, b, sizeof b);
  hak_out_str(t, label);
  hak_out_str(t, b);
}

static bool runtime_options_set(void)
{
  static const enum hak_settings_id ids[] = {HAK_SET_prefill, HAK_SET_prefill_policy, HAK_SET_warm_pool_max,
                                            HAK_SET_purge_delay_ms, HAK_SET_purge_thread};
  for (unsigned i = 0; i < sizeof ids / sizeof ids[0]; i++)
    if (hak_settings_source(ids[i]) != HAK_SETTINGS_FROM_DEFAULT)
      return true;
  return false;
}

void hak_stats_describe_variant(void)
{
  if (!runtime_options_set() && HAK_WARM_POOL) {
    hak_stats_describe(&this_variant);
    return;
  }
  /* both buffers are static, zeroed, and filled short of their last byte:
   * the text stays NUL-terminated */
  hak_out_t t = {config_text, 0, sizeof config_text - 1};
  hak_out_str(&t, "variant=" HAK_VARIANT " unified_cache=" HAK_STR(HAK_UNIFIED_CACHE) " warm_pool=" HAK_STR(HAK_WARM_POOL));
  text_setting(&t, " prefill=", HAK_SET_prefill);
  text_setting(&t, " prefill_policy=", HAK_SET_prefill_policy);
  text_setting(&t, " warm_pool_max=", HAK_SET_warm_pool_max);
  hak_out_str(&t, " stats=" HAK_STR(HAK_STATS) " colour=" HAK_STR(HAK_COLOUR) " hardened=" HAK_STR(HAK_HARDENED));
  text_setting(&t, " purge_delay_ms=", HAK_SET_purge_delay_ms);
  text_setting(&t, " purge_thread=", HAK_SET_purge_thread);
  hak_out_str(&t, " debug_checks=" HAK_STR(HAK_DEBUG_CHECKS));

  hak_out_t w = {warm_pool_text, 0, sizeof warm_pool_text - 1};
  text_setting(&w, "policy ", HAK_SET_prefill_policy);
  text_setting(&w, ", prefill ", HAK_SET_prefill);
  text_setting(&w, ", capacity ", HAK_SET_warm_pool_max);
  if (!HAK_WARM_POOL)
    hak_out_str(&w, " (no warm pool: -Dwarm_pool=false)");

  this_variant.config_text = config_text;
  this_variant.warm_pool = warm_pool_text;
  hak_stats_describe(&this_variant);
}

HAK_EXPORT const char *hak_config_string(void) { return this_variant.config_text; }
HAK_EXPORT const char *hak_version(void) { return HAK_VERSION; }

/* Programs such as GNU coreutils close stderr before exit; a private copy
 * taken at start-up still reaches the terminal or file it pointed to. */
static int stats_stderr = -1;

void hak_stats_at_start(void)
{
  const int mode = hak_settings_get(HAK_SET_stats);
  if ((mode != HAK_SET_STATS_OFF && !hak_settings_str(HAK_SET_stats_file)) || hak_settings_get(HAK_SET_warm_pool_stats))
    stats_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
}

void hak_stats_at_exit(void)
{
  if (hak_settings_get(HAK_SET_warm_pool_stats))
    hak_stats_print(stats_stderr >= 0 ? stats_stderr : STDERR_FILENO, HAK_STATS_VIEW_WARM_POOL);
  const int mode = hak_settings_get(HAK_SET_stats);
  if (mode == HAK_SET_STATS_OFF)
    return;
  const char *file = hak_settings_str(HAK_SET_stats_file);
  int fd = stats_stderr >= 0 ? stats_stderr : STDERR_FILENO;
  if (file) {
    fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
      return;
  }
  hak_stats_print(fd, mode == HAK_SET_STATS_JSON ? HAK_STATS_VIEW_JSON : HAK_STATS_VIEW_TABLE);
  if (fd != STDERR_FILENO && fd != stats_stderr)
    close(fd);
}

/*
 * hak/settings.h — the run-time settings: one table (backend/settings.c)
 * of the few slow-path knobs a user may change without rebuilding, read
 * once at start-up from HAKMEM_<NAME> variables and from
 * HAKMEM_OPTIONS="name=value,...". Defaults are the build's (hak/config.h).
 *
 * Invariants:
 *   - every value is within its row's range (a bad one is warned about
 *     and ignored: the setting keeps what it had);
 *   - values change only in hak_settings_load, which the front calls once,
 *     in the process's one-time set-up, before any other thread could
 *     read them (the unit tests call it again, single-threaded);
 *   - the load allocates nothing and calls no stdio: it may run inside
 *     the dynamic loader's first malloc. Warnings go out with write(2).
 *   - nothing on the malloc/free fast paths reads a setting.
 *
 * Below every box (like hak/stats.h): the boxes read their settings here
 * without reaching up to the front. Names: hak_settings_* (HAK_SET_* for
 * the rows' ids and the words' values); static ones in the .c: set_*.
 */
#ifndef HAK_SETTINGS_H
#define HAK_SETTINGS_H

#include "hak/common.h"
#include "hak/config.h"

#include <limits.h>

/* One id per row of the table, in the order the output lists them. */
enum hak_settings_id {
  HAK_SET_prefill,
  HAK_SET_prefill_policy,
  HAK_SET_warm_pool_max,
  HAK_SET_purge_delay_ms,
  HAK_SET_purge_thread,
  HAK_SET_stats,
  HAK_SET_stats_file,
  HAK_SET_warm_pool_stats,
  HAK_SET_verbose,
  HAK_SET_COUNT
};

/* The words of the enumerated settings, as their values. */
enum { HAK_SET_POLICY_FIXED = 0, HAK_SET_POLICY_ADAPTIVE = 1 };
enum { HAK_SET_STATS_OFF = 0, HAK_SET_STATS_TABLE = 1, HAK_SET_STATS_JSON = 2 };

/* Where a setting's value came from. */
enum hak_settings_from { HAK_SETTINGS_FROM_DEFAULT, HAK_SETTINGS_FROM_OPTIONS, HAK_SETTINGS_FROM_ENV };

/* The values in force (a string setting: 1 when set, 0 when not). */
extern int hak_settings_values[HAK_SET_COUNT] HAK_INTERNAL;

static inline int hak_settings_get(enum hak_settings_id id) { return hak_settings_values[id]; }
/* A string setting's value, or NULL when unset. */
const char *hak_settings_str(enum hak_settings_id id) HAK_INTERNAL;
enum hak_settings_from hak_settings_source(enum hak_settings_id id) HAK_INTERNAL;
/* The row's name ("prefill"), and its value as text ("3", "adaptive", a
 * path; "" for an unset string) into buf. */
const char *hak_settings_name(enum hak_settings_id id) HAK_INTERNAL;
size_t hak_settings_value_text(enum hak_settings_id id, char *buf, size_t cap) HAK_INTERNAL;

/* Where warnings go: one call per warning, line holds its text with the
 * trailing newline. NULL: standard error (write(2) to fd 2). */
typedef void (*hak_settings_warn_fn)(const char *line, size_t len, void *ctx);

/* Reset every setting to its default, then read env (a NULL-terminated
 * "NAME=value" array such as environ): HAKMEM_OPTIONS first, then the
 * HAKMEM_<NAME> variables, which win. One warning per bad value, unknown
 * HAKMEM_ variable or malformed HAKMEM_OPTIONS entry. Returns the number
 * of warnings. Prints the table when verbose asks (to fd 2 or warn). */
unsigned hak_settings_load(char *const *env, hak_settings_warn_fn warn, void *ctx) HAK_INTERNAL;

/* The settings in force as one JSON object ({"prefill":0,...}) and their
 * sources as another ({"prefill":"default",...}). Bytes written (at most
 * cap; output cut short when it does not fit). No terminating NUL. */
size_t hak_settings_format_json(char *buf, size_t cap) HAK_INTERNAL;
size_t hak_settings_format_sources_json(char *buf, size_t cap) HAK_INTERNAL;

/* The table in force, one line per setting (name, value, source), as the
 * verbose setting prints it; level 2 adds each row's range and doc line. */
void hak_settings_print(int level, hak_settings_warn_fn out, void *ctx) HAK_INTERNAL;

#endif /* HAK_SETTINGS_H */

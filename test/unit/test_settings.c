/* Unit tests of the run-time settings (hak/settings.h, backend/settings.c):
 * defaults, good values of every kind, one warning per bad value with the
 * setting left as it was, HAKMEM_<NAME> over HAKMEM_OPTIONS, the verbose
 * table, the JSON. The parser is fed environments of the tests' own; its
 * warnings go to a sink that records them (and, in one case, to standard
 * error through a pipe). */
#include "hak/settings.h"
#include "hak/config.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- The warning sink --------------------------------------------------- */

static char sink_buf[64 * 1024];
static size_t sink_len;
static unsigned sink_calls;

static void sink(const char *line, size_t len, void *ctx)
{
  (void)ctx;
  sink_calls++;
  if (sink_len + len < sizeof sink_buf) {
    memcpy(sink_buf + sink_len, line, len);
    sink_len += len;
    sink_buf[sink_len] = 0;
  }
}

static unsigned load(char *const *env)
{
  sink_len = 0;
  sink_buf[0] = 0;
  sink_calls = 0;
  return hak_settings_load(env, sink, NULL);
}

static unsigned lines_in(const char *s)
{
  unsigned n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

static const int defaults[HAK_SET_COUNT] = {
  [HAK_SET_prefill] = HAK_PREFILL,
  [HAK_SET_prefill_policy] = HAK_PREFILL_ADAPTIVE ? HAK_SET_POLICY_ADAPTIVE : HAK_SET_POLICY_FIXED,
  [HAK_SET_warm_pool_max] = HAK_WARM_POOL_MAX,
  [HAK_SET_purge_delay_ms] = HAK_PURGE_DELAY_MS,
  [HAK_SET_purge_thread] = HAK_PURGE_THREAD,
  [HAK_SET_stats] = HAK_SET_STATS_OFF,
  [HAK_SET_stats_file] = 0,
  [HAK_SET_warm_pool_stats] = 0,
  [HAK_SET_verbose] = 0,
};

static void assert_all_default(void)
{
  for (int id = 0; id < HAK_SET_COUNT; id++) {
    ck_assert_msg(hak_settings_get((enum hak_settings_id)id) == defaults[id], "%s is %d, default %d",
                  hak_settings_name((enum hak_settings_id)id), hak_settings_get((enum hak_settings_id)id), defaults[id]);
    ck_assert_int_eq(hak_settings_source((enum hak_settings_id)id), HAK_SETTINGS_FROM_DEFAULT);
  }
  ck_assert_ptr_null(hak_settings_str(HAK_SET_stats_file));
}

/* ---- Defaults and good values ------------------------------------------- */

START_TEST(defaults_without_environment)
{
  char *env[] = {"PATH=/usr/bin", "HOME=/root", "HAKMEMX=1", "HAKMEM=2", NULL};
  ck_assert_uint_eq(load(env), 0);
  ck_assert_uint_eq(sink_calls, 0);
  assert_all_default();
  ck_assert_uint_eq(hak_settings_load(NULL, sink, NULL), 0);
  assert_all_default();
}
END_TEST

START_TEST(good_values_from_variables)
{
  char *env[] = {
    "HAKMEM_PREFILL=5",          "HAKMEM_PREFILL_POLICY=adaptive", "HAKMEM_WARM_POOL_MAX=256",
    "HAKMEM_PURGE_DELAY_MS=0",   "HAKMEM_PURGE_THREAD=no",         "HAKMEM_STATS=json",
    "HAKMEM_STATS_FILE=/tmp/s",  "HAKMEM_WARM_POOL_STATS=yes",     NULL};
  ck_assert_uint_eq(load(env), 0);
  ck_assert_str_eq(sink_buf, "");
  ck_assert_int_eq(hak_settings_get(HAK_SET_prefill), 5);
  ck_assert_int_eq(hak_settings_get(HAK_SET_prefill_policy), HAK_SET_POLICY_ADAPTIVE);
  ck_assert_int_eq(hak_settings_get(HAK_SET_warm_pool_max), 256);
  ck_assert_int_eq(hak_settings_get(HAK_SET_purge_delay_ms), 0);
  ck_assert_int_eq(hak_settings_get(HAK_SET_purge_thread), 0);
  ck_assert_int_eq(hak_settings_get(HAK_SET_stats), HAK_SET_STATS_JSON);
  ck_assert_str_eq(hak_settings_str(HAK_SET_stats_file), "/tmp/s");
  ck_assert_int_eq(hak_settings_get(HAK_SET_warm_pool_stats), 1);
  for (int id = 0; id < HAK_SET_verbose; id++)
    ck_assert_int_eq(hak_settings_source((enum hak_settings_id)id), HAK_SETTINGS_FROM_ENV);
  ck_assert_int_eq(hak_settings_source(HAK_SET_verbose), HAK_SETTINGS_FROM_DEFAULT);
}
END_TEST

/* The words each kind takes, and the old meanings of HAKMEM_STATS. */
START_TEST(words_numbers_and_case)
{
  static const struct {
    const char *var;
    enum hak_settings_id id;
    int want;
  } cases[] = {
    {"HAKMEM_STATS=1", HAK_SET_stats, HAK_SET_STATS_TABLE},
    {"HAKMEM_STATS=table", HAK_SET_stats, HAK_SET_STATS_TABLE},
    {"HAKMEM_STATS=JSON", HAK_SET_stats, HAK_SET_STATS_JSON},
    {"HAKMEM_STATS=0", HAK_SET_stats, HAK_SET_STATS_OFF},
    {"HAKMEM_STATS=off", HAK_SET_stats, HAK_SET_STATS_OFF},
    {"HAKMEM_WARM_POOL_STATS=1", HAK_SET_warm_pool_stats, 1},
    {"HAKMEM_WARM_POOL_STATS=On", HAK_SET_warm_pool_stats, 1},
    {"HAKMEM_WARM_POOL_STATS=false", HAK_SET_warm_pool_stats, 0},
    {"HAKMEM_PURGE_THREAD=0", HAK_SET_purge_thread, 0},
    {"HAKMEM_PURGE_THREAD=true", HAK_SET_purge_thread, HAK_PURGE_THREAD},
    {"HAKMEM_PREFILL_POLICY=fixed", HAK_SET_prefill_policy, HAK_SET_POLICY_FIXED},
    {"HAKMEM_PREFILL=064", HAK_SET_prefill, 64},
    {"HAKMEM_PREFILL=0", HAK_SET_prefill, 0},
    {"HAKMEM_PURGE_DELAY_MS=10000", HAK_SET_purge_delay_ms, 10000},
    {"HAKMEM_WARM_POOL_MAX=1", HAK_SET_warm_pool_max, 1},
    {"HAKMEM_VERBOSE=0", HAK_SET_verbose, 0},
    {"HAKMEM_VERBOSE=off", HAK_SET_verbose, 0},
    {"hakmem_prefill=9", HAK_SET_prefill, HAK_PREFILL}, /* not a HAKMEM_ variable */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *env[] = {(char *)cases[i].var, NULL};
    ck_assert_uint_eq(load(env), 0);
    ck_assert_msg(hak_settings_get(cases[i].id) == cases[i].want, "%s gives %d, want %d", cases[i].var,
                  hak_settings_get(cases[i].id), cases[i].want);
  }
}
END_TEST

/* ---- Bad values: one warning each, the setting keeps its default ------- */

static const struct bad {
  const char *env[3];
  const char *line; /* the one warning, exactly */
} bad_cases[] = {
  {{"HAKMEM_PREFILL=abc"}, "hakmem: HAKMEM_PREFILL=abc: not a number in 0..64; using " HAK_STR(HAK_PREFILL) "\n"},
  {{"HAKMEM_PREFILL=3x"},
   "hakmem: HAKMEM_PREFILL=3x: trailing characters after the number; want 0..64; using " HAK_STR(HAK_PREFILL) "\n"},
  {{"HAKMEM_PREFILL=65"}, "hakmem: HAKMEM_PREFILL=65: out of range 0..64; using " HAK_STR(HAK_PREFILL) "\n"},
  {{"HAKMEM_PREFILL=-1"}, "hakmem: HAKMEM_PREFILL=-1: out of range 0..64; using " HAK_STR(HAK_PREFILL) "\n"},
  {{"HAKMEM_PREFILL="}, "hakmem: HAKMEM_PREFILL=: empty value; using " HAK_STR(HAK_PREFILL) "\n"},
  {{"HAKMEM_PREFILL= 3"}, "hakmem: HAKMEM_PREFILL= 3: not a number in 0..64; using " HAK_STR(HAK_PREFILL) "\n"},
  {{"HAKMEM_WARM_POOL_MAX=0"},
   "hakmem: HAKMEM_WARM_POOL_MAX=0: out of range 1..256; using " HAK_STR(HAK_WARM_POOL_MAX) "\n"},
  {{"HAKMEM_PURGE_DELAY_MS=99999999999999999999"},
   "hakmem: HAKMEM_PURGE_DELAY_MS=99999999999999999999: out of range 0..10000; using " HAK_STR(
     HAK_PURGE_DELAY_MS) "\n"},
  {{"HAKMEM_PREFILL_POLICY=greedy"}, NULL},
  {{"HAKMEM_PURGE_THREAD=maybe"},
   "hakmem: HAKMEM_PURGE_THREAD=maybe: not a boolean (1, 0, true, false, yes, no, on, off); using " HAK_STR(
     HAK_PURGE_THREAD) "\n"},
  {{"HAKMEM_WARM_POOL_STATS=2"},
   "hakmem: HAKMEM_WARM_POOL_STATS=2: not a boolean (1, 0, true, false, yes, no, on, off); using 0\n"},
  {{"HAKMEM_STATS=xml"}, "hakmem: HAKMEM_STATS=xml: not off, table, json, 0 or 1; using off\n"},
  {{"HAKMEM_STATS="}, "hakmem: HAKMEM_STATS=: empty value; using off\n"},
  {{"HAKMEM_STATS_FILE="}, "hakmem: HAKMEM_STATS_FILE=: empty value; using none\n"},
  {{"HAKMEM_VERBOSE=3"}, "hakmem: HAKMEM_VERBOSE=3: out of range 0..2; using 0\n"},
  {{"HAKMEM_VERBOSE=loud"}, "hakmem: HAKMEM_VERBOSE=loud: not a number in 0..2 or a boolean; using 0\n"},
  {{"HAKMEM_FOO=1"}, "hakmem: HAKMEM_FOO=1: unknown setting; ignored\n"},
  {{"HAKMEM_=1"}, "hakmem: HAKMEM_=1: unknown setting; ignored\n"},
  {{"HAKMEM_OPTIONS=prefill"}, "hakmem: HAKMEM_OPTIONS: prefill: not name=value; ignored\n"},
  {{"HAKMEM_OPTIONS=foo=1"}, "hakmem: HAKMEM_OPTIONS: foo=1: unknown setting; ignored\n"},
  {{"HAKMEM_OPTIONS==1"}, "hakmem: HAKMEM_OPTIONS: =1: unknown setting; ignored\n"},
  {{"HAKMEM_OPTIONS=prefill=x"},
   "hakmem: HAKMEM_OPTIONS: prefill=x: not a number in 0..64; using " HAK_STR(HAK_PREFILL) "\n"},
  {{"HAKMEM_OPTIONS=prefill="}, "hakmem: HAKMEM_OPTIONS: prefill=: empty value; using " HAK_STR(HAK_PREFILL) "\n"},
  {{"HAKMEM_OPTIONS=prefill_policy=lazy"}, NULL},
  {{"HAKMEM_OPTIONS=stats=2"}, "hakmem: HAKMEM_OPTIONS: stats=2: not off, table, json, 0 or 1; using off\n"},
  {{"HAKMEM_OPTIONS=purge_thread=2"}, NULL},
};

START_TEST(bad_value_one_warning_default_kept)
{
  const struct bad *b = &bad_cases[_i];
  char *env[4] = {(char *)b->env[0], "PATH=/bin", NULL, NULL};
  ck_assert_uint_eq(load(env), 1);
  ck_assert_uint_eq(sink_calls, 1);
  ck_assert_uint_eq(lines_in(sink_buf), 1);
  ck_assert_msg(strncmp(sink_buf, "hakmem: ", 8) == 0, "%s", sink_buf);
  if (b->line) {
    ck_assert_str_eq(sink_buf, b->line);
  } else {
    /* names the variable and the value */
    const char *eq = strchr(b->env[0], '=');
    ck_assert_ptr_nonnull(strstr(sink_buf, strncmp(b->env[0], "HAKMEM_OPTIONS=", 15) == 0 ? eq + 1 : b->env[0]));
    ck_assert_ptr_nonnull(strstr(sink_buf, "; using "));
  }
  assert_all_default();
}
END_TEST

/* The default sink is standard error, written with write(2). */
START_TEST(warning_goes_to_stderr)
{
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  int saved = dup(STDERR_FILENO);
  dup2(p[1], STDERR_FILENO);
  char *env[] = {"HAKMEM_PREFILL=abc", NULL};
  unsigned n = hak_settings_load(env, NULL, NULL);
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(p[1]);
  char buf[512];
  ssize_t got = read(p[0], buf, sizeof buf - 1);
  close(p[0]);
  ck_assert_int_gt(got, 0);
  buf[got] = 0;
  ck_assert_uint_eq(n, 1);
  ck_assert_str_eq(buf, "hakmem: HAKMEM_PREFILL=abc: not a number in 0..64; using " HAK_STR(HAK_PREFILL) "\n");
}
END_TEST

START_TEST(several_bad_values_each_warned_once)
{
  char *env[] = {"HAKMEM_OPTIONS=prefill=1,nope,stats=json,zzz=3", "HAKMEM_PREFILL=x", "HAKMEM_BAR=", NULL};
  ck_assert_uint_eq(load(env), 4);
  ck_assert_uint_eq(lines_in(sink_buf), 4);
  /* the bad variable leaves HAKMEM_OPTIONS' value in force */
  ck_assert_int_eq(hak_settings_get(HAK_SET_prefill), 1);
  ck_assert_int_eq(hak_settings_source(HAK_SET_prefill), HAK_SETTINGS_FROM_OPTIONS);
  ck_assert_ptr_nonnull(strstr(sink_buf, "hakmem: HAKMEM_PREFILL=x: not a number in 0..64; using 1\n"));
  ck_assert_int_eq(hak_settings_get(HAK_SET_stats), HAK_SET_STATS_JSON);
}
END_TEST

START_TEST(long_values_are_cut_in_warnings_and_refused_as_paths)
{
  static char var[PATH_MAX + 64];
  strcpy(var, "HAKMEM_STATS_FILE=/");
  memset(var + strlen(var), 'a', PATH_MAX);
  char *env[] = {var, NULL};
  ck_assert_uint_eq(load(env), 1);
  ck_assert_uint_eq(lines_in(sink_buf), 1);
  ck_assert_uint_lt(strlen(sink_buf), 300);
  ck_assert_ptr_nonnull(strstr(sink_buf, "...: longer than PATH_MAX - 1 bytes; using none\n"));
  ck_assert_ptr_null(hak_settings_str(HAK_SET_stats_file));
  /* the longest path that fits is taken */
  var[strlen("HAKMEM_STATS_FILE=") + PATH_MAX - 1] = 0;
  ck_assert_uint_eq(load(env), 0);
  ck_assert_uint_eq(strlen(hak_settings_str(HAK_SET_stats_file)), PATH_MAX - 1);
}
END_TEST

START_TEST(control_bytes_are_not_echoed)
{
  char *env[] = {"HAKMEM_PREFILL=1\n2\033", NULL};
  ck_assert_uint_eq(load(env), 1);
  ck_assert_uint_eq(lines_in(sink_buf), 1);
  ck_assert_ptr_nonnull(strstr(sink_buf, "HAKMEM_PREFILL=1?2?: "));
}
END_TEST

/* Variables of hakmem's own tools and tests are not settings. */
START_TEST(tool_variables_pass_silently)
{
  char *env[] = {"HAKMEM_AB_BUILD_DIR=/x", "HAKMEM_TEST_LIB=/y", "HAKMEM_OPTIONS=", "HAKMEM_OPTIONS_X", NULL};
  ck_assert_uint_eq(load(env), 0);
  assert_all_default();
}
END_TEST

/* ---- HAKMEM_OPTIONS and precedence ------------------------------------- */

START_TEST(options_string_parsed)
{
  char *env[] = {"HAKMEM_OPTIONS=prefill=4,,PREFILL_POLICY=adaptive,stats=table,stats_file=/tmp/a=b,"
                 "warm_pool_max=8,purge_delay_ms=250,prefill=6,",
                 NULL};
  ck_assert_uint_eq(load(env), 0);
  ck_assert_int_eq(hak_settings_get(HAK_SET_prefill), 6); /* the later entry wins */
  ck_assert_int_eq(hak_settings_get(HAK_SET_prefill_policy), HAK_SET_POLICY_ADAPTIVE);
  ck_assert_int_eq(hak_settings_get(HAK_SET_stats), HAK_SET_STATS_TABLE);
  ck_assert_str_eq(hak_settings_str(HAK_SET_stats_file), "/tmp/a=b");
  ck_assert_int_eq(hak_settings_get(HAK_SET_warm_pool_max), 8);
  ck_assert_int_eq(hak_settings_get(HAK_SET_purge_delay_ms), 250);
  ck_assert_int_eq(hak_settings_source(HAK_SET_prefill), HAK_SETTINGS_FROM_OPTIONS);
  ck_assert_int_eq(hak_settings_source(HAK_SET_warm_pool_stats), HAK_SETTINGS_FROM_DEFAULT);
}
END_TEST

START_TEST(variable_wins_over_options)
{
  /* in either order in the environment */
  char *env1[] = {"HAKMEM_OPTIONS=prefill=7,warm_pool_max=32", "HAKMEM_PREFILL=2", NULL};
  char *env2[] = {"HAKMEM_PREFILL=2", "HAKMEM_OPTIONS=prefill=7,warm_pool_max=32", NULL};
  char *const *envs[] = {env1, env2};
  for (int i = 0; i < 2; i++) {
    ck_assert_uint_eq(load(envs[i]), 0);
    ck_assert_int_eq(hak_settings_get(HAK_SET_prefill), 2);
    ck_assert_int_eq(hak_settings_source(HAK_SET_prefill), HAK_SETTINGS_FROM_ENV);
    ck_assert_int_eq(hak_settings_get(HAK_SET_warm_pool_max), 32);
    ck_assert_int_eq(hak_settings_source(HAK_SET_warm_pool_max), HAK_SETTINGS_FROM_OPTIONS);
  }
  /* the first copy of a variable counts, as getenv would see it */
  char *env3[] = {"HAKMEM_PREFILL=4", "HAKMEM_PREFILL=5", NULL};
  ck_assert_uint_eq(load(env3), 0);
  ck_assert_int_eq(hak_settings_get(HAK_SET_prefill), 4);
}
END_TEST

/* A loaded setting goes back to its default on the next load. */
START_TEST(reload_resets)
{
  char *env[] = {"HAKMEM_OPTIONS=prefill=9,stats_file=/x", NULL};
  ck_assert_uint_eq(load(env), 0);
  ck_assert_int_eq(hak_settings_get(HAK_SET_prefill), 9);
  char *none[] = {NULL};
  ck_assert_uint_eq(load(none), 0);
  assert_all_default();
}
END_TEST

/* ---- Output ------------------------------------------------------------- */

START_TEST(verbose_prints_table_with_sources)
{
  char *env[] = {"HAKMEM_VERBOSE=1", "HAKMEM_OPTIONS=prefill=3,stats=json", "HAKMEM_STATS=table", NULL};
  ck_assert_uint_eq(load(env), 0);
  ck_assert_uint_eq(lines_in(sink_buf), 1 + HAK_SET_COUNT);
  ck_assert_ptr_nonnull(strstr(sink_buf, "hakmem: settings in force (variant " HAK_VARIANT));
  ck_assert_ptr_nonnull(strstr(sink_buf, "hakmem:   prefill          3         HAKMEM_OPTIONS"));
  ck_assert_ptr_nonnull(strstr(sink_buf, "hakmem:   stats            table     HAKMEM_STATS\n"));
  ck_assert_ptr_nonnull(strstr(sink_buf, "hakmem:   verbose          1         HAKMEM_VERBOSE\n"));
  ck_assert_ptr_nonnull(strstr(sink_buf, "hakmem:   stats_file       (unset)   default\n"));
  ck_assert_uint_eq(strstr(sink_buf, "-Dwarm_pool=false") != NULL, !HAK_WARM_POOL);
  ck_assert_uint_eq(strstr(sink_buf, "-Dpurge_thread=false") != NULL, !HAK_PURGE_THREAD);

  char *env2[] = {"HAKMEM_OPTIONS=verbose=2", NULL};
  ck_assert_uint_eq(load(env2), 0);
  ck_assert_uint_eq(lines_in(sink_buf), 1 + 2 * HAK_SET_COUNT);
  ck_assert_ptr_nonnull(strstr(sink_buf, "0..64, default " HAK_STR(HAK_PREFILL) ": "));
  ck_assert_ptr_nonnull(strstr(sink_buf, "HAKMEM_OPTIONS\n"));
}
END_TEST

START_TEST(json_of_settings_and_sources)
{
  char *env[] = {"HAKMEM_PREFILL=3", "HAKMEM_STATS_FILE=/tmp/a\"b\\c", "HAKMEM_OPTIONS=stats=json", NULL};
  ck_assert_uint_eq(load(env), 0);
  char buf[2048];
  size_t n = hak_settings_format_json(buf, sizeof buf - 1);
  buf[n] = 0;
  char want[1024];
  snprintf(want, sizeof want,
           "{\"prefill\":3,\"prefill_policy\":\"%s\",\"warm_pool_max\":%d,\"purge_delay_ms\":%d,"
           "\"purge_thread\":%d,\"stats\":\"json\",\"stats_file\":\"/tmp/a\\\"b\\\\c\","
           "\"warm_pool_stats\":0,\"verbose\":0}",
           HAK_PREFILL_ADAPTIVE ? "adaptive" : "fixed", HAK_WARM_POOL_MAX, HAK_PURGE_DELAY_MS, HAK_PURGE_THREAD);
  ck_assert_str_eq(buf, want);
  n = hak_settings_format_sources_json(buf, sizeof buf - 1);
  buf[n] = 0;
  ck_assert_str_eq(buf, "{\"prefill\":\"HAKMEM_PREFILL\",\"prefill_policy\":\"default\",\"warm_pool_max\":\"default\","
                        "\"purge_delay_ms\":\"default\",\"purge_thread\":\"default\",\"stats\":\"HAKMEM_OPTIONS\","
                        "\"stats_file\":\"HAKMEM_STATS_FILE\",\"warm_pool_stats\":\"default\","
                        "\"verbose\":\"default\"}");
  /* cut short, never past the room given */
  memset(buf, 'x', sizeof buf);
  ck_assert_uint_eq(hak_settings_format_json(buf, 10), 10);
  ck_assert_int_eq(buf[10], 'x');
  /* as text */
  ck_assert_uint_eq(hak_settings_value_text(HAK_SET_stats, buf, sizeof buf), 4);
  ck_assert_str_eq(buf, "json");
  ck_assert_uint_eq(hak_settings_value_text(HAK_SET_prefill, buf, 2), 1);
  ck_assert_str_eq(buf, "3");
}
END_TEST

/* Each test runs in a child of its own; its exit hook must not act on the
 * settings the test loaded (stats to a file, say). */
static void restore_defaults(void) { hak_settings_load(NULL, NULL, NULL); }

int main(void)
{
  Suite *s = suite_create("settings");
  TCase *tg = tcase_create("good");
  tcase_add_test(tg, defaults_without_environment);
  tcase_add_test(tg, good_values_from_variables);
  tcase_add_test(tg, words_numbers_and_case);
  tcase_add_checked_fixture(tg, NULL, restore_defaults);
  suite_add_tcase(s, tg);
  TCase *tb = tcase_create("bad");
  tcase_add_loop_test(tb, bad_value_one_warning_default_kept, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
  tcase_add_test(tb, warning_goes_to_stderr);
  tcase_add_test(tb, several_bad_values_each_warned_once);
  tcase_add_test(tb, long_values_are_cut_in_warnings_and_refused_as_paths);
  tcase_add_test(tb, control_bytes_are_not_echoed);
  tcase_add_test(tb, tool_variables_pass_silently);
  tcase_add_checked_fixture(tb, NULL, restore_defaults);
  suite_add_tcase(s, tb);
  TCase *to = tcase_create("options");
  tcase_add_test(to, options_string_parsed);
  tcase_add_test(to, variable_wins_over_options);
  tcase_add_test(to, reload_resets);
  tcase_add_checked_fixture(to, NULL, restore_defaults);
  suite_add_tcase(s, to);
  TCase *tp = tcase_create("output");
  tcase_add_test(tp, verbose_prints_table_with_sources);
  tcase_add_test(tp, json_of_settings_and_sources);
  tcase_add_checked_fixture(tp, NULL, restore_defaults);
  suite_add_tcase(s, tp);
  SRunner *sr = srunner_create(s);
  srunner_set_fork_status(sr, CK_FORK);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

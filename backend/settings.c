/*
 * backend/settings.c — the table of run-time settings (hak/settings.h):
 * each row's name, type, range, default and doc line; the values in
 * force and where each came from; the one-time load from the environment;
 * the settings as text and JSON.
 *
 * Compiled per variant (not into hak_common): the defaults are the
 * variant's build options.
 *
 * Load rules (doc/hakmem.3, ENVIRONMENT, says the same to users):
 *   - HAKMEM_OPTIONS="name=value,name=value" is read first, left to
 *     right (a later entry for the same name wins; empty entries are
 *     skipped); then every HAKMEM_<NAME> variable, which wins over the
 *     same name in HAKMEM_OPTIONS;
 *   - a bad value (empty, not a number, trailing characters, out of
 *     range, not one of the words, too long) is ignored with one warning
 *     that names the variable, the value and the value kept;
 *   - an unknown HAKMEM_ variable, and a HAKMEM_OPTIONS entry without '='
 *     or with an unknown name, are ignored with one warning. Names under
 *     HAKMEM_AB_ and HAKMEM_TEST_ belong to hakmem's own tools and tests
 *     and are not settings: they are passed over in silence;
 *   - names compare without regard to case; values are taken as written.
 *
 * No malloc, no stdio, no getenv: the caller hands over environ, strings
 * are copied into static buffers, warnings are formatted on the stack.
 */
#include "hak/settings.h"
#include "hak/outbuf.h"

#include <string.h>
#include <unistd.h>

enum set_kind { SET_INT, SET_BOOL, SET_ENUM, SET_STRING };

typedef struct set_word {
  const char *word;
  int value;
} set_word_t;

typedef struct set_row {
  const char *name;        /* lower case; the variable is HAKMEM_<NAME> */
  const char *var;         /* that variable's name */
  enum set_kind kind;
  int lo, hi;              /* SET_INT: the range */
  const set_word_t *words; /* SET_BOOL, SET_ENUM (first word per value is
                            * how it prints); SET_INT: aliases */
  const char *expect;      /* SET_BOOL, SET_ENUM: the words, for warnings */
  int def;
  char *buf;               /* SET_STRING: where the value is kept */
  size_t buf_size;
  bool warm_pool;          /* no effect without the warm pool */
  const char *doc;
} set_row_t;

/* clang-format off */
static const set_word_t bool_words[] = {
  {"0", 0}, {"1", 1}, {"false", 0}, {"true", 1}, {"no", 0}, {"yes", 1}, {"off", 0}, {"on", 1}, {NULL, 0}};
static const set_word_t policy_words[] = {
  {"fixed", HAK_SET_POLICY_FIXED}, {"adaptive", HAK_SET_POLICY_ADAPTIVE}, {NULL, 0}};
static const set_word_t stats_words[] = {
  {"off", HAK_SET_STATS_OFF},    {"table", HAK_SET_STATS_TABLE}, {"json", HAK_SET_STATS_JSON},
  {"0", HAK_SET_STATS_OFF},      {"1", HAK_SET_STATS_TABLE},     {"false", HAK_SET_STATS_OFF},
  {"true", HAK_SET_STATS_TABLE}, {"no", HAK_SET_STATS_OFF},      {"yes", HAK_SET_STATS_TABLE},
  {"on", HAK_SET_STATS_TABLE},   {NULL, 0}};

static char set_stats_file[PATH_MAX];

#define BOOL_EXPECT "a boolean (1, 0, true, false, yes, no, on, off)"
#define DEF_POLICY (HAK_PREFILL_ADAPTIVE ? HAK_SET_POLICY_ADAPTIVE : HAK_SET_POLICY_FIXED)

/* The table. Keep doc/hakmem.3 (ENVIRONMENT) in step with it. */
static const set_row_t set_table[HAK_SET_COUNT] = {
  [HAK_SET_prefill] = {
    .name = "prefill", .var = "HAKMEM_PREFILL", .kind = SET_INT, .lo = 0, .hi = 64,
    .def = HAK_PREFILL, .warm_pool = true,
    .doc = "extra SuperSlabs pushed into an empty warm pool on a miss (kept below warm_pool_max)"},
  [HAK_SET_prefill_policy] = {
    .name = "prefill_policy", .var = "HAKMEM_PREFILL_POLICY", .kind = SET_ENUM, .words = policy_words,
    .expect = "fixed or adaptive", .def = DEF_POLICY, .warm_pool = true,
    .doc = "fixed: every miss prefills `prefill'; adaptive: a budget per class in "
           "0..min(4 x prefill, warm_pool_max - 1)"},
  [HAK_SET_warm_pool_max] = {
    .name = "warm_pool_max", .var = "HAKMEM_WARM_POOL_MAX", .kind = SET_INT, .lo = 1, .hi = 256,
    .def = HAK_WARM_POOL_MAX, .warm_pool = true,
    .doc = "SuperSlabs each per-thread, per-class warm pool holds at most"},
  [HAK_SET_purge_delay_ms] = {
    .name = "purge_delay_ms", .var = "HAKMEM_PURGE_DELAY_MS", .kind = SET_INT, .lo = 0, .hi = 10000,
    .def = HAK_PURGE_DELAY_MS,
    .doc = "free pages go back to the OS once unused for this long (ms)"},
  [HAK_SET_purge_thread] = {
    .name = "purge_thread", .var = "HAKMEM_PURGE_THREAD", .kind = SET_BOOL, .words = bool_words,
    .expect = BOOL_EXPECT, .def = HAK_PURGE_THREAD,
    .doc = "0 keeps the purge thread off; 1 cannot switch on one built out with -Dpurge_thread=false"},
  [HAK_SET_stats] = {
    .name = "stats", .var = "HAKMEM_STATS", .kind = SET_ENUM, .words = stats_words,
    .expect = "off, table, json, 0 or 1", .def = HAK_SET_STATS_OFF,
    .doc = "statistics at exit: off, table (or 1), json (one line)"},
  [HAK_SET_stats_file] = {
    .name = "stats_file", .var = "HAKMEM_STATS_FILE", .kind = SET_STRING,
    .buf = set_stats_file, .buf_size = sizeof set_stats_file,
    .doc = "append the statistics to this file, not standard error"},
  [HAK_SET_warm_pool_stats] = {
    .name = "warm_pool_stats", .var = "HAKMEM_WARM_POOL_STATS", .kind = SET_BOOL, .words = bool_words,
    .expect = BOOL_EXPECT, .def = 0,
    .doc = "the warm pool's table at exit, to standard error"},
  [HAK_SET_verbose] = {
    .name = "verbose", .var = "HAKMEM_VERBOSE", .kind = SET_INT, .lo = 0, .hi = 2, .words = bool_words,
    .def = 0,
    .doc = "1: print the settings in force and their sources at start-up; 2: with ranges and doc lines"},
};
/* clang-format on */

/* Statically the defaults too: a box that runs before the load (or a unit
 * test that never loads) sees the build's values. */
int hak_settings_values[HAK_SET_COUNT] = {
  [HAK_SET_prefill] = HAK_PREFILL,
  [HAK_SET_prefill_policy] = DEF_POLICY,
  [HAK_SET_warm_pool_max] = HAK_WARM_POOL_MAX,
  [HAK_SET_purge_delay_ms] = HAK_PURGE_DELAY_MS,
  [HAK_SET_purge_thread] = HAK_PURGE_THREAD,
  [HAK_SET_stats] = HAK_SET_STATS_OFF,
  [HAK_SET_stats_file] = 0,
  [HAK_SET_warm_pool_stats] = 0,
  [HAK_SET_verbose] = 0,
};
static enum hak_settings_from set_source[HAK_SET_COUNT];

/* ---- Text (hak/outbuf.h) ---------------------------------------------- */

/* A user's text in a warning: at most limit bytes, control bytes as '?'. */
static void put_shown(hak_out_t *o, const char *s, size_t n)
{
  const size_t limit = 96;
  for (size_t i = 0; i < n && i < limit; i++) {
    char c = s[i];
    hak_out_mem(o, (unsigned char)c < 0x20 || c == 0x7f ? "?" : &c, 1);
  }
  if (n > limit)
    hak_out_str(o, "...");
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

static bool same_word(const char *a, size_t an, const char *b)
{
  size_t i = 0;
  for (; i < an && b[i]; i++)
    if (lower(a[i]) != lower(b[i]))
      return false;
  return i == an && b[i] == 0;
}

static int row_of(const char *name, size_t n)
{
  for (int id = 0; id < HAK_SET_COUNT; id++)
    if (same_word(name, n, set_table[id].name))
      return id;
  return -1;
}

/* ---- Values ------------------------------------------------------------ */

const char *hak_settings_name(enum hak_settings_id id) { return set_table[id].name; }
enum hak_settings_from hak_settings_source(enum hak_settings_id id) { return set_source[id]; }

const char *hak_settings_str(enum hak_settings_id id)
{
  return set_table[id].kind == SET_STRING && hak_settings_values[id] ? set_table[id].buf : NULL;
}

static const char *word_of(const set_row_t *r, int v)
{
  for (const set_word_t *w = r->words; w && w->word; w++)
    if (w->value == v)
      return w->word;
  return "?";
}

static void put_value(hak_out_t *o, enum hak_settings_id id)
{
  const set_row_t *r = &set_table[id];
  switch (r->kind) {
  case SET_INT:
  case SET_BOOL: hak_out_i64(o, hak_settings_values[id]); break;
  case SET_ENUM: hak_out_str(o, word_of(r, hak_settings_values[id])); break;
  case SET_STRING:
    if (hak_settings_values[id])
      hak_out_str(o, r->buf);
    break;
  }
}

size_t hak_settings_value_text(enum hak_settings_id id, char *buf, size_t cap)
{
  hak_out_t o = {buf, 0, cap ? cap - 1 : 0};
  put_value(&o, id);
  if (cap)
    buf[o.len] = 0;
  return o.len;
}

/* ---- Parsing ----------------------------------------------------------- */

/* Why a value was refused (NULL: taken). */
static const char *parse_value(enum hak_settings_id id, const char *v, size_t n, hak_out_t *why)
{
  const set_row_t *r = &set_table[id];
  if (n == 0)
    return "empty value";
  if (r->words)
    for (const set_word_t *w = r->words; w->word; w++)
      if (same_word(v, n, w->word)) {
        hak_settings_values[id] = w->value;
        return NULL;
      }
  switch (r->kind) {
  case SET_BOOL:
  case SET_ENUM:
    hak_out_str(why, "not ");
    hak_out_str(why, r->expect);
    return "";
  case SET_STRING:
    if (n >= r->buf_size) {
      hak_out_str(why, "longer than PATH_MAX - 1 bytes");
      return "";
    }
    memcpy(r->buf, v, n);
    r->buf[n] = 0;
    hak_settings_values[id] = 1;
    return NULL;
  case SET_INT: break;
  }
  size_t i = 0;
  bool neg = v[0] == '-';
  i += neg;
  long x = 0;
  size_t digits = 0;
  for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, digits++)
    if (x <= 100000000L)
      x = x * 10 + (v[i] - '0');
  if (digits == 0 || i < n) {
    hak_out_str(why, digits == 0 ? "not a number in " : "trailing characters after the number; want ");
    hak_out_i64(why, r->lo);
    hak_out_str(why, "..");
    hak_out_i64(why, r->hi);
    if (r->words)
      hak_out_str(why, " or a boolean");
    return "";
  }
  if (neg)
    x = -x;
  if (x < r->lo || x > r->hi) {
    hak_out_str(why, "out of range ");
    hak_out_i64(why, r->lo);
    hak_out_str(why, "..");
    hak_out_i64(why, r->hi);
    return "";
  }
  hak_settings_values[id] = (int)x;
  return NULL;
}

typedef struct set_ctx {
  hak_settings_warn_fn warn;
  void *ctx;
  unsigned warnings;
} set_ctx_t;

static void emit(set_ctx_t *c, const char *line, size_t len)
{
  c->warnings++;
  if (c->warn) {
    c->warn(line, len, c->ctx);
    return;
  }
  while (len) {
    ssize_t w = write(STDERR_FILENO, line, len);
    if (w <= 0)
      return;
    line += w;
    len -= (size_t)w;
  }
}

/* "hakmem: <where><name>=<value>: <why>; <then>" */
static void warn_line(set_ctx_t *c, const char *where, const char *name, size_t name_len, const char *val,
                      size_t val_len, bool has_eq, const char *why, int id)
{
  char line[512];
  hak_out_t o = {line, 0, sizeof line - 1};
  hak_out_str(&o, "hakmem: ");
  hak_out_str(&o, where);
  put_shown(&o, name, name_len);
  if (has_eq) {
    hak_out_str(&o, "=");
    put_shown(&o, val, val_len);
  }
  hak_out_str(&o, ": ");
  hak_out_str(&o, why);
  if (id < 0) {
    hak_out_str(&o, "; ignored");
  } else {
    hak_out_str(&o, "; using ");
    size_t at = o.len;
    put_value(&o, (enum hak_settings_id)id);
    if (o.len == at)
      hak_out_str(&o, "none");
  }
  o.p[o.len++] = '\n';
  emit(c, line, o.len);
}

/* One name=value from source src. */
static void take(set_ctx_t *c, enum hak_settings_from src, const char *where, const char *name, size_t name_len,
                 int id, const char *val, size_t val_len)
{
  char why_buf[160];
  hak_out_t why = {why_buf, 0, sizeof why_buf - 1};
  const char *r = parse_value((enum hak_settings_id)id, val, val_len, &why);
  if (!r) {
    set_source[id] = src;
    return;
  }
  if (*r)
    hak_out_str(&why, r);
  why_buf[why.len] = 0;
  warn_line(c, where, name, name_len, val, val_len, true, why_buf, id);
}

static void load_options(set_ctx_t *c, const char *s)
{
  static const char where[] = "HAKMEM_OPTIONS: ";
  while (*s) {
    const char *end = s;
    while (*end && *end != ',')
      end++;
    const char *eq = s;
    while (eq < end && *eq != '=')
      eq++;
    if (end > s) {
      if (eq == end) {
        warn_line(c, where, s, (size_t)(end - s), NULL, 0, false, "not name=value", -1);
      } else {
        int id = row_of(s, (size_t)(eq - s));
        if (id < 0)
          warn_line(c, where, s, (size_t)(eq - s), eq + 1, (size_t)(end - eq - 1), true, "unknown setting", -1);
        else
          take(c, HAK_SETTINGS_FROM_OPTIONS, where, s, (size_t)(eq - s), id, eq + 1, (size_t)(end - eq - 1));
      }
    }
    s = *end ? end + 1 : end;
  }
}

/* Own loops, not strncmp and strchr: each libc function the library
 * imports costs the dynamic loader a symbol lookup at every start. */
static bool starts(const char *s, const char *prefix)
{
  for (; *prefix; s++, prefix++)
    if (*s != *prefix)
      return false;
  return true;
}

static const char *find_eq(const char *s)
{
  for (; *s; s++)
    if (*s == '=')
      return s;
  return NULL;
}

unsigned hak_settings_load(char *const *env, hak_settings_warn_fn warn, void *ctx)
{
  set_ctx_t c = {warn, ctx, 0};
  for (int id = 0; id < HAK_SET_COUNT; id++) {
    hak_settings_values[id] = set_table[id].def;
    set_source[id] = HAK_SETTINGS_FROM_DEFAULT;
  }
  set_stats_file[0] = 0;
  if (!env)
    return 0;

  /* HAKMEM_OPTIONS first (its first occurrence, as getenv would), so the
   * variables of the same names override it. */
  for (char *const *e = env; *e; e++)
    if ((*e)[0] == 'H' && starts(*e, "HAKMEM_OPTIONS=")) {
      load_options(&c, *e + sizeof "HAKMEM_OPTIONS=" - 1);
      break;
    }

  bool seen[HAK_SET_COUNT] = {false};
  for (char *const *e = env; *e; e++) {
    const char *s = *e;
    if (s[0] != 'H' || !starts(s, "HAKMEM_"))
      continue;
    const char *name = s + sizeof "HAKMEM_" - 1;
    const char *eq = find_eq(name);
    if (!eq || starts(s, "HAKMEM_OPTIONS=") || starts(s, "HAKMEM_AB_") || starts(s, "HAKMEM_TEST_"))
      continue;
    int id = row_of(name, (size_t)(eq - name));
    if (id < 0) {
      warn_line(&c, "", s, (size_t)(eq - s), eq + 1, strlen(eq + 1), true, "unknown setting", -1);
      continue;
    }
    if (seen[id]) /* a second copy of the variable: getenv sees the first */
      continue;
    seen[id] = true;
    take(&c, HAK_SETTINGS_FROM_ENV, "", s, (size_t)(eq - s), id, eq + 1, strlen(eq + 1));
  }

  /* A build without the purge thread has none to switch on. */
  if (!HAK_PURGE_THREAD)
    hak_settings_values[HAK_SET_purge_thread] = 0;
  if (hak_settings_values[HAK_SET_verbose])
    hak_settings_print(hak_settings_values[HAK_SET_verbose], warn, ctx);
  return c.warnings;
}

/* ---- Output ------------------------------------------------------------ */

static const char *source_name(enum hak_settings_id id)
{
  switch (set_source[id]) {
  case HAK_SETTINGS_FROM_ENV: return set_table[id].var;
  case HAK_SETTINGS_FROM_OPTIONS: return "HAKMEM_OPTIONS";
  case HAK_SETTINGS_FROM_DEFAULT: break;
  }
  return "default";
}

static void put_json_string(hak_out_t *o, const char *s)
{
  static const char hex[] = "0123456789abcdef";
  hak_out_str(o, "\"");
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      char e[2] = {'\\', (char)ch};
      hak_out_mem(o, e, 2);
    } else if (ch < 0x20) {
      char e[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
      hak_out_mem(o, e, 6);
    } else {
      hak_out_mem(o, (const char *)&ch, 1);
    }
  }
  hak_out_str(o, "\"");
}

size_t hak_settings_format_json(char *buf, size_t cap)
{
  hak_out_t o = {buf, 0, cap};
  for (int id = 0; id < HAK_SET_COUNT; id++) {
    const set_row_t *r = &set_table[id];
    hak_out_str(&o, id ? ",\"" : "{\"");
    hak_out_str(&o, r->name);
    hak_out_str(&o, "\":");
    if (r->kind == SET_ENUM)
      put_json_string(&o, word_of(r, hak_settings_values[id]));
    else if (r->kind == SET_STRING)
      hak_settings_values[id] ? put_json_string(&o, r->buf) : hak_out_str(&o, "null");
    else
      hak_out_i64(&o, hak_settings_values[id]);
  }
  hak_out_str(&o, "}");
  return o.len;
}

size_t hak_settings_format_sources_json(char *buf, size_t cap)
{
  hak_out_t o = {buf, 0, cap};
  for (int id = 0; id < HAK_SET_COUNT; id++) {
    hak_out_str(&o, id ? ",\"" : "{\"");
    hak_out_str(&o, set_table[id].name);
    hak_out_str(&o, "\":\"");
    hak_out_str(&o, source_name((enum hak_settings_id)id));
    hak_out_str(&o, "\"");
  }
  hak_out_str(&o, "}");
  return o.len;
}

static void print_line(hak_out_t *o, hak_settings_warn_fn out, void *ctx)
{
  o->p[o->len++] = '\n'; /* room kept: cap is one short of the buffer */
  set_ctx_t c = {out, ctx, 0};
  emit(&c, o->p, o->len);
  o->len = 0;
}

void hak_settings_print(int level, hak_settings_warn_fn out, void *ctx)
{
  char line[PATH_MAX + 512];
  hak_out_t o = {line, 0, sizeof line - 1};
  hak_out_str(&o, "hakmem: settings in force (variant " HAK_VARIANT "; HAKMEM_<NAME> wins over HAKMEM_OPTIONS):");
  print_line(&o, out, ctx);
  for (int id = 0; id < HAK_SET_COUNT; id++) {
    const set_row_t *r = &set_table[id];
    hak_out_str(&o, "hakmem:   ");
    size_t at = o.len;
    hak_out_str(&o, r->name);
    hak_out_pad(&o, at, 17);
    at = o.len;
    put_value(&o, (enum hak_settings_id)id);
    if (o.len == at)
      hak_out_str(&o, "(unset)");
    hak_out_pad(&o, at, 9);
    hak_out_str(&o, " ");
    hak_out_str(&o, source_name((enum hak_settings_id)id));
    if (r->warm_pool && !HAK_WARM_POOL)
      hak_out_str(&o, " (no effect: built with -Dwarm_pool=false)");
    if (id == HAK_SET_purge_thread && !HAK_PURGE_THREAD)
      hak_out_str(&o, " (no effect: built with -Dpurge_thread=false)");
    if (level >= 2) {
      hak_out_str(&o, "\nhakmem:       ");
      if (r->kind == SET_INT) {
        hak_out_i64(&o, r->lo);
        hak_out_str(&o, "..");
        hak_out_i64(&o, r->hi);
      } else if (r->kind == SET_STRING) {
        hak_out_str(&o, "path");
      } else {
        hak_out_str(&o, r->kind == SET_BOOL ? "boolean" : r->expect);
      }
      hak_out_str(&o, ", default ");
      if (r->kind == SET_ENUM)
        hak_out_str(&o, word_of(r, r->def));
      else if (r->kind == SET_STRING)
        hak_out_str(&o, "unset");
      else
        hak_out_i64(&o, r->def);
      hak_out_str(&o, ": ");
      hak_out_str(&o, r->doc);
    }
    print_line(&o, out, ctx);
  }
}

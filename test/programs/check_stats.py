#!/usr/bin/python3
"""Check the statistics lines written by processes run under libhakmem.

With HAKMEM_STATS=json and HAKMEM_STATS_FILE=F, every process that loads the
library appends one line to F at exit: one JSON object naming the allocator,
its version, variant, pid and configuration and, in builds with statistics
(config "stats": 1), the counters ("totals" and per-class "classes").

This checker requires, for the file given:
  * at least --min-lines lines, each one JSON object with "allocator":
    "hakmem", the expected --variant, a version string, an integer pid, a
    "config" object, a "settings" object (the run-time settings in force:
    "stats" is "json", the numbers are counts) and a "settings_source"
    object with the same names;
  * in lines from a build with statistics: non-negative integer totals, and
    for each counter that the per-class entries also carry, the classes'
    sum equal to the total;
  * in lines from a build without statistics: totals absent or all zero;
  * over all lines from builds with statistics: unified-cache traffic
    (uc_hits + uc_misses) above --min-ops (with the unified cache compiled
    out, the larger of that and the warm pool's hits + misses).

It prints a one-line summary and exits 0, or prints the reasons and exits 1.
It must run without the preload (lib.sh calls it so).
"""
import argparse
import json
import sys

TOTALS = ("uc_hits", "uc_misses", "warm_hits", "warm_misses", "prefilled",
          "registry_scans", "superslabs_mapped", "superslabs_unmapped",
          "large_allocs", "large_frees")


def is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check_line(no, obj, variant, errors):
    """Check one parsed line; return (stats_on, totals or None, config)."""
    where = "line %d" % no
    if not isinstance(obj, dict):
        errors.append("%s: not a JSON object" % where)
        return False, None, {}
    if obj.get("allocator") != "hakmem":
        errors.append("%s: allocator is %r, not 'hakmem'" % (where, obj.get("allocator")))
    if variant is not None and obj.get("variant") != variant:
        errors.append("%s: variant is %r, expected %r" % (where, obj.get("variant"), variant))
    if not isinstance(obj.get("version"), str) or not obj.get("version"):
        errors.append("%s: no version string" % where)
    if not is_count(obj.get("pid")) or obj.get("pid") == 0:
        errors.append("%s: pid is %r" % (where, obj.get("pid")))
    config = obj.get("config")
    if not isinstance(config, dict) or "stats" not in config:
        errors.append("%s: no config object with a 'stats' key" % where)
        return False, None, {}
    settings = obj.get("settings")
    sources = obj.get("settings_source")
    if not isinstance(settings, dict) or settings.get("stats") != "json":
        errors.append("%s: settings is %r, expected an object with stats json" % (where, settings))
    else:
        for key in ("prefill", "warm_pool_max", "purge_delay_ms", "purge_thread"):
            if not is_count(settings.get(key)):
                errors.append("%s: settings.%s is %r" % (where, key, settings.get(key)))
        if not isinstance(sources, dict) or sorted(sources) != sorted(settings):
            errors.append("%s: settings_source %r does not name the settings" % (where, sources))
    stats_on = config.get("stats") == 1
    totals = obj.get("totals")
    if not stats_on:
        if totals is not None and any(v != 0 for v in totals.values()):
            errors.append("%s: config stats 0 but non-zero totals %r" % (where, totals))
        return False, None, config
    if not isinstance(totals, dict):
        errors.append("%s: config stats 1 but no totals object" % where)
        return True, None, config
    for key in TOTALS:
        if not is_count(totals.get(key)):
            errors.append("%s: totals.%s is %r" % (where, key, totals.get(key)))
    classes = obj.get("classes")
    if not isinstance(classes, list):
        errors.append("%s: config stats 1 but no classes list" % where)
        return True, totals, config
    sums = {}
    for entry in classes:
        if not isinstance(entry, dict) or not is_count(entry.get("class")) \
                or not is_count(entry.get("size")):
            errors.append("%s: malformed class entry %r" % (where, entry))
            continue
        for key in TOTALS:
            if key in entry:
                if not is_count(entry[key]):
                    errors.append("%s: class %s %s is %r" % (where, entry["class"], key, entry[key]))
                    continue
                sums[key] = sums.get(key, 0) + entry[key]
    for key, total in sums.items():
        if is_count(totals.get(key)) and total != totals[key]:
            errors.append("%s: classes' %s add up to %d, totals say %d"
                          % (where, key, total, totals[key]))
    return True, totals, config


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--min-ops", type=int, default=100)
    ap.add_argument("--min-lines", type=int, default=1)
    ap.add_argument("--variant", default=None)
    args = ap.parse_args()

    errors = []
    try:
        with open(args.file, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        print("check_stats: cannot read %s: %s" % (args.file, e))
        return 1

    n_lines = n_counted = 0
    sum_totals = dict.fromkeys(TOTALS, 0)
    uc_on = None
    for no, text in enumerate(lines, 1):
        if not text.strip():
            errors.append("line %d: empty" % no)
            continue
        try:
            obj = json.loads(text)
        except ValueError as e:
            errors.append("line %d: not JSON (%s): %.200s" % (no, e, text))
            continue
        n_lines += 1
        stats_on, totals, config = check_line(no, obj, args.variant, errors)
        if stats_on and totals is not None:
            n_counted += 1
            for key in TOTALS:
                if is_count(totals.get(key)):
                    sum_totals[key] += totals[key]
            uc_on = (uc_on or False) or config.get("unified_cache") == 1

    if n_lines < args.min_lines:
        errors.append("%d statistics lines, expected at least %d (is the library loaded? "
                      "does it write HAKMEM_STATS_FILE?)" % (n_lines, args.min_lines))
    # Every small allocation is a unified-cache hit or miss; with the cache
    # compiled out, a miss that the warm pool (or what is below it) serves.
    traffic = sum_totals["uc_hits"] + sum_totals["uc_misses"]
    what = "uc_hits + uc_misses"
    if n_counted and not uc_on:
        traffic = max(traffic, sum_totals["warm_hits"] + sum_totals["warm_misses"])
        what = "uc_hits + uc_misses (or warm_hits + warm_misses, cache off)"
    if n_counted and traffic <= args.min_ops:
        errors.append("%s = %d over %d processes, expected more than %d"
                      % (what, traffic, n_counted, args.min_ops))

    summary = ("check_stats: %d lines (%d with counters); totals: %s"
               % (n_lines, n_counted, " ".join("%s=%d" % kv for kv in sum_totals.items())))
    print(summary)
    if errors:
        for e in errors[:30]:
            print("check_stats: " + e)
        if len(errors) > 30:
            print("check_stats: ... %d more" % (len(errors) - 30))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

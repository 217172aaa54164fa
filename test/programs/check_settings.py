#!/usr/bin/python3
"""Check the run-time settings on whole processes under LD_PRELOAD.

Usage: check_settings.py --work PROGRAM --lib NAME=PATH [--lib NAME=PATH ...]

PROGRAM is test/programs/settings_work (deterministic, single-threaded,
not linked with hakmem); each library is a variant of the build. For every
library this requires:
  * without settings: exit 0, the same stdout as without the preload, no
    word on stderr, and "settings" in the JSON equal to the build's config;
  * a setting's effect: run with another variant's prefill,
    prefill_policy, warm_pool_max and purge settings (through HAKMEM_<NAME>
    and through HAKMEM_OPTIONS), the counters of the workload's class are
    those of that variant run plainly (e.g. HAKMEM_PREFILL=3 on the default
    library gives what the p3 library gives, HAKMEM_PREFILL=0 on p3 what the
    default gives); with no such partner in the build, prefill 3 against 0
    still changes the prefill counters (and with -Dwarm_pool=false changes
    nothing); prefill is clipped below warm_pool_max;
  * HAKMEM_VERBOSE=1 prints the table with the sources, once;
  * a bad value prints exactly one warning line, and the program exits 0
    with the right output;
  * HAKMEM_<NAME> wins over HAKMEM_OPTIONS; HAKMEM_OPTIONS=stats=json,
    stats_file=F writes the statistics; purge_thread and purge_delay_ms
    show in the JSON, the values in force in the table's config line and
    in the warm pool's table.
Prints one line per library and exits 0, or prints the reasons and exits 1.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

RUNTIME = ("prefill", "prefill_policy", "warm_pool_max", "purge_delay_ms", "purge_thread")
COUNTERS = ("warm_hits", "warm_misses", "warm_cold_misses", "prefilled", "registry_scans",
            "superslabs_mapped", "prefill_budget_peak")
WORK_SIZE = 2000  # settings_work.c's BLOCK
ROWS = ("prefill", "prefill_policy", "warm_pool_max", "purge_delay_ms", "purge_thread", "stats",
        "stats_file", "warm_pool_stats", "verbose")


class Checker:
    def __init__(self, work, tmp):
        self.work = work
        self.tmp = tmp
        self.errors = []
        self.runs = 0
        base = {k: v for k, v in os.environ.items()
                if not k.startswith("HAKMEM_") and k != "LD_PRELOAD"}
        base["LC_ALL"] = "C"
        self.base_env = base
        plain = subprocess.run([work], env=base, capture_output=True, text=True, timeout=60)
        if plain.returncode != 0 or "settings_work: ok" not in plain.stdout:
            raise SystemExit("check_settings: %s fails without the preload: %r %r"
                             % (work, plain.stdout, plain.stderr))
        self.expected_stdout = plain.stdout

    def fail(self, lib, what):
        self.errors.append("%s: %s" % (lib[0], what))

    def run(self, lib, env, stats=True, prog=None):
        """Run the workload (or prog) under lib with env; the JSON object
        the library wrote (stats=True) or None."""
        self.runs += 1
        e = dict(self.base_env, LD_PRELOAD=lib[1], **env)
        path = os.path.join(self.tmp, "stats-%d.jsonl" % self.runs)
        if stats:
            e.setdefault("HAKMEM_STATS", "json")
            e.setdefault("HAKMEM_STATS_FILE", path)
        r = subprocess.run(prog or [self.work], env=e, capture_output=True, text=True, timeout=60)
        obj = None
        if stats and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
            if len(lines) != 1:
                self.fail(lib, "%r: %d statistics lines, expected 1" % (env, len(lines)))
            else:
                obj = json.loads(lines[0])
        return r, obj

    def clean_run(self, lib, env, stats=True):
        """A run that must succeed with the right output and a silent stderr."""
        r, obj = self.run(lib, env, stats)
        if r.returncode != 0:
            self.fail(lib, "%r: exit %d" % (env, r.returncode))
        if r.stdout != self.expected_stdout:
            self.fail(lib, "%r: stdout %r" % (env, r.stdout))
        if r.stderr:
            self.fail(lib, "%r: unexpected stderr %r" % (env, r.stderr[:500]))
        if stats and obj is None:
            self.fail(lib, "%r: no statistics" % (env,))
        return obj


def work_class(obj):
    """The counters of the workload's class (zeros when it counted none)."""
    for c in obj.get("classes", []):
        if c["size"] >= WORK_SIZE and c["size"] - WORK_SIZE < 128:
            return {k: c[k] for k in COUNTERS}
    return dict.fromkeys(COUNTERS, 0)


def as_setting(key, value):
    """A config value as HAKMEM_<NAME> takes it."""
    return str(value)


def check_library(ck, lib, all_libs, baselines):
    name = lib[0]
    obj = baselines[name]
    config = obj["config"]
    counts = config.get("stats") == 1
    warm = config.get("warm_pool") == 1

    # Settings in force without any: the build's options.
    settings = obj.get("settings", {})
    for key in RUNTIME:
        if settings.get(key) != config.get(key):
            ck.fail(lib, "settings.%s is %r, the build says %r" % (key, settings.get(key), config.get(key)))
    src = obj.get("settings_source", {})
    for key in ROWS:
        want = {"stats": "HAKMEM_STATS", "stats_file": "HAKMEM_STATS_FILE"}.get(key, "default")
        if src.get(key) != want:
            ck.fail(lib, "settings_source.%s is %r, expected %r" % (key, src.get(key), want))
    if settings.get("stats") != "json":
        ck.fail(lib, "settings.stats is %r under HAKMEM_STATS=json" % settings.get("stats"))

    # Another variant's settings at run time give that variant's counters.
    partners = 0
    for other in all_libs:
        oconf = baselines[other[0]]["config"]
        if other[0] == name or not counts or oconf.get("stats") != 1:
            continue
        if any(oconf.get(k) != config.get(k) for k in config if k not in RUNTIME):
            continue
        if oconf["purge_thread"] > config["purge_thread"]:
            continue  # a setting cannot switch on what the build left out
        want = work_class(baselines[other[0]])
        env_vars = {"HAKMEM_" + k.upper(): as_setting(k, oconf[k]) for k in RUNTIME}
        env_opts = {"HAKMEM_OPTIONS": ",".join("%s=%s" % (k, as_setting(k, oconf[k])) for k in RUNTIME)}
        env_mixed = {"HAKMEM_PREFILL": str(oconf["prefill"]),
                     "HAKMEM_OPTIONS": "prefill=%d,prefill_policy=%s,warm_pool_max=%d"
                     % (config["prefill"] + 1, oconf["prefill_policy"], oconf["warm_pool_max"])}
        for env in (env_vars, env_opts, env_mixed):
            got_obj = ck.clean_run(lib, env)
            if got_obj is None:
                continue
            got = work_class(got_obj)
            if got != want:
                ck.fail(lib, "%r: counters %r, variant %s gives %r" % (env, got, other[0], want))
            for k in ("prefill", "prefill_policy", "warm_pool_max"):
                if got_obj["settings"][k] != oconf[k]:
                    ck.fail(lib, "%r: settings.%s is %r" % (env, k, got_obj["settings"][k]))
        partners += 1

    # Prefill 3 against 0 on this library alone.
    if counts:
        fixed = {"HAKMEM_PREFILL_POLICY": "fixed"}
        p0 = ck.clean_run(lib, dict(fixed, HAKMEM_PREFILL="0"))
        p3 = ck.clean_run(lib, dict(fixed, HAKMEM_OPTIONS="prefill=3"))
        clip = ck.clean_run(lib, dict(fixed, HAKMEM_OPTIONS="prefill=8,warm_pool_max=2"))
        if p0 and p3 and clip:
            c0, c3, cc = work_class(p0), work_class(p3), work_class(clip)
            if warm:
                if c0["prefilled"] != 0 or c3["prefilled"] == 0:
                    ck.fail(lib, "prefill 0 then 3: prefilled %d then %d" % (c0["prefilled"], c3["prefilled"]))
                if c3["warm_misses"] >= c0["warm_misses"]:
                    ck.fail(lib, "prefill 3 did not cut the misses: %r vs %r" % (c3, c0))
                if cc["prefill_budget_peak"] != 1:
                    ck.fail(lib, "prefill 8 with warm_pool_max 2: budget peak %d, expected 1"
                            % cc["prefill_budget_peak"])
            elif not (c0 == c3 == cc):
                ck.fail(lib, "no warm pool, yet prefill changed the counters: %r %r %r" % (c0, c3, cc))
            if p3["settings"]["prefill"] != 3 or p3["settings_source"]["prefill"] != "HAKMEM_OPTIONS":
                ck.fail(lib, "HAKMEM_OPTIONS=prefill=3: settings %r" % p3["settings"])

    # Precedence, purge settings, stats from HAKMEM_OPTIONS.
    out = os.path.join(ck.tmp, "opts-%s.jsonl" % name)
    env = {"HAKMEM_OPTIONS": "prefill=5,purge_delay_ms=250,stats=json,stats_file=" + out,
           "HAKMEM_PREFILL": "1", "HAKMEM_PURGE_THREAD": "0"}
    ck.clean_run(lib, env, stats=False)
    try:
        with open(out, encoding="utf-8") as f:
            lines = f.read().splitlines()
        got = json.loads(lines[0]) if len(lines) == 1 else None
    except OSError:
        got = None
    if got is None:
        ck.fail(lib, "HAKMEM_OPTIONS=stats=json,stats_file=F wrote no single line to F")
    else:
        s, so = got["settings"], got["settings_source"]
        want = {"prefill": (1, "HAKMEM_PREFILL"), "purge_delay_ms": (250, "HAKMEM_OPTIONS"),
                "purge_thread": (0, "HAKMEM_PURGE_THREAD"), "stats": ("json", "HAKMEM_OPTIONS"),
                "stats_file": (out, "HAKMEM_OPTIONS")}
        for k, (v, source) in want.items():
            if s.get(k) != v or so.get(k) != source:
                ck.fail(lib, "%r: %s is %r from %r, expected %r from %r"
                        % (env, k, s.get(k), so.get(k), v, source))

    # The table's config line and the warm pool's table say what is in force.
    r, _ = ck.run(lib, {"HAKMEM_STATS": "1", "HAKMEM_OPTIONS": "prefill=5,purge_delay_ms=250,warm_pool_stats=1",
                        "HAKMEM_WARM_POOL_MAX": "12"}, stats=False)
    want = " prefill=5 prefill_policy=%s warm_pool_max=12 " % config["prefill_policy"]
    if r.returncode != 0 or "config: variant=%s " % name not in r.stderr or want not in r.stderr \
            or " purge_delay_ms=250 " not in r.stderr:
        ck.fail(lib, "HAKMEM_STATS=1: no config line with %r and purge_delay_ms=250 in %r" % (want, r.stderr[:600]))
    if counts and "policy %s, prefill 5, capacity 12" % config["prefill_policy"] not in r.stderr:
        ck.fail(lib, "warm_pool_stats=1: no warm pool table with the settings in force: %r" % r.stderr[:600])

    # HAKMEM_VERBOSE=1: the table with its sources, once.
    for prog in (None, ["/bin/true"]):
        r, _ = ck.run(lib, {"HAKMEM_VERBOSE": "1", "HAKMEM_OPTIONS": "prefill=2",
                            "HAKMEM_PURGE_DELAY_MS": "250"}, stats=False, prog=prog)
        lines = r.stderr.splitlines()
        if r.returncode != 0 or len(lines) != 1 + len(ROWS) or \
                not lines[0].startswith("hakmem: settings in force (variant %s;" % name):
            ck.fail(lib, "HAKMEM_VERBOSE=1 (%s): exit %d, stderr %r" % (prog, r.returncode, r.stderr))
            continue
        rows = {}
        for line in lines[1:]:
            words = line.split()
            rows[words[1]] = words[2:]
        want = {"prefill": ["2", "HAKMEM_OPTIONS"], "purge_delay_ms": ["250", "HAKMEM_PURGE_DELAY_MS"],
                "verbose": ["1", "HAKMEM_VERBOSE"], "stats": ["off", "default"],
                "warm_pool_max": [str(config["warm_pool_max"]), "default"]}
        for k, v in want.items():
            if rows.get(k, [])[:2] != v:
                ck.fail(lib, "HAKMEM_VERBOSE=1: row %s is %r, expected %r" % (k, rows.get(k), v))
        if sorted(rows) != sorted(ROWS):
            ck.fail(lib, "HAKMEM_VERBOSE=1: rows %r" % sorted(rows))
        if not warm and "no effect" not in " ".join(rows.get("prefill", [])):
            ck.fail(lib, "HAKMEM_VERBOSE=1 without a warm pool: prefill row %r says nothing of it"
                    % rows.get("prefill"))

    # A bad value: one warning, exit 0, the right output, the default kept.
    bad = [({"HAKMEM_PREFILL": "abc"}, "hakmem: HAKMEM_PREFILL=abc: not a number in 0..64; using %d"
            % config["prefill"]),
           ({"HAKMEM_OPTIONS": "prefill"}, "hakmem: HAKMEM_OPTIONS: prefill: not name=value; ignored"),
           ({"HAKMEM_FOO": "1"}, "hakmem: HAKMEM_FOO=1: unknown setting; ignored"),
           ({"HAKMEM_WARM_POOL_MAX": "300"}, "hakmem: HAKMEM_WARM_POOL_MAX=300: out of range 1..256; using %d"
            % config["warm_pool_max"]),
           ({"HAKMEM_PURGE_THREAD": "maybe"}, None),
           ({"HAKMEM_OPTIONS": "stats=xml"}, None)]
    for env, line in bad:
        r, got = ck.run(lib, env, stats="stats" not in env.get("HAKMEM_OPTIONS", ""))
        lines = r.stderr.splitlines()
        if r.returncode != 0 or r.stdout != ck.expected_stdout or len(lines) != 1 \
                or not lines[0].startswith("hakmem: ") or (line and lines[0] != line):
            ck.fail(lib, "%r: exit %d, stdout %r, stderr %r" % (env, r.returncode, r.stdout, r.stderr))
        if got is not None:
            for key in RUNTIME:
                if got["settings"][key] != config[key]:
                    ck.fail(lib, "%r: settings.%s is %r, not the default" % (env, key, got["settings"][key]))
    return partners


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--lib", action="append", required=True, help="NAME=PATH")
    args = ap.parse_args()
    libs = [tuple(s.split("=", 1)) for s in args.lib]
    with tempfile.TemporaryDirectory(prefix="hakmem-settings.") as tmp:
        ck = Checker(args.work, tmp)
        baselines = {}
        for lib in libs:
            obj = ck.clean_run(lib, {})
            if obj is None or obj.get("variant") != lib[0]:
                print("check_settings: %s: no statistics line from variant %s" % (lib[1], lib[0]))
                return 1
            baselines[lib[0]] = obj
        for lib in libs:
            n = check_library(ck, lib, libs, baselines)
            print("check_settings: %s: checked, %d partner variant(s), workload class %r"
                  % (lib[0], n, work_class(baselines[lib[0]])))
    print("check_settings: %d runs, %d problems" % (ck.runs, len(ck.errors)))
    for e in ck.errors[:40]:
        print("check_settings: " + e)
    return 1 if ck.errors else 0


if __name__ == "__main__":
    sys.exit(main())

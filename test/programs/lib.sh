# test/programs/lib.sh — shared helpers of the whole-program tests.
#
# Each test script sources this file, calls hak_init, and describes its
# workload as a shell function made of hak_step lines. hak_compare runs that
# function twice, in a fresh directory each time: once without the preload
# ("base") and once with LD_PRELOAD of the library under test plus
# HAKMEM_STATS=json ("preload"). Everything the steps print, and each step's
# exit status, must be identical byte for byte. hak_check_stats then reads
# the statistics lines the preloaded processes appended and checks that
# hakmem, not glibc, served the allocations.
#
# Inputs (environment, set by test/programs/meson.build; a first argument
# overrides HAKMEM_TEST_LIB so a script can be tried by hand):
#   HAKMEM_TEST_LIB      absolute path of the library to preload. A library
#                        whose name does not contain "hakmem" (for example
#                        libjemalloc.so.2) is preloaded and compared, but the
#                        statistics checks are skipped.
#   HAKMEM_TEST_VARIANT  the variant name the statistics must report
#                        (optional; "default" when unset).
#   HAKMEM_TEST_KEEP=1   keep the temporary folder for inspection.
#
# Exit codes follow Meson: 0 pass, 77 skip, anything else fails.

# Debian's interpreter, never the one first in PATH: that may be a pyenv
# shim (a shell script that would itself run under the preload).
HAK_PYTHON=/usr/bin/python3
HAK_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

hak_log() { printf '%s: %s\n' "${HAK_TEST_NAME:-test}" "$*" >&2; }
hak_fail() { hak_log "FAIL: $*"; exit 1; }
hak_skip() { hak_log "SKIP: $*"; exit 77; }

# hak_require PROGRAM...: skip the test unless every PROGRAM exists. A
# PROGRAM with a slash must be an executable file; otherwise it is looked
# up in PATH.
hak_require() {
  local p
  for p in "$@"; do
    if [[ $p == */* ]]; then
      [[ -x $p ]] || hak_skip "$p is not installed"
    else
      command -v "$p" >/dev/null 2>&1 || hak_skip "$p is not installed"
    fi
  done
}

hak_cleanup() {
  if [[ -n ${HAK_TMP:-} && -d $HAK_TMP ]]; then
    if [[ ${HAKMEM_TEST_KEEP:-0} == 1 ]]; then
      hak_log "kept $HAK_TMP"
    else
      rm -rf -- "$HAK_TMP"
    fi
  fi
}

# hak_init NAME [LIB]: read the inputs, make the temporary folder.
hak_init() {
  HAK_TEST_NAME=$1
  HAK_LIB=${2:-${HAKMEM_TEST_LIB:-}}
  HAK_VARIANT=${HAKMEM_TEST_VARIANT:-default}
  [[ -n $HAK_LIB ]] || hak_fail "no library: set HAKMEM_TEST_LIB or pass its path"
  [[ $HAK_LIB == /* ]] || hak_fail "library path must be absolute: $HAK_LIB"
  [[ -f $HAK_LIB ]] || hak_fail "library not found: $HAK_LIB"
  if [[ $(basename -- "$HAK_LIB") == *hakmem* ]]; then
    HAK_IS_HAKMEM=1
  else
    HAK_IS_HAKMEM=0
  fi
  # The runs must not inherit a preload or statistics settings from the
  # caller; the preload run gets exactly the ones hak_exec sets.
  unset LD_PRELOAD HAKMEM_STATS HAKMEM_STATS_FILE
  export LC_ALL=C TZ=UTC
  HAK_TMP=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-$HAK_TEST_NAME.XXXXXX")
  trap hak_cleanup EXIT
  HAK_STATS_FILE=$HAK_TMP/stats.jsonl
  : > "$HAK_STATS_FILE"
  hak_log "library $HAK_LIB (variant $HAK_VARIANT), temp $HAK_TMP"
}

# hak_exec CMD...: run CMD in the current mode, with the preload and the
# statistics variables only in the "preload" mode.
hak_exec() {
  if [[ $HAK_MODE == preload ]]; then
    LD_PRELOAD=$HAK_LIB HAKMEM_STATS=json HAKMEM_STATS_FILE=$HAK_STATS_FILE "$@"
  else
    "$@"
  fi
}

# hak_step LABEL CMD...: run CMD through hak_exec and print its exit status
# after whatever it printed, so the status is part of the comparison. The
# status never stops the script (a failing step shows up as a difference or
# in the expectations of the workload).
hak_step() {
  local label=$1 rc=0
  shift
  printf '=== %s\n' "$label"
  hak_exec "$@" || rc=$?
  printf '=== %s: exit %d\n' "$label" "$rc"
  # Same line on stderr, so the stderr logs line up step by step.
  printf '=== %s: exit %d\n' "$label" "$rc" >&2
}

# hak_compare FUNCTION: run FUNCTION once per mode, each time in a fresh
# directory $HAK_TMP/<mode>/work (with HOME pointing into it), and require
# identical stdout and stderr. FUNCTION must not depend on the mode's path
# in what it prints (it runs in "work", so relative paths are the same).
hak_compare() {
  local fn=$1 mode
  for mode in base preload; do
    mkdir -p "$HAK_TMP/$mode/work" "$HAK_TMP/$mode/home"
    # The workload runs with errexit of its own; its failure (a command
    # outside hak_step failing) stops the test with the logs shown.
    local rc=0
    set +e
    (
      set -e
      cd "$HAK_TMP/$mode/work"
      export HOME=$HAK_TMP/$mode/home HAK_MODE=$mode
      "$fn"
    ) > "$HAK_TMP/$mode.out" 2> "$HAK_TMP/$mode.err"
    rc=$?
    set -e
    if ((rc != 0)); then
      tail -n 20 "$HAK_TMP/$mode.out" "$HAK_TMP/$mode.err" >&2
      hak_fail "workload $fn failed in mode $mode (status $rc)"
    fi
  done
  local bad=0
  if ! cmp -s "$HAK_TMP/base.out" "$HAK_TMP/preload.out"; then
    hak_log "stdout differs with the preload (diff base preload):"
    diff "$HAK_TMP/base.out" "$HAK_TMP/preload.out" | head -n 40 >&2 || true
    bad=1
  fi
  if ! cmp -s "$HAK_TMP/base.err" "$HAK_TMP/preload.err"; then
    hak_log "stderr differs with the preload (diff base preload):"
    diff "$HAK_TMP/base.err" "$HAK_TMP/preload.err" | head -n 40 >&2 || true
    bad=1
  fi
  ((bad == 0)) || hak_fail "outputs differ with $HAK_LIB"
  hak_log "outputs identical: $(wc -c < "$HAK_TMP/base.out") bytes stdout, $(wc -c < "$HAK_TMP/base.err") bytes stderr"
}

# hak_expect_output PATTERN: the base run's stdout must contain the
# extended regular expression PATTERN (a sanity check that the workload did
# what it should; the comparison alone would accept two identical failures).
hak_expect_output() {
  grep -Eq -- "$1" "$HAK_TMP/base.out" ||
    { sed -n '1,40p' "$HAK_TMP/base.out" >&2; hak_fail "base run did not print /$1/"; }
}

# hak_check_stats MIN_OPS [MIN_LINES]: the preloaded processes must have
# written at least MIN_LINES (default 1) statistics lines, every one a JSON
# object from hakmem of the expected variant; when the library counts
# (config stats 1), their cache traffic together must exceed MIN_OPS.
hak_check_stats() {
  local min_ops=$1 min_lines=${2:-1}
  if ((HAK_IS_HAKMEM == 0)); then
    hak_log "statistics check skipped: $(basename -- "$HAK_LIB") is not hakmem"
    return 0
  fi
  if [[ -x $HAK_PYTHON ]]; then
    "$HAK_PYTHON" -I -S "$HAK_HERE/check_stats.py" "$HAK_STATS_FILE" \
      --min-ops "$min_ops" --min-lines "$min_lines" --variant "$HAK_VARIANT" >&2 ||
      hak_fail "statistics check failed (file $HAK_STATS_FILE)"
  else
    # Without Python only the served-by marker can be checked.
    local n
    n=$(grep -c '"allocator":"hakmem"' "$HAK_STATS_FILE" || true)
    ((n >= min_lines)) ||
      hak_fail "$n statistics lines from hakmem, expected at least $min_lines"
    hak_log "statistics: $n lines from hakmem ($HAK_PYTHON missing: counters not checked)"
  fi
}

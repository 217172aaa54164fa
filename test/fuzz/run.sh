#!/bin/bash
# test/fuzz/run.sh [SECONDS] [extra libFuzzer options...] — build fuzz_hak
# (test/fuzz/build.sh) and fuzz for SECONDS (default 60) from the seed
# corpus in test/fuzz/corpus. New inputs go to a scratch corpus
# ($HAK_FUZZ_WORK, default a fresh directory under /tmp), never into the
# checkout; a crash leaves crash-* / timeout-* / oom-* files in
# $HAK_FUZZ_ARTIFACTS (default: the scratch directory) and makes the script
# exit non-zero. Reproduce one with: OUT_DIR/fuzz_hak crash-FILE
#
# Examples:
#   test/fuzz/run.sh 60                       # CI
#   test/fuzz/run.sh 600 -jobs=2 -workers=2   # ten minutes on both cores
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-60}
shift || true
case "$secs" in
  ''|*[!0-9]*) echo "usage: $0 [SECONDS] [libFuzzer options...]" >&2; exit 2 ;;
esac

out=${HAK_FUZZ_BUILD:-/tmp/hakmem-fuzz}
bin=$("$here/build.sh" "$out" | tail -n 1)
work=${HAK_FUZZ_WORK:-$(mktemp -d /tmp/hakmem-fuzz-corpus.XXXXXX)}
artifacts=${HAK_FUZZ_ARTIFACTS:-$work/artifacts}
mkdir -p "$work/corpus" "$artifacts"

echo "fuzz_hak: $secs s, corpus $work/corpus (seeds: $here/corpus), artifacts $artifacts"
# -rss_limit_mb: the harness keeps at most 64 MiB of blocks alive, ASan's
# quarantine and the allocator's caches come on top. -timeout: one input
# is at most a few thousand operations.
set +e
"$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=20 -rss_limit_mb=3072 -max_len=4096 \
  -artifact_prefix="$artifacts/" "$@" "$work/corpus" "$here/corpus"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  echo "fuzz_hak: FAILED (exit $rc); artifacts in $artifacts:" >&2
  ls -l "$artifacts" >&2 || true
  exit $rc
fi
echo "fuzz_hak: no failure in $secs s"

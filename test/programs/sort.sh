#!/bin/bash
# Whole-program test: GNU sort on 300,000 generated lines with two threads
# (--parallel=2) and a small buffer (-S 2M) so it sorts in chunks on threads
# and merges temporary files. The sorted outputs must be identical.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
hak_init sort "${1:-}"
hak_require /usr/bin/sort /usr/bin/awk /usr/bin/sha256sum

input=$HAK_TMP/input.txt
# Deterministic lines: a pseudo-random key, a number and a word of varying
# length, so that keys repeat and the fields compare differently.
/usr/bin/awk 'BEGIN {
  x = 12345
  for (i = 0; i < 300000; i++) {
    x = (x * 69069 + 1) % 4294967296
    w = substr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", 1 + x % 40, 1 + int(x / 65536) % 30)
    printf "%04x %d %s\n", int(x / 65536), x % 100000, w
  }
}' > "$input"

workload() {
  mkdir tmp
  hak_step plain /usr/bin/sort --parallel=2 -S 2M -T tmp -o plain.txt "$input"
  hak_step keys /usr/bin/sort --parallel=2 -S 2M -T tmp -s -k3,3 -k2,2nr -o keys.txt "$input"
  hak_step unique /usr/bin/sort --parallel=2 -S 1M -T tmp -u -k1,1 -o unique.txt "$input"
  hak_step numeric-stdin /usr/bin/sort --parallel=2 -S 4M -g -k2 -o numeric.txt < "$input"
  /usr/bin/sha256sum plain.txt keys.txt unique.txt numeric.txt
  /usr/bin/wc -l plain.txt keys.txt unique.txt numeric.txt
  # The results really are sorted (checked without the preload).
  LC_ALL=C /usr/bin/sort -c plain.txt && echo "plain sorted"
  LC_ALL=C /usr/bin/sort -c -s -k3,3 -k2,2nr keys.txt && echo "keys sorted"
}

hak_compare workload
hak_expect_output '^ *300000 plain\.txt$'
hak_expect_output '^ *300000 numeric\.txt$'
hak_expect_output '^ *64871 unique\.txt$'
hak_expect_output '^plain sorted$'
hak_expect_output '^keys sorted$'
[[ $(grep -c '^=== .*: exit 0$' "$HAK_TMP/base.out") == 4 ]] || hak_fail "a sort run failed"
# sort makes few small allocations (its buffer is one large block).
hak_check_stats 200 4

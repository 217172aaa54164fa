#!/bin/bash
# Whole-program test: Debian's python3 building and dropping large dicts,
# lists, sets and buffers (workload.py), once with Python's own small-object
# allocator in front of malloc and once with PYTHONMALLOC=malloc so every
# object goes through the preloaded library. Output must not change.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
hak_init python3 "${1:-}"
hak_require "$HAK_PYTHON"

script=$HAK_HERE/workload.py
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONUSERBASE
export PYTHONHASHSEED=0

workload() {
  hak_step pymalloc "$HAK_PYTHON" -s -S "$script" 4
  PYTHONMALLOC=malloc hak_step malloc "$HAK_PYTHON" -s -S "$script" 4
  # Same run with threads: several interpreters' worth of allocation at once.
  PYTHONMALLOC=malloc hak_step threads "$HAK_PYTHON" -s -S -c '
import threading, hashlib
out = [None] * 4
def work(n):
    d = {}
    for i in range(40000):
        d["%d-%d" % (n, i)] = [i] * (i % 17)
    out[n] = hashlib.sha256(repr(sorted(d.items())[:2000]).encode()).hexdigest()[:16]
ts = [threading.Thread(target=work, args=(n,)) for n in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print(" ".join(out))
'
}

hak_compare workload
hak_expect_output '^final [0-9a-f]{64}$'
hak_expect_output '^=== threads: exit 0$'
grep -c '^=== .*: exit 0$' "$HAK_TMP/base.out" | grep -qx 3 || hak_fail "a python3 run failed"
hak_check_stats 100000 3

#!/bin/bash
# Whole-program test: git init, add and commit (twice) in a temporary
# folder, with fixed identities and dates so the commit ids are the same on
# every run; then log, cat-file, diff, gc (pack-objects with threads) and
# fsck. Every output, including the commit ids, must be identical.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
hak_init git "${1:-}"
hak_require /usr/bin/git

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME="Hak Tester" GIT_AUTHOR_EMAIL="tester@example.invalid"
export GIT_COMMITTER_NAME="Hak Tester" GIT_COMMITTER_EMAIL="tester@example.invalid"
export GIT_AUTHOR_DATE="2024-01-02T03:04:05Z" GIT_COMMITTER_DATE="2024-01-02T03:04:05Z"
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY

make_files() {
  # $1: a round number, so the second commit changes part of the tree.
  local round=$1 d i
  for d in $(seq 1 20); do
    mkdir -p "dir$d/sub"
    for i in $(seq 1 15); do
      if (( (d * i + round) % 4 != 0 || round == 1 )); then
        seq $((d * i)) $((d * i + 200 + round * (i % 3))) > "dir$d/file$i.txt"
      fi
    done
    printf 'readme %d round %d\n' "$d" "$round" > "dir$d/sub/README"
  done
}

workload() {
  hak_step init /usr/bin/git init -q -b main repo
  cd repo
  hak_step config /usr/bin/git config user.name "Hak Tester"
  make_files 1
  hak_step add1 /usr/bin/git add -A
  hak_step commit1 /usr/bin/git commit -q -m "first commit"
  make_files 2
  hak_step add2 /usr/bin/git add -A
  hak_step commit2 /usr/bin/git commit -q -m "second commit" -m "with a body"
  hak_step log /usr/bin/git log --format=%H
  hak_step cat-file /usr/bin/git cat-file -p HEAD
  hak_step ls-tree /usr/bin/git ls-tree -r HEAD
  hak_step diff /usr/bin/git diff --stat HEAD~1 HEAD
  hak_step gc /usr/bin/git -c pack.threads=2 gc -q
  hak_step fsck /usr/bin/git fsck --full --no-progress
  hak_step rev-list /usr/bin/git rev-list --objects --all
  hak_step status /usr/bin/git status --porcelain
}

hak_compare workload
# The id of the second commit, pinned: content, identities and dates fix it.
hak_expect_output '^5f22923ca3a220e5fdc6981b513ac8f3200367db$'
hak_expect_output '^tree [0-9a-f]{40}$'
hak_expect_output '^parent [0-9a-f]{40}$'
hak_expect_output '^committer Hak Tester <tester@example.invalid> 1704164645 \+0000$'
n_ok=$(grep -c '^=== .*: exit 0$' "$HAK_TMP/base.out")
[[ $n_ok == 14 ]] || hak_fail "only $n_ok of 14 git steps succeeded"
hak_check_stats 1000 14

#!/bin/bash
# Whole-program test: perl building, sorting and dropping large hashes,
# arrays and strings (workload.pl), plus a one-liner of many small hashes.
# Output must not change under the preload.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
hak_init perl "${1:-}"
hak_require /usr/bin/perl

script=$HAK_HERE/workload.pl
unset PERL5LIB PERLLIB PERL5OPT
export PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0

workload() {
  hak_step script /usr/bin/perl "$script" 3
  hak_step oneliner /usr/bin/perl -e '
    my %h; for my $i (1 .. 200000) { $h{$i % 5000}{$i} = [($i) x ($i % 7)] }
    my $n = 0; for my $k (sort { $a <=> $b } keys %h) { $n += scalar(keys %{$h{$k}}); delete $h{$k} if $k % 2 }
    print scalar(keys %h), " $n\n"'
}

hak_compare workload
hak_expect_output '^kept 3000 check [0-9]+$'
hak_expect_output '^2500 200000$'
hak_check_stats 100000 2

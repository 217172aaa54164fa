# Perl workload of the whole-program tests: large hashes and arrays built,
# transformed and dropped, string growth, sorting; prints results that
# depend on every value. Run with PERL_HASH_SEED=0 for a stable key order.
use strict;
use warnings;

my $rounds = shift // 5;
my $x = 12345;
sub rnd { $x = ($x * 1103515245 + 12345) % 2147483648; return $x; }

my $check = 0;
my @keep;
for my $r (1 .. $rounds) {
    my %h;
    $h{"key$r-" . rnd() % 200000} = ("v" x (rnd() % 300)) . $_ for 1 .. 60000;
    my %inv = reverse %h;
    my @arr = map { [rnd() % 1000, $_, "s" x ($_ % 40)] } 1 .. 60000;
    @arr = sort { $a->[0] <=> $b->[0] or $a->[1] <=> $b->[1] } @arr;
    splice(@arr, 0, 20000);
    push @arr, @arr[0 .. 9999];
    my $str = "";
    $str .= chr(65 + $_ % 26) x (rnd() % 500) for 1 .. 3000;
    my %count;
    $count{$_}++ for split //, $str;
    my @big = map { "z" x (rnd() % 200000) } 1 .. 20;
    my $total = 0;
    $total += length($_) for values %h;
    $total += length($_) for @big;
    $check = ($check * 31 + $total + scalar(keys %h) + scalar(keys %inv)
              + scalar(@arr) + length($str)) % 1000000007;
    push @keep, { map { $_ => $h{$_} } (sort keys %h)[0 .. 999] };
    printf "round %d: keys=%d inv=%d arr=%d first=%s str=%d A=%d total=%d\n",
        $r, scalar(keys %h), scalar(keys %inv), scalar(@arr),
        join(",", @{$arr[0]}[0, 1]), length($str), $count{A} // 0, $total;
}
my $kept = 0;
$kept += scalar(keys %$_) for @keep;
print "kept $kept check $check\n";

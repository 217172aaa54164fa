#!/bin/bash
# test/fuzz/build.sh [OUT_DIR] — build the libFuzzer harness fuzz_hak with
# clang 14: every allocator source (registry/, backend/, boxes/, front/)
# and test/fuzz/fuzz_hak.c compiled with -fsanitize=fuzzer,address and
# -DHAK_NO_STD_NAMES (the sanitizer owns malloc; the harness calls hak_*).
# Not part of the Meson build: Meson builds with gcc.
#
# OUT_DIR defaults to $HAK_FUZZ_BUILD or /tmp/hakmem-fuzz; the binary is
# OUT_DIR/fuzz_hak. Environment: CC (default clang-14, else clang),
# EXTRA_CFLAGS (e.g. "-DHAK_RAW_UNIFIED_CACHE=0 -DHAK_RAW_PREFILL=0" to
# fuzz another configuration; the defaults are include/hak/config.h's,
# which are the Meson options' defaults).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-${HAK_FUZZ_BUILD:-/tmp/hakmem-fuzz}}
if [ -z "${CC:-}" ]; then
  if command -v clang-14 >/dev/null; then CC=clang-14; else CC=clang; fi
fi
mkdir -p "$out"

urcu_cflags=$(pkg-config --cflags liburcu-bp 2>/dev/null || true)
urcu_libs=$(pkg-config --libs liburcu-bp 2>/dev/null || echo "-lurcu-bp -lurcu-common")

# shellcheck disable=SC2206,SC2054
cflags=(-std=gnu11 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address
        -D_GNU_SOURCE -DHAK_NO_STD_NAMES -ftls-model=initial-exec
        -I"$root/include" -I"$root" $urcu_cflags ${EXTRA_CFLAGS:-})
# Warnings for the harness only: the allocator's are the gcc build's job
# (clang warns about the size-class tables' unevaluated branches).
harness_warn=(-Wall -Wextra -Werror)

shopt -s nullglob
sources=("$root"/registry/*.c "$root"/backend/*.c "$root"/boxes/*/*.c "$root"/front/*.c)
if [ ${#sources[@]} -eq 0 ]; then
  echo "build.sh: no allocator sources under $root" >&2
  exit 1
fi

objs=()
for src in "${sources[@]}"; do
  rel=${src#"$root"/}
  obj="$out/${rel//\//_}.o"
  "$CC" "${cflags[@]}" -w -c "$src" -o "$obj"
  objs+=("$obj")
done
"$CC" "${cflags[@]}" "${harness_warn[@]}" -c "$here/fuzz_hak.c" -o "$out/fuzz_hak.o"
objs+=("$out/fuzz_hak.o")
# shellcheck disable=SC2086
"$CC" -fsanitize=fuzzer,address "${objs[@]}" -o "$out/fuzz_hak" $urcu_libs -lpthread
echo "$out/fuzz_hak"

#!/usr/bin/env python3
"""Write the seed corpus of fuzz_hak (test/fuzz/corpus/*.bin).

Deterministic: the same files every time. Each seed is a small program in
the operation encoding documented at the top of fuzz_hak.c; together they
reach every operation and size range, so the fuzzer starts from inputs
that already exercise the interesting paths.

    python3 test/fuzz/gen_corpus.py [OUT_DIR]
"""
import os
import random
import sys

MALLOC, CALLOC, REALLOC, FREE, FREE_SIZED, MEMALIGN_P, ALIGNED_ALLOC, MEMALIGN_X = 0, 2, 3, 4, 5, 6, 7, 8
HAND, TAKE, REALLOC0, CHECK, TRIM, REALLOCARRAY, FREE_RUN = 9, 10, 11, 12, 13, 14, 15


def size(n):
    """The 2-byte size operand closest to n bytes (see get_size)."""
    if n < 256:
        v = n
    elif n < 4096:
        v = 0x4000 | n
    elif n < 65536:
        v = 0x8000 | (n // 4)
    else:
        v = 0xC000 | min(n // 128, 0x3FFF)
    return bytes([v >> 8, v & 0xFF])


def align(log2=None, bad=None):
    """The 1-byte alignment operand: 2**log2, or an invalid one (0..7)."""
    if bad is not None:
        return bytes([200 + bad])
    return bytes([log2])


def op(code, *operands):
    return bytes([code]) + b"".join(operands)


def slot(i):
    return bytes([i])


def seeds():
    out = {}

    # Small blocks in every slot, freed and reused.
    b = b""
    for i in range(32):
        b += op(MALLOC, size(1 + i * 7))
    for i in range(0, 32, 2):
        b += op(FREE, slot(i))
    for i in range(16):
        b += op(MALLOC, size(16 * i))
    b += op(FREE_RUN, slot(0), bytes([15]))
    out["small_churn"] = b

    # One block grown by realloc through the classes into large, then shrunk.
    b = op(MALLOC, size(1))
    for n in (24, 100, 700, 3000, 20000, 40000, 300000, 2000000):
        b += op(REALLOC, slot(0), size(n))
    for n in (500000, 30000, 1000, 8):
        b += op(REALLOC, slot(0), size(n))
    b += op(REALLOC0, slot(0))
    out["realloc_growth"] = b

    # Every aligned entry point, valid and invalid alignments.
    b = b""
    for k in (3, 4, 5, 6, 8, 12, 13, 16):
        b += op(MEMALIGN_P, align(k), size(100 + k * 300))
        b += op(ALIGNED_ALLOC, align(k), size(50 * k))
    for bad in range(8):
        b += op(MEMALIGN_P, align(bad=bad), size(64))
        b += op(ALIGNED_ALLOC, align(bad=bad), size(64))
        b += op(MEMALIGN_X, align(bad=bad), size(64))
    for k in range(0, 17, 4):
        b += op(MEMALIGN_X, align(k), size(5000))
    out["aligned"] = b

    # Blocks handed to the second thread and taken from it.
    b = b""
    for i in range(16):
        b += op(MALLOC, size(32 + 64 * i))
    for i in range(16):
        b += op(HAND, slot(i))
    for i in range(16):
        b += op(TAKE, size(48 + 40 * i))
    for i in range(16):
        b += op(FREE_SIZED, slot(i))
    b += op(TAKE, size(100000)) + op(REALLOC, slot(0), size(10)) + op(HAND, slot(0))
    out["cross_thread"] = b

    # Large blocks, large calloc, trims.
    b = b""
    for n in (33000, 65536, 100000, 1 << 20, 2 << 20):
        b += op(MALLOC, size(n)) + op(CALLOC, bytes([3]), size(n // 3))
    b += op(TRIM) + op(FREE_RUN, slot(0), bytes([5])) + op(TRIM)
    b += op(MALLOC, size(1 << 20)) + op(CHECK, slot(0))
    out["large"] = b

    # calloc of every shape, reallocarray.
    b = b""
    for m in (0, 1, 2, 17, 255):
        for n in (0, 1, 100, 3000, 40000):
            b += op(CALLOC, bytes([m]), size(n))
    b += op(FREE_RUN, slot(0), bytes([15])) + op(FREE_RUN, slot(15), bytes([15]))
    for i in range(8):
        b += op(REALLOCARRAY, slot(i), bytes([i * 3]), size(10 + i * 100))
    out["calloc"] = b

    # A long pseudo-random mix (fixed seed).
    rnd = random.Random(20240917)
    b = b""
    for _ in range(400):
        b += bytes([rnd.randrange(16)]) + bytes(rnd.randrange(256) for _ in range(4))
    out["mixed"] = b

    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    dest = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    os.makedirs(dest, exist_ok=True)
    for name, data in sorted(seeds().items()):
        with open(os.path.join(dest, name + ".bin"), "wb") as f:
            f.write(data)
        print(f"{name}.bin: {len(data)} bytes")


if __name__ == "__main__":
    main()

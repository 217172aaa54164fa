"""Python workload of the whole-program tests: builds and drops large dicts,
lists, sets, strings and byte buffers, and prints a summary that depends on
every value (run with PYTHONHASHSEED fixed so set order is stable)."""
import hashlib
import sys


def lcg(seed):
    x = seed
    while True:
        x = (x * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        yield x >> 33


def digest(h, obj):
    h.update(repr(obj).encode())


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    rng = lcg(12345)
    h = hashlib.sha256()
    keep = []
    for r in range(rounds):
        # A big dict of small and medium strings, then its inversion.
        d = {}
        for i in range(60000):
            k = "k%d_%d" % (r, next(rng) % 100000)
            d[k] = "v" * (next(rng) % 200) + str(i)
        inv = {v: k for k, v in d.items()}
        digest(h, (len(d), len(inv), sum(len(v) for v in d.values())))
        # Lists of tuples, sorted; list growth and shrink.
        lst = [(next(rng) % 1000, i, "x" * (i % 50)) for i in range(80000)]
        lst.sort()
        digest(h, lst[:50])
        digest(h, lst[-50:])
        del lst[::2]
        lst.extend(lst[:10000])
        digest(h, len(lst))
        # Sets and frozensets; large byte buffers grown and sliced.
        s = {next(rng) % 50000 for _ in range(50000)}
        digest(h, (len(s), sum(s)))
        buf = bytearray()
        for i in range(2000):
            buf += bytes([i & 255]) * (next(rng) % 3000)
        digest(h, (len(buf), hashlib.md5(buf).hexdigest()))
        big = [bytes(next(rng) % 300000) for _ in range(20)]
        digest(h, sum(len(b) for b in big))
        # Keep a little from each round so some memory lives across rounds.
        keep.append({k: d[k] for k in list(d)[:1000]})
        del d, inv, s, buf, big
        print("round %d: %s" % (r, h.hexdigest()[:16]))
    digest(h, sum(len(k) for k in keep))
    print("final %s" % h.hexdigest())


main()

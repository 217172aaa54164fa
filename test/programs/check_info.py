#!/usr/bin/python3
"""Check glibc's introspection functions under LD_PRELOAD of libhakmem.

Usage: check_info.py PROGRAM LIBRARY

Runs PROGRAM (test/programs/info_print.c) with LD_PRELOAD=LIBRARY and
requires:
  * stdout, malloc_info(0, stdout), to be well-formed XML with the root
    <malloc version="hakmem-1"> (hakmem served it, not glibc);
  * its <mallinfo2> element to hold the figures mallinfo2() returned just
    before (stderr's "mallinfo2 ..." line), and its totals and parts to
    agree with them (classes, empty SuperSlabs and unusable bytes make the
    arena; classes and large blocks make uordblks);
  * at least one large block and the program's 64 x 48 bytes in use;
  * malloc_info(1, ...) to have failed with EINVAL ("einval ok");
  * malloc_stats() on stderr, with the in-use total of mallinfo2.
Prints a one-line summary and exits 0, or the reasons and exits 1.
"""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
          "fsmblks", "uordblks", "fordblks", "keepcost")


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    prog, lib = sys.argv[1], sys.argv[2]
    env = dict(os.environ, LD_PRELOAD=os.path.abspath(lib))
    run = subprocess.run([prog], env=env, capture_output=True, text=True, timeout=60)
    errors = []
    if run.returncode != 0:
        errors.append("%s exited with %d" % (prog, run.returncode))
    try:
        root = ET.fromstring(run.stdout)
    except ET.ParseError as e:
        print("malloc_info's output is not well-formed XML: %s\n%s" % (e, run.stdout))
        return 1
    if root.tag != "malloc" or root.get("version") != "hakmem-1":
        errors.append("root is <%s version=%r>, not hakmem's" % (root.tag, root.get("version")))

    line = next((l for l in run.stderr.splitlines() if l.startswith("mallinfo2 ")), None)
    if line is None:
        print("no mallinfo2 line on stderr:\n" + run.stderr)
        return 1
    m = {k: int(v) for k, v in (w.split("=") for w in line.split()[1:])}
    mi = root.find("mallinfo2")
    if mi is None:
        errors.append("no <mallinfo2> element")
    else:
        for f in FIELDS:
            if int(mi.get(f, -1)) != m[f]:
                errors.append("malloc_info %s=%s, mallinfo2 %d" % (f, mi.get(f), m[f]))

    ss = root.find("superslabs")
    large = root.find("large")
    totals = {t.get("type"): int(t.get("size")) for t in root.findall("total")}
    if ss is None or large is None:
        errors.append("no <superslabs> or <large> element")
    else:
        size = int(ss.get("size"))
        classes = ss.findall("class")
        used = sum(int(c.get("size")) * int(c.get("inuse")) for c in classes)
        free = sum(int(c.get("size")) * int(c.get("free")) for c in classes)
        if int(ss.get("mapped")) * size != m["arena"]:
            errors.append("superslabs mapped x size != arena")
        if int(ss.get("inuse")) != sum(int(c.get("superslabs")) for c in classes):
            errors.append("superslabs in use != the classes' sum")
        if used + free + int(ss.get("empty")) * size + totals.get("unusable", -1) != m["arena"]:
            errors.append("classes + empty + unusable != arena")
        if used + int(large.get("usable")) != m["uordblks"]:
            errors.append("classes' in use + large usable != uordblks")
        c48 = [c for c in classes if int(c.get("size")) == 48]
        if not c48 or int(c48[0].get("inuse")) < 64:
            errors.append("the 48-byte class does not show the program's 64 blocks")
        if int(large.get("blocks")) < 1 or m["hblks"] < 1:
            errors.append("no large block counted")
    if totals.get("inuse") != m["uordblks"] or totals.get("system") != m["arena"] + m["hblkhd"]:
        errors.append("totals %r disagree with mallinfo2" % totals)

    if "einval ok" not in run.stderr:
        errors.append("malloc_info(1, fp) did not fail with EINVAL")
    want = "in use bytes     = %12d" % m["uordblks"]
    if "Total (incl. large blocks):" not in run.stderr or want not in run.stderr:
        errors.append("malloc_stats output lacks %r" % want)

    if errors:
        print("\n".join(errors))
        print("--- stdout\n%s--- stderr\n%s" % (run.stdout, run.stderr))
        return 1
    print("malloc_info XML well-formed, equal to mallinfo2 (arena %d, in use %d, "
          "%d large); malloc_stats shows it" % (m["arena"], m["uordblks"], m["hblks"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

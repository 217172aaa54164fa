#!/usr/bin/python3
# End-to-end test of hakmem-ab with the libraries a build really made: every
# variant, and glibc as the baseline, under a small allocating program (Debian's
# python3 with PYTHONMALLOC=malloc, so that every object goes through malloc).
# It checks that each run succeeded, that a throughput figure was parsed, and
# that each hakmem run wrote its statistics line naming its own variant.
#
# Environment (set by tools/meson.build):
#   HAKMEM_AB_TOOL       the tool in the build tree
#   HAKMEM_AB_BUILD_DIR  the build tree holding libhakmem*.so
#   HAKMEM_AB_VARIANTS   comma-separated variant names ('default' first)

import json
import os
import subprocess
import sys
import tempfile
import unittest

WORKLOAD = r'''
import time
t0 = time.perf_counter()
ops = 0
for rnd in range(20):
    keep = []
    for i in range(20000):
        keep.append(bytearray(16 + (i * 37) % 1000))
        ops += 1
    for i in range(0, len(keep), 2):
        keep[i] = None
        ops += 1
    del keep
print("mops=%.4f" % (ops / (time.perf_counter() - t0) / 1e6))
'''


def variants():
    return [v for v in os.environ.get('HAKMEM_AB_VARIANTS', 'default').split(',') if v]


class TestRealLibraries(unittest.TestCase):
    def compare(self, cmd):
        tool = os.environ['HAKMEM_AB_TOOL']
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, 'out.json')
            env = dict(os.environ, PYTHONMALLOC='malloc')
            r = subprocess.run(
                [tool, '--rounds', '2', '--warmup', '0', '--json', out,
                 '--timeout', '120', 'glibc'] + variants() + ['--'] + cmd,
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, timeout=900)
            sys.stdout.write(r.stdout)
            sys.stderr.write(r.stderr)
            self.assertEqual(r.returncode, 0, 'some run failed')
            self.assertNotIn('WRONG ALLOCATOR', r.stdout)
            with open(out) as f:
                return json.load(f)

    def test_project_benchmark_is_served_by_each_library(self):
        bench = os.path.join(os.environ['HAKMEM_AB_BUILD_DIR'], 'test', 'bench',
                             'bench_random_mixed')
        if not os.access(bench, os.X_OK):
            self.skipTest('no %s in this build' % bench)
        doc = self.compare([bench, '--ops', '200000'])
        for run in doc['runs']:
            with self.subTest(library=run['library'], round=run['round']):
                self.assertIsNotNone(run['throughput'])
                self.assertEqual(run['served_by'],
                                 'glibc' if run['library'] == 'glibc' else 'hakmem')
                self.assertLess(run['rss_kib'], 64 * 1024)

    def test_every_variant_runs_and_reports_its_statistics(self):
        doc = self.compare(['/usr/bin/python3', '-c', WORKLOAD])
        self.assertEqual(doc['metric']['name'], 'throughput')
        for run in doc['runs']:
            with self.subTest(library=run['library'], round=run['round']):
                self.assertFalse(run['failed'])
                self.assertIsNotNone(run['throughput'])
                if run['library'] == 'glibc':
                    self.assertIsNone(run['stats_lines'])
                    continue
                self.assertIsNotNone(run['stats_lines'], 'no statistics line: '
                                     'was the library really preloaded?')
                self.assertGreaterEqual(run['stats_lines'], 1)
                self.assertEqual(run['stats_variant'], run['library'])
                if run['stats_compiled'] and run['warm_hit_rate'] is not None:
                    self.assertTrue(0.0 <= run['warm_hit_rate'] <= 1.0)


if __name__ == '__main__':
    unittest.main(verbosity=2)

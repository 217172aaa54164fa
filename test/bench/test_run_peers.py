#!/usr/bin/python3
"""Tests of run-peers' tabulation (--from-csv): medians, ratios and the
paired, round-by-round ratios, from raw runs written here. Nothing is run
or timed.

RUN_PEERS names the script (default: run-peers beside this file).
"""
import csv
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.environ.get('RUN_PEERS', os.path.join(HERE, 'run-peers'))
FIELDS = ['phase', 'round', 'config', 'allocator', 'status', 'rc', 'bench',
          'threads', 'ops', 'seconds', 'mops', 'peak_rss_kb', 'served_by',
          'variant', 'wall_seconds', 'command', 'result_line', 'stderr_tail']


def row(phase, rnd, config, alloc, mops, rss=1000, status='ok'):
    return {'phase': phase, 'round': rnd, 'config': config, 'allocator': alloc,
            'status': status, 'rc': 0 if status == 'ok' else 1, 'bench': config,
            'threads': 1, 'ops': 1000, 'seconds': 1, 'mops': mops if status == 'ok' else '',
            'peak_rss_kb': rss if status == 'ok' else '', 'served_by': alloc,
            'variant': 'default' if alloc == 'hakmem' else '', 'wall_seconds': 1,
            'command': 'bench', 'result_line': '', 'stderr_tail': ''}


class Tabulate(unittest.TestCase):
    def tabulate(self, rows, extra=()):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'runs.csv')
            with open(path, 'w', newline='') as f:
                w = csv.DictWriter(f, FIELDS)
                w.writeheader()
                for r in rows:
                    w.writerow(r)
            p = subprocess.run(['/usr/bin/python3', TOOL, '--from-csv', path, *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            return p.returncode, p.stdout, p.stderr

    def line(self, out, section, config):
        part = out.split(section, 1)[1]
        for l in part.splitlines():
            if l.startswith('| %s |' % config):
                return [c.strip() for c in l.strip('|').split('|')]
        self.fail('no row for %s after %r in:\n%s' % (config, section, out))

    def test_paired_ratios_follow_the_rounds(self):
        # The machine halves its speed in rounds 3 and 4: the ratio of the
        # medians then mixes states, the paired ratios do not.
        hak = [120, 118, 61, 59]
        mi = [100, 100, 50, 50]
        rows = [row('warmup', 1, 'random_mixed-ws400', a, 10) for a in ('hakmem', 'mimalloc')]
        for i, (h, m) in enumerate(zip(hak, mi), 1):
            rows.append(row('measure', i, 'random_mixed-ws400', 'hakmem', h, 900))
            rows.append(row('measure', i, 'random_mixed-ws400', 'mimalloc', m, 1000))
        rc, out, err = self.tabulate(rows)
        self.assertEqual(rc, 0, err)
        self.assertIn('rounds: 4 measured after 1 warm-up', out)
        main = self.line(out, '| config | allocator |', 'random_mixed-ws400')
        self.assertEqual(main[1], 'hakmem')
        self.assertEqual(main[2], '89.50')          # median of 120 118 61 59
        self.assertEqual(main[5], '1.19')           # 89.5 / 75
        self.assertEqual(main[6], '0.90')           # RSS 900 / 1000
        paired = self.line(out, '## Paired', 'random_mixed-ws400')
        # ratios 1.20 1.18 1.22 1.18 -> sorted 1.18 1.18 1.20 1.22
        self.assertEqual(paired[1], '1.19 (1.18–1.22), 4/4')

    def test_wins_count_only_faster_rounds(self):
        rows = []
        for i, (h, m) in enumerate([(90, 100), (110, 100), (100, 100)], 1):
            rows.append(row('measure', i, 'tiny_hot-16', 'hakmem', h))
            rows.append(row('measure', i, 'tiny_hot-16', 'mimalloc', m))
            rows.append(row('measure', i, 'tiny_hot-16', 'glibc', 50))
        rc, out, err = self.tabulate(rows)
        self.assertEqual(rc, 0, err)
        paired = self.line(out, '## Paired', 'tiny_hot-16')
        self.assertEqual(paired[1], '1.00 (0.90–1.10), 1/3')
        self.assertEqual(paired[2], '0.50 (0.50–0.50), 0/3')

    def test_a_failed_run_is_reported_and_fails_the_tabulation(self):
        rows = [row('measure', 1, 'large', 'hakmem', 1.0),
                row('measure', 1, 'large', 'mimalloc', 0.5),
                row('measure', 2, 'large', 'hakmem', 0, status='CRASHED (SIGSEGV)'),
                row('measure', 2, 'large', 'mimalloc', 0.5)]
        rc, out, err = self.tabulate(rows)
        self.assertEqual(rc, 1)
        self.assertIn('## Failed runs', out)
        self.assertIn('CRASHED (SIGSEGV)', out)
        paired = self.line(out, '## Paired', 'large')
        self.assertEqual(paired[1], '2.00 (2.00–2.00), 1/1')

    def test_ref_compares_two_builds(self):
        # --ref hakmem-base: a before/after run of two hakmem builds, no peer.
        rows = []
        for i, (after, before) in enumerate([(50, 100), (60, 100), (55, 110)], 1):
            rows.append(row('measure', i, 'realloc', 'hakmem', after, 1200))
            rows.append(row('measure', i, 'realloc', 'hakmem-base', before, 1000))
        rc, out, err = self.tabulate(rows, ['--ref', 'hakmem-base'])
        self.assertEqual(rc, 0, err)
        self.assertIn('Ratios are to hakmem-base', out)
        main = self.line(out, '| config | allocator |', 'realloc')
        self.assertEqual(main[5], '0.55')           # 55 / 100
        self.assertEqual(main[6], '1.20')           # RSS 1200 / 1000
        paired = self.line(out, '## Paired, round by round (relative to hakmem-base)', 'realloc')
        self.assertEqual(paired[1], '0.50 (0.50–0.60), 0/3')

    def test_not_a_run_peers_csv(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'x.csv')
            with open(path, 'w') as f:
                f.write('a,b\n1,2\n')
            p = subprocess.run(['/usr/bin/python3', TOOL, '--from-csv', path],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn('not a run-peers CSV', p.stderr)


if __name__ == '__main__':
    unittest.main(argv=sys.argv[:1] + sys.argv[1:])

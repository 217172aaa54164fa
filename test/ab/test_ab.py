#!/usr/bin/python3
# Tests of hakmem-ab against a fake benchmark (fake_bench) and a harmless
# preloadable shared object (abfake.c) copied under hakmem library names.
# Nothing here depends on timing: every throughput figure comes from the
# fake's environment, and the statistics are checked on exact values.
#
# Environment (set by tools/meson.build; each has a fallback for a run by hand
# with /usr/bin/python3 test/ab/test_ab.py [TestClass...]):
#   HAKMEM_AB_TOOL     the tool under test (default: tools/hakmem-ab in the
#                      source tree)
#   HAKMEM_AB_FAKE_SO  the abfake shared object (default: compiled here with cc)
#   HAKMEM_AB_HELPER   the hakmem-ab-exec helper (default: compiled here with cc)

import csv
import importlib.machinery
import importlib.util
import itertools
import json
import math
import os
import random
import shutil
import subprocess
import tempfile
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.environ.get('HAKMEM_AB_TOOL') or \
    os.path.join(HERE, '..', '..', 'tools', 'hakmem-ab')
TOOL = os.path.abspath(TOOL)
FAKE_BENCH = os.path.join(HERE, 'fake_bench')
FAKE_SO = None
HELPER = None
WORK = None          # per-module scratch directory
BUILD = None         # a fake build dir: libhakmem.so, libhakmem-{nowarm,p8}.so


def compile_c(out, source, *flags):
    cc = shutil.which('cc') or shutil.which('gcc')
    if cc is None:
        raise unittest.SkipTest('no C compiler to build %s' % source)
    subprocess.run([cc] + list(flags) + ['-o', out, source], check=True)
    return out


def setUpModule():
    global FAKE_SO, HELPER, WORK, BUILD
    WORK = tempfile.mkdtemp(prefix='hakmem-ab-test-')
    FAKE_SO = os.environ.get('HAKMEM_AB_FAKE_SO') or compile_c(
        os.path.join(WORK, 'abfake.so'), os.path.join(HERE, 'abfake.c'),
        '-shared', '-fPIC')
    HELPER = os.environ.get('HAKMEM_AB_HELPER') or compile_c(
        os.path.join(WORK, 'hakmem-ab-exec'),
        os.path.join(HERE, '..', '..', 'tools', 'hakmem-ab-exec.c'))
    BUILD = os.path.join(WORK, 'build')
    os.mkdir(BUILD)
    for name in ('libhakmem.so', 'libhakmem-nowarm.so', 'libhakmem-p8.so'):
        shutil.copy(FAKE_SO, os.path.join(BUILD, name))
    shutil.copy(FAKE_SO, os.path.join(WORK, 'libother.so'))


def tearDownModule():
    if WORK:
        shutil.rmtree(WORK, ignore_errors=True)


def load_tool():
    loader = importlib.machinery.SourceFileLoader('hakmem_ab', TOOL)
    spec = importlib.util.spec_from_loader('hakmem_ab', loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


class ToolCase(unittest.TestCase):
    """Runs the tool in a fresh directory with a clean fake environment."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=WORK)
        self.log = os.path.join(self.dir, 'fake.log')
        self.load_log = os.path.join(self.dir, 'load.log')

    def tool(self, args, env=None, cwd=None, drop=()):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith(('FAKE_', 'HAKMEM_', 'ABFAKE_'))
             and k != 'LD_PRELOAD' and k not in drop}
        e['FAKE_LOG'] = self.log
        e['ABFAKE_LOAD_LOG'] = self.load_log
        if 'HAKMEM_AB_EXEC' not in drop:
            e['HAKMEM_AB_EXEC'] = HELPER
        e.update(env or {})
        return subprocess.run([TOOL] + args, env=e, cwd=cwd or self.dir,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=300)

    def logged(self):
        """What fake_bench saw, run by run: (LD_PRELOAD, HAKMEM_STATS)."""
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [tuple(line.rstrip('\n').split('\t')) for line in f]

    def path(self, name):
        return os.path.join(self.dir, name)

    def read_json(self, name='out.json'):
        with open(self.path(name)) as f:
            return json.load(f)

    def assertUsageError(self, r, *needles):
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('error', r.stderr)
        for n in needles:
            self.assertIn(n, r.stderr)
        self.assertEqual(r.stdout, '')
        self.assertEqual(self.logged(), [], 'the command ran despite bad usage')


class TestUsage(ToolCase):
    def test_help_documents_everything(self):
        r = self.tool(['--help'])
        self.assertEqual(r.returncode, 0, r.stderr)
        for needle in ('--rounds', '--warmup', '--pattern', '--alpha', '--csv',
                       '--json', '--plot', '--build-dir', '--verbose',
                       'HAKMEM_AB_BUILD_DIR', './build', 'libhakmem-NAME.so',
                       'libhakmem.so', 'glibc', 'libmimalloc2.0', 'libjemalloc2',
                       'libtcmalloc-minimal4', 'Mann-Whitney', 'bootstrap',
                       'seed', 'normal approximation', 'exact', 'ru_maxrss',
                       'wait4', 'HAKMEM_STATS_FILE', 'warm_hits', 'rotated',
                       'absolute', 'exit status'):
            self.assertIn(needle, r.stdout)

    def test_no_separator(self):
        self.assertUsageError(self.tool(['glibc', FAKE_BENCH]), '"--"')

    def test_no_library(self):
        self.assertUsageError(self.tool(['--', FAKE_BENCH]), 'no library')

    def test_no_command(self):
        self.assertUsageError(self.tool(['glibc', '--']), 'no command')

    def test_unknown_variant_names_the_build_dir_and_known_variants(self):
        r = self.tool(['--build-dir', BUILD, 'nosuch', '--', FAKE_BENCH])
        self.assertUsageError(r, 'nosuch', 'libhakmem-nosuch.so', BUILD, 'nowarm', 'p8')

    def test_unknown_variant_without_build_dir(self):
        r = self.tool(['nowarm', '--', FAKE_BENCH], drop=('HAKMEM_AB_BUILD_DIR',))
        if r.returncode == 2:
            self.assertUsageError(r, 'nowarm')
        else:   # only if an installed libhakmem-nowarm.so exists
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_bad_library_word(self):
        self.assertUsageError(self.tool(['no such', '--', FAKE_BENCH]), 'no such')

    def test_missing_file(self):
        self.assertUsageError(
            self.tool([os.path.join(self.dir, 'libnothere.so'), '--', FAKE_BENCH]),
            'libnothere.so')

    def test_bad_build_dir(self):
        self.assertUsageError(
            self.tool(['--build-dir', self.path('nope'), 'default', '--', FAKE_BENCH]),
            'nope')

    def test_bad_rounds(self):
        for bad in ('0', '-1', 'x', '1.5', ''):
            with self.subTest(rounds=bad):
                self.assertUsageError(
                    self.tool(['--rounds', bad, 'glibc', '--', FAKE_BENCH]), '--rounds')

    def test_bad_warmup(self):
        for bad in ('-1', 'two'):
            with self.subTest(warmup=bad):
                self.assertUsageError(
                    self.tool(['--warmup', bad, 'glibc', '--', FAKE_BENCH]), '--warmup')

    def test_bad_alpha(self):
        for bad in ('0', '1', '-0.1', 'x'):
            with self.subTest(alpha=bad):
                self.assertUsageError(
                    self.tool(['--alpha', bad, 'glibc', '--', FAKE_BENCH]), '--alpha')

    def test_bad_pattern(self):
        self.assertUsageError(
            self.tool(['--pattern', 'mops=(', 'glibc', '--', FAKE_BENCH]), 'regular expression')
        self.assertUsageError(
            self.tool(['--pattern', 'mops=[0-9.]+', 'glibc', '--', FAKE_BENCH]), 'group')

    def test_bad_timeout_and_bootstrap(self):
        self.assertUsageError(
            self.tool(['--timeout', '0', 'glibc', '--', FAKE_BENCH]), '--timeout')
        self.assertUsageError(
            self.tool(['--bootstrap', '5', 'glibc', '--', FAKE_BENCH]), '--bootstrap')

    def test_unknown_option(self):
        self.assertUsageError(self.tool(['--frobnicate', 'glibc', '--', FAKE_BENCH]),
                              '--frobnicate')

    def test_command_not_found(self):
        self.assertUsageError(self.tool(['glibc', '--', 'no-such-command-xyz']),
                              'no-such-command-xyz')
        self.assertUsageError(self.tool(['glibc', '--', self.path('missing')]),
                              'missing')

    def test_output_dir_missing(self):
        self.assertUsageError(
            self.tool(['--csv', self.path('no/dir/x.csv'), 'glibc', '--', FAKE_BENCH]),
            '--csv')

    def test_peer_libraries(self):
        # Either the Debian package is installed and the library is preloaded
        # by its absolute path, or the error names the package to install.
        peers = {'mimalloc': ('libmimalloc.so.2', 'libmimalloc2.0'),
                 'jemalloc': ('libjemalloc.so.2', 'libjemalloc2'),
                 'tcmalloc': ('libtcmalloc_minimal.so.4', 'libtcmalloc-minimal4')}
        for name, (fname, package) in peers.items():
            with self.subTest(peer=name):
                path = '/usr/lib/x86_64-linux-gnu/' + fname
                before = len(self.logged())
                r = self.tool(['--rounds', '1', '--warmup', '0', name, '--', FAKE_BENCH])
                if os.path.exists(path):
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertEqual(self.logged()[before:], [(path, '-')])
                else:
                    self.assertEqual(r.returncode, 2)
                    self.assertIn(package, r.stderr)

    def test_options_may_follow_libraries(self):
        r = self.tool(['glibc', '--rounds', '2', '--warmup', '0', 'glibc', '--', FAKE_BENCH])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.logged()), 4)


class TestResolution(ToolCase):
    def run_names(self, names, args=(), env=None, cwd=None):
        r = self.tool(['--rounds', '1', '--warmup', '0'] + list(args) + names +
                      ['--', FAKE_BENCH], env=env, cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [p for p, _ in self.logged()]

    def test_variant_names_give_absolute_paths(self):
        os.symlink(BUILD, self.path('b'))
        seen = self.run_names(['default', 'hakmem', 'nowarm', 'p8'],
                              args=['--build-dir', 'b'])
        self.assertEqual(seen, [self.path('b/libhakmem.so'), self.path('b/libhakmem.so'),
                                self.path('b/libhakmem-nowarm.so'),
                                self.path('b/libhakmem-p8.so')])
        self.assertTrue(all(os.path.isabs(p) for p in seen))
        with open(self.load_log) as f:   # the loader really loaded each one
            self.assertEqual(f.read().count('abfake loaded'), 4)

    def test_build_dir_from_environment(self):
        seen = self.run_names(['nowarm'], env={'HAKMEM_AB_BUILD_DIR': BUILD})
        self.assertEqual(seen, [os.path.join(BUILD, 'libhakmem-nowarm.so')])

    def test_build_dir_option_beats_environment(self):
        other = self.path('other')
        os.mkdir(other)
        shutil.copy(FAKE_SO, os.path.join(other, 'libhakmem-nowarm.so'))
        seen = self.run_names(['nowarm'], args=['--build-dir', other],
                              env={'HAKMEM_AB_BUILD_DIR': BUILD})
        self.assertEqual(seen, [os.path.join(other, 'libhakmem-nowarm.so')])

    def test_dot_build(self):
        os.symlink(BUILD, self.path('build'))
        seen = self.run_names(['default'])
        self.assertEqual(seen, [self.path('build/libhakmem.so')])

    def test_relative_so_path_made_absolute(self):
        shutil.copy(FAKE_SO, self.path('libhakmem-mine.so'))
        seen = self.run_names(['./libhakmem-mine.so', 'libhakmem-mine.so'])
        self.assertEqual(seen, [self.path('libhakmem-mine.so')] * 2)

    def test_glibc_has_no_preload_even_if_inherited(self):
        seen = self.run_names(['glibc'], env={'LD_PRELOAD': FAKE_SO})
        self.assertEqual(seen, ['-'])
        os.unlink(self.log)
        seen = self.run_names(['glibc', 'nowarm'], args=['--build-dir', BUILD],
                              env={'LD_PRELOAD': FAKE_SO, 'HAKMEM_AB_EXEC': 'none'})
        self.assertEqual(seen, ['-', os.path.join(BUILD, 'libhakmem-nowarm.so')])

    def test_duplicate_names_get_distinct_labels(self):
        r = self.tool(['--rounds', '1', '--warmup', '0', '--json', 'out.json',
                       '--build-dir', BUILD, 'default', 'default', '--', FAKE_BENCH])
        self.assertEqual(r.returncode, 0, r.stderr)
        labels = [lib['label'] for lib in self.read_json()['libraries']]
        self.assertEqual(labels, ['default', 'default#2'])


class TestStatsReading(ToolCase):
    def run_json(self, libs, env, rounds=1):
        r = self.tool(['--rounds', str(rounds), '--warmup', '0', '--json', 'out.json',
                       '--build-dir', BUILD] + libs + ['--', FAKE_BENCH], env=env)
        return r, self.read_json()

    def test_hit_rate_from_the_json_line(self):
        totals = {'uc_hits': 50, 'uc_misses': 50, 'warm_hits': 3, 'warm_misses': 1,
                  'registry_scans': 7, 'superslabs_mapped': 5, 'superslabs_unmapped': 2}
        r, doc = self.run_json(['default'], {'FAKE_STATS': json.dumps(totals)})
        self.assertEqual(r.returncode, 0, r.stderr)
        run = doc['runs'][0]
        self.assertEqual(run['stats_lines'], 1)
        self.assertEqual(run['stats_variant'], 'default')
        self.assertAlmostEqual(run['warm_hit_rate'], 0.75)
        self.assertAlmostEqual(run['uc_hit_rate'], 0.5)
        self.assertEqual(run['registry_scans'], 7)
        self.assertEqual(run['superslabs_mapped'], 5)
        self.assertEqual(run['stats_totals']['superslabs_unmapped'], 2)
        self.assertAlmostEqual(doc['summary'][0]['warm_hit_rate'], 0.75)
        self.assertIn('75.0%', r.stdout)
        self.assertEqual(self.logged()[0][1], 'json')

    def test_lines_of_several_processes_are_summed(self):
        lines = [{'warm_hits': 3, 'warm_misses': 1, 'registry_scans': 2,
                  'superslabs_mapped': 1},
                 {'warm_hits': 1, 'warm_misses': 3, 'registry_scans': 5,
                  'superslabs_mapped': 2}]
        r, doc = self.run_json(['nowarm'], {'FAKE_STATS': json.dumps(lines)})
        self.assertEqual(r.returncode, 0, r.stderr)
        run = doc['runs'][0]
        self.assertEqual(run['stats_lines'], 2)
        self.assertAlmostEqual(run['warm_hit_rate'], 0.5)
        self.assertEqual(run['registry_scans'], 7)
        self.assertEqual(run['superslabs_mapped'], 3)
        self.assertEqual(run['stats_variant'], 'nowarm')

    def test_hit_rate_is_a_median_over_runs(self):
        # FAKE_STATS is the same in every run, so the median is that rate.
        r, doc = self.run_json(['default'], {'FAKE_STATS': json.dumps(
            {'warm_hits': 1, 'warm_misses': 4})}, rounds=3)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertAlmostEqual(doc['summary'][0]['warm_hit_rate'], 0.2)
        self.assertEqual([x['warm_hit_rate'] for x in doc['runs']], [0.2] * 3)

    def test_stats_compiled_out(self):
        r, doc = self.run_json(['default'], {'FAKE_STATS_OFF': '1'})
        self.assertEqual(r.returncode, 0, r.stderr)
        run = doc['runs'][0]
        self.assertEqual(run['stats_lines'], 1)
        self.assertFalse(run['stats_compiled'])
        self.assertIsNone(run['warm_hit_rate'])
        self.assertIn('stats off', r.stdout)

    def test_missing_stats_line_is_warned_about(self):
        r, doc = self.run_json(['default'], {'FAKE_STATS_NONE': '1'})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNone(doc['runs'][0]['stats_lines'])
        self.assertIn('no hakmem statistics line', r.stderr)
        self.assertIn('no stats', r.stdout)

    def test_stats_requested_only_from_hakmem_libraries(self):
        mine = self.path('mine.jsonl')
        r, doc = self.run_json(['default', os.path.join(WORK, 'libother.so'), 'glibc'],
                               {'HAKMEM_STATS': 'json', 'HAKMEM_STATS_FILE': mine})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([s for _, s in self.logged()], ['json', '-', '-'])
        self.assertEqual([x['stats_lines'] for x in doc['runs']], [1, None, None])
        self.assertFalse(os.path.exists(mine) and os.path.getsize(mine))

    def test_statistics_of_another_variant_are_flagged(self):
        r, doc = self.run_json(['p8'], {'FAKE_VARIANT': 'default'})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('WRONG VARIANT: p8 runs wrote statistics of variant default', r.stdout)
        self.assertEqual(doc['summary'][0]['stats_variant_mismatch'], ['default'])
        r, doc = self.run_json(['p8'], {})
        self.assertNotIn('WRONG', r.stdout)
        self.assertEqual(doc['summary'][0]['stats_variant_mismatch'], [])

    def test_read_stats_file_skips_foreign_lines(self):
        tool = load_tool()
        p = self.path('s.jsonl')
        with open(p, 'w') as f:
            f.write('not json\n')
            f.write(json.dumps({'allocator': 'other', 'totals': {'warm_hits': 100}}) + '\n')
            f.write(json.dumps({'allocator': 'hakmem', 'variant': 'p8',
                                'config': {'stats': 1},
                                'totals': {'warm_hits': 9, 'warm_misses': 3,
                                           'registry_scans': 4}}) + '\n')
            f.write('\n')
        s = tool.read_stats_file(p)
        self.assertEqual(s['lines'], 1)
        self.assertEqual(s['unparsed_lines'], 2)
        self.assertEqual(s['variant'], 'p8')
        self.assertAlmostEqual(s['warm_hit_rate'], 0.75)
        self.assertEqual(s['registry_scans'], 4)
        self.assertIsNone(s['superslabs_mapped'])
        open(p, 'w').close()
        self.assertIsNone(tool.read_stats_file(p))


class TestReports(ToolCase):
    MOPS = 'libhakmem.so=10,libhakmem-nowarm.so=5,libhakmem-p8=20,-=10'

    def test_one_run_table_csv_json_svg(self):
        r = self.tool(['--rounds', '1', '--warmup', '0', '--build-dir', BUILD,
                       '--csv', 'out.csv', '--json', 'out.json', '--plot', 'out.svg',
                       'default', 'nowarm', '--', FAKE_BENCH],
                      env={'FAKE_MOPS': self.MOPS})
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        for needle in ('library', 'runs', 'failed', 'median', 'min-max', 'peak RSS',
                       'ratio [95% CI]', 'verdict', 'warm hit', 'reg scans',
                       'SS mapped', 'Mann-Whitney', 'bootstrap', 'seed',
                       'ru_maxrss', 'throughput'):
            self.assertIn(needle, out)
        rows = {line.split()[0]: line.split() for line in out.splitlines()
                if line.split() and line.split()[0] in ('default', 'nowarm')}
        self.assertEqual(rows['default'][1:4], ['1', '0', '10.00'])
        self.assertEqual(rows['nowarm'][1:4], ['1', '0', '5.001'])
        self.assertIn('1 (baseline)', out)
        self.assertIn('too few runs', out)

        with open(self.path('out.csv'), newline='') as f:
            csv_rows = list(csv.DictReader(f))
        self.assertEqual([x['library'] for x in csv_rows], ['default', 'nowarm'])
        for key in ('round', 'warmup', 'wall_s', 'rss_kib', 'throughput', 'metric',
                    'rc', 'warm_hit_rate', 'registry_scans', 'superslabs_mapped'):
            self.assertIn(key, csv_rows[0])
        self.assertEqual(float(csv_rows[1]['throughput']), 5.001)
        self.assertEqual(csv_rows[0]['rc'], '0')
        self.assertEqual(csv_rows[0]['warmup'], 'false')
        self.assertAlmostEqual(float(csv_rows[0]['warm_hit_rate']), 0.9)
        self.assertGreater(float(csv_rows[0]['wall_s']), 0)
        self.assertGreater(int(csv_rows[0]['rss_kib']), 0)

        doc = self.read_json()
        self.assertEqual(doc['metric']['name'], 'throughput')
        self.assertEqual(len(doc['runs']), 2)
        self.assertEqual(doc['runs'][1]['throughput'], 5.001)
        self.assertEqual([s['library'] for s in doc['summary']], ['default', 'nowarm'])
        self.assertAlmostEqual(doc['summary'][1]['ratio'], 5.001 / 10.001)
        self.assertEqual(doc['statistics']['ci']['seed'], 1)

        svg = ET.parse(self.path('out.svg')).getroot()
        ns = '{http://www.w3.org/2000/svg}'
        self.assertEqual(svg.tag, ns + 'svg')
        groups = [g for g in svg.iter(ns + 'g') if g.get('class') == 'library']
        self.assertEqual([g.get('data-library') for g in groups], ['default', 'nowarm'])
        for g in groups:
            self.assertEqual(len(list(g.iter(ns + 'circle'))), 1)
            self.assertEqual(len(list(g.iter(ns + 'rect'))), 1)

    def test_verdicts_ratios_and_exact_p(self):
        # Per-library values differ by a constant factor and never overlap
        # (nowarm, p8), or are the same values as the baseline (glibc): the exact
        # two-sided p is 2/C(10,5) = 2/252, and 1 for the identical samples.
        r = self.tool(['--build-dir', BUILD, '--json', 'out.json', '--plot', 'out.svg',
                       'default', 'nowarm', 'p8', 'glibc', '--', FAKE_BENCH],
                      env={'FAKE_MOPS': 'libhakmem.so=10,libhakmem-nowarm.so=5,'
                                        'libhakmem-p8.so=20,-=10'})
        self.assertEqual(r.returncode, 0, r.stderr)
        s = {x['library']: x for x in self.read_json()['summary']}
        self.assertEqual(s['default']['verdict'], 'baseline')
        self.assertEqual(s['nowarm']['verdict'], 'slower')
        self.assertEqual(s['p8']['verdict'], 'faster')
        self.assertEqual(s['glibc']['verdict'], 'no sig. diff.')
        self.assertAlmostEqual(s['nowarm']['p_value'], 2 / 252)
        self.assertAlmostEqual(s['p8']['p_value'], 2 / 252)
        self.assertAlmostEqual(s['glibc']['p_value'], 1.0)
        for name in ('nowarm', 'p8', 'glibc'):
            self.assertEqual(s[name]['test'], 'exact')
            self.assertEqual(s[name]['n'], 5)
            self.assertLessEqual(s[name]['ci_low'], s[name]['ratio'])
            self.assertLessEqual(s[name]['ratio'], s[name]['ci_high'])
        self.assertAlmostEqual(s['nowarm']['ratio'], 5.004 / 10.004)
        self.assertAlmostEqual(s['p8']['ratio'], 20.004 / 10.004)
        self.assertTrue(0.999 < s['glibc']['ci_low'] <= 1.0 <= s['glibc']['ci_high'] < 1.001)
        self.assertIn('0.0079', r.stdout)
        ns = '{http://www.w3.org/2000/svg}'
        svg = ET.parse(self.path('out.svg')).getroot()
        self.assertEqual(len(list(svg.iter(ns + 'circle'))), 20)

    def test_same_data_same_interval(self):
        outs = []
        for i in range(2):
            r = self.tool(['--rounds', '4', '--warmup', '0', '--json', 'o%d.json' % i,
                           '--build-dir', BUILD, 'default', 'nowarm', '--', FAKE_BENCH],
                          env={'FAKE_MOPS': self.MOPS, 'FAKE_LOG': self.path('log%d' % i)})
            self.assertEqual(r.returncode, 0, r.stderr)
            s = self.read_json('o%d.json' % i)['summary'][1]
            outs.append((s['ci_low'], s['ci_high']))
        self.assertEqual(outs[0], outs[1])

    def test_wall_time_when_nothing_matches(self):
        r = self.tool(['--rounds', '2', '--warmup', '0', '--json', 'out.json',
                       'glibc', 'glibc', '--', FAKE_BENCH])
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = self.read_json()
        self.assertEqual(doc['metric']['name'], 'wall')
        self.assertIn('wall time', r.stdout)
        for run in doc['runs']:
            self.assertEqual(run['metric'], run['wall_s'])
            self.assertIsNone(run['throughput'])

    def test_custom_pattern(self):
        r = self.tool(['--rounds', '1', '--warmup', '0', '--json', 'out.json',
                       '--pattern', r'throughput ([0-9.]+) Mops', 'glibc', '--', FAKE_BENCH],
                      env={'FAKE_MOPS': '-=3', 'FAKE_FORMAT': 'throughput {} Mops'})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read_json()['runs'][0]['throughput'], 3.001)

    def test_explicit_pattern_that_never_matches_warns(self):
        r = self.tool(['--rounds', '1', '--warmup', '0', '--pattern', r'nomatch=(\d+)',
                       'glibc', '--', FAKE_BENCH], env={'FAKE_MOPS': '-=3'})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('never matched', r.stderr)
        self.assertIn('wall time', r.stdout)

    def test_allocator_named_by_the_command_is_checked(self):
        mimalloc = '/usr/lib/x86_64-linux-gnu/libmimalloc.so.2'
        r = self.tool(['--rounds', '2', '--warmup', '0', '--build-dir', BUILD,
                       '--json', 'out.json', 'glibc', 'default', 'nowarm', '--', FAKE_BENCH],
                      env={'FAKE_ALLOCATOR': '-=glibc,libhakmem.so=hakmem,'
                                             'libhakmem-nowarm.so=glibc'})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('WRONG ALLOCATOR: nowarm runs printed allocator=glibc', r.stdout)
        self.assertNotIn('WRONG ALLOCATOR: default', r.stdout)
        self.assertNotIn('WRONG ALLOCATOR: glibc', r.stdout)
        self.assertIn('nowarm: the command says allocator=glibc served it', r.stderr)
        doc = self.read_json()
        s = {x['library']: x for x in doc['summary']}
        self.assertEqual(s['nowarm']['served_by_mismatch'], ['glibc'])
        self.assertEqual(s['default']['served_by_mismatch'], [])
        self.assertEqual({x['served_by'] for x in doc['runs']}, {'glibc', 'hakmem'})
        # A peer library given by its path is known by its file name.
        tool = load_tool()
        if os.path.exists(mimalloc):
            self.assertEqual(tool.file_library(mimalloc, mimalloc).allocator, 'mimalloc')
        lib = tool.file_library('x', os.path.join(BUILD, 'libhakmem-p8.so'))
        self.assertEqual((lib.allocator, lib.variant, lib.hakmem), ('hakmem', 'p8', True))

    def test_verbose_shows_output(self):
        r = self.tool(['-v', '--rounds', '1', '--warmup', '0', 'glibc', '--', FAKE_BENCH])
        self.assertEqual(r.returncode, 0)
        self.assertIn('fake_bench: preload=-', r.stderr)
        self.assertIn('fake_bench stderr: preload=-', r.stderr)
        quiet = self.tool(['--rounds', '1', '--warmup', '0', 'glibc', '--', FAKE_BENCH])
        self.assertNotIn('fake_bench', quiet.stderr)

    def test_no_progress_line_when_stderr_is_not_a_tty(self):
        r = self.tool(['--rounds', '1', '--warmup', '0', 'glibc', '--', FAKE_BENCH])
        self.assertNotIn('\r', r.stderr)


class TestFailures(ToolCase):
    def test_failing_library_is_counted_and_shown(self):
        r = self.tool(['--rounds', '2', '--warmup', '1', '--build-dir', BUILD,
                       '--json', 'out.json', '--csv', 'out.csv', 'default', 'nowarm',
                       '--', FAKE_BENCH],
                      env={'FAKE_FAIL': 'libhakmem-nowarm.so=3',
                           'FAKE_MOPS': 'libhakmem.so=10,libhakmem-nowarm.so=5'})
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn('FAILED RUNS: 3 of 6', r.stdout)
        self.assertIn('exit status 3', r.stdout)
        row = [l for l in r.stdout.splitlines() if l.startswith('nowarm ')][0]
        self.assertEqual(row.split()[1:4], ['0', '3', '(rc'])
        self.assertIn('(rc 3)', row)
        # The captured output of the failed run is shown.
        self.assertIn('fake_bench: failing on purpose with 3', r.stderr)
        self.assertIn('fake_bench stderr: preload=libhakmem-nowarm.so', r.stderr)
        doc = self.read_json()
        bad = [x for x in doc['runs'] if x['failed']]
        self.assertEqual(len(bad), 3)
        self.assertTrue(all(x['rc'] == 3 and x['library'] == 'nowarm' for x in bad))
        s = {x['library']: x for x in doc['summary']}
        self.assertEqual(s['nowarm']['failed'], 3)
        self.assertEqual(s['nowarm']['verdict'], 'no data')
        self.assertEqual(s['default']['ok'], 2)
        with open(self.path('out.csv'), newline='') as f:
            self.assertEqual(sum(1 for x in csv.DictReader(f) if x['failed'] == 'true'), 3)

    def test_signal_is_reported(self):
        r = self.tool(['--rounds', '1', '--warmup', '0', '--json', 'out.json',
                       'glibc', '--', FAKE_BENCH], env={'FAKE_FAIL': '-=SEGV'})
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn('SIGSEGV', r.stdout)
        self.assertEqual(self.read_json()['runs'][0]['rc'], -11)

    def test_one_failure_among_successes_still_fails_the_tool(self):
        # Only the warm-up run of nowarm fails: the exit status is still 1.
        r = self.tool(['--rounds', '1', '--warmup', '1', '--build-dir', BUILD,
                       'nowarm', '--', FAKE_BENCH], env={'FAKE_FAIL': 'libhakmem-nowarm.so=7'})
        self.assertEqual(r.returncode, 1)
        self.assertIn('warm-up', r.stdout)

    def test_timeout_kills_and_fails(self):
        r = self.tool(['--rounds', '1', '--warmup', '0', '--timeout', '1',
                       '--json', 'out.json', 'glibc', '--', FAKE_BENCH],
                      env={'FAKE_SLEEP': '-=120'})
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn('timed out', r.stdout)
        run = self.read_json()['runs'][0]
        self.assertTrue(run['timed_out'])
        self.assertTrue(run['failed'])

    def test_success_exits_zero(self):
        r = self.tool(['--rounds', '1', '--warmup', '0', 'glibc', '--', FAKE_BENCH])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn('FAILED', r.stdout)


class TestInterleaving(ToolCase):
    def test_three_libraries_rotate(self):
        r = self.tool(['--rounds', '3', '--warmup', '1', '--build-dir', BUILD,
                       '--json', 'out.json', 'default', 'nowarm', 'p8', '--', FAKE_BENCH])
        self.assertEqual(r.returncode, 0, r.stderr)
        a, b, c = (os.path.join(BUILD, n) for n in
                   ('libhakmem.so', 'libhakmem-nowarm.so', 'libhakmem-p8.so'))
        seen = [p for p, _ in self.logged()]
        self.assertEqual(seen, [a, b, c, b, c, a, c, a, b, a, b, c])
        runs = self.read_json()['runs']
        self.assertEqual([x['seq'] for x in runs], list(range(1, 13)))
        self.assertEqual([x['warmup'] for x in runs], [True] * 3 + [False] * 9)
        self.assertEqual([x['round'] for x in runs], [1] * 6 + [2] * 3 + [3] * 3)
        self.assertEqual([x['library_path'] for x in runs], seen)
        with open(self.load_log) as f:
            self.assertEqual(f.read().count('abfake loaded'), 12)

    def test_two_libraries_alternate(self):
        r = self.tool(['--rounds', '4', '--warmup', '0', '--build-dir', BUILD,
                       'default', 'glibc', '--', FAKE_BENCH])
        self.assertEqual(r.returncode, 0, r.stderr)
        a = os.path.join(BUILD, 'libhakmem.so')
        self.assertEqual([p for p, _ in self.logged()], [a, '-', '-', a, a, '-', '-', a])

    def test_every_library_takes_every_place_equally(self):
        tool = load_tool()
        libs = list('ABCDE')
        runs = tool.schedule(libs, 0, 10)
        for lib in libs:
            places = [r.position for r in runs if r.lib == lib]
            self.assertEqual(sorted(places), sorted([1, 2, 3, 4, 5] * 2))


class TestPeakRss(ToolCase):
    def rss_of(self, cmd, **kw):
        r = self.tool(['--rounds', '1', '--warmup', '0', '--json', 'out.json',
                       'glibc', '--'] + cmd, **kw)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = self.read_json()
        return doc['runs'][0]['rss_kib'], doc, r

    def test_small_command_has_small_rss(self):
        rss, doc, r = self.rss_of(['/bin/true'])
        self.assertEqual(doc['statistics']['rss']['helper'], HELPER)
        self.assertFalse(doc['statistics']['rss']['includes_tool_rss'])
        self.assertGreater(rss, 0)
        self.assertLess(rss, 8 * 1024, 'the tool\'s own memory leaked into the figure')
        self.assertIn('forked by', r.stdout)

    def test_large_allocation_is_seen(self):
        touch = ['/usr/bin/python3', '-c', 'x = b"a" * (64 << 20)']
        for helper in (HELPER, 'none'):
            with self.subTest(helper=helper):
                rss, _, _ = self.rss_of(touch, env={'HAKMEM_AB_EXEC': helper})
                self.assertGreaterEqual(rss, 64 * 1024)

    def test_without_helper_the_floor_is_reported(self):
        small, _, _ = self.rss_of(['/bin/true'])
        floor, doc, r = self.rss_of(['/bin/true'], env={'HAKMEM_AB_EXEC': 'none'})
        self.assertIsNone(doc['statistics']['rss']['helper'])
        self.assertTrue(doc['statistics']['rss']['includes_tool_rss'])
        self.assertIn('WARNING: no hakmem-ab-exec', r.stdout)
        # Linux folds the pre-exec peak (the Python tool's) into ru_maxrss.
        self.assertGreater(floor, small + 4096)

    def test_bad_helper_path(self):
        self.assertUsageError(
            self.tool(['glibc', '--', '/bin/true'],
                      env={'HAKMEM_AB_EXEC': self.path('nothere')}), 'HAKMEM_AB_EXEC')

    def test_helper_found_beside_the_script_or_warned_about(self):
        r = self.tool(['--rounds', '1', '--warmup', '0', '--json', 'out.json',
                       'glibc', '--', '/bin/true'],
                      drop=('HAKMEM_AB_EXEC', 'HAKMEM_AB_BUILD_DIR'))
        self.assertEqual(r.returncode, 0, r.stderr)
        beside = os.path.join(os.path.dirname(TOOL), 'hakmem-ab-exec')
        helper = self.read_json()['statistics']['rss']['helper']
        if os.path.exists(beside):
            self.assertEqual(helper, beside)
        elif helper is None:
            self.assertIn('WARNING: no hakmem-ab-exec', r.stdout)
        else:   # an installed helper found through the configured libexecdir
            self.assertTrue(helper.endswith('/hakmem-ab-exec'))

    def test_library_is_preloaded_into_the_command_only(self):
        r = self.tool(['--rounds', '3', '--warmup', '0', '--build-dir', BUILD,
                       'default', '--', FAKE_BENCH])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([p for p, _ in self.logged()],
                         [os.path.join(BUILD, 'libhakmem.so')] * 3)
        with open(self.load_log) as f:   # once per run: not in the helper
            self.assertEqual(f.read().count('abfake loaded'), 3)

    def helper(self, *cmd):
        r_fd, w_fd = os.pipe()
        try:
            p = subprocess.run([HELPER, str(w_fd)] + list(cmd), pass_fds=(w_fd,),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, timeout=60)
            os.close(w_fd)
            w_fd = None
            with os.fdopen(r_fd) as f:
                r_fd = None
                return p, f.read()
        finally:
            for fd in (r_fd, w_fd):
                if fd is not None:
                    os.close(fd)

    def test_helper_reports_status_and_passes_it_on(self):
        p, report = self.helper('', '/bin/sh', '-c', 'exit 5')
        self.assertEqual(p.returncode, 5)
        fields = dict(x.split('=') for x in report.split())
        self.assertEqual(os.waitstatus_to_exitcode(int(fields['status'])), 5)
        self.assertGreater(int(fields['maxrss_kib']), 0)
        self.assertGreaterEqual(int(fields['wall_ns']), 0)
        p, report = self.helper('', '/bin/sh', '-c', 'kill -SEGV $$')
        self.assertEqual(p.returncode, 128 + 11)
        fields = dict(x.split('=') for x in report.split())
        self.assertEqual(os.waitstatus_to_exitcode(int(fields['status'])), -11)

    def test_helper_sets_and_clears_ld_preload(self):
        p, _ = self.helper(FAKE_SO, '/bin/sh', '-c', 'echo "[$LD_PRELOAD]"')
        self.assertEqual(p.stdout.strip(), '[%s]' % FAKE_SO)
        env = dict(os.environ, LD_PRELOAD=FAKE_SO)
        r_fd, w_fd = os.pipe()
        p = subprocess.run([HELPER, str(w_fd), '', '/bin/sh', '-c', 'echo "[${LD_PRELOAD-unset}]"'],
                           pass_fds=(w_fd,), env=env, stdout=subprocess.PIPE, text=True)
        os.close(w_fd)
        os.close(r_fd)
        self.assertEqual(p.stdout.strip(), '[unset]')

    def test_helper_refuses_bad_arguments(self):
        p = subprocess.run([HELPER, 'x', '', '/bin/true'], stderr=subprocess.PIPE, text=True)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([HELPER, '99', '', '/bin/true'], stderr=subprocess.PIPE, text=True)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([HELPER, '1'], stderr=subprocess.PIPE, text=True)
        self.assertEqual(p.returncode, 2)
        p, _ = self.helper('', self.path('no-such-program'))
        self.assertEqual(p.returncode, 127)
        self.assertIn('cannot run', p.stderr)


def brute_force_p(x, y):
    """Two-sided exact p of the Mann-Whitney U statistic counted pair by pair
    (ties count 1/2), over every split of the pooled values."""
    def u_of(a, b):
        return sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in a for q in b)
    pooled = list(x) + list(y)
    m, n = len(x), len(y)
    mean = m * n / 2.0
    dev = abs(u_of(x, y) - mean)
    hits = total = 0
    for idx in itertools.combinations(range(m + n), m):
        chosen = set(idx)
        a = [pooled[i] for i in idx]
        b = [pooled[i] for i in range(m + n) if i not in chosen]
        total += 1
        if abs(u_of(a, b) - mean) >= dev - 1e-9:
            hits += 1
    return hits / total


class TestStatistics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = load_tool()

    def test_midranks(self):
        ranks, ties = self.t.midranks([3, 1, 2, 2])
        self.assertEqual(ranks, [4.0, 1.0, 2.5, 2.5])
        self.assertEqual(ties, [2])

    def test_exact_without_ties(self):
        u, p, how = self.t.mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
        self.assertEqual((u, how), (0.0, 'exact'))
        self.assertAlmostEqual(p, 2 / 252)
        u, p, how = self.t.mann_whitney_u(list(range(11, 21)), list(range(1, 11)))
        self.assertEqual((u, how), (100.0, 'exact'))
        self.assertAlmostEqual(p, 2 / math.comb(20, 10))
        _, p, _ = self.t.mann_whitney_u([1, 3, 5], [2, 4, 6])
        self.assertAlmostEqual(p, brute_force_p([1, 3, 5], [2, 4, 6]))

    def test_exact_matches_brute_force_with_ties(self):
        rng = random.Random(7)
        for _ in range(40):
            m, n = rng.randint(1, 6), rng.randint(1, 6)
            x = [rng.randint(0, 4) for _ in range(m)]
            y = [rng.randint(0, 4) for _ in range(n)]
            with self.subTest(x=x, y=y):
                _, p, how = self.t.mann_whitney_u(x, y)
                self.assertEqual(how, 'exact')
                self.assertAlmostEqual(p, brute_force_p(x, y))

    def test_all_equal_is_not_significant(self):
        _, p, _ = self.t.mann_whitney_u([2.0] * 5, [2.0] * 5)
        self.assertEqual(p, 1.0)
        _, p, how = self.t.mann_whitney_u([2.0] * 31, [2.0] * 30)
        self.assertEqual((p, how), (1.0, 'normal'))

    def test_normal_approximation(self):
        x = list(range(35))
        y = [v + 100 for v in range(35)]
        u, p, how = self.t.mann_whitney_u(x, y)
        self.assertEqual((u, how), (0.0, 'normal'))
        z = (35 * 35 / 2 - 0.5) / math.sqrt(35 * 35 * 71 / 12)
        self.assertAlmostEqual(p / math.erfc(z / math.sqrt(2)), 1.0, places=9)

    def test_normal_approximation_tie_correction(self):
        x = [1] * 15 + [2] * 16
        y = [2] * 15 + [3] * 16
        u, p, how = self.t.mann_whitney_u(x, y)
        self.assertEqual(how, 'normal')
        # ranks: 1 x15 -> 8; 2 x31 -> 31; 3 x16 -> 54.5
        self.assertEqual(u, 15 * 8 + 16 * 31 - 31 * 32 / 2)
        N = 62
        var = 31 * 31 / 12 * ((N + 1) - ((15 ** 3 - 15) + (31 ** 3 - 31) + (16 ** 3 - 16))
                               / (N * (N - 1)))
        z = (abs(u - 31 * 31 / 2) - 0.5) / math.sqrt(var)
        self.assertAlmostEqual(p, math.erfc(z / math.sqrt(2)))

    def test_bootstrap_is_seeded(self):
        rng = random.Random(5)
        wide_base = [rng.uniform(5, 15) for _ in range(15)]
        wide_other = [rng.uniform(6, 16) for _ in range(15)]
        runs = {self.t.bootstrap_ratio_ci(wide_base, wide_other, 0.95, 1001, 3)
                for _ in range(3)}
        self.assertEqual(len(runs), 1, 'the same seed gave different intervals')
        self.assertNotEqual(
            self.t.bootstrap_ratio_ci(wide_base, wide_other, 0.95, 1001, 3),
            self.t.bootstrap_ratio_ci(wide_base, wide_other, 0.95, 1001, 4))
        base = [10.0, 10.5, 9.8, 10.2, 10.1]
        other = [11.0, 11.6, 10.9, 11.2, 11.4]
        a = self.t.bootstrap_ratio_ci(base, other, 0.95, 2000, 3)
        ratio = 11.2 / 10.1
        self.assertLess(a[0], ratio)
        self.assertGreater(a[1], ratio)
        self.assertGreater(a[0], min(other) / max(base) - 1e-12)
        self.assertLess(a[1], max(other) / min(base) + 1e-12)
        self.assertEqual(self.t.bootstrap_ratio_ci([2.0] * 4, [3.0] * 4, 0.95, 500, 1),
                         (1.5, 1.5))

    def test_wall_time_verdict_direction(self):
        t = self.t

        class Args:
            alpha, ci, bootstrap, seed = 0.05, 0.95, 500, 1
        a = t.Library('a', 'a', '/x/liba.so', False, None)
        b = t.Library('b', 'b', '/x/libb.so', False, None)
        runs = t.schedule([a, b], 0, 5)
        for r in runs:
            r.rc, r.wall = 0, (2.0 if r.lib is a else 1.0) + r.seq / 1000
        metric = t.choose_metric(runs, False)
        self.assertEqual(metric, 'wall')
        rows = t.summarize([a, b], runs, metric, Args)
        self.assertEqual(rows[1]['verdict'], 'faster')   # less time is faster
        self.assertLess(rows[1]['ratio'], 1)


if __name__ == '__main__':
    unittest.main(verbosity=2)

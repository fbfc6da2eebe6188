"""Write the one performance table: every cost ratio the README quotes.

Runs each benchmark script of ``benchmarks/`` in its own process (method and
baseline together in it, interleaved ABBA rounds, medians) at the sizes of
``SETTINGS`` below, and writes ``OUT.md`` and ``OUT.json`` (atomically) with
the ratios, their spread and number of rounds, peak memory, a per-phase
profile of each step, the machine, its load, the commit and the command.

Usage::

    python benchmarks/performance_table.py --out benchmarks/results/performance
    # one or more rows only (the others are not written)
    python benchmarks/performance_table.py --only ccop plrc --out /tmp/perf
    # smoke sizes (seconds; what tests/test_benchmarks runs)
    python benchmarks/performance_table.py --tiny --out /tmp/perf
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import bench_utils as bu  # noqa: E402

ROOT = bu.ROOT
CFG = 'configs/mmregion'

# name -> (script, table arguments, tiny arguments); every run adds
# --threads N --json PATH. The table's sizes are moderate (R50 at 160 px,
# batch 2) so that it is written in ~10 min on 2 shared CPU cores.
SETTINGS = {
    'ccop': ('benchmark_ccop.py', [
        '--depth', '50', '--batch', '2', '--size', '160', '--regions', '8',
        '--rounds', '3', '--warmup', '1', '--phases'
    ], [
        '--depth', '18', '--batch', '2', '--size', '64', '--regions', '2',
        '--queue', '64', '--rounds', '1', '--warmup', '0', '--no-memory'
    ]),
    'plrc': ('benchmark_plrc.py', [
        '--batch', '2', '--size', '160', '--rounds', '3', '--warmup', '1',
        '--phases', '--point-sweep', '16', '64'
    ], [
        '--config', f'{CFG}/plrc_r18_toy.py', '--batch', '2', '--size', '64',
        '--rounds', '1', '--warmup', '0', '--no-memory', '--point-sweep', '4'
    ]),
    'proseco': ('benchmark_proseco.py', [
        '--batch', '2', '--img-size', '256', '--num-boxes', '30', '--rounds',
        '3', '--warmup', '1', '--phases'
    ], [
        '--config', f'{CFG}/proseco_deformable-detr_r18_toy.py', '--batch',
        '1', '--img-size', '64', '--num-boxes', '3', '--rounds', '1',
        '--warmup', '0', '--no-memory', '--locsce-nb', '2', '--locsce-n', '20'
    ]),
    'proposals':
    ('benchmark_proposals.py', ['--num-images', '30', '--rounds', '2'],
     ['--num-images', '3', '--mode', 'single', '--rounds', '1']),
    'region_pipeline':
    ('bench_region_pipeline.py', ['--num-images', '16', '--rounds', '3'], [
        '--num-images', '2', '--num-boxes', '5', '--rounds', '1', '--warmup',
        '0'
    ]),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        '--out',
        default=osp.join('benchmarks', 'results', 'performance'),
        help='writes OUT.md and OUT.json')
    p.add_argument(
        '--only',
        nargs='+',
        choices=list(SETTINGS),
        help='run these benchmarks only')
    p.add_argument(
        '--tiny', action='store_true', help='smoke sizes (not a result)')
    p.add_argument(
        '--render',
        metavar='JSON',
        help='only rewrite OUT.md from this OUT.json (no measurement)')
    p.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch threads per benchmark (1: on a loaded 2-core machine '
        'two threads ran an R50 step 5x slower than one)')
    return p.parse_args(argv)


def uptime() -> str:
    try:
        return subprocess.run(['uptime'], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        la = os.getloadavg()
        return f'load average: {la[0]:.2f}, {la[1]:.2f}, {la[2]:.2f}'


def run_one(name, tiny, threads, tmp):
    """Run one script; its JSON result, the command and the wall time."""
    script, table, small = SETTINGS[name]
    out = osp.join(tmp, f'{name}.json')
    cmd = [
        sys.executable,
        osp.join('benchmarks', script), *(small if tiny else table),
        '--threads',
        str(threads), '--json', out
    ]
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    env.setdefault('OMP_NUM_THREADS', '1')
    print(f'[{name}] {" ".join(cmd[1:-2])}', flush=True)
    t0 = time.perf_counter()
    sys.stdout.flush()
    # stdout streams through (progress); stderr is kept for the error
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, text=True, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f'performance_table: {script} failed '
                           f'(exit {proc.returncode}):\n{proc.stderr[-3000:]}')
    with open(out) as f:
        res = json.load(f)
    res['command'] = 'python ' + ' '.join(cmd[1:-2])
    res['wall_s'] = wall
    return res


# ---- Markdown -------------------------------------------------------------
def _ratio(r):
    rounds = len(r['rounds'])
    return (f'**{r["median"]:.2f}x** ({r["min"]:.2f}-{r["max"]:.2f}, '
            f'{rounds} round{"s" if rounds > 1 else ""})')


def _mem(res, base, method):
    mem = res.get('memory') or {}
    if base in mem and method in mem:
        b, m = mem[base]['peak_mib'], mem[method]['peak_mib']
        return f'peak {b:.0f} → {m:.0f} MiB ({m / b:.2f}x)'
    if method in mem:
        return f'peak {mem[method]["peak_mib"]:.0f} MiB'
    ph = res.get('phases') or {}
    if base in ph and method in ph:  # in-process: what a step adds
        # no ratio: the allocator reuses freed memory, a rough figure
        b, m = ph[base]['step_rss_mib'], ph[method]['step_rss_mib']
        return f'step RSS +{b:.0f} → +{m:.0f} MiB'
    return 'n/a'


def _where(res, method):
    """The phases where the method's step exceeds the baseline's most."""
    ph = res.get('phases') or {}
    base = res['baseline']
    if method not in ph or base not in ph:
        return ''
    b, m = ph[base], ph[method]
    extra = m['total'] - b['total']
    delta = {k: v - b.get(k, 0.) for k, v in m.items() if k != 'total'}
    top = sorted(delta.items(), key=lambda kv: -kv[1])[:3]
    parts = ', '.join(f'{k} +{v:.0f}' for k, v in top if v > 0)
    return f'+{extra:.0f} ms/step: {parts}'


def rows(results):
    """``(comparison, setting, baseline ms, method ms, ratio, target, memory,
    extra time by phase)`` per ratio."""
    out = []
    for name, res in results.items():
        if name == 'region_pipeline':
            for comp, r in res['comparisons'].items():
                meth = [k for k in r['ratios']][0]
                base = [k for k in r['median_ms'] if k != meth][0]
                unit = ('us/call', r['us_per_call']) if 'us_per_call' in r \
                    else ('ms/img', r['ms_per_image'])
                out.append((f'{comp}: {meth} / {base}', res['setting'],
                            f'{unit[1][base]:.2f} {unit[0]}',
                            f'{unit[1][meth]:.2f} {unit[0]}',
                            _ratio(r['ratios'][meth]), '-', 'n/a', ''))
            continue
        base = res['baseline']
        for meth, r in res['ratios'].items():
            if meth == 'speedup_w2_vs_w1':
                out.append(
                    ('proposals: 2 workers vs 1 (speed-up)', res['setting'],
                     f'{res["median_ms"]["ours_w1"] / 1e3:.1f} s',
                     f'{res["median_ms"]["ours_w2"] / 1e3:.1f} s', _ratio(r),
                     '>= 1.8x', _mem(res, None, 'ours_w2'), ''))
                continue
            target = {
                'ccop': '<= 1.3x',
                'plrc': '<= 1.3x',
                'proseco': '<= 1.6x'
            }.get(meth, '-')
            unit = 's' if name == 'proposals' else 'ms'
            div = 1e3 if unit == 's' else 1.
            out.append((f'{meth} / {base}', res['setting'],
                        f'{res["median_ms"][base] / div:.1f} {unit}',
                        f'{res["median_ms"][meth] / div:.1f} {unit}',
                        _ratio(r), target, _mem(res, base,
                                                meth), _where(res, meth)))
    return out


def phase_table(res):
    ph = res.get('phases')
    if not ph:
        return []
    models = list(ph)
    keys = []
    for m in models:
        for k, v in ph[m].items():
            if k not in keys and (v >= 0.02 * ph[m]['total']
                                  or k in ('backward', 'optimizer')):
                keys.append(k)
    keys = [k for k in keys if k not in ('total', 'step_rss_mib')
            ] + ['total', 'step_rss_mib']
    lines = [
        '| phase (ms, one step) | ' + ' | '.join(models) + ' |',
        '|---' * (len(models) + 1) + '|'
    ]
    for k in keys:
        cells = ' | '.join(f'{ph[m][k]:.0f}' if k in ph[m] else ''
                           for m in models)
        lines.append(f'| {k} | {cells} |')
    return lines


def markdown(doc):
    m = doc['machine']
    sizes = 'TINY smoke sizes, not a result' if doc['tiny'] else \
        'the sizes below'
    lines = [
        '# Performance table', '',
        f'Written by `{doc["command"]}` in {doc["wall_s"] / 60:.1f} min '
        f'({sizes}). Do not edit: re-run the command.', '',
        f'- commit `{m["commit"]}`, {m["utc"]} UTC',
        f'- machine: {m["cpu"]}, {m["cores"]} cores' +
        (f', GPU {m["gpu"]}' if m['gpu'] else ', no GPU') +
        f'; Python {m["python"]}, torch {m["torch"]}, numpy {m["numpy"]}; '
        f'{doc["threads"]} torch threads per benchmark',
        f'- load before: `{doc["uptime_before"]}`',
        f'- load after: `{doc["uptime_after"]}`', '',
        'Each ratio is measured in one process against its baseline: after '
        'the warm-up steps, every round runs baseline, method(s), method(s), '
        'baseline (ABBA); the ratio is the median of the per-round ratios '
        '(min-max over the rounds in brackets). Memory: `peak` = each '
        'model alone in a fresh process, two steps (sampled RSS on CPU, '
        '`max_memory_allocated` on GPU); `step +X` = the growth of the '
        'process RSS during the profiled step (activations, gradients, '
        'temporaries; sampled every 2 ms). "Extra by phase": the phases '
        '(outermost submodule calls of the forward, the loss code between '
        'them, backward, optimizer) where one step of the method exceeds '
        'the baseline most, from one profiled step of each.', '',
        '| comparison | ratio (spread, rounds) | baseline | method | target '
        '| memory (baseline → method) | extra by phase (ms) |',
        '|---|---|---|---|---|---|---|'
    ]
    for comp, _, b, mth, ratio, target, mem, where in rows(doc['results']):
        lines.append(
            f'| {comp} | {ratio} | {b} | {mth} | {target} | {mem} | {where} |')
    lines += ['', '## Settings and details', '']
    for name, res in doc['results'].items():
        lines += [
            f'### {res["title"]}',
            '',
            f'- setting: {res["setting"]}',
            f'- command: `{res["command"]}` ({res["wall_s"]:.0f} s)',
        ]
        first = res if 'rounds' in res else next(
            iter(res.get('comparisons', {}).values()), {})
        if 'rounds' in first:
            lines.append(f'- rounds: {first["rounds"]}, warm-up steps: '
                         f'{first["warmup"]}')
        extra = res.get('extra') or {}
        if 'locsce_ms' in extra:
            lines.append('- LocSCE forward + backward alone: ' +
                         ', '.join(f'{k}: {v:.1f} ms'
                                   for k, v in extra['locsce_ms'].items()) +
                         f' ({100 * extra["locsce_share_of_proseco_step"]:.1f}'
                         ' % of a ProSeCo step)')
        if 'point_loss_sweep' in extra:
            lines.append('- point loss alone (forward + backward), by P: ' +
                         ', '.join(
                             f'P={p}: {v["points"]} points, '
                             f'{v["ms"]:.1f} ms'
                             for p, v in extra['point_loss_sweep'].items()))
        if 'images_per_s' in extra:
            lines.append('- images/s: ' +
                         ', '.join(f'{k} {v:.1f}'
                                   for k, v in extra['images_per_s'].items()) +
                         f'; recall@IoU0.5 {extra["recall_iou05"]:.3f} '
                         '(target >= 0.9); '
                         f'{extra["mean_boxes"]:.1f} boxes/image')
        pt = phase_table(res)
        if pt:
            lines += ['', *pt]
        lines.append('')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    from mmregion.utils.atomic_io import atomic_write, atomic_write_json
    out = osp.abspath(args.out)
    if args.render:
        with open(args.render) as f:
            doc = json.load(f)
        with atomic_write(out + '.md', 'w', encoding='utf-8') as f:
            f.write(markdown(doc))
        print(f'wrote {out}.md from {args.render}')
        return doc
    names = args.only or list(SETTINGS)
    doc = dict(
        command='python benchmarks/performance_table.py ' + ' '.join(argv),
        tiny=args.tiny,
        threads=args.threads,
        uptime_before=uptime(),
        settings={n: SETTINGS[n][2 if args.tiny else 1]
                  for n in names},
        results={})
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n in names:
            doc['results'][n] = run_one(n, args.tiny, args.threads, tmp)
    doc['wall_s'] = time.perf_counter() - t0
    doc['uptime_after'] = uptime()
    doc['machine'] = bu.machine()
    os.makedirs(osp.dirname(out), exist_ok=True)
    atomic_write_json(out + '.json', doc, indent=1)
    text = markdown(doc)
    with atomic_write(out + '.md', 'w', encoding='utf-8') as f:
        f.write(text)
    print(text)
    print(f'wrote {out}.md and {out}.json')
    return doc


if __name__ == '__main__':
    main()

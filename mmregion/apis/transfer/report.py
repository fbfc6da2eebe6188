"""The report of a protocol run: JSON (per-seed values of every method and
metric, ``claims``), Markdown tables and a PNG of the learning curves.

:func:`summarise` reads the stage results; every comparison is against
random init (``random``) or between two named runs, with per-seed values,
mean +- std over pre-training seeds, Welch's t over seeds, and on the probe
McNemar's exact test and a paired bootstrap per seed pair (seed s of one
run against seed s of the other, on the same test boxes).
"""
import math
import os
import os.path as osp
import subprocess
from typing import Dict, List, Optional

from . import stats
from .benchmark import RANDOM
from .runner import REPO

QUICK_NOTE = ('QUICK MODE: a smoke run of every stage on tiny sizes; its '
              'numbers prove nothing about any method.')


def git_commit() -> str:
    """Short commit of the repository (``-dirty`` with local changes)."""
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                              cwd=REPO,
                              capture_output=True,
                              text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '-uno'],
                               cwd=REPO,
                               capture_output=True,
                               text=True,
                               timeout=10).stdout.strip()
        return (head or 'unknown') + ('-dirty' if dirty else '')
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def _ms(values: List[float]) -> Optional[List[float]]:
    return None if not values else [
        round(v, 2) for v in stats.mean_std(values)
    ]


def _r(x: float) -> Optional[float]:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) \
        else round(x, 6)


def conditions(p: dict) -> Dict[str, object]:
    """The conditions every method shares (the report's first table)."""
    pre, v = p['pretrain'], p['views']
    return {
        'backbone':
        f'ResNet-{p["backbone"]["depth"]}, base_channels '
        f'{p["backbone"]["base_channels"]}',
        'batch':
        pre['batch'],
        'iterations':
        pre['iters'],
        'optimiser':
        f'SGD lr {pre["lr"]}, wd {pre["weight_decay"]}, '
        f'warm-up {pre["warmup_iters"]} + cosine',
        'views':
        f'{v["size"]} px, crop {tuple(v["crop_scale"])}, jitter '
        f'{v["jitter"]}, grey {v["grey"]}, flip {v["flip"]}, blur '
        f'{v["blur"]}',
        'queues':
        f'image {p["queues"]["image"]}, region '
        f'{p["queues"]["region"]}',
        'seeds':
        pre['seeds'],
        'boxes': {
            m: c['boxes']
            for m, c in pre['methods'].items()
        },
        'probe':
        f'RoIAlign {p["probe"]["roi_size"]}x{p["probe"]["roi_size"]}'
        f' bins on C3-C5, BN recomputed on {p["probe"]["bn_images"]} '
        'unlabelled images, softmax regression (L2 chosen on dev)',
        'detection':
        f'{p["detection"]["config"]}, {p["detection"]["iters"]} '
        f'iterations, batch {p["detection"]["batch"]}, lr '
        f'{p["detection"]["lr"]}, seeds {p["detection"]["seeds"]}',
    }


def _probe_table(bench, results: dict) -> dict:
    p = bench.p
    it = bench.final_iter()
    table, curves = {}, {}
    base = {
        s: results[bench.probe_name(RANDOM, s, None)]
        for s in bench.seeds() if bench.probe_name(RANDOM, s, None) in results
    }
    names = [RANDOM] + list(bench.runs())
    for run in names:
        per = {}
        for s in bench.seeds():
            key = bench.probe_name(run, s, None if run == RANDOM else it)
            if key in results:
                per[s] = results[key]
        if not per:
            continue
        lin = [per[s]['linear']['acc'] for s in per]
        knn = [per[s]['knn']['acc'] for s in per]
        row = dict(
            linear_per_seed=lin,
            knn_per_seed=knn,
            linear=_ms(lin),
            knn=_ms(knn),
            boxes=per[next(iter(per))]['num_boxes'])
        if run != RANDOM and base:
            pairs = {}
            for s in per:
                if s not in base:
                    continue
                a, b = per[s]['linear']['correct'], base[s]['linear'][
                    'correct']
                mc = stats.mcnemar(a, b)
                bs = stats.paired_bootstrap(
                    a, b, p['probe']['bootstrap'], seed=s)
                pairs[str(s)] = dict(
                    mcnemar_p=_r(mc['p']),
                    bootstrap_diff=round(bs['diff'], 2),
                    bootstrap_ci=[round(bs['low'], 2),
                                  round(bs['high'], 2)])
            w = stats.welch(lin, [base[s]['linear']['acc'] for s in base])
            row['vs_random'] = dict(
                diff=_r(w['diff']), welch_p=_r(w['p']), per_seed=pairs)
        table[run] = row
        if run != RANDOM:
            pts = {}
            for key, res in results.items():
                if key.startswith(f'probe/{run}/seed'):
                    pts.setdefault(res['iter'],
                                   []).append(res['linear']['acc'])
            curves[run] = [
                dict(iter=i, linear=_ms(pts[i])) for i in sorted(pts)
            ]
    if RANDOM in table:
        curves[RANDOM] = [dict(iter=0, linear=table[RANDOM]['linear'])]
    return dict(table=table, curves=curves)


def _detect_table(bench, results: dict) -> dict:
    out = {}
    for mode in bench.p['detection']['modes']:
        rows = {}
        for run in [RANDOM] + bench.detect_runs():
            per = [
                results[f'detect/{mode}/{run}/seed{s}']
                for s in bench.p['detection']['seeds']
                if f'detect/{mode}/{run}/seed{s}' in results
            ]
            if not per:
                continue
            row = {}
            for m in ('bbox_mAP_50', 'bbox_mAP'):
                vals = [r['test'][m] for r in per]
                row[m + '_per_seed'] = vals
                row[m] = _ms(vals)
            row['curves'] = [r['curve'] for r in per]
            rows[run] = row
        base = rows.get(RANDOM)
        for run, row in rows.items():
            if run == RANDOM or base is None:
                continue
            a, b = row['bbox_mAP_50_per_seed'], base['bbox_mAP_50_per_seed']
            w = stats.welch(a, b)
            spread = max(row['bbox_mAP_50'][1], base['bbox_mAP_50'][1])
            row['vs_random'] = dict(
                diff=_r(w['diff']),
                welch_p=_r(w['p']),
                diff_in_std=_r(w['diff'] / spread) if spread > 0 else None)
        out[mode] = rows
    return out


def _metric_values(report: dict, run: str, metric: str) -> List[float]:
    if metric == 'probe_linear':
        return report['probe']['table'].get(run, {}).get('linear_per_seed', [])
    if metric.startswith('det_'):
        mode, m = metric[4:].split('_', 1)
        key = dict(AP50='bbox_mAP_50', AP='bbox_mAP')[m]
        return report['detection'].get(mode,
                                       {}).get(run,
                                               {}).get(key + '_per_seed', [])
    raise ValueError(f'claims: unknown metric {metric!r} (probe_linear, '
                     'det_<mode>_AP50, det_<mode>_AP)')


def _claims(report: dict, p: dict) -> List[dict]:
    out = []
    for c in p['claims']:
        if c.get('status') == 'not run':
            out.append(
                dict(name=c['name'], verdict='not run', p=None, why=c['why']))
            continue
        a = _metric_values(report, c['a'], c['metric'])
        b = _metric_values(report, c['b'], c['metric'])
        if len(a) < 2 or len(b) < 2:
            out.append(
                dict(
                    name=c['name'],
                    verdict='inconclusive',
                    p=None,
                    why=f'{len(a)} / {len(b)} seeds of {c["a"]} / {c["b"]}'))
            continue
        w = stats.welch(a, b)
        out.append(
            dict(
                name=c['name'],
                metric=c['metric'],
                a=c['a'],
                b=c['b'],
                diff=_r(w['diff']),
                p=_r(w['p']),
                verdict=stats.verdict(w['diff'], w['p'], p['alpha'])))
    return out


def _must_show(report: dict, p: dict) -> Dict[str, object]:
    gate = report.get('gate') or {}
    probe = report['probe']['table']
    beats = {
        r: row.get('vs_random', {}).get('welch_p')
        for r, row in probe.items() if r != RANDOM
    }
    det = {}
    for mode, rows in report['detection'].items():
        for r, row in rows.items():
            if r != RANDOM:
                det[f'{mode}/{r}'] = row.get('vs_random',
                                             {}).get('diff_in_std')
    return dict(
        gate_passed=gate.get('passed'),
        probe_beats_random_p_lt_0_01={
            r: (v is not None and v < 0.01
                and probe[r]['vs_random']['diff'] > 0)
            for r, v in beats.items()
        },
        detection_ap50_beats_random_by_2_std={
            k: (v is not None and v > 2)
            for k, v in det.items()
        })


def summarise(bench, results: dict, command: str) -> dict:
    """The JSON report of a (possibly partial) run."""
    p = bench.p
    report = dict(
        benchmark='mmregion transfer benchmark v2',
        protocol=p['path'],
        mode=p['mode'],
        note=QUICK_NOTE if p['mode'] == 'quick' else '',
        commit=git_commit(),
        command=command,
        stage_seconds=round(
            sum(r.get('seconds', 0) for r in results.values())),
        torch_threads=os.environ.get('OMP_NUM_THREADS', 'default'),
        data={
            k: v
            for k, v in results.get('data', {}).items()
            if k not in ('root', 'seconds', 'fingerprint')
        },
        conditions=conditions(p),
        gate={
            k: v
            for k, v in results.get('gate', {}).items()
            if k not in ('fingerprint', )
        },
        anchors={
            k: v
            for k, v in results.get('anchors', {}).items()
            if k in ('coverage', 'iou', 'boxes')
        },
        probe=_probe_table(bench, results),
        detection=_detect_table(bench, results))
    report['claims'] = _claims(report, p)
    report['must_show'] = _must_show(report, p)
    return report


def _fmt_ms(v) -> str:
    return '-' if not v else f'{v[0]:.1f} ± {v[1]:.1f}'


def _fmt_d(v) -> str:
    return '-' if v is None else f'{v:+.1f}'


def _fmt_p(v) -> str:
    return '-' if v is None else f'{v:.2g}'


def to_markdown(report: dict) -> str:
    """The Markdown report."""
    lines = [f'# Transfer benchmark v2 ({report["mode"]})', '']
    if report['note']:
        lines += [f'**{report["note"]}**', '']
    lines += [
        f'Protocol `{report["protocol"]}`, commit `{report["commit"]}`, '
        f'{report["stage_seconds"]} s of stage time (sum). Command: '
        f'`{report["command"]}`.', '', f'Data: {report["data"]}.', '',
        '## Conditions (the same for every method)', '', '| | |', '|---|---|'
    ]
    for k, v in report['conditions'].items():
        lines.append(f'| {k} | {v} |')
    g = report['gate']
    lines += ['', '## Gate', '']
    if g.get('passed'):
        lines.append(f'Passed: MoCo v2 beats random init by '
                     f'{g["diff"]:+.1f} points = {g["margin_se"]:.1f} '
                     f'paired SE on {g["n"]} test boxes.')
    else:
        lines.append(g.get('message', 'not run'))
    lines += [
        '', '## Region probe (primary metric, test boxes, % top-1)', '',
        '| backbone | linear | k-NN | Δ linear vs random | Welch p | '
        'McNemar p per seed | paired bootstrap 95 % CI per seed | seeds |',
        '|---|---|---|---|---|---|---|---|'
    ]
    for run, row in report['probe']['table'].items():
        vr = row.get('vs_random', {})
        per = vr.get('per_seed', {})
        lines.append(
            f'| {run} | {_fmt_ms(row["linear"])} | {_fmt_ms(row["knn"])} | '
            f'{_fmt_d(vr.get("diff"))} | {_fmt_p(vr.get("welch_p"))} | ' +
            (', '.join(_fmt_p(v['mcnemar_p']) for v in per.values()) or '-') +
            ' | ' + (', '.join(f'[{v["bootstrap_ci"][0]:+.1f}, '
                               f'{v["bootstrap_ci"][1]:+.1f}]'
                               for v in per.values()) or '-') +
            f' | {len(row["linear_per_seed"])} |')
    a = report['anchors']
    lines += ['', '## Detection (AP on the test split, %)', '']
    if a:
        lines += [
            f'Anchor coverage: {100 * a["coverage"]:.1f} % of {a["boxes"]} '
            f'labelled boxes have an anchor with IoU >= {a["iou"]}.', ''
        ]
    for mode, rows in report['detection'].items():
        lines += [
            f'### {mode}', '', '| init | AP50 | AP | Δ AP50 vs random | '
            'Δ / std | Welch p |', '|---|---|---|---|---|---|'
        ]
        for run, row in rows.items():
            vr = row.get('vs_random', {})
            lines.append(
                f'| {run} | {_fmt_ms(row["bbox_mAP_50"])} | '
                f'{_fmt_ms(row["bbox_mAP"])} | '
                f'{_fmt_d(vr.get("diff"))} | {_fmt_d(vr.get("diff_in_std"))}'
                f' | {_fmt_p(vr.get("welch_p"))} |')
        lines.append('')
    lines += [
        '## Claims', '', '| claim | verdict | p | note |', '|---|---|---|---|'
    ]
    for c in report['claims']:
        note = c.get('why') or (f'{c["a"]} - {c["b"]} on {c["metric"]}: '
                                f'{c["diff"]:+.2f}')
        lines.append(f'| {c["name"]} | {c["verdict"]} | {_fmt_p(c["p"])} | '
                     f'{note} |')
    lines += ['', '## Must show', '', '```', str(report['must_show']), '```']
    return '\n'.join(lines) + '\n'


def plot(report: dict, path: str) -> None:
    """Probe learning curves and detection AP50 bars (PNG, atomic)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    for k, (run, pts) in enumerate(report['probe']['curves'].items()):
        xs = [q['iter'] for q in pts]
        ys = [q['linear'][0] for q in pts]
        es = [q['linear'][1] for q in pts]
        if run == RANDOM:
            ax.axhline(ys[0], color='grey', ls='--', label='random init')
        else:
            ax.errorbar(
                xs,
                ys,
                yerr=es,
                marker='o',
                capsize=3,
                label=run,
                color=f'C{k}')
    ax.set_xlabel('pre-training iteration')
    ax.set_ylabel('region linear probe (%)')
    ax.set_title('probe learning curves (mean ± std over seeds)')
    ax.legend(fontsize=8)
    ax = axes[1]
    labels, vals, errs = [], [], []
    for mode, rows in report['detection'].items():
        for run, row in rows.items():
            labels.append(f'{mode}\n{run}')
            vals.append(row['bbox_mAP_50'][0])
            errs.append(row['bbox_mAP_50'][1])
    ax.bar(range(len(vals)), vals, yerr=errs, capsize=3)
    ax.set_xticks(range(len(vals)), labels, fontsize=7)
    ax.set_ylabel('AP50 (%)')
    ax.set_title('detection AP50 on test')
    title = f'mmregion transfer v2 ({report["mode"]}, {report["commit"]})'
    if report['note']:
        title += ' - QUICK: proves nothing'
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path + '.tmp.png'
    fig.savefig(tmp, dpi=80)
    os.replace(tmp, path)
    plt.close(fig)


def write_report(report: dict, stem: str) -> List[str]:
    """``stem.json``, ``stem.md`` and ``stem.png``, each atomically."""
    from mmregion.utils.atomic_io import atomic_write, atomic_write_json
    os.makedirs(osp.dirname(osp.abspath(stem)), exist_ok=True)
    atomic_write_json(stem + '.json', report, indent=1)
    with atomic_write(stem + '.md', 'w') as f:
        f.write(to_markdown(report))
    plot(report, stem + '.png')
    return [stem + '.json', stem + '.md', stem + '.png']

"""Plot training curves / time from mmengine's json logs.

mmengine writes every logged scalar as one json line to
``WORK_DIR/<timestamp>/vis_data/scalars.json`` (and ``<timestamp>.json``):
``{"loss": 4.1, "lr": 0.03, "iter": 10, "step": 10, ...}``. ``plot_curve``
draws the chosen keys against ``step`` (the global iteration for training
lines, the epoch or iteration of a validation) for one or more logs;
``cal_train_time`` reports the time per iteration.

Examples::

    python tools/analysis_tools/analyze_logs.py plot_curve \
        work_dirs/ccop/20261203_101010/vis_data/scalars.json \
        --keys loss loss_img loss_region --out losses.png
    python tools/analysis_tools/analyze_logs.py cal_train_time LOG.json
"""
import argparse
import io
import json
import os.path as osp
import sys
from collections import defaultdict
from typing import Dict, List

import numpy as np

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

from mmregion.apis.cli import run_cli
from mmregion.utils.atomic_io import atomic_write
from mmregion.utils.errors import UserError

Log = Dict[str, List[tuple]]  # key -> [(step, value), ...]


def load_json_log(path: str) -> Log:
    """Read an mmengine json log into ``{key: [(step, value), ...]}``.

    Lines that are not json objects with a numeric ``step`` are skipped and
    counted (one warning line names the file and the count).
    """
    if not osp.isfile(path):
        raise UserError(f'log file {path} does not exist')
    log: Log = defaultdict(list)
    bad = 0
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                entry = json.loads(line)
                step = entry.get('step', entry.get('iter'))
                step = float(step)
            except (ValueError, TypeError, AttributeError):
                bad += 1
                continue
            for key, value in entry.items():
                if key in ('step', 'iter', 'epoch') or isinstance(value, bool):
                    continue
                if isinstance(value, (int, float)):
                    log[key].append((step, float(value)))
    if bad:
        print(
            f'warning: {path}: skipped {bad} line(s) that are not json '
            'log entries',
            file=sys.stderr)
    return dict(log)


def plot_curve(logs: List[Log], args) -> None:
    """Draw ``args.keys`` of every log; save to ``args.out`` or show."""
    import matplotlib
    if args.out is not None:
        matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    legends = args.legend
    if legends is None:
        legends = [
            f'{osp.basename(osp.dirname(osp.dirname(p))) or p}: {k}'
            if len(logs) > 1 else k for p in args.json_logs for k in args.keys
        ]
    if len(legends) != len(logs) * len(args.keys):
        raise UserError(f'--legend needs {len(logs) * len(args.keys)} '
                        f'entries (logs x keys), got {len(legends)}')
    fig = plt.figure(figsize=(8, 5))
    drawn = 0
    for i, (path, log) in enumerate(zip(args.json_logs, logs)):
        for j, key in enumerate(args.keys):
            if key not in log:
                print(
                    f'warning: {path} has no "{key}"; keys: '
                    f'{", ".join(sorted(log))}',
                    file=sys.stderr)
                continue
            pts = np.array(log[key])
            plt.plot(
                pts[:, 0],
                pts[:, 1],
                label=legends[i * len(args.keys) + j],
                linewidth=1)
            drawn += 1
    if not drawn:
        plt.close(fig)
        raise UserError(f'none of the keys {args.keys} is in the logs')
    plt.xlabel('step (iteration; epoch for epoch-based validation)')
    plt.legend()
    if args.title:
        plt.title(args.title)
    if args.out is None:
        plt.show()
    else:
        buf = io.BytesIO()
        fig.savefig(buf, format=osp.splitext(args.out)[1][1:] or 'png')
        with atomic_write(args.out, 'wb') as f:
            f.write(buf.getvalue())
        print(f'saved the curve of {drawn} series to {args.out}')
    plt.close(fig)


def cal_train_time(logs: List[Log], args) -> None:
    """Print the mean / slowest / fastest time per iteration of each log."""
    for path, log in zip(args.json_logs, logs):
        if 'time' not in log:
            raise UserError(f'{path} has no "time" entries')
        times = np.array([v for _, v in log['time']])
        if args.include_outliers or len(times) < 2:
            used = times
        else:  # the first iteration includes set-up
            used = times[1:]
        print(f'{path}: {len(used)} iterations, average {used.mean():.4f} '
              f's/iter, slowest {used.max():.4f}, fastest {used.min():.4f}, '
              f'std {used.std():.4f}')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Analyze json logs')
    sub = parser.add_subparsers(dest='task', required=True)
    plot = sub.add_parser('plot_curve', help='curves of logged scalars')
    plot.add_argument('json_logs', nargs='+', help='json log files')
    plot.add_argument(
        '--keys', nargs='+', default=['loss'], help='keys to plot')
    plot.add_argument('--title', help='figure title')
    plot.add_argument(
        '--legend', nargs='+', default=None, help='legend of each curve')
    plot.add_argument(
        '--out', default=None, help='image file (.png/.pdf); shown if unset')
    timing = sub.add_parser('cal_train_time', help='time per iteration')
    timing.add_argument('json_logs', nargs='+', help='json log files')
    timing.add_argument(
        '--include-outliers',
        action='store_true',
        help='include the first iteration (set-up) in the statistics')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logs = [load_json_log(p) for p in args.json_logs]
    if args.task == 'plot_curve':
        plot_curve(logs, args)
    else:
        cal_train_time(logs, args)


if __name__ == '__main__':
    run_cli(main)

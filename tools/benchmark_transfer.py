"""Transfer benchmark v2: run a protocol file stage by stage, resumably.

The protocol (``configs/protocols/*.py``) holds every budget, size, view,
queue and seed; the stages are :mod:`mmregion.apis.transfer`. A killed run
resumes at the stage it was in (a killed training resumes from its last
checkpoint); a failing gate stops the run with one line.

Examples::

    # smoke run of every stage, <= 10 min on 2 cores; proves nothing
    python tools/benchmark_transfer.py configs/protocols/transfer_toy_cpu.py \\
        --quick
    # the CPU protocol (docs/benchmark_transfer.md), two processes
    OMP_NUM_THREADS=1 python tools/benchmark_transfer.py \\
        configs/protocols/transfer_toy_cpu.py --jobs 2
"""
import argparse
import os.path as osp
import shlex
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('protocol', help='configs/protocols/<name>.py')
    p.add_argument(
        '--quick',
        action='store_true',
        help='the protocol\'s `quick` sizes (a smoke run)')
    p.add_argument('--work-dir', help='default: work_dirs/<protocol>_<mode>')
    p.add_argument(
        '--out',
        default=osp.join(REPO, 'benchmarks', 'results'),
        help='directory of the report (JSON, Markdown, PNG)')
    p.add_argument(
        '--data-root',
        help='an existing data root (COCO layout '
        'of mmregion/apis/transfer/data.py); default: generated')
    p.add_argument(
        '--jobs',
        type=int,
        default=1,
        help='stages of one group run this many at a time')
    p.add_argument(
        '--gpus',
        type=int,
        default=0,
        help='training stages through torch.distributed.run '
        'with this many processes (0: one process)')
    p.add_argument(
        '--dry-run', action='store_true', help='print the stages and exit')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmregion.apis.transfer.benchmark import TransferBenchmark
    from mmregion.apis.transfer.report import summarise, write_report
    from mmregion.apis.transfer.runner import load_protocol, run_stages
    from mmregion.apis.transfer.stats import GateFailed
    try:
        proto = load_protocol(args.protocol, args.quick)
    except (OSError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    work = args.work_dir or osp.join('work_dirs',
                                     f'{proto["name"]}_{proto["mode"]}')
    launcher = None if not args.gpus else [
        sys.executable, '-m', 'torch.distributed.run',
        f'--nproc_per_node={args.gpus}'
    ]
    bench = TransferBenchmark(proto, work, args.data_root, launcher)
    stages = bench.plan()
    if args.dry_run:
        for i, s in enumerate(stages, 1):
            print(f'[{i}/{len(stages)}] {s.name} ({s.group}, ~{s.cost:.0f} s)')
        total = sum(s.cost for s in stages) / 3600
        print(f'estimate: {total:.1f} h in one process, ~{total / 2:.1f} h '
              'with --jobs 2 (rough, from the v1 run\'s costs)')
        return 0
    code = 0
    try:
        run_stages(stages, proto, bench.work, bench.results, args.jobs)
    except GateFailed as e:
        bench.results['gate'] = dict(passed=False, message=str(e))
        print(f'STOP: {e}', file=sys.stderr)
        code = 3
    except RuntimeError as e:
        print(
            f'error: {e}\nRun the same command again to resume.',
            file=sys.stderr)
        return 1
    command = 'python tools/benchmark_transfer.py ' + ' '.join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    report = summarise(bench, bench.results, command)
    stem = osp.join(args.out, f'{proto["name"]}_{proto["mode"]}')
    files = write_report(report, stem)
    if report['note']:
        print(report['note'])
    print('Wrote ' + ', '.join(files))
    return code


if __name__ == '__main__':
    sys.exit(main())

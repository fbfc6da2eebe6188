"""CCOP training-step cost against mmpretrain's MoCo v2, in one process.

Both models use the same backbone depth, batch size, view size and queue
length; a step is forward + backward + SGD step on a fixed random batch (two
views, ``--regions`` boxes per image for CCOP).

Timing is fair on a shared, noisy machine: both models live in the same
process and their steps are interleaved in ``A B B A`` rounds (after
``--warmup`` steps each), so a change of machine load hits both alike. The
script prints the median step time of each model and the median of the
per-round ratios ``ccop/mocov2`` (target <= 1.3x).

Peak memory: CUDA ``max_memory_allocated`` on GPU. On CPU, each model runs a
few steps in a fresh subprocess and the figure is the process's peak RSS
(sampled every 2 ms), printed both in total and above the RSS after building
the model (gradients, optimizer state and activations: what a step adds).

``--profile`` also prints a per-phase breakdown of one CCOP step
(``torch.profiler`` record_function ranges) and the top operators.

Usage::

    # backbone-dominated CPU setting (R50, 224 px, 50 regions/img)
    python benchmarks/benchmark_ccop.py --depth 50 --batch 4 --size 224 \
        --regions 50 --threads 2 --device cpu
    # quick smoke run (R18, 96 px)
    python benchmarks/benchmark_ccop.py --depth 18 --size 96 --regions 20
"""
import argparse
import json
import os.path as osp
import resource
import statistics
import subprocess
import sys
import threading
import time

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _channels(depth):
    return [64, 128, 256, 512] if depth < 50 else [256, 512, 1024, 2048]


def build(kind, args):
    """Build ``'mocov2'`` (mmpretrain.MoCo) or ``'ccop'`` at the setting."""
    from mmengine.registry import DefaultScope

    from mmregion.registry import MODELS
    if DefaultScope.get_current_instance() is None:
        DefaultScope.get_instance('benchmark_ccop', scope_name='mmregion')
    chans = _channels(args.depth)
    feat = 128 if args.depth >= 50 else 32  # MoCo v2 / CCOP: 128
    hid = 2048 if args.depth >= 50 else 512  # MoCo v2 / CCOP: 2048
    fpn = 256 if args.depth >= 50 else 64  # CCOP: 256
    backbone = dict(
        type='mmpretrain.ResNet',
        depth=args.depth,
        out_indices=(0, 1, 2, 3) if kind == 'ccop' else (3, ),
        zero_init_residual=False)
    if kind == 'mocov2':
        cfg = dict(
            type='mmpretrain.MoCo',
            queue_len=args.queue,
            feat_dim=feat,
            momentum=0.001,
            backbone=backbone,
            neck=dict(
                type='mmpretrain.MoCoV2Neck',
                in_channels=chans[-1],
                hid_channels=hid,
                out_channels=feat,
                with_avg_pool=True),
            head=dict(
                type='mmpretrain.ContrastiveHead',
                loss=dict(type='mmpretrain.CrossEntropyLoss'),
                temperature=0.2),
            data_preprocessor=dict(type='mmpretrain.SelfSupDataPreprocessor'))
    else:
        cfg = dict(
            type='CCOP',
            backbone=backbone,
            neck=dict(
                type='mmdet.FPN',
                in_channels=chans,
                out_channels=fpn,
                num_outs=4,
                norm_cfg=dict(type='BN')),
            img_neck=dict(
                type='LinearProjNeck',
                in_channels=chans[-1],
                hid_channels=hid,
                out_channels=feat,
                dropout=0.1),
            region_neck=dict(
                type='RoIProjNeck',
                in_channels=fpn,
                hid_channels=hid,
                out_channels=feat),
            box_jitter=dict(type='CurriculumBoxJitter', n_jitter=10),
            img_queue_len=args.queue,
            region_queue_len=args.queue,
            feat_dim=feat)
    model = MODELS.build(cfg)
    if kind == 'ccop':
        model.box_jitter.set_progress(args.progress)
    return model


def make_batch(args, device):
    """Two (B, 3, S, S) views and B samples with (2, R, 4) boxes."""
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(0)
    inputs = [
        torch.randn(args.batch, 3, args.size, args.size,
                    generator=g).to(device) for _ in range(2)
    ]
    samples = []
    for _ in range(args.batch):
        xy = torch.rand(2, args.regions, 2, generator=g) * args.size * 0.6
        wh = torch.rand(2, args.regions, 2, generator=g) * args.size * 0.4 \
            + 8
        s = DataSample()
        s.set_data(
            dict(boxes=torch.cat([xy, xy + wh], -1).clamp(max=args.size)))
        samples.append(s)
    return inputs, samples


class Trainer:
    """One model, its SGD optimizer and a fixed batch; ``step()`` times one
    training step."""

    def __init__(self, kind, args, device):
        torch.manual_seed(0)
        self.device = device
        self.model = build(kind, args).to(device).train()
        self.optim = torch.optim.SGD(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=0.03,
            momentum=0.9,
            weight_decay=1e-4)
        self.inputs, self.samples = make_batch(args, device)

    def step(self):
        t0 = time.perf_counter()
        self.optim.zero_grad()
        losses = self.model.loss(self.inputs, self.samples)
        sum(v for v in losses.values()).backward()
        self.optim.step()
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
        return time.perf_counter() - t0


def current_rss_mib():
    """Current resident set size of this process (MiB, Linux)."""
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


class RSSSampler(threading.Thread):
    """Sample the current RSS every ``interval`` s; ``peak`` is the max.

    ``ru_maxrss`` is useless here: the imports peak above a small model's
    step. torch releases the GIL in its kernels, so the samples land during
    the step.
    """

    def __init__(self, interval=0.002):
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = current_rss_mib()
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            self.peak = max(self.peak, current_rss_mib())
            time.sleep(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, current_rss_mib())


def measure_memory(kind, args):
    """Peak memory of ``kind`` (run in a fresh process on CPU)."""
    device = torch.device(args.device)
    trainer = Trainer(kind, args, device)
    if device.type == 'cuda':
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = current_rss_mib()
        sampler = RSSSampler()
        sampler.start()
    for _ in range(args.mem_steps):
        trainer.step()
    if device.type == 'cuda':
        peak = torch.cuda.max_memory_allocated()
        return dict(
            peak_mib=peak / 2**20,
            step_mib=(peak - base) / 2**20,
            kind='cuda max_memory_allocated')
    sampler.stop()
    return dict(
        peak_mib=sampler.peak,
        step_mib=sampler.peak - base,
        kind='CPU process RSS sampled every 2 ms')


def profile_ccop(trainer, args):
    """Print a per-phase and a per-operator breakdown of one CCOP step."""
    from torch.profiler import ProfilerActivity, profile, record_function

    from mmregion.models.algorithms import ccop as ccop_mod
    model = trainer.model
    wrapped = {}

    def wrap(obj, name, label):
        fn = getattr(obj, name)
        wrapped[(obj, name)] = fn

        def inner(*a, **k):
            with record_function(label):
                return fn(*a, **k)

        setattr(obj, name, inner)

    wrap(model.backbone, 'forward', 'phase/online backbone')
    wrap(model.neck, 'forward', 'phase/online FPN')
    wrap(model, 'forward_momentum', 'phase/momentum backbone+FPN')
    wrap(model, 'update_momentum_encoder', 'phase/EMA update')
    wrap(model, 'image_contrast_loss', 'phase/image MoCo term')
    wrap(model.region_neck, 'forward', 'phase/online region neck')
    wrap(
        model.momentum_module('region_neck'), 'forward',
        'phase/momentum region neck (jittered keys)')
    wrap(model.box_jitter, 'forward', 'phase/box jitter')
    wrap(model.loss_region, 'forward', 'phase/region InfoNCE')
    wrap(model.loss_intra, 'forward', 'phase/intra-image loss')
    del ccop_mod
    activities = [ProfilerActivity.CPU]
    if args.device == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        with record_function('phase/backward+optim (whole step)'):
            trainer.step()
    for (obj, name), fn in wrapped.items():
        setattr(obj, name, fn)
    events = prof.key_averages()
    total = max(e.cpu_time_total for e in events
                if e.key == 'phase/backward+optim (whole step)')
    print('\nCCOP step breakdown (forward phases; the rest is backward + '
          'optimizer):')
    for e in sorted(events, key=lambda e: -e.cpu_time_total):
        if e.key.startswith('phase/'):
            print(f'  {e.key[6:]:<45} {e.cpu_time_total / 1e3:9.1f} ms '
                  f'({100 * e.cpu_time_total / total:5.1f}%)')
    print('\nTop operators (self CPU time):')
    print(events.table(sort_by='self_cpu_time_total', row_limit=15))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--depth', type=int, default=18)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--size', type=int, default=96)
    parser.add_argument(
        '--regions',
        type=int,
        default=20,
        help='boxes per image (CCOP keeps up to 100)')
    parser.add_argument(
        '--queue',
        type=int,
        default=65536,
        help='image and region queue length (both: 65536)')
    parser.add_argument(
        '--progress',
        type=float,
        default=0.5,
        help='curriculum progress of the box jitter')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument(
        '--rounds',
        type=int,
        default=3,
        help='timed ABBA rounds (2 steps of each per round)')
    parser.add_argument('--mem-steps', type=int, default=2)
    parser.add_argument(
        '--threads', type=int, default=2, help='torch CPU threads')
    parser.add_argument('--no-memory', action='store_true')
    parser.add_argument('--profile', action='store_true')
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--mem-only', choices=['ccop', 'mocov2'], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    argv = list(argv if argv is not None else sys.argv[1:])
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.mem_only:  # child process: one model, JSON on the last line
        print(json.dumps(measure_memory(args.mem_only, args)))
        return
    device = torch.device(args.device)
    setting = (f'R{args.depth}, batch {args.batch}, {args.size} px, '
               f'{args.regions} regions/img, queue {args.queue}, '
               f'curriculum progress {args.progress}, {args.device}, '
               f'{torch.get_num_threads()} torch threads')
    print(f'setting: {setting}', flush=True)

    trainers = dict(
        mocov2=Trainer('mocov2', args, device),
        ccop=Trainer('ccop', args, device))
    for _ in range(args.warmup):
        for t in trainers.values():
            t.step()
    times = dict(mocov2=[], ccop=[])
    ratios = []
    for _ in range(args.rounds):  # A B B A: cancels a linear load drift
        a1 = trainers['mocov2'].step()
        b1 = trainers['ccop'].step()
        b2 = trainers['ccop'].step()
        a2 = trainers['mocov2'].step()
        times['mocov2'] += [a1, a2]
        times['ccop'] += [b1, b2]
        ratios.append((b1 + b2) / (a1 + a2))
    m = statistics.median(times['mocov2'])
    c = statistics.median(times['ccop'])
    print(f'timing: {args.warmup} warm-up steps each, then {args.rounds} '
          'interleaved ABBA rounds')
    print(f'mocov2 step: median {m * 1e3:.0f} ms '
          f'(min {min(times["mocov2"]) * 1e3:.0f})   '
          f'ccop step: median {c * 1e3:.0f} ms '
          f'(min {min(times["ccop"]) * 1e3:.0f})')
    print(
        f'step time ratio ccop/mocov2: median of per-round ratios '
        f'{statistics.median(ratios):.2f}x (rounds: '
        f'{", ".join(f"{r:.2f}" for r in ratios)}; ratio of medians '
        f'{c / m:.2f}x; target <= 1.3x)',
        flush=True)
    if args.profile:
        profile_ccop(trainers['ccop'], args)
    del trainers

    if args.no_memory:
        return
    res = {}
    for kind in ('mocov2', 'ccop'):
        # a fresh process per model: clean peak-memory counters
        cmd = [sys.executable,
               osp.abspath(__file__), '--mem-only', kind
               ] + [a for a in argv if a != '--profile']
        out = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            sys.exit(f'benchmark_ccop: {kind} failed:\n{out.stderr[-3000:]}')
        res[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    m, c = res['mocov2'], res['ccop']
    print(
        f'memory ({m["kind"]}, {args.mem_steps} steps in a fresh process '
        f'each): mocov2 peak {m["peak_mib"]:.0f} MiB, ccop peak '
        f'{c["peak_mib"]:.0f} MiB, ratio {c["peak_mib"] / m["peak_mib"]:.2f}x'
        f'; above the built model: mocov2 {m["step_mib"]:.0f} MiB, ccop '
        f'{c["step_mib"]:.0f} MiB, ratio '
        f'{c["step_mib"] / max(m["step_mib"], 1e-6):.2f}x')


if __name__ == '__main__':
    main()

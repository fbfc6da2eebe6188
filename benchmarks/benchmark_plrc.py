"""PLRC step time and peak memory vs MoCo v2, and the point-loss cost vs P.

The PLRC model is built from a config (``--config``, default the paper's
``configs/mmregion/plrc_r50_coco.py``; SyncBN becomes BN for one process).
The MoCo v2 baseline is mmpretrain's ``MoCo`` with the same backbone, queue
length and temperature and MoCo v2's neck (the config's ``img_neck``, or a
pooled MLP of ``point_neck``'s sizes when the PLRC image embedding is the
mean of the point projector). Both see the same fake batch (``--batch``
images, ``num_views`` ``--size`` px views of a 4x4-grid-region image, crops
overlapping as in training; MoCo v2 uses the first two) and run in this one
process; a step
is forward + backward + SGD step. The steps of the two models are
interleaved (alternating which goes first) so that load on a shared machine
hits both alike, and the medians after ``--warmup`` steps are compared.

Prints:

- ``plrc/mocov2`` step-time ratio (target <= 1.3x);
- the peak-memory ratio: CUDA ``max_memory_allocated`` on GPU; on CPU the
  growth of the peak RSS (``ru_maxrss``) over two training steps, measured
  in a fresh subprocess per model (``--mem-only``);
- for P = 16, 64, 256 points per region: the time of the point-contrast loss
  alone (forward + backward on random embeddings, ``2*B*K*P`` points) and of
  the full PLRC step.

Examples::

    # R50 / 224 px, CPU with 2 threads (the backbone dominates, as in the
    # real run)
    python benchmarks/benchmark_plrc.py --batch 4 --threads 2
    # the toy setting
    python benchmarks/benchmark_plrc.py \
        --config configs/mmregion/plrc_r18_toy.py --batch 4 --threads 2
    # GPU, paper setting
    python benchmarks/benchmark_plrc.py --device cuda --batch 32 --iters 20
"""
import argparse
import json
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        '--config',
        default=osp.join(ROOT, 'configs', 'mmregion', 'plrc_r50_coco.py'))
    p.add_argument('--device', default='cpu')
    p.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch CPU threads (default: torch default)')
    p.add_argument('--batch', type=int, default=4)
    p.add_argument(
        '--size',
        type=int,
        default=None,
        help='view size (default: the config\'s crop scale)')
    p.add_argument(
        '--regions',
        type=int,
        default=16,
        help='grid regions per image (4x4 = 16)')
    p.add_argument(
        '--points',
        type=int,
        default=None,
        help='P for the ratio (default: the config\'s)')
    p.add_argument(
        '--symmetric', action='store_true', help='PLRC with symmetric=True')
    p.add_argument('--iters', type=int, default=5)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--point-sweep', type=int, nargs='*', default=[16, 64, 256])
    p.add_argument('--no-memory', action='store_true')
    p.add_argument(
        '--mem-only',
        choices=['mocov2', 'plrc'],
        default=None,
        help=argparse.SUPPRESS)
    return p.parse_args(argv)


def plrc_model_cfg(args, points=None):
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    model = cfg.model.to_dict()
    model['backbone']['norm_cfg'] = dict(type='BN')
    model['symmetric'] = args.symmetric
    if points is not None:
        model['point_sampler']['num_points'] = points
    size = args.size
    if size is None:
        crop = [
            t for t in cfg.view_pipeline
            if t['type'] == 'RegionRandomResizedCrop'
        ][0]
        size = crop['scale']
    return model, size


def mocov2_cfg(plrc):
    if plrc.get('img_neck') is not None:
        neck = dict(plrc['img_neck'])
    else:  # PLRC's image embedding is the mean of the point projector
        pn = plrc['point_neck']
        neck = dict(
            type='mmpretrain.MoCoV2Neck',
            in_channels=pn['in_channels'],
            hid_channels=pn.get('hid_channels', 2048),
            out_channels=pn.get('out_channels', 128),
            with_avg_pool=True)
    return dict(
        type='mmpretrain.MoCo',
        data_preprocessor=plrc.get('data_preprocessor'),
        queue_len=plrc.get('img_queue_len', 65536),
        feat_dim=plrc.get('img_feat_dim', 128),
        momentum=plrc.get('momentum', 0.001),
        backbone=plrc['backbone'],
        neck=neck,
        head=dict(
            type='mmpretrain.ContrastiveHead',
            loss=dict(type='mmpretrain.CrossEntropyLoss'),
            temperature=plrc.get('loss_img', {}).get('temperature', 0.2)))


def build(kind, args, points=None):
    from mmregion.registry import MODELS
    plrc, size = plrc_model_cfg(args, points)
    cfg = plrc if kind == 'plrc' else mocov2_cfg(plrc)
    if cfg.get('data_preprocessor') is None:
        cfg['data_preprocessor'] = dict(
            type='mmpretrain.SelfSupDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True)
    model = MODELS.build(cfg).to(args.device).train()
    from mmengine.optim import OptimWrapper
    ow = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9))
    return model, ow, size


def fake_batch(batch, size, regions, seed=0, views=2):
    """``views`` overlapping random crops (with flips) of an image 1.5x the
    view size holding a grid of ``regions`` regions, as PackRegionInputs
    makes (a region is kept when it is in the first two views)."""
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    n = max(int(round(regions**0.5)), 1)
    extent = 1.5 * size
    xs = torch.arange(n + 1).float() * extent / n
    x1, y1 = torch.meshgrid(xs[:-1], xs[:-1], indexing='xy')
    x2, y2 = torch.meshgrid(xs[1:], xs[1:], indexing='xy')
    grid = torch.stack([x1, y1, x2, y2], -1).view(-1, 4)
    samples = []
    for _ in range(batch):
        affs, vboxes = [], []
        for _ in range(views):
            side = (0.6 + 0.4 * float(torch.rand(1, generator=g))) * extent
            x0 = float(torch.rand(1, generator=g)) * (extent - side)
            y0 = float(torch.rand(1, generator=g)) * (extent - side)
            s = size / side
            aff = [s, -s * x0, s, -s * y0]
            if float(torch.rand(1, generator=g)) < 0.5:
                aff = [-s, size + s * x0, s, -s * y0]
            a = torch.tensor(aff)
            bx = torch.stack([
                a[0] * grid[:, 0] + a[1], a[2] * grid[:, 1] + a[3],
                a[0] * grid[:, 2] + a[1], a[2] * grid[:, 3] + a[3]
            ], -1)
            bx = torch.stack([
                torch.minimum(bx[:, 0], bx[:, 2]), bx[:, 1],
                torch.maximum(bx[:, 0], bx[:, 2]), bx[:, 3]
            ], -1).clamp(0, size)
            affs.append(a)
            vboxes.append(bx)
        boxes = torch.stack(vboxes)
        keep = ((boxes[:2, :, 2] - boxes[:2, :, 0] > 1) &
                (boxes[:2, :, 3] - boxes[:2, :, 1] > 1)).all(0)
        ds = DataSample()
        ds.set_field(boxes[:, keep], 'boxes')
        ds.set_field(torch.stack(affs), 'view_affine')
        # the original image size (PLRC's distillation pairs, issue 24)
        ds.set_metainfo(dict(ori_shape=(round(extent), round(extent))))
        samples.append(ds)
    inputs = [
        torch.randint(
            0, 255, (batch, 3, size, size), dtype=torch.uint8, generator=g)
        for _ in range(views)
    ]
    return dict(inputs=inputs, data_samples=samples)


def _sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed_step(model, ow, data, device):
    _sync(device)
    t0 = time.perf_counter()
    model.train_step(data, ow)
    _sync(device)
    return time.perf_counter() - t0


def interleaved(models, data, args):
    """Median step time of each ``(model, optim_wrapper)``, steps
    interleaved and the order alternated every round."""
    times = [[] for _ in models]
    for i in range(args.warmup + args.iters):
        order = list(range(len(models)))
        if i % 2:
            order.reverse()
        for j in order:
            t = timed_step(*models[j], data, args.device)
            if i >= args.warmup:
                times[j].append(t)
    return [statistics.median(t) for t in times]


def time_point_loss(args, batch, regions, points):
    from mmregion.models.losses import PointInfoNCELoss
    loss_fn = PointInfoNCELoss()
    N = batch * regions * 2 * points
    z = torch.randn(N, 128, device=args.device, requires_grad=True)
    labels = torch.arange(
        batch * regions, device=args.device).repeat_interleave(2 * points)
    valid = torch.ones(N, dtype=torch.bool, device=args.device)
    ts = []
    for i in range(args.warmup + args.iters):
        _sync(args.device)
        t0 = time.perf_counter()
        loss_fn(z, labels, valid).backward()
        _sync(args.device)
        if i >= args.warmup:
            ts.append(time.perf_counter() - t0)
    return statistics.median(ts), N


def measure_memory(kind, args):
    """Peak memory of two training steps of one model (this process)."""
    model, ow, size = build(kind, args, args.points)
    views = plrc_model_cfg(args)[0].get('num_views', 3)  # both models alike
    data = fake_batch(args.batch, size, args.regions, views=views)
    if args.device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        for _ in range(2):
            model.train_step(data, ow)
        torch.cuda.synchronize()
        return dict(
            peak_mb=(torch.cuda.max_memory_allocated() - base) / 2**20,
            kind='cuda max_memory_allocated growth')
    # reset the peak RSS (VmHWM) to the current RSS (Linux >= 4.0); else
    # fall back to the growth of ru_maxrss (0 if below an earlier peak)
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        rss0, kind = _status_kb('VmRSS'), 'peak RSS growth (VmHWM)'
    except OSError:
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kind = 'ru_maxrss growth'
    for _ in range(2):
        model.train_step(data, ow)
    if kind.endswith('(VmHWM)'):
        rss1 = _status_kb('VmHWM')
    else:
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return dict(peak_mb=(rss1 - rss0) / 1024., kind=kind)


def _status_kb(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    raise OSError(f'{key} not in /proc/self/status')


def memory_in_subprocess(kind, argv):
    cmd = [sys.executable, osp.abspath(__file__), *argv, '--mem-only', kind]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f'memory run of {kind} failed:\n'
                           f'{out.stderr[-2000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def setup(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from mmregion.utils import register_all_modules
    register_all_modules(init_default_scope=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    setup(args)
    if args.mem_only:
        print(json.dumps(measure_memory(args.mem_only, args)))
        return
    moco = build('mocov2', args)
    plrc = build('plrc', args, args.points)
    size = plrc[2]
    m = plrc[0]
    data = fake_batch(args.batch, size, args.regions, views=m.num_views)
    print(f'setting: {osp.basename(args.config)}, '
          f'{type(m.backbone).__name__}-{m.backbone.depth}, batch '
          f'{args.batch}, {size}px, {args.regions} grid regions/img, '
          f'P={m.point_sampler.num_points}, distill grid {m.distill_size} '
          f'(num_distill_points={m.num_distill_points}), '
          f'{m.dino_head.num_prototypes} prototypes, symmetric='
          f'{m.symmetric}, {m.num_views} views, {args.device}, '
          f'{torch.get_num_threads()} threads, '
          f'{args.iters} interleaved steps (median)')
    t_moco, t_plrc = interleaved([moco[:2], plrc[:2]], data, args)
    print(f'mocov2 step {t_moco * 1e3:.1f} ms | plrc step '
          f'{t_plrc * 1e3:.1f} ms | plrc/mocov2 = {t_plrc / t_moco:.2f}x '
          '(target <= 1.3x)')
    if not args.no_memory:
        mem = {k: memory_in_subprocess(k, argv) for k in ('mocov2', 'plrc')}
        print(
            f'peak memory ({mem["plrc"]["kind"]}): mocov2 '
            f'{mem["mocov2"]["peak_mb"]:.0f} MB | plrc '
            f'{mem["plrc"]["peak_mb"]:.0f} MB | plrc/mocov2 = '
            f'{mem["plrc"]["peak_mb"] / max(mem["mocov2"]["peak_mb"], 1):.2f}x'
        )
    del plrc
    for p in args.point_sweep:
        t_loss, n = time_point_loss(args, args.batch, args.regions, p)
        plrc_p = build('plrc', args, p)
        t_moco_p, t_step = interleaved([moco[:2], plrc_p[:2]], data, args)
        print(f'P={p:4d}: {n} points in the SupCon set, point loss fwd+bwd '
              f'{t_loss * 1e3:.1f} ms, plrc step {t_step * 1e3:.1f} ms '
              f'({t_step / t_moco_p:.2f}x mocov2)')
        del plrc_p


if __name__ == '__main__':
    main()

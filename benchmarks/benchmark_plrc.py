"""PLRC step time and peak memory against MoCo v2, in one process.

PLRC is built from its config (``--config``, default the release-faithful
``configs/mmregion/plrc_r50_coco.py``: three views, one region per image,
P = 16 points, the 56x56 distillation grid; SyncBN becomes BN for one
process). The MoCo v2 baseline is mmpretrain's ``MoCo`` with the same
backbone, queue length and temperature and MoCo v2's neck (the config's
``img_neck``, or a pooled MLP of ``point_neck``'s sizes when the PLRC image
embedding is the mean of the point projector). Both see the same fake batch
(``--batch`` images, ``num_views`` ``--size`` px views of a 4x4-grid-region
image, crops overlapping as in training; MoCo v2 uses the first two). A step
is ``model.train_step`` (data preprocessor, loss, backward, SGD).

Timing: ``bench_utils.interleaved`` ABBA rounds, median of the per-round
ratios ``plrc/mocov2`` (target <= 1.3x). Peak memory: two steps of each model
in a fresh subprocess. ``--phases``: one step of each by phase.
``--point-sweep P1 P2 ...``: the point-contrast loss alone (forward +
backward on random embeddings) at P points per region.

Examples::

    # the table's setting (R50 / 224 px, CPU with 2 threads)
    python benchmarks/benchmark_plrc.py --batch 4 --threads 2 --phases
    # the toy setting
    python benchmarks/benchmark_plrc.py \
        --config configs/mmregion/plrc_r18_toy.py --batch 2 --size 64 \
        --rounds 1 --warmup 0 --no-memory
    # GPU, paper setting
    python benchmarks/benchmark_plrc.py --device cuda --batch 32 --rounds 10
"""
import argparse
import json
import os.path as osp
import statistics
import sys

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import bench_utils as bu  # noqa: E402

ROOT = bu.ROOT


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        '--config',
        default=osp.join(ROOT, 'configs', 'mmregion', 'plrc_r50_coco.py'))
    p.add_argument('--device', default='cpu')
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
        '--points', type=int, default=None, help='P (default: the config\'s)')
    p.add_argument(
        '--symmetric', action='store_true', help='PLRC with symmetric=True')
    p.add_argument(
        '--point-sweep',
        type=int,
        nargs='*',
        default=[],
        help='time the point loss alone at these P')
    bu.add_common_args(p, rounds=3, warmup=1)
    return p.parse_args(argv)


def plrc_model_cfg(args, points=None):
    """(PLRC model config dict, view size) at this setting."""
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    model = cfg.model.to_dict()
    model['backbone']['norm_cfg'] = dict(type='BN')
    if getattr(args, 'symmetric', False):
        model['symmetric'] = True
        model['num_views'] = 2
    if points is not None:
        model['point_sampler']['num_points'] = points
    size = getattr(args, 'size', None)
    if size is None:
        crop = [
            t for t in cfg.view_pipeline
            if t['type'] == 'RegionRandomResizedCrop'
        ][0]
        size = crop['scale']
    return model, size


def mocov2_cfg(plrc):
    """mmpretrain's MoCo v2 with PLRC's backbone, queue and temperature."""
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
            temperature=plrc['head'].get('loss_img',
                                         {}).get('temperature', 0.2)))


def build(kind, args, points=None):
    """``(model, OptimWrapper, view size)`` of ``'plrc'`` or ``'mocov2'``;
    ``args`` needs ``config`` and ``device`` (``symmetric``, ``size``
    optional)."""
    from mmengine.optim import OptimWrapper

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


def time_point_loss(args, loss_cfg, batch, regions, points):
    """Median seconds of the point loss (forward + backward) over
    ``2 * batch * regions * points`` random embeddings, and that number."""
    from mmregion.registry import MODELS
    loss_fn = MODELS.build(loss_cfg)
    n = batch * regions * 2 * points
    z = torch.randn(n, 128, device=args.device, requires_grad=True)
    labels = torch.arange(
        batch * regions, device=args.device).repeat_interleave(2 * points)
    valid = torch.ones(n, dtype=torch.bool, device=args.device)
    ts = []
    for i in range(args.warmup + max(args.rounds, 1)):
        z.grad = None
        t = bu.timed(lambda: loss_fn(z, labels, valid).backward(), args.device)
        if i >= args.warmup:
            ts.append(t)
    return statistics.median(ts), n


class Stepper:
    """A model, its optimizer wrapper and the batch; ``step()`` is one
    ``train_step``."""

    def __init__(self, kind, args, points, data):
        torch.manual_seed(0)
        self.model, self.ow, _ = build(kind, args, points)
        self.data = data

    def step(self):
        self.model.train_step(self.data, self.ow)

    def loss(self):
        d = self.model.data_preprocessor(self.data, True)
        return self.model.loss(d['inputs'], d['data_samples'])


def setup(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from mmregion.utils import register_all_modules
    register_all_modules(init_default_scope=True)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    setup(args)
    cfg, size = plrc_model_cfg(args, args.points)
    views = cfg.get('num_views', 3)
    data = fake_batch(args.batch, size, args.regions, views=views)
    if args.mem_only:
        s = Stepper(args.mem_only, args, args.points, data)
        print(json.dumps(bu.step_memory(s.step, 2, args.device)))
        return None
    dino, head = cfg['dino_neck'], cfg['head']
    setting = (
        f'{osp.basename(args.config)}, {cfg["backbone"]["type"]}-'
        f'{cfg["backbone"]["depth"]}, batch {args.batch}, {size} px, '
        f'{views} views, {args.regions} grid regions/img, regions_per_image='
        f'{cfg.get("regions_per_image")}, P='
        f'{cfg["point_sampler"].get("num_points")}, distill grid '
        f'{head.get("distill_size")} (num_distill_points='
        f'{head.get("num_distill_points")}), {dino.get("num_prototypes")} '
        f'prototypes, symmetric={cfg.get("symmetric", False)}, '
        f'{args.device}, {torch.get_num_threads()} torch threads')
    print(f'setting: {setting}', flush=True)
    steppers = dict(
        mocov2=Stepper('mocov2', args, args.points, data),
        plrc=Stepper('plrc', args, args.points, data))
    res = bu.interleaved({
        k: s.step
        for k, s in steppers.items()
    }, 'mocov2', args.rounds, args.warmup, args.device)
    bu.print_timing(res, '<= 1.3x')
    res.update(
        name='plrc',
        title=f'PLRC ({views} views) / MoCo v2',
        setting=setting,
        sizes=dict(
            config=osp.relpath(args.config, ROOT),
            batch=args.batch,
            size=size,
            views=views,
            regions=args.regions,
            points=cfg['point_sampler'].get('num_points')),
        baseline='mocov2',
        target='<= 1.3x')
    if args.phases:
        res['phases'] = {
            k: bu.phase_profile(s.model, s.loss, s.ow.optimizer)
            for k, s in steppers.items()
        }
        bu.print_phases(res['phases'])
    del steppers
    if not args.no_memory:
        res['memory'] = bu.memory_in_subprocesses(__file__, argv,
                                                  ('mocov2', 'plrc'))
        bu.print_memory(res['memory'])
    sweep = {}
    for p in args.point_sweep:
        t, n = time_point_loss(args, head['loss_point'], args.batch,
                               args.regions, p)
        sweep[str(p)] = dict(points=n, ms=t * 1e3)
        print(f'P={p:4d}: {n} points in the SupCon set, point loss fwd+bwd '
              f'{t * 1e3:.1f} ms')
    if sweep:
        res['extra'] = dict(point_loss_sweep=sweep)
    return bu.finish(res, args)


if __name__ == '__main__':
    main()

"""CCOP training-step cost against mmpretrain's MoCo v2, in one process.

CCOP is built from its config (``--config``; default ``ccop_r50_coco.py``
for ``--depth 50``, else ``ccop_r18_toy.py``) with the backbone depth, queue
length and curriculum progress given here. The MoCo v2 baseline is
``mmpretrain.MoCo`` with the same backbone (C5 only), queue length, feature
size and MoCo v2's neck of the config's ``img_neck`` sizes. A step is
``model.loss`` + backward + SGD step on one fixed random batch (two views,
``--regions`` boxes per image for CCOP).

Timing: both models live in this process; after ``--warmup`` steps each,
``--rounds`` ABBA rounds (``bench_utils.interleaved``); the ratio is the
median of the per-round ratios ``ccop/mocov2`` (target <= 1.3x).

Peak memory: each model runs two steps in a fresh subprocess (CUDA
``max_memory_allocated`` on GPU, the sampled process RSS on CPU).
``--phases`` times one step of each model by phase (forward of every
top-level submodule, backward, optimizer).

Usage::

    # the table's setting (R50, 224 px, 2 CPU threads)
    python benchmarks/benchmark_ccop.py --depth 50 --batch 4 --size 224 \
        --regions 8 --threads 2 --phases
    # smoke run (R18, 64 px)
    python benchmarks/benchmark_ccop.py --depth 18 --batch 2 --size 64 \
        --regions 2 --queue 64 --rounds 1 --warmup 0 --no-memory
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import bench_utils as bu  # noqa: E402

ROOT = bu.ROOT
CFG_DIR = osp.join(ROOT, 'configs', 'mmregion')


def ccop_config(args) -> dict:
    """CCOP's model config at this setting (SyncBN -> BN, one process)."""
    from mmengine.config import Config
    path = getattr(args, 'config', None) or osp.join(
        CFG_DIR, 'ccop_r50_coco.py' if args.depth >= 50 else 'ccop_r18_toy.py')
    model = Config.fromfile(path).model.to_dict()
    model['backbone']['depth'] = args.depth
    model['backbone']['norm_cfg'] = dict(type='BN')
    model['img_queue_len'] = model['region_queue_len'] = args.queue
    return model


def mocov2_config(ccop: dict) -> dict:
    """MoCo v2 (mmpretrain) with CCOP's backbone, queue and sizes."""
    backbone = dict(ccop['backbone'], out_indices=(3, ))
    img_neck = ccop['img_neck']
    return dict(
        type='mmpretrain.MoCo',
        queue_len=ccop['img_queue_len'],
        feat_dim=ccop['feat_dim'],
        momentum=ccop.get('momentum', 0.001),
        backbone=backbone,
        neck=dict(
            type='mmpretrain.MoCoV2Neck',
            in_channels=img_neck['in_channels'],
            hid_channels=img_neck['hid_channels'],
            out_channels=ccop['feat_dim'],
            with_avg_pool=True),
        head=dict(
            type='mmpretrain.ContrastiveHead',
            loss=dict(type='mmpretrain.CrossEntropyLoss'),
            temperature=ccop['head'].get('loss_img',
                                         {}).get('temperature', 0.2)),
        data_preprocessor=dict(type='mmpretrain.SelfSupDataPreprocessor'))


def build(kind, args):
    """Build ``'mocov2'`` (mmpretrain.MoCo) or ``'ccop'`` at the setting.

    ``args`` needs ``depth``, ``queue`` and ``progress`` (and optionally
    ``config``).
    """
    from mmengine.registry import DefaultScope

    from mmregion.registry import MODELS
    if DefaultScope.get_current_instance() is None:
        DefaultScope.get_instance('benchmark_ccop', scope_name='mmregion')
    cfg = ccop_config(args)
    model = MODELS.build(cfg if kind == 'ccop' else mocov2_config(cfg))
    if kind == 'ccop':
        # the interface of CCOPCurriculumHook (its ``jitter_attr``)
        jitter = getattr(model, 'box_jitter', None)
        if not hasattr(jitter, 'set_progress'):
            raise RuntimeError('benchmark_ccop: CCOP has no '
                               '`box_jitter.set_progress` (the interface '
                               'CCOPCurriculumHook drives); update build().')
        jitter.set_progress(args.progress)
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
    """One model, its SGD optimizer and a fixed batch; ``step()`` runs one
    training step (``model.loss`` + backward + SGD)."""

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

    def loss(self):
        return self.model.loss(self.inputs, self.samples)

    def step(self):
        self.optim.zero_grad()
        sum(self.loss().values()).backward()
        self.optim.step()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', help='CCOP config (default by --depth)')
    parser.add_argument('--depth', type=int, default=50)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument(
        '--regions',
        type=int,
        default=8,
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
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    bu.add_common_args(parser, rounds=3, warmup=1)
    return parser.parse_args(argv)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.mem_only:  # child process: one model, JSON on the last line
        trainer = Trainer(args.mem_only, args, device)
        print(bu.json.dumps(bu.step_memory(trainer.step, 2, device)))
        return None
    setting = (f'R{args.depth}, batch {args.batch}, {args.size} px, '
               f'{args.regions} regions/img, queue {args.queue}, '
               f'curriculum progress {args.progress}, {args.device}, '
               f'{torch.get_num_threads()} torch threads')
    print(f'setting: {setting}', flush=True)
    trainers = dict(
        mocov2=Trainer('mocov2', args, device),
        ccop=Trainer('ccop', args, device))
    res = bu.interleaved({
        k: t.step
        for k, t in trainers.items()
    }, 'mocov2', args.rounds, args.warmup, device)
    bu.print_timing(res, '<= 1.3x')
    res.update(
        name='ccop',
        title='CCOP / MoCo v2',
        setting=setting,
        sizes=dict(
            depth=args.depth,
            batch=args.batch,
            size=args.size,
            regions=args.regions,
            queue=args.queue,
            progress=args.progress),
        baseline='mocov2',
        target='<= 1.3x')
    if args.phases:
        res['phases'] = {
            k: bu.phase_profile(t.model, t.loss, t.optim)
            for k, t in trainers.items()
        }
        bu.print_phases(res['phases'])
    del trainers
    if not args.no_memory:
        res['memory'] = bu.memory_in_subprocesses(__file__, argv,
                                                  ('mocov2', 'ccop'))
        bu.print_memory(res['memory'])
    return bu.finish(res, args)


if __name__ == '__main__':
    main()

"""ProSeCo and DETReg step cost against supervised Deformable DETR.

Three models in one process, each built from its config: ProSeCo
(``--config``), DETReg (``--detreg-config``; ProSeCo's class with a
``DETRegHead``: localisation + object embedding, no contrast) and the
supervised detector of ``--config``'s ``model.detector`` (``detector.loss``
on the same boxes of the student view). A step is ``model.loss`` + backward
+ AdamW step on one fixed random batch (two views, ``--num-boxes``
selective-search-like boxes per image). Timing: ``bench_utils.interleaved``
ABBA rounds, ratios ``proseco/supervised`` (target <= 1.6x) and
``detreg/supervised``. Also printed: LocSCE forward + backward alone at
``N_b x N`` proposals (default 8 x 300: 2400 x 2400 similarity matrices) and
at the step's own size, as a share of a ProSeCo step.

Backbones with a ``Pretrained`` ``init_cfg`` (SwAV in the R50 configs) are
not loaded (no download): random weights cost the same.

Examples::

    # the table's setting (R50, 320 px, batch 2, CPU)
    python benchmarks/benchmark_proseco.py --batch 2 --img-size 320 --phases
    # smoke run (toy ProSeCo, R50 DETReg at 64 px)
    python benchmarks/benchmark_proseco.py --config \
        configs/mmregion/proseco_deformable-detr_r18_toy.py --batch 1 \
        --img-size 64 --num-boxes 3 --rounds 1 --warmup 0 --no-memory \
        --locsce-nb 2 --locsce-n 20
    python benchmarks/benchmark_proseco.py --device cuda --batch 8 \
        --img-size 512
"""
import argparse
import copy
import json
import os.path as osp
import statistics
import sys

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import bench_utils as bu  # noqa: E402

REPO = bu.ROOT
CFG_DIR = osp.join(REPO, 'configs', 'mmregion')
KINDS = ('supervised', 'proseco', 'detreg')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        '--config',
        default=osp.join(CFG_DIR, 'proseco_deformable-detr_r50_coco.py'))
    p.add_argument(
        '--detreg-config',
        default=osp.join(CFG_DIR, 'detreg_deformable-detr_r50_coco.py'),
        help="DETReg's config ('none': skip DETReg)")
    p.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--img-size', type=int, default=320)
    p.add_argument(
        '--num-boxes',
        type=int,
        default=30,
        help='selective-search boxes per image (DETReg: 30)')
    p.add_argument('--locsce-nb', type=int, default=8)
    p.add_argument('--locsce-n', type=int, default=300)
    p.add_argument('--locsce-dim', type=int, default=256)
    bu.add_common_args(p, rounds=3, warmup=1)
    return p.parse_args(argv)


def fake_batch(batch, size, num_boxes, device, views=2, patch_size=None):
    """``views`` (B, 3, S, S) views and B samples with (views, K, 4) boxes;
    with ``patch_size``, each sample also has DETReg's ``patches`` (K, 3,
    P, P) uint8 (what ``BoxPatches`` makes for a ``DETRegHead`` with
    ``target='patch'``)."""
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(0)
    inputs = [
        torch.randn(batch, 3, size, size, generator=gen).to(device)
        for _ in range(views)
    ]
    samples = []
    for _ in range(batch):
        xy = torch.rand(num_boxes, 2, generator=gen) * size * 0.6
        wh = torch.rand(num_boxes, 2, generator=gen) * size * 0.4 + 4
        b = torch.cat([xy, xy + wh], 1).clamp(max=size).to(device)
        s = DataSample()
        s.set_field(torch.stack([b] * views), 'boxes')
        s.set_metainfo(dict(img_shape=[(size, size)] * views))
        if patch_size:
            s.set_field(
                torch.randint(
                    0,
                    256, (num_boxes, 3, patch_size, patch_size),
                    generator=gen,
                    dtype=torch.uint8).to(device), 'patches')
        samples.append(s)
    return inputs, samples


def det_samples(samples, view):
    """mmdet ``DetDataSample`` of one view: the boxes as class-0 objects."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    out = []
    for s in samples:
        boxes = s.boxes[view]
        h, w = s.img_shape[view]
        d = DetDataSample(
            metainfo=dict(
                img_shape=(h, w),
                ori_shape=(h, w),
                pad_shape=(h, w),
                batch_input_shape=(h, w),
                scale_factor=(1., 1.)))
        d.gt_instances = InstanceData(
            bboxes=boxes,
            labels=torch.zeros(
                len(boxes), dtype=torch.long, device=boxes.device))
        out.append(d)
    return out


def _has_pretrained(cfg) -> bool:
    if isinstance(cfg, dict):
        if cfg.get('type') == 'Pretrained':
            return True
        return any(_has_pretrained(v) for v in cfg.values())
    if isinstance(cfg, (list, tuple)):
        return any(_has_pretrained(v) for v in cfg)
    return False


def _build(model_cfg, device):
    from mmregion.registry import MODELS
    model = MODELS.build(copy.deepcopy(model_cfg)).to(device)
    if not _has_pretrained(model_cfg):  # no download
        model.init_weights()
    return model.train()


def build_models(config, device):
    """ProSeCo of ``config`` and the supervised detector of its
    ``model.detector``, both in train mode."""
    from mmengine.config import Config
    cfg = Config.fromfile(config).model.to_dict()
    return _build(cfg, device), _build(cfg['detector'], device)


class Stepper:
    """``model.loss`` (``loss_fn``) + backward + AdamW step."""

    def __init__(self, model, loss_fn):
        self.model = model
        self.loss = loss_fn
        self.optim = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step(self):
        losses = self.loss()
        self.optim.zero_grad()
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        self.optim.step()


def steppers(args, kinds, device):
    """:class:`Stepper` of each of ``kinds`` on one fake batch."""
    from mmengine.config import Config
    torch.manual_seed(0)
    inputs, samples = fake_batch(args.batch, args.img_size, args.num_boxes,
                                 device)
    cfg = Config.fromfile(args.config).model.to_dict()
    student = cfg.get('student_view', 1)
    out = {}
    for kind in kinds:
        if kind == 'supervised':
            m = _build(cfg['detector'], device)
            x, ds = inputs[student], det_samples(samples, student)
            out[kind] = Stepper(m, lambda m=m, x=x, ds=ds: m.loss(x, ds))
        elif kind == 'proseco':
            m = _build(cfg, device)
            out[kind] = Stepper(m, lambda m=m: m.loss(inputs, samples))
        else:  # detreg: its own views and, for its 'patch' target, patches
            c = Config.fromfile(args.detreg_config).model.to_dict()
            m = _build(c, device)
            x, ds = fake_batch(
                args.batch,
                args.img_size,
                args.num_boxes,
                device,
                views=c.get('num_views', 2),
                patch_size=128 if c['head'].get('target') == 'patch' else None)
            out[kind] = Stepper(m, lambda m=m, x=x, ds=ds: m.loss(x, ds))
    return out


def time_locsce(loss_cfg, nb, n, d, args):
    """Median seconds of LocSCE forward + backward at ``nb x n`` x ``d``."""
    from mmregion.registry import MODELS
    loss_fn = MODELS.build(loss_cfg)
    dev = args.device
    s = torch.randn(nb, n, d, device=dev, requires_grad=True)
    t = torch.randn(nb, n, d, device=dev)
    xy = torch.rand(nb, n, 2, device=dev) * 0.7
    boxes = torch.cat([xy, xy + torch.rand(nb, n, 2, device=dev) * 0.3], -1)

    def step():
        s.grad = None
        loss_fn(s, t, boxes).backward()

    for _ in range(args.warmup):
        step()
    return statistics.median(
        bu.timed(step, dev) for _ in range(max(args.rounds, 1)))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from mmengine.config import Config

    from mmregion.utils import register_all_modules
    register_all_modules()
    dev = args.device
    kinds = KINDS if args.detreg_config.lower() != 'none' else KINDS[:2]
    if args.mem_only:
        s = steppers(args, [args.mem_only], dev)[args.mem_only]
        print(json.dumps(bu.step_memory(s.step, 2, dev)))
        return None
    cfg = Config.fromfile(args.config).model
    loss_cfg = cfg.head.get('loss') if cfg.head.type == 'ProSeCoHead' \
        else dict(type='LocSCELoss')
    nq = cfg.detector.num_queries
    dim = cfg.neck.out_channels
    setting = (f'{osp.basename(args.config)}' +
               (f' / {osp.basename(args.detreg_config)}' if 'detreg' in kinds
                else '') + f', {dev}, batch {args.batch}, {args.img_size} px, '
               f'{nq} queries, {args.num_boxes} boxes/img, '
               f'{torch.get_num_threads()} torch threads')
    print(f'setting: {setting}', flush=True)
    t_loc = time_locsce(loss_cfg, args.locsce_nb, args.locsce_n,
                        args.locsce_dim, args)
    print(f'LocSCE fwd+bwd, N_b={args.locsce_nb} x N={args.locsce_n} '
          f'(D={args.locsce_dim}): {t_loc * 1e3:.1f} ms')
    steps = steppers(args, kinds, dev)
    res = bu.interleaved({
        k: s.step
        for k, s in steps.items()
    }, 'supervised', args.rounds, args.warmup, dev)
    bu.print_timing(res, 'proseco <= 1.6x')
    t_loc_step = time_locsce(loss_cfg, args.batch, nq, dim, args)
    share = t_loc_step * 1e3 / res['median_ms']['proseco']
    print(f'LocSCE at the step size (N_b={args.batch} x N={nq}, D={dim}): '
          f'{t_loc_step * 1e3:.1f} ms = {100 * share:.1f}% of a ProSeCo step')
    res.update(
        name='proseco',
        title='ProSeCo, DETReg / supervised Deformable DETR',
        setting=setting,
        sizes=dict(
            config=osp.relpath(args.config, REPO),
            detreg_config=osp.relpath(args.detreg_config, REPO)
            if 'detreg' in kinds else None,
            batch=args.batch,
            img_size=args.img_size,
            num_boxes=args.num_boxes,
            queries=nq),
        baseline='supervised',
        target='proseco <= 1.6x',
        extra=dict(
            locsce_ms={
                f'{args.locsce_nb}x{args.locsce_n}x{args.locsce_dim}':
                t_loc * 1e3,
                f'{args.batch}x{nq}x{dim} (step size)': t_loc_step * 1e3
            },
            locsce_share_of_proseco_step=share))
    if args.phases:
        res['phases'] = {
            k: bu.phase_profile(s.model, s.loss, s.optim)
            for k, s in steps.items()
        }
        bu.print_phases(res['phases'])
    del steps
    if not args.no_memory:
        res['memory'] = bu.memory_in_subprocesses(__file__, argv, kinds)
        bu.print_memory(res['memory'])
    return bu.finish(res, args)


if __name__ == '__main__':
    main()

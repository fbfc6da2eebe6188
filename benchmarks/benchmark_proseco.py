"""Benchmark ProSeCo's cost against supervised Deformable DETR.

Prints, measured in this process:

1. LocSCE forward + backward time at ``N_b x N`` proposals (default 8 x 300,
   i.e. 2400 x 2400 similarity matrices) and its share of a ProSeCo step;
2. a ProSeCo training step (teacher + student forward, matching, losses,
   backward, AdamW step) versus a supervised Deformable DETR step (the same
   detector, ``detector.loss`` on the same boxes) at the same batch and image
   size. Target: ratio <= 1.6.

On CPU use a small setting (the default toy config), e.g.::

    python benchmarks/benchmark_proseco.py --batch 2 --img-size 96 \
        --locsce-nb 4 --locsce-n 100
    python benchmarks/benchmark_proseco.py --device cuda --batch 8 \
        --img-size 512 \
        --config configs/mmregion/proseco_deformable-detr_r50_coco.py
"""
import argparse
import copy
import os.path as osp
import statistics
import time

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        '--config',
        default=osp.join(
            REPO, 'configs/mmregion/proseco_deformable-detr_r18_toy.py'))
    p.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--img-size', type=int, default=96)
    p.add_argument(
        '--num-boxes',
        type=int,
        default=10,
        help='selective-search boxes per image')
    p.add_argument('--iters', type=int, default=5)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--locsce-nb', type=int, default=8)
    p.add_argument('--locsce-n', type=int, default=300)
    p.add_argument('--locsce-dim', type=int, default=256)
    return p.parse_args()


def _sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timeit(fn, device, iters, warmup):
    for _ in range(warmup):
        fn()
    _sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - t) / iters


def fake_batch(batch, size, num_boxes, device):
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(0)
    inputs = [
        torch.randn(batch, 3, size, size, generator=gen).to(device)
        for _ in range(2)
    ]
    samples = []
    for _ in range(batch):
        xy = torch.rand(num_boxes, 2, generator=gen) * size * 0.6
        wh = torch.rand(num_boxes, 2, generator=gen) * size * 0.4 + 4
        b = torch.cat([xy, xy + wh], 1).clamp(max=size).to(device)
        s = DataSample()
        s.set_field(torch.stack([b, b]), 'boxes')
        s.set_metainfo(dict(img_shape=[(size, size), (size, size)]))
        samples.append(s)
    return inputs, samples


def build_models(config, device):
    """ProSeCo of ``config`` and the supervised detector of its
    ``model.detector`` (same weights init scheme), both in train mode."""
    from mmengine.config import Config

    from mmregion.registry import MODELS
    cfg = Config.fromfile(config)
    models = []
    for model_cfg in (cfg.model, copy.deepcopy(cfg.model.detector)):
        model = MODELS.build(model_cfg).to(device)
        model.init_weights()
        models.append(model.train())
    return models


def main():
    args = parse_args()
    import mmregion  # noqa: F401
    from mmregion.models.losses.loc_sce_loss import LocSCELoss
    from mmregion.utils import register_all_modules
    register_all_modules()
    dev = args.device
    torch.manual_seed(0)

    # 1. LocSCE alone
    nb, n, d = args.locsce_nb, args.locsce_n, args.locsce_dim
    loss_fn = LocSCELoss()
    s = torch.randn(nb, n, d, device=dev, requires_grad=True)
    t = torch.randn(nb, n, d, device=dev)
    xy = torch.rand(nb, n, 2, device=dev) * 0.7
    boxes = torch.cat([xy, xy + torch.rand(nb, n, 2, device=dev) * 0.3], -1)

    def locsce_step():
        s.grad = None
        loss_fn(s, t, boxes).backward()

    t_locsce = timeit(locsce_step, dev, args.iters, args.warmup)
    print(f'LocSCE fwd+bwd, N_b={nb} x N={n} (D={d}): '
          f'{t_locsce * 1e3:.1f} ms')

    # 2. ProSeCo step vs supervised Deformable DETR step
    model, sup = build_models(args.config, dev)
    inputs, samples = fake_batch(args.batch, args.img_size, args.num_boxes,
                                 dev)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-5)

    def proseco_step():
        losses = model(inputs, samples, mode='loss')
        optim.zero_grad()
        sum(losses.values()).backward()
        optim.step()

    det_samples = model._det_samples(samples, inputs[1], 1)
    sup_optim = torch.optim.AdamW(
        [p for p in sup.parameters() if p.requires_grad], lr=1e-5)

    def supervised_step():
        losses = sup.loss(inputs[1], det_samples)
        sup_optim.zero_grad()
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        sup_optim.step()

    # interleave the two (a shared machine's load hits both alike)
    # (alternating which goes first) and compare medians: robust to spikes
    ts_sup, ts_pro = [], []
    for _ in range(args.warmup):
        supervised_step()
        proseco_step()
    for i in range(args.iters):
        pair = [(supervised_step, ts_sup), (proseco_step, ts_pro)]
        for fn, ts in (pair if i % 2 == 0 else pair[::-1]):
            ts.append(timeit(fn, dev, 1, 0))
    t_sup, t_pro = statistics.median(ts_sup), statistics.median(ts_pro)
    # LocSCE at the step's own size (N_b = batch, N = queries)
    nq = model.detector.num_queries
    dim = model.embed_head.mlp[-1].out_features
    s2 = torch.randn(args.batch, nq, dim, device=dev, requires_grad=True)
    t2 = torch.randn(args.batch, nq, dim, device=dev)
    xy2 = torch.rand(args.batch, nq, 2, device=dev) * 0.7
    b2 = torch.cat([xy2, xy2 + 0.3], -1)

    def locsce_in_step():
        s2.grad = None
        loss_fn(s2, t2, b2).backward()

    t_loc_step = timeit(locsce_in_step, dev, args.iters, args.warmup)
    print(f'config: {osp.basename(args.config)}, device {dev}, batch '
          f'{args.batch}, {args.img_size}x{args.img_size} px, {nq} queries')
    print(f'supervised Deformable DETR step: {t_sup * 1e3:.1f} ms (median of '
          f'{args.iters} interleaved steps)')
    print(f'ProSeCo step:                    {t_pro * 1e3:.1f} ms')
    print(f'ratio ProSeCo / supervised:      {t_pro / t_sup:.2f} '
          '(target <= 1.6)')
    print(f'LocSCE at the step size (N_b={args.batch} x N={nq}): '
          f'{t_loc_step * 1e3:.1f} ms = {100 * t_loc_step / t_pro:.1f}% '
          'of the ProSeCo step')


if __name__ == '__main__':
    main()

"""Check a GPU machine: mmcv's CUDA ops, then the training-step cost of
every pre-training method against its baseline, in one process.

1. Ops: RoIAlign and MultiScaleDeformableAttention on CUDA against their CPU
   results (forward and input gradients). Skipped with ``--device cpu``.
2. Steps: MoCo v2, CCOP, PLRC (R-50, 224 px, batch ``--batch``), ProSeCo and
   the supervised Deformable DETR of its detector (R-50, ``--detr-size`` px,
   batch ``--detr-batch``) on fixed fake batches; a step is forward +
   backward + optimizer step. The models are built by the benchmarks/
   scripts (``benchmark_ccop.py``, ``benchmark_plrc.py``,
   ``benchmark_proseco.py``), live in this one process and their steps are
   interleaved (the order alternates every round), first in fp32, then with
   AMP (float16 autocast + GradScaler), so a change of load hits all alike.
3. Prints a table per precision (images/s, median step time, peak memory)
   and the step-time ratios CCOP/MoCo v2, PLRC/MoCo v2 and
   ProSeCo/supervised Deformable DETR; ``--json`` also writes them.

The output format is documented in ``docs/distributed.md`` ("GPU check").
The exit status is 1 when an op check or a model step failed.

Examples::

    python tools/check_gpu.py                          # on a GPU machine
    python tools/check_gpu.py --json gpu_check.json --iters 10
    python tools/check_gpu.py --device cpu --tiny      # CPU smoke run
"""
import argparse
import contextlib
import json
import os.path as osp
import statistics
import sys
import time
import traceback
from types import SimpleNamespace

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path[:0] = [ROOT, osp.join(ROOT, 'benchmarks')]

PAIRS = (('ccop', 'mocov2'), ('plrc', 'mocov2'), ('proseco',
                                                  'deformable_detr'))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cuda')
    p.add_argument(
        '--tiny',
        action='store_true',
        help='R-18 toy configs, batch 2, 64/96 px views, 2 iterations (a '
        'smoke run, e.g. on CPU)')
    p.add_argument(
        '--batch',
        type=int,
        default=None,
        help='MoCo v2/CCOP/PLRC images per step (default 32 = '
        '256 over 8 GPUs as the papers; --tiny: 2)')
    p.add_argument(
        '--size',
        type=int,
        default=None,
        help='their view size (default 224; --tiny: 64)')
    p.add_argument(
        '--regions',
        type=int,
        default=None,
        help='CCOP boxes / PLRC grid regions per image (16)')
    p.add_argument(
        '--detr-batch',
        type=int,
        default=None,
        help='ProSeCo / Deformable DETR images per step '
        '(default 4; --tiny: 2)')
    p.add_argument(
        '--detr-size',
        type=int,
        default=None,
        help='their image size (default 512; --tiny: 96)')
    p.add_argument(
        '--iters',
        type=int,
        default=None,
        help='timed steps per model and precision (default 10; '
        '--tiny: 2)')
    p.add_argument(
        '--warmup',
        type=int,
        default=None,
        help='untimed steps first (default 3; --tiny: 1)')
    p.add_argument(
        '--amp',
        choices=['both', 'off', 'on'],
        default='both',
        help='precisions to run (AMP needs CUDA: skipped on CPU)')
    p.add_argument(
        '--models',
        nargs='+',
        default=['mocov2', 'ccop', 'plrc', 'proseco', 'deformable_detr'])
    p.add_argument(
        '--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--json', help='also write the results to this file')
    args = p.parse_args(argv)
    tiny = args.tiny
    defaults = dict(
        batch=2 if tiny else 32,
        size=64 if tiny else 224,
        regions=4 if tiny else 16,
        detr_batch=2 if tiny else 4,
        detr_size=96 if tiny else 512,
        iters=2 if tiny else 10,
        warmup=1 if tiny else 3)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


# ---------------------------------------------------------------------------
# 1. mmcv ops
def _max_diff(a, b):
    return float(
        (a.detach().cpu().float() - b.detach().cpu().float()).abs().max())


def _compare(name, fn_dev, fn_cpu, inputs, tol, device):
    """Run both on copies of ``inputs``; compare outputs and input grads
    (``tol`` is relative to the largest CPU value, at least 1)."""
    outs, grads = [], []
    for fn, dev in ((fn_dev, device), (fn_cpu, 'cpu')):
        xs = [
            x.detach().to(dev).requires_grad_(x.requires_grad)
            if torch.is_tensor(x) else x for x in inputs
        ]
        out = fn(*xs)
        g = torch.Generator().manual_seed(1)
        out.backward(torch.randn(out.shape, generator=g).to(dev))
        outs.append(out)
        grads.append(
            [x.grad for x in xs if torch.is_tensor(x) and x.requires_grad])
    fwd = _max_diff(*outs) / max(1., float(outs[1].abs().max()))
    bwd = max(
        _max_diff(a, b) / max(1., float(b.abs().max()))
        for a, b in zip(*grads))
    ok = fwd <= tol and bwd <= tol
    print(f'ops: {name:<36} max|{device}-cpu| forward {fwd:.2e}, input '
          f'grads {bwd:.2e} (tol {tol:.0e})  {"OK" if ok else "FAIL"}')
    return ok


def check_ops(device='cuda'):
    """RoIAlign and MultiScaleDeformableAttention on ``device`` vs CPU."""
    from mmcv.ops import roi_align
    from mmcv.ops.multi_scale_deform_attn import (
        MultiScaleDeformableAttnFunction, multi_scale_deformable_attn_pytorch)
    g = torch.Generator().manual_seed(0)
    ok = True
    try:
        feat = torch.randn(2, 8, 32, 32, generator=g).requires_grad_()
        xy = torch.rand(16, 2, generator=g) * 90
        wh = torch.rand(16, 2, generator=g) * 40 + 4
        rois = torch.cat(
            [torch.randint(0, 2,
                           (16, 1), generator=g).float(), xy, xy + wh], 1)
        ok &= _compare(
            'RoIAlign (7x7, scale 1/4, aligned)',
            lambda f, r: roi_align(f, r, (7, 7), 0.25, 2, 'avg', True),
            lambda f, r: roi_align(f, r, (7, 7), 0.25, 2, 'avg', True),
            [feat, rois], 1e-4, device)
    except Exception as e:  # noqa: BLE001  (report, keep checking)
        print(f'ops: RoIAlign FAIL: {type(e).__name__}: {e}')
        ok = False
    try:
        shapes = torch.tensor([[16, 16], [8, 8]])
        start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
        bs, heads, dim, queries, levels, points = 2, 4, 8, 10, 2, 4
        value = torch.randn(
            bs, int(shapes.prod(1).sum()), heads, dim,
            generator=g).requires_grad_()
        loc = torch.rand(
            bs, queries, heads, levels, points, 2,
            generator=g).requires_grad_()
        attn = torch.rand(bs, queries, heads, levels, points, generator=g)
        attn = (attn / attn.sum((-1, -2), keepdim=True)).requires_grad_()
        ok &= _compare(
            'MultiScaleDeformableAttention',
            lambda v, s, i, loc, a: MultiScaleDeformableAttnFunction.apply(
                v, s, i, loc, a, 64),
            lambda v, s, i, loc, a: multi_scale_deformable_attn_pytorch(
                v, s, loc, a), [value, shapes, start, loc, attn], 1e-4, device)
    except Exception as e:  # noqa: BLE001
        print(f'ops: MultiScaleDeformableAttention FAIL: '
              f'{type(e).__name__}: {e}')
        ok = False
    return ok


# ---------------------------------------------------------------------------
# 2. models (built by the benchmarks/ scripts)
class Stepper:
    """A model, its optimizer and a fixed batch; :meth:`step` times one
    training step in fp32 or with AMP."""

    def __init__(self, name, model, loss_fn, batch, optim, device):
        self.name, self.model, self.loss_fn = name, model, loss_fn
        self.batch, self.optim, self.device = batch, optim, device
        self.scaler = torch.amp.GradScaler('cuda') \
            if device.type == 'cuda' else None

    def step(self, amp):
        dev = self.device
        if dev.type == 'cuda':
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        self.optim.zero_grad(set_to_none=True)
        ctx = torch.autocast(dev.type, dtype=torch.float16) if amp \
            else contextlib.nullcontext()
        with ctx:
            losses = self.loss_fn()
            loss = sum(v for k, v in losses.items() if 'loss' in k)
        if amp:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optim)
            self.scaler.update()
        else:
            loss.backward()
            self.optim.step()
        mem = None
        if dev.type == 'cuda':
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            mem = (peak / 2**20, (peak - base) / 2**20)
        return time.perf_counter() - t0, mem


def _sgd(model):
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                           lr=0.03,
                           momentum=0.9,
                           weight_decay=1e-4)


def _adamw(model):
    return torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=1e-5,
        weight_decay=1e-4)


def build_steppers(args, device):
    """Every model of ``args.models`` as a :class:`Stepper`."""
    import benchmark_ccop
    import benchmark_plrc
    import benchmark_proseco

    from mmregion.utils import register_all_modules
    register_all_modules()
    cfg_dir = osp.join(ROOT, 'configs', 'mmregion')
    depth = 18 if args.tiny else 50
    bargs = SimpleNamespace(
        depth=depth,
        batch=args.batch,
        size=args.size,
        regions=args.regions,
        queue=256 if args.tiny else 65536,
        progress=0.5)
    pargs = SimpleNamespace(
        config=osp.join(
            cfg_dir, 'plrc_r18_toy.py' if args.tiny else 'plrc_r50_coco.py'),
        symmetric=False,
        size=args.size,
        device=str(device))
    dcfg = osp.join(
        cfg_dir, 'proseco_deformable-detr_r18_toy.py'
        if args.tiny else 'proseco_deformable-detr_r50_coco.py')
    steppers = {}
    for kind in ('mocov2', 'ccop'):
        if kind in args.models:
            torch.manual_seed(0)
            model = benchmark_ccop.build(kind, bargs).to(device).train()
            inputs, samples = benchmark_ccop.make_batch(bargs, device)
            steppers[kind] = Stepper(
                kind,
                model,
                lambda m=model, i=inputs, s=samples: m.loss(i, s),
                args.batch,
                _sgd(model),
                device)
    if 'plrc' in args.models:
        torch.manual_seed(0)
        model, _, size = benchmark_plrc.build('plrc', pargs)
        data = model.data_preprocessor(
            benchmark_plrc.fake_batch(
                args.batch, size, args.regions, views=model.num_views), True)
        steppers['plrc'] = Stepper(
            'plrc',
            model,
            lambda m=model, d=data: m.loss(**d),
            args.batch,
            _sgd(model),
            device)
    if {'proseco', 'deformable_detr'} & set(args.models):
        torch.manual_seed(0)
        proseco, sup = benchmark_proseco.build_models(dcfg, device)
        inputs, samples = benchmark_proseco.fake_batch(args.detr_batch,
                                                       args.detr_size, 10,
                                                       str(device))
        det_samples = benchmark_proseco.det_samples(samples, 1)
        if 'proseco' in args.models:
            steppers['proseco'] = Stepper(
                'proseco',
                proseco,
                lambda m=proseco, i=inputs, s=samples: m.loss(i, s),
                args.detr_batch,
                _adamw(proseco),
                device)
        if 'deformable_detr' in args.models:
            steppers['deformable_detr'] = Stepper(
                'deformable_detr',
                sup,
                lambda m=sup, x=inputs[1], s=det_samples: m.loss(x, s),
                args.detr_batch,
                _adamw(sup),
                device)
    return steppers


def run_interleaved(steppers, amp, args):
    """Median step time and peak memory of each model, steps interleaved."""
    names = list(steppers)
    times = {n: [] for n in names}
    mems = {n: [] for n in names}
    errors = {}
    for i in range(args.warmup + args.iters):
        order = names if i % 2 == 0 else names[::-1]
        for n in order:
            if n in errors:
                continue
            try:
                t, mem = steppers[n].step(amp)
            except Exception as e:  # noqa: BLE001  (report, keep going)
                errors[n] = f'{type(e).__name__}: {str(e).splitlines()[0]}'
                traceback.print_exc()
                continue
            if i >= args.warmup:
                times[n].append(t)
                if mem is not None:
                    mems[n].append(mem)
    rows = {}
    for n in names:
        if n in errors:
            rows[n] = dict(error=errors[n])
            continue
        step = statistics.median(times[n])
        rows[n] = dict(
            batch=steppers[n].batch,
            step_ms=step * 1e3,
            images_per_s=steppers[n].batch / step,
            peak_mib=max(m[0] for m in mems[n]) if mems[n] else None,
            step_peak_mib=max(m[1] for m in mems[n]) if mems[n] else None)
    return rows


def print_table(precision, rows):
    print(f'\n[{precision}]')
    print(f'{"model":<16}{"batch":>6}{"images/s":>11}{"step ms":>10}'
          f'{"peak MiB":>10}{"step MiB":>10}')
    for n, r in rows.items():
        if 'error' in r:
            print(f'{n:<16} error: {r["error"]}')
            continue
        mem = ('{:>10.0f}{:>10.0f}'.format(r['peak_mib'], r['step_peak_mib'])
               if r['peak_mib'] is not None else f'{"n/a":>10}{"n/a":>10}')
        print(f'{n:<16}{r["batch"]:>6}{r["images_per_s"]:>11.2f}'
              f'{r["step_ms"]:>10.1f}{mem}')
    ratios = {}
    for a, b in PAIRS:
        if 'step_ms' in rows.get(a, {}) and 'step_ms' in rows.get(b, {}):
            ratios[f'{a}/{b}'] = rows[a]['step_ms'] / rows[b]['step_ms']
    if ratios:
        print('step-time ratios: ' + ', '.join(f'{k} {v:.2f}x'
                                               for k, v in ratios.items()))
    return ratios


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        print(
            'error: --device cuda but torch sees no GPU (use --device cpu '
            '--tiny for a CPU smoke run)',
            file=sys.stderr)
        return 1
    device = torch.device(args.device)
    gpu = torch.cuda.get_device_name(device) if device.type == 'cuda' \
        else 'cpu'
    print(f'device: {gpu} | torch {torch.__version__} | '
          f'{"tiny (R-18)" if args.tiny else "R-50"} | MoCo v2/CCOP/PLRC: '
          f'batch {args.batch}, {args.size} px, {args.regions} regions/img '
          f'| ProSeCo/Deformable DETR: batch {args.detr_batch}, '
          f'{args.detr_size} px | {args.warmup} warm-up + {args.iters} timed '
          'steps each, interleaved')
    ok = True
    if device.type == 'cuda':
        ok &= check_ops()
    else:
        print('ops: skipped (--device cpu: the check compares mmcv\'s CUDA '
              'ops with their CPU results, it needs a GPU)')
    precisions = dict(both=[False, True], off=[False], on=[True])[args.amp]
    if device.type != 'cuda' and True in precisions:
        print('amp: skipped on cpu (float16 autocast and GradScaler need '
              'CUDA)')
        precisions = [False]
    steppers = build_steppers(args, device)
    results = dict(device=gpu, tiny=args.tiny, ops_ok=ok, precisions={})
    for amp in precisions:
        name = 'amp' if amp else 'fp32'
        rows = run_interleaved(steppers, amp, args)
        ratios = print_table(name, rows)
        results['precisions'][name] = dict(models=rows, ratios=ratios)
        ok &= not any('error' in r for r in rows.values())
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
        print(f'\nwrote {args.json}')
    print(f'\nresult: {"OK" if ok else "FAILED"}')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())

"""Transfer benchmark: does each method's pre-training beat random init?

One protocol, every method with the same backbone, batch and budget:

    data -> proposals -> pre-train (MoCo v2, CCOP, PLRC; DETReg, ProSeCo)
    -> export -> object-level k-NN probe (frozen backbone, RoIAlign of the
    val GT boxes) -> fine-tune on the labelled split from every pre-trained
    model and from random init, several seeds -> Markdown + JSON table and
    a PNG plot.

Tracks (``--tracks``): ``rcnn`` (MoCo v2 / CCOP / PLRC backbone -> Mask
R-CNN R18-FPN, ``configs/benchmarks/mask-rcnn_r18_fpn_toy.py``) and
``detr`` (DETReg / ProSeCo whole detector -> Deformable DETR,
``configs/benchmarks/deformable-detr_r18_toy.py``).

Every stage is a subprocess of ``tools/train.py`` (or of the export tools)
with a generated config in its work directory (``_base_`` = the public
config, plus the benchmark's seed, classes, schedule) and ``--cfg-options``
for the data paths and the budget, so the same script runs on COCO with the
dist launcher (``--data-root``, ``--launcher pytorch --gpus N``; see
``docs/benchmark_transfer.md``). Each finished stage writes
``WORK/stages/<stage>.json`` atomically and is skipped when the script is
run again (a killed run resumes at the stage it was in; a killed training
stage restarts from its last checkpoint).

Examples::

    # a smoke of the protocol, numbers are noise (~15 min on 2 idle cores)
    python tools/benchmark_transfer.py --quick
    # the CPU protocol (82 min on 2 cores with the two tracks in parallel,
    # docs/benchmark_transfer.md): 2000 unlabeled / 5 % labelled / 100 val
    python tools/benchmark_transfer.py --work-dir work_dirs/transfer
"""
import argparse
import json
import math
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

# name -> (track, pre-training config, proposals it reads)
METHODS: Dict[str, Tuple[str, str, Optional[str]]] = {
    'mocov2': ('rcnn', 'configs/mmregion/mocov2_r18_toy.py', None),
    'ccop': ('rcnn', 'configs/mmregion/ccop_r18_toy.py', 'ss'),
    'plrc': ('rcnn', 'configs/mmregion/plrc_r18_toy.py', 'grid'),
    'detreg':
    ('detr', 'configs/mmregion/proseco_deformable-detr_r18_toy.py', 'ss'),
    'proseco':
    ('detr', 'configs/mmregion/proseco_deformable-detr_r18_toy.py', 'ss'),
}
FINETUNE = {
    'rcnn': 'configs/benchmarks/mask-rcnn_r18_fpn_toy.py',
    'detr': 'configs/benchmarks/deformable-detr_r18_toy.py',
}
SCRATCH = 'scratch'

# budgets: quick = a smoke of the whole protocol (~15 min on 2 idle cores);
# full = the CPU protocol (82 min wall on 2 cores, two track processes)
PRESETS = dict(
    quick=dict(
        num_train=200,
        num_val=40,
        labeled_frac=0.1,
        pretrain_iters=30,
        detr_pretrain_iters=20,
        batch=8,
        finetune_iters=40,
        detr_finetune_iters=40,
        eval_points=2,
        seeds=2,
        proposal_workers=2,
        proposal_min_size=10.0),
    full=dict(
        num_train=2000,
        num_val=100,
        labeled_frac=0.05,
        pretrain_iters=250,
        detr_pretrain_iters=150,
        batch=16,
        finetune_iters=250,
        detr_finetune_iters=250,
        eval_points=2,
        seeds=3,
        proposal_workers=2,
        proposal_min_size=10.0))
# proposal_min_size: CCOP keeps boxes with sqrt(w * h) > 20 px on COCO-size
# images; 10 px on the 128-px toy images (objects are 13-64 px)
# rough seconds per iteration on 2 CPU cores, only for the ETA
_COST = dict(
    pretrain=1.0,
    detr_pretrain=0.8,
    finetune=0.35,
    detr=0.3,
    eval=0.1,
    proposals=0.05,
    probe=0.03,
    start=15.)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Pre-train every method, fine-tune from each and from '
        'random init, probe, and tabulate (resumable).')
    p.add_argument(
        '--work-dir',
        default=None,
        help='default: work_dirs/transfer_{quick,full}')
    p.add_argument(
        '--out',
        default=osp.join(REPO, 'benchmarks', 'results'),
        help='directory of the Markdown/JSON table and PNG')
    p.add_argument(
        '--quick',
        action='store_true',
        help='tiny budget (a smoke test, ~15 min on 2 cores)')
    p.add_argument(
        '--tracks',
        default='rcnn,detr',
        help='comma-separated subset of rcnn,detr')
    p.add_argument(
        '--methods',
        default=','.join(METHODS),
        help='comma-separated subset of ' + ','.join(METHODS))
    p.add_argument(
        '--seeds', type=int, default=None, help='fine-tuning seeds per init')
    p.add_argument(
        '--data-root',
        default=None,
        help='an existing COCO-layout data set (no generation); '
        'default: WORK/data (the hard toy set)')
    p.add_argument(
        '--train-ann',
        default='annotations/instances_train.json',
        help='(relative to the data root) unlabeled pre-training '
        'images')
    p.add_argument('--train-img', default='train/')
    p.add_argument(
        '--labeled-ann',
        default='annotations/instances_train_labeled.json',
        help='labelled fine-tuning split (images in --train-img)')
    p.add_argument('--val-ann', default='annotations/instances_val.json')
    p.add_argument('--val-img', default='val/')
    for key in PRESETS['full']:
        if key != 'seeds':
            p.add_argument(
                '--' + key.replace('_', '-'),
                type=type(PRESETS['full'][key]),
                default=None)
    p.add_argument(
        '--pretrain-config',
        nargs='+',
        default=[],
        metavar='METHOD=CONFIG',
        help='replace a method\'s pre-training config (e.g. the '
        'R-50 COCO ones, see docs/benchmark_transfer.md)')
    p.add_argument(
        '--finetune-config',
        nargs='+',
        default=[],
        metavar='TRACK=CONFIG',
        help='replace a track\'s fine-tuning config')
    p.add_argument(
        '--probe-depth',
        type=int,
        default=18,
        help='ResNet depth of the exported backbones (probe)')
    p.add_argument('--launcher', choices=['none', 'pytorch'], default='none')
    p.add_argument(
        '--gpus',
        type=int,
        default=1,
        help='processes per training stage (torch.distributed.'
        'run) with --launcher pytorch')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='extra KEY=VALUE for every training stage')
    p.add_argument(
        '--dry-run', action='store_true', help='print the stage plan and exit')
    p.add_argument('--no-plot', action='store_true')
    args = p.parse_args(argv)
    preset = PRESETS['quick' if args.quick else 'full']
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.tracks = _subset(args.tracks, FINETUNE, '--tracks')
    args.methods = [
        m for m in _subset(args.methods, METHODS, '--methods')
        if METHODS[m][0] in args.tracks
    ]
    args.pretrain_configs = {m: METHODS[m][1] for m in args.methods}
    args.finetune_configs = {t: FINETUNE[t] for t in args.tracks}
    for items, table, flag in ((args.pretrain_config, args.pretrain_configs,
                                '--pretrain-config'),
                               (args.finetune_config, args.finetune_configs,
                                '--finetune-config')):
        for item in items:
            key, _, path = item.partition('=')
            if key not in table or not path:
                p.error(f'{flag}: expected NAME=CONFIG with NAME in '
                        f'{",".join(table)}, got {item!r}')
            if '::' not in path and not osp.isfile(path):
                p.error(f'{flag}: config {path} does not exist')
            table[key] = path if '::' in path else osp.abspath(path)
    if args.work_dir is None:
        args.work_dir = osp.join(
            'work_dirs', 'transfer_' + ('quick' if args.quick else 'full'))
    if args.seeds < 1 or args.eval_points < 1 or args.batch < 1:
        p.error('--seeds, --eval-points and --batch must be >= 1')
    if args.launcher == 'none' and args.gpus != 1:
        p.error('--gpus N needs --launcher pytorch')
    return args


def _subset(value: str, allowed, flag: str) -> List[str]:
    items = [v.strip() for v in value.split(',') if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise SystemExit(f'error: {flag}: unknown {bad or value!r} (choose '
                         f'from {",".join(allowed)})')
    return items


# ---------------------------------------------------------------- helpers


def _write_json(obj, path: str) -> None:
    from mmregion.utils.atomic_io import atomic_write
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with atomic_write(path, 'w') as f:
        json.dump(obj, f, indent=1)


def _fmt_time(sec: float) -> str:
    sec = int(max(sec, 0))
    return f'{sec // 3600}h{sec % 3600 // 60:02d}m' if sec >= 3600 else \
        f'{sec // 60}m{sec % 60:02d}s'


def git_commit() -> str:
    try:
        out = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                             cwd=REPO,
                             capture_output=True,
                             text=True,
                             timeout=10)
        dirty = subprocess.run(['git', 'status', '--porcelain', '-uno'],
                               cwd=REPO,
                               capture_output=True,
                               text=True,
                               timeout=10).stdout.strip()
        return out.stdout.strip() + ('-dirty' if dirty else '')
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def rescaled_schedule(schedulers: Sequence[dict], old_iters: int,
                      new_iters: int) -> List[dict]:
    """Iteration-based schedulers stretched from ``old_iters`` to
    ``new_iters`` (``begin``/``end``/``T_max``/``milestones`` scaled; a
    short warm-up stays as long, at most a tenth of the run)."""
    out = []
    ratio = new_iters / max(old_iters, 1)
    for s in schedulers:
        s = dict(s)
        if s.get('by_epoch', True) and 'by_epoch' in s:
            out.append(s)
            continue
        is_warmup = s.get('type') == 'LinearLR'
        for key in ('begin', 'end', 'T_max'):
            if key in s and isinstance(s[key], int):
                if is_warmup:
                    s[key] = min(s[key], max(1, new_iters // 10))
                else:
                    s[key] = int(round(s[key] * ratio))
        if 'milestones' in s:
            s['milestones'] = [int(round(m * ratio)) for m in s['milestones']]
        out.append(s)
    if out and out[0].get('type') == 'LinearLR' and len(out) > 1:
        warm_end = out[0].get('end', 0)
        for s in out[1:]:
            if s.get('begin', 0) > 0:
                s['begin'] = warm_end
                if 'T_max' in s:
                    s['T_max'] = max(1, s.get('end', new_iters) - warm_end)
    return out


def _config_path(config: str) -> str:
    """Absolute path of a repo config (``pkg::path`` kept as is)."""
    return config if '::' in config else osp.join(REPO, config)


def _rel(config: str) -> str:
    return config if '::' in config else osp.relpath(config, REPO)


def _dict_diff(a: dict, b: dict) -> dict:
    """The keys of ``a`` whose values differ from ``b``'s, recursing into
    nested dicts (lists and other values are compared whole)."""
    out = {}
    for k, v in a.items():
        if isinstance(v, dict) and isinstance(b.get(k), dict):
            sub = _dict_diff(v, b[k])
            if sub:
                out[k] = sub
        elif k not in b or b[k] != v:
            out[k] = v
    return out


def _budget_lines(cfg, iters: int) -> List[str]:
    """Config lines that stretch an iteration-based schedule to ``iters``
    (none when ``iters`` is 0: the config's own schedule, e.g. the
    epoch-based COCO configs)."""
    if not iters or 'max_iters' not in cfg.get('train_cfg', {}):
        return []
    return [
        'param_scheduler = ' + repr(
            rescaled_schedule(
                cfg.get('param_scheduler', []) or [], cfg.train_cfg.max_iters,
                iters))
    ]


def _palette(n: int) -> List[Tuple[int, int, int]]:
    return [(int(60 + 180 * ((i * 37) % 11) / 10),
             int(60 + 180 * ((i * 59) % 13) / 12),
             int(60 + 180 * ((i * 83) % 7) / 6)) for i in range(n)]


class Stage:
    """One resumable unit: ``fn()`` returns a JSON-able result dict that
    is stored in ``WORK/stages/<name>.json`` (atomically)."""

    def __init__(self, name: str, fn: Callable[[], dict], cost: float):
        self.name, self.fn, self.cost = name, fn, cost

    def marker(self, work_dir: str) -> str:
        return osp.join(work_dir, 'stages',
                        self.name.replace('/', '__') + '.json')


class Benchmark:
    """Plans and runs the stages of one benchmark (see module docstring)."""

    def __init__(self, args):
        self.args = args
        self.work = osp.abspath(args.work_dir)
        self.root = osp.abspath(args.data_root or osp.join(self.work, 'data'))
        self.results: Dict[str, dict] = {}
        self.classes: Tuple[str, ...] = ()
        # the settings every stage's result depends on
        self.budget = {
            k: getattr(args, k)
            for k in sorted(PRESETS['full'])
            if k not in ('seeds', 'proposal_workers')
        }

    # ----------------------------------------------------------- running
    def _train_cmd(self, config: str, work_dir: str,
                   options: Sequence[str]) -> List[str]:
        train = osp.join(REPO, 'tools', 'train.py')
        if self.args.launcher == 'pytorch':
            cmd = [
                sys.executable, '-m', 'torch.distributed.run',
                f'--nproc_per_node={self.args.gpus}', train, config,
                '--launcher', 'pytorch'
            ]
        else:
            cmd = [sys.executable, train, config]
        cmd += ['--work-dir', work_dir]
        if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
            cmd.append('--resume')  # continue a killed stage
        opts = list(options) + list(self.args.cfg_options)
        if opts:
            cmd += ['--cfg-options'] + opts
        return cmd

    def _run(self, cmd: List[str], log: str, total_iters: int = 0) -> None:
        """Run ``cmd`` with its output in ``log``; show its iteration."""
        os.makedirs(osp.dirname(log), exist_ok=True)
        env = dict(os.environ)
        env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
        with open(log, 'a') as f:
            f.write('$ ' + shlex.join(cmd) + '\n')
            f.flush()
            proc = subprocess.Popen(
                cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=env)
            last_print = time.time()
            while proc.poll() is None:
                time.sleep(2)
                if total_iters and time.time() - last_print > 30:
                    last_print = time.time()
                    it = _last_iter(log)
                    if it is not None:
                        print(f'      ... iter {it}/{total_iters}', flush=True)
        if proc.returncode != 0:
            tail = ''.join(open(log, errors='replace').readlines()[-25:])
            raise RuntimeError(f'stage command failed (exit '
                               f'{proc.returncode}); log {log}:\n{tail}')

    def run(self, stages: List[Stage]) -> None:
        todo_cost = sum(s.cost for s in stages)
        done_cost, spent, start = 0.0, 0.0, time.time()
        for i, stage in enumerate(stages, 1):
            marker = stage.marker(self.work)
            if osp.isfile(marker):
                with open(marker) as f:
                    done = json.load(f)
                # a stage done under another budget is not silently reused
                if done.get('budget', self.budget) != self.budget:
                    raise RuntimeError(
                        f'{marker} was made with the budget '
                        f'{done["budget"]}, this run has {self.budget}: use '
                        'another --work-dir or delete that directory')
                self.results[stage.name] = done
                todo_cost -= stage.cost
                print(
                    f'[{i}/{len(stages)}] {stage.name}: done earlier '
                    '(skipped)',
                    flush=True)
                continue
            rate = spent / done_cost if done_cost else 1.0
            print(
                f'[{i}/{len(stages)}] {stage.name} ... (elapsed '
                f'{_fmt_time(time.time() - start)}, ETA '
                f'{_fmt_time(rate * (todo_cost - done_cost))})',
                flush=True)
            t0 = time.time()
            result = stage.fn()
            result['seconds'] = round(time.time() - t0, 1)
            result['budget'] = self.budget
            _write_json(result, marker)
            self.results[stage.name] = result
            spent += time.time() - t0
            done_cost += stage.cost
            print(f'      done in {_fmt_time(time.time() - t0)}', flush=True)

    # ------------------------------------------------------------ stages
    def plan(self) -> List[Stage]:
        a = self.args
        stages = []
        if a.data_root is None:
            stages.append(
                Stage('data', self.make_data, a.num_train * 0.02 + 5))
        need = {METHODS[m][2] for m in a.methods} - {None}
        for kind in sorted(need):
            stages.append(
                Stage(
                    f'proposals/{kind}',
                    lambda k=kind: self.proposals(k),
                    (_COST['proposals'] if kind == 'ss' else 0.005) *
                    a.num_train + 10))
        for m in a.methods:
            track = METHODS[m][0]
            iters = a.pretrain_iters if track == 'rcnn' else \
                a.detr_pretrain_iters
            key = 'pretrain' if track == 'rcnn' else 'detr_pretrain'
            stages.append(
                Stage(
                    f'pretrain/{m}',
                    lambda m=m: self.pretrain(m),
                    iters * _COST[key] * a.batch / 8 + _COST['start']))
            stages.append(
                Stage(
                    f'export/{m}', lambda m=m: self.export(m), _COST['start']))
        for init in [SCRATCH] + list(a.methods):
            stages.append(
                Stage(
                    f'probe/{init}',
                    lambda i=init: self.probe(i),
                    _COST['probe'] * (a.num_val * 5) + 5))
        for track in a.tracks:
            iters = a.finetune_iters if track == 'rcnn' else \
                a.detr_finetune_iters
            inits = [SCRATCH
                     ] + [m for m in a.methods if METHODS[m][0] == track]
            for seed in range(a.seeds):
                for init in inits:
                    stages.append(
                        Stage(
                            f'finetune/{track}/{init}/seed{seed}',
                            lambda t=track, i=init, s=seed: self.finetune(
                                t, i, s),
                            iters *
                            _COST['finetune' if track == 'rcnn' else 'detr'] +
                            a.eval_points * a.num_val * _COST['eval'] +
                            _COST['start']))
        return stages

    def make_data(self) -> dict:
        from mmregion.utils.toy_data_hard import make_hard_toy_coco
        paths = make_hard_toy_coco(
            self.root,
            num_train=self.args.num_train,
            num_val=self.args.num_val,
            labeled_frac=self.args.labeled_frac)
        with open(paths['train_labeled_ann']) as f:
            num_labeled = len(json.load(f)['images'])
        return dict(
            root=self.root,
            num_train=self.args.num_train,
            num_labeled=num_labeled,
            num_val=self.args.num_val)

    def proposals(self, kind: str) -> dict:
        out = osp.join(self.work, 'proposals', kind)
        cmd = [
            sys.executable,
            osp.join(REPO, 'tools', 'generate_proposals.py'),
            osp.join(self.root, self.args.train_ann), out, '--img-root',
            osp.join(self.root, self.args.train_img), '--workers',
            str(self.args.proposal_workers), '--min-size',
            str(self.args.proposal_min_size), '--no-progress'
        ]
        if kind == 'grid':
            cmd += ['--method', 'grid', '--grid-sizes', '4']
        self._run(cmd, osp.join(self.work, 'logs', f'proposals_{kind}.log'))
        return dict(store=out)

    def _region_index(self, cfg) -> Optional[int]:
        pipeline = cfg.train_dataloader.dataset.pipeline
        return next(
            (i for i, t in enumerate(pipeline) if 'proposal_file' in t), None)

    def pretrain(self, method: str) -> dict:
        from mmengine.config import Config
        a = self.args
        track, default_config, kind = METHODS[method]
        config = _config_path(a.pretrain_configs[method])
        cfg = Config.fromfile(config)
        iters = a.pretrain_iters if track == 'rcnn' else a.detr_pretrain_iters
        work = osp.join(self.work, 'pretrain', method)
        os.makedirs(work, exist_ok=True)
        lines = [
            f'_base_ = {config!r}',
            'randomness = dict(seed=0, deterministic=False)'
        ]
        lines += _budget_lines(cfg, iters)
        if config == osp.join(REPO, default_config):
            lines += self._method_overrides(method, cfg)
        derived = osp.join(work, f'{method}_benchmark.py')
        with open(derived, 'w') as f:
            f.write('# Generated by tools/benchmark_transfer.py\n' +
                    '\n'.join(lines) + '\n')
        opts = [
            f'train_dataloader.batch_size={a.batch}',
            f'train_dataloader.dataset.data_root={self.root}/'
        ]
        if iters:
            opts += [
                f'train_cfg.max_iters={iters}',
                f'default_hooks.checkpoint.interval={iters}'
            ]
        if method == 'mocov2':
            opts.append('train_dataloader.dataset.data_prefix='
                        f'{a.train_img.rstrip("/")}')
        else:
            opts += [
                f'train_dataloader.dataset.ann_file={a.train_ann}',
                f'train_dataloader.dataset.data_prefix.img={a.train_img}'
            ]
        idx = self._region_index(cfg)
        if kind is not None and idx is not None:
            opts.append(f'train_dataloader.dataset.pipeline.{idx}.'
                        f'proposal_file={self.work}/proposals/{kind}')
        self._run(
            self._train_cmd(derived, work, opts), osp.join(work, 'train.log'),
            iters)
        with open(osp.join(work, 'last_checkpoint')) as f:
            ckpt = f.read().strip()
        return dict(
            checkpoint=ckpt, iters=iters, batch=a.batch, config=_rel(config))

    @staticmethod
    def _method_overrides(method: str, cfg) -> List[str]:
        """Config lines that make every method use the same ResNet-18 and
        96-px views (the toy configs differ there), and turn the ProSeCo
        toy config into DETReg (the diff of the two R-50 configs)."""
        if method == 'mocov2':
            # views of 96 px like CCOP/PLRC (toy config: 64)
            return [
                'train_dataloader = dict(dataset=dict(pipeline=' +
                repr(Benchmark._moco_pipeline(cfg, 96)) + '))'
            ]
        if method == 'plrc':  # the toy config uses a half-width ResNet-18
            c5 = 8 * 64
            # the release's image embedding is the point projector's mean
            # (img_neck=None); a separate image neck is resized too
            img_neck = (f'img_neck=dict(in_channels={c5}), '
                        if cfg.model.get('img_neck') else '')
            return [
                'model = dict(backbone=dict(base_channels=64), '
                f'{img_neck}point_neck=dict('
                f'in_channels={c5}), dino_head=dict(in_channels={c5}))'
            ]
        if method == 'detreg':
            from mmengine.config import Config
            detreg = Config.fromfile(
                osp.join(
                    REPO,
                    'configs/mmregion/detreg_deformable-detr_r50_coco.py'))
            proseco = Config.fromfile(
                osp.join(
                    REPO,
                    'configs/mmregion/proseco_deformable-detr_r50_coco.py'))
            # leaf-wise difference (a whole-dict one would carry the R-50
            # backbone and its pretrained init into the toy detector)
            diff = _dict_diff(
                json.loads(json.dumps(detreg.model)),
                json.loads(json.dumps(proseco.model)))
            det = cfg.model.detector
            if isinstance(diff.get('embed_head'), dict):
                # sizes of the toy detector: its embed dims in, the C3
                # channels of ResNet-18 (128) out (DETReg: R-50 C3, 512)
                diff['embed_head'].update(
                    in_channels=det.bbox_head.embed_dims,
                    out_channels=128 if det.backbone.depth < 50 else 512)
            return [
                'model = dict(' + ', '.join(f'{k}={v!r}'
                                            for k, v in diff.items()) + ')'
            ]
        return []

    @staticmethod
    def _moco_pipeline(cfg, size: int) -> list:
        pipeline = json.loads(
            json.dumps(cfg.train_dataloader.dataset.pipeline))
        for t in pipeline:
            for views in t.get('transforms', []):
                for v in views:
                    if 'RandomResizedCrop' in v.get('type', ''):
                        v['scale'] = size
        return pipeline

    def export(self, method: str) -> dict:
        pre = self.results[f'pretrain/{method}']
        out_dir = osp.join(self.work, 'export')
        os.makedirs(out_dir, exist_ok=True)
        log = osp.join(self.work, 'logs', f'export_{method}.log')
        if METHODS[method][0] == 'rcnn':
            out = osp.join(out_dir, f'{method}_backbone.pth')
            cmd = [
                sys.executable,
                osp.join(REPO, 'tools', 'extract_backbone.py'),
                pre['checkpoint'], out
            ]
        else:
            out = osp.join(out_dir, f'{method}_ddetr.pth')
            cmd = [
                sys.executable,
                osp.join(REPO, 'tools', 'convert_proseco_to_ddetr.py'),
                pre['checkpoint'], out, '--num-classes',
                str(len(self._classes()))
            ]
        self._run(cmd, log)
        return dict(checkpoint=out)

    def probe(self, init: str) -> dict:
        from mmregion.utils.object_probe import object_probe
        ckpt = None if init == SCRATCH else \
            self.results[f'export/{init}']['checkpoint']
        a = self.args
        res = object_probe(
            ckpt,
            osp.join(self.root, a.labeled_ann),
            osp.join(self.root, a.train_img),
            osp.join(self.root, a.val_ann),
            osp.join(self.root, a.val_img),
            depth=a.probe_depth)
        print(
            f'      k-NN top-1 {res["knn_top1"]:.1f} % '
            f'({res["num_query"]} val boxes)',
            flush=True)
        return res

    def _classes(self) -> Tuple[str, ...]:
        if not self.classes:
            with open(osp.join(self.root, self.args.val_ann)) as f:
                cats = sorted(
                    json.load(f)['categories'], key=lambda c: c['id'])
            self.classes = tuple(c['name'] for c in cats)
        return self.classes

    def finetune(self, track: str, init: str, seed: int) -> dict:
        a = self.args
        from mmengine.config import Config
        config = _config_path(a.finetune_configs[track])
        cfg = Config.fromfile(config)
        iters = a.finetune_iters if track == 'rcnn' else \
            a.detr_finetune_iters
        interval = max(1, iters // a.eval_points)
        work = osp.join(self.work, 'finetune', track, init, f'seed{seed}')
        os.makedirs(work, exist_ok=True)
        classes = self._classes()
        meta = dict(classes=classes, palette=_palette(len(classes)))
        lines = [
            f'_base_ = {config!r}',
            f'randomness = dict(seed={seed}, deterministic=False)',
            f'metainfo = {meta!r}'
        ]
        lines += _budget_lines(cfg, iters)
        data = [('train', a.labeled_ann, a.train_img),
                ('val', a.val_ann, a.val_img), ('test', a.val_ann, a.val_img)]
        for split, ann, img in data:
            lines.append(
                f'{split}_dataloader = dict(dataset=dict(data_root='
                f'{self.root + "/"!r}, ann_file={ann!r}, data_prefix=dict('
                f'img={img!r}), metainfo=metainfo))')
        lines.append(f'val_evaluator = dict(ann_file='
                     f'{osp.join(self.root, a.val_ann)!r})')
        lines.append('test_evaluator = val_evaluator')
        if track == 'rcnn':
            init_cfg = None if init == SCRATCH else dict(
                type='Pretrained',
                checkpoint=self.results[f'export/{init}']['checkpoint'])
            lines.append(
                f'model = dict(backbone=dict(init_cfg={init_cfg!r}), '
                f'roi_head=dict(bbox_head=dict(num_classes={len(classes)}),'
                f' mask_head=dict(num_classes={len(classes)})))')
        else:
            load = None if init == SCRATCH else \
                self.results[f'export/{init}']['checkpoint']
            lines.append(f'load_from = {load!r}')
            lines.append(f'model = dict(bbox_head=dict(num_classes='
                         f'{len(classes)}))')
        derived = osp.join(work, f'{track}_{init}_seed{seed}.py')
        with open(derived, 'w') as f:
            f.write('# Generated by tools/benchmark_transfer.py\n' +
                    '\n'.join(lines) + '\n')
        opts = [] if not iters else [
            f'train_cfg.max_iters={iters}',
            f'train_cfg.val_interval={interval}',
            f'default_hooks.checkpoint.interval={iters}'
        ]
        self._run(
            self._train_cmd(derived, work, opts), osp.join(work, 'train.log'),
            iters)
        curve = read_eval_curve(work)
        if not curve:
            raise RuntimeError(f'no evaluation logged in {work}')
        final = curve[-1]
        return dict(
            curve=curve,
            final=final,
            iters=iters,
            seed=seed,
            init=init,
            track=track)


def _last_iter(log: str) -> Optional[int]:
    try:
        with open(log, 'rb') as f:
            f.seek(max(0, os.path.getsize(log) - 4000))
            text = f.read().decode(errors='replace')
    except OSError:
        return None
    found = re.findall(r'Iter\(train\)\s*\[\s*(\d+)/', text)
    return int(found[-1]) if found else None


def read_eval_curve(work_dir: str) -> List[dict]:
    """``[{'iter', 'bbox_mAP', ...}]`` of every evaluation logged in the
    ``*/vis_data/scalars.json`` files of ``work_dir`` (in percent)."""
    points: Dict[int, dict] = {}
    runs = sorted(
        d for d in os.listdir(work_dir)
        if osp.isfile(osp.join(work_dir, d, 'vis_data', 'scalars.json')))
    for run in runs:
        last_step = 0
        with open(osp.join(work_dir, run, 'vis_data', 'scalars.json')) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if 'iter' in rec and not any(
                        k.startswith('coco/') for k in rec):
                    last_step = int(rec['iter'])
                metrics = {
                    k.split('/', 1)[1]: round(100 * float(v), 2)
                    for k, v in rec.items()
                    if k.startswith('coco/') and k.endswith(('bbox_mAP',
                                                             'bbox_mAP_50',
                                                             'segm_mAP'))
                }
                if metrics:
                    # mmengine logs an iteration-based validation with
                    # step 0: use the last training iteration before it
                    step = last_step or int(rec.get('step', 0))
                    points[step] = dict(iter=step, **metrics)
    return [points[k] for k in sorted(points)]


# ---------------------------------------------------------------- report


def _relative_root(data: dict) -> dict:
    """``data`` without the stage time and with a root relative to the
    repository when it is inside it (the report is committed)."""
    data = {k: v for k, v in data.items() if k not in ('seconds', 'budget')}
    root = data.get('root')
    if root and osp.abspath(root).startswith(REPO + os.sep):
        data['root'] = osp.relpath(root, REPO)
    return data


def _mean_std(values: Sequence[float]) -> Tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean)**2 for v in values) / (n - 1)) \
        if n > 1 else 0.0
    return round(mean, 2), round(std, 2)


def summarise(results: Dict[str, dict], args, seconds: float) -> dict:
    """The JSON report: settings, budget, commit, probe and per-track
    mean ± std over seeds with the margin over random init."""
    report = dict(
        benchmark='mmregion transfer benchmark',
        mode='quick' if args.quick else 'full',
        commit=git_commit(),
        date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        # the stages' own time, summed over the runs that made them
        wall_seconds=round(
            sum(r.get('seconds', 0) for r in results.values()) or seconds),
        command='python tools/benchmark_transfer.py ' +
        ' '.join(shlex.quote(a) for a in sys.argv[1:]),
        settings=dict(
            data=_relative_root(
                results.get('data', dict(root=args.data_root))),
            backbone='ResNet-18 (every method)',
            batch=args.batch,
            pretrain_iters=args.pretrain_iters,
            detr_pretrain_iters=args.detr_pretrain_iters,
            finetune_iters=args.finetune_iters,
            detr_finetune_iters=args.detr_finetune_iters,
            eval_points=args.eval_points,
            seeds=args.seeds,
            torch_threads=os.environ.get('OMP_NUM_THREADS', 'default'),
            finetune_configs={
                t: _rel(c)
                for t, c in args.finetune_configs.items()
            },
            pretrain_configs={
                m: _rel(c)
                for m, c in args.pretrain_configs.items()
            }),
        probe={},
        tracks={})
    for name, res in results.items():
        if name.startswith('probe/'):
            report['probe'][name.split('/', 1)[1]] = res
    for track in args.tracks:
        rows = {}
        for name, res in results.items():
            parts = name.split('/')
            if parts[0] != 'finetune' or parts[1] != track:
                continue
            rows.setdefault(parts[2], []).append(res)
        table = {}
        for init, runs in rows.items():
            entry = dict(seeds=len(runs))
            for metric in ('bbox_mAP', 'bbox_mAP_50', 'segm_mAP'):
                vals = [
                    r['final'][metric] for r in runs if metric in r['final']
                ]
                if vals:
                    entry[metric] = _mean_std(vals)
                    entry[metric + '_per_seed'] = vals
            steps = sorted({p['iter'] for r in runs for p in r['curve']})
            entry['curve'] = [
                dict(
                    iter=s,
                    bbox_mAP=_mean_std([
                        p['bbox_mAP'] for r in runs for p in r['curve']
                        if p['iter'] == s and 'bbox_mAP' in p
                    ] or [0.0])) for s in steps
            ]
            table[init] = entry
        base = table.get(SCRATCH, {}).get('bbox_mAP')
        for init, entry in table.items():
            if init == SCRATCH or base is None or 'bbox_mAP' not in entry:
                continue
            mean, std = entry['bbox_mAP']
            delta = round(mean - base[0], 2)
            spread = max(std, base[1])
            entry['delta_vs_scratch'] = delta
            entry['margin_in_std'] = round(delta / spread, 2) \
                if spread > 0 else None
        report['tracks'][track] = table
    return report


def to_markdown(report: dict) -> str:
    s = report['settings']
    lines = [
        f'# Transfer benchmark ({report["mode"]})',
        '',
        f'Commit `{report["commit"]}`, {report["date"]}, '
        f'{_fmt_time(report["wall_seconds"])} of stage time (sum). '
        'Command: '
        f'`{report["command"]}`.',
        '',
        f'Data: {json.dumps(s["data"])}. Backbone: {s["backbone"]}; '
        f'pre-training batch {s["batch"]}, {s["pretrain_iters"]} iterations '
        f'(R-CNN track) / {s["detr_pretrain_iters"]} (DETR track); '
        f'fine-tuning {s["finetune_iters"]} / {s["detr_finetune_iters"]} '
        f'iterations, {s["seeds"]} seed(s); mean ± std over seeds (bbox '
        'and segm AP in %, COCO-style on the val set).',
        '',
    ]
    names = {'rcnn': 'Mask R-CNN R18-FPN', 'detr': 'Deformable DETR R18'}
    for track, table in report['tracks'].items():
        lines += [
            f'## {names.get(track, track)}', '',
            '| init | bbox AP | bbox AP50 | segm AP | Δ bbox AP vs '
            'scratch | Δ / std | seeds |', '|---|---|---|---|---|---|---|'
        ]
        for init in sorted(table, key=lambda i: (i != SCRATCH, i)):
            e = table[init]

            def ms(key):
                return '-' if key not in e else \
                    f'{e[key][0]:.2f} ± {e[key][1]:.2f}'

            delta = e.get('delta_vs_scratch')
            margin = e.get('margin_in_std')
            lines.append(
                f'| {init} | {ms("bbox_mAP")} | {ms("bbox_mAP_50")} | '
                f'{ms("segm_mAP")} | '
                f'{"-" if delta is None else f"{delta:+.2f}"} | '
                f'{"-" if margin is None else f"{margin:+.1f}"} | '
                f'{e["seeds"]} |')
        lines.append('')
    if report['probe']:
        lines += [
            '## Object-level probe (frozen backbone, k-NN on RoIAlign '
            'C3-C5 features of the val GT boxes, labelled split as '
            'memory bank)', '', '| backbone | k-NN top-1 (%) | bank '
            '/ query boxes |', '|---|---|---|'
        ]
        for init in sorted(report['probe'], key=lambda i: (i != SCRATCH, i)):
            p = report['probe'][init]
            lines.append(f'| {init} | {p["knn_top1"]:.1f} | '
                         f'{p["num_bank"]} / {p["num_query"]} |')
        lines.append('')
    lines.append('Δ / std: the margin over random init divided by the larger '
                 'of the two standard deviations.')
    return '\n'.join(lines) + '\n'


def plot(report: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    tracks = list(report['tracks'])
    ncols = len(tracks) + (1 if report['probe'] else 0)
    fig, axes = plt.subplots(
        2, max(ncols, 1), figsize=(4.2 * ncols, 6.5), squeeze=False)
    for col, track in enumerate(tracks):
        table = report['tracks'][track]
        inits = sorted(table, key=lambda i: (i != SCRATCH, i))
        ax = axes[0][col]
        vals = [table[i].get('bbox_mAP', (0, 0)) for i in inits]
        ax.bar(
            inits, [v[0] for v in vals],
            yerr=[v[1] for v in vals],
            capsize=4,
            color=['grey'] + ['C%d' % k for k in range(len(inits) - 1)])
        ax.set_title(f'{track}: bbox AP (mean ± std)')
        ax.set_ylabel('bbox AP (%)')
        ax.tick_params(axis='x', rotation=30)
        ax = axes[1][col]
        for k, init in enumerate(inits):
            curve = table[init]['curve']
            ax.errorbar([p['iter'] for p in curve],
                        [p['bbox_mAP'][0] for p in curve],
                        yerr=[p['bbox_mAP'][1] for p in curve],
                        label=init,
                        capsize=3,
                        marker='o',
                        color='grey' if init == SCRATCH else f'C{k - 1}')
        ax.set_title(f'{track}: fine-tune bbox AP vs iterations')
        ax.set_xlabel('iteration')
        ax.legend(fontsize=8)
    if report['probe']:
        ax = axes[0][ncols - 1]
        inits = sorted(report['probe'], key=lambda i: (i != SCRATCH, i))
        ax.bar(
            inits, [report['probe'][i]['knn_top1'] for i in inits], color='C4')
        ax.set_title('object probe: k-NN top-1 (%)')
        ax.tick_params(axis='x', rotation=30)
        axes[1][ncols - 1].axis('off')
    fig.suptitle(f'mmregion transfer benchmark ({report["mode"]}, '
                 f'{report["commit"]})')
    fig.tight_layout()
    tmp = path + '.tmp.png'
    fig.savefig(tmp, dpi=80)
    os.replace(tmp, path)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    bench = Benchmark(args)
    stages = bench.plan()
    if args.dry_run:
        for i, s in enumerate(stages, 1):
            print(f'[{i}/{len(stages)}] {s.name}')
        return 0
    start = time.time()
    os.makedirs(bench.work, exist_ok=True)
    try:
        bench.run(stages)
    except RuntimeError as e:
        print(f'error: {e}', file=sys.stderr)
        print(
            'Run the same command again to resume from the failed stage.',
            file=sys.stderr)
        return 1
    report = summarise(bench.results, args, time.time() - start)
    stem = osp.join(args.out, 'transfer_' + report['mode'])
    _write_json(report, stem + '.json')
    from mmregion.utils.atomic_io import atomic_write
    with atomic_write(stem + '.md', 'w') as f:
        f.write(to_markdown(report))
    if not args.no_plot:
        plot(report, stem + '.png')
    print(to_markdown(report))
    print(f'Wrote {stem}.md, {stem}.json' +
          ('' if args.no_plot else f', {stem}.png'))
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Pre-training under the same conditions for every method.

:func:`pretrain_config` turns a method's own config (``configs/mmregion``)
into the protocol's run: the protocol's backbone width, the one shared view
pipeline (:func:`image_views` for MoCo v2, :func:`region_views` with the
same parameters for the region methods), the queues scaled to the batch,
the batch, budget, optimiser, schedule and seed; checkpoints are kept at
every ``curve_every`` iterations for the probe's learning curve.
"""
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

from .runner import REPO, load_config, run_command


def _jitter(views: dict) -> List[dict]:
    j = dict(views['jitter'])
    prob = j.pop('prob')
    out = [
        dict(
            type='mmpretrain.RandomApply',
            transforms=[dict(type='mmpretrain.ColorJitter', **j)],
            prob=prob),
        dict(
            type='mmpretrain.RandomGrayscale',
            prob=views['grey'],
            keep_channels=True,
            channel_weights=(0.114, 0.587, 0.2989))
    ]
    if views.get('blur'):
        blur = views['blur']
        out.append(
            dict(
                type='mmpretrain.GaussianBlur',
                magnitude_range=tuple(blur['sigma']),
                magnitude_std='inf',
                prob=blur['prob']))
    return out


def image_views(views: dict) -> List[dict]:
    """The protocol's view pipeline for image-level methods (MoCo v2)."""
    return [
        dict(
            type='mmpretrain.RandomResizedCrop',
            scale=views['size'],
            crop_ratio_range=tuple(views['crop_scale']),
            aspect_ratio_range=tuple(views['aspect_ratio']),
            backend='pillow')
    ] + _jitter(views) + [
        dict(type='mmpretrain.RandomFlip', prob=views['flip'])
    ]


def region_views(views: dict) -> List[dict]:
    """The same views for region-level methods (boxes follow the crop and
    the flip; CCOP's rules for regions a crop keeps, scaled to the size)."""
    return [
        dict(
            type='RegionRandomResizedCrop',
            scale=views['size'],
            crop_ratio_range=tuple(views['crop_scale']),
            aspect_ratio_range=tuple(views['aspect_ratio']),
            max_attempts=10,
            min_kept_ratio=0.6,  # CCOP part_thr
            min_area=max(1, round(144 * (views['size'] / 224)**2)),  # CCOP
            backend='pillow')
    ] + _jitter(views) + [dict(type='RegionRandomFlip', prob=views['flip'])]


def stage_channels(depth: int, width: int) -> List[int]:
    """Output channels of C2-C5 of a ResNet (bottlenecks from depth 50)."""
    return [width * m * (4 if depth >= 50 else 1) for m in (1, 2, 4, 8)]


def linear_warmup(end: int) -> dict:
    """An iteration-based linear warm-up from 1 % of the lr over ``end``
    iterations (the same in every training stage)."""
    return dict(
        type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=end)


def _width_and_queues(model: dict, depth: int, width: int,
                      queues: dict) -> None:
    """Resize the method's necks to a ResNet-``depth`` of ``width`` base
    channels and set its queue lengths (in place)."""
    channels = stage_channels(depth, width)
    c5 = channels[-1]
    kind = model['type']
    if kind == 'mmpretrain.MoCo':
        model['neck']['in_channels'] = c5
        model['queue_len'] = queues['image']
    elif kind == 'CCOP':
        model['neck']['in_channels'] = channels
        model['img_neck']['in_channels'] = c5
        model['img_queue_len'] = queues['image']
        model['region_queue_len'] = queues['region']
    elif kind == 'PLRC':
        for key in ('point_neck', 'dino_neck', 'img_neck'):
            if model.get(key):
                model[key]['in_channels'] = c5
        model['img_queue_len'] = queues['image']
    else:
        raise ValueError(f'pre-training model type {kind!r}: the transfer '
                         'protocol knows MoCo, CCOP and PLRC')


def pretrain_config(method_cfg: str, protocol: dict, root: str, seed: int,
                    proposals: Optional[str]):
    """The mmengine Config of one pre-training run.

    Args:
        method_cfg (str): The method's config, relative to the repository.
        protocol (dict): The protocol (:func:`.runner.load_protocol`).
        root (str): Data root.
        seed (int): Pre-training seed.
        proposals (str, optional): Proposal store of a region method.
    """
    from .data import ANN, IMG
    cfg = load_config(method_cfg)
    pre, bb = protocol['pretrain'], protocol['backbone']
    model = cfg.model
    model.backbone.depth = bb['depth']
    model.backbone.base_channels = bb['base_channels']
    _width_and_queues(model, bb['depth'], bb['base_channels'],
                      protocol['queues'])
    model.momentum = pre['momentum']
    ds = cfg.train_dataloader.dataset
    pipeline = ds.pipeline
    if model.type == 'mmpretrain.MoCo':
        ds.data_root = root
        ds.data_prefix = IMG['unlabeled'].rstrip('/')
        views = image_views(protocol['views'])
    else:
        ds.data_root = root
        ds.ann_file = ANN['unlabeled']
        ds.data_prefix = dict(img=IMG['unlabeled'])
        views = region_views(protocol['views'])
        for t in pipeline:
            if t['type'] == 'LoadProposals':
                if proposals is None:
                    raise ValueError(f'{method_cfg}: a region method needs '
                                     'pretrain.methods.<name>.boxes')
                t['proposal_file'] = proposals
    multi = [
        t for t in pipeline
        if t['type'].endswith('MultiView') or t['type'] == 'MultiViewRegions'
    ]
    if len(multi) != 1:
        raise ValueError(f'{method_cfg}: expected one MultiView(Regions) '
                         'transform in the train pipeline')
    multi[0]['transforms'] = [views]
    cfg.train_dataloader.batch_size = pre['batch']
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg.optim_wrapper.optimizer.lr = pre['lr']
    cfg.optim_wrapper.optimizer.weight_decay = pre['weight_decay']
    iters = pre['iters']
    warm = max(min(pre['warmup_iters'], iters - 1), 1)
    cfg.param_scheduler = [
        linear_warmup(warm),
        dict(
            type='CosineAnnealingLR',
            T_max=iters - warm,
            eta_min=0.,
            by_epoch=False,
            begin=warm,
            end=iters)
    ]
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters)
    cfg.default_hooks.checkpoint = dict(
        type='mmregion.SafeCheckpointHook',
        by_epoch=False,
        interval=pre['curve_every'],
        max_keep_ckpts=-1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=20)
    cfg.randomness = dict(seed=seed, deterministic=False)
    return cfg


def train_cmd(config: str,
              work: str,
              launcher: Optional[List[str]] = None) -> List[str]:
    """``tools/train.py`` on ``config`` (through ``launcher``, e.g.
    ``[python, -m, torch.distributed.run, --nproc_per_node=8]``)."""
    args = [osp.join(REPO, 'tools', 'train.py'), config, '--work-dir', work]
    if launcher:
        return list(launcher) + args + ['--launcher', 'pytorch']
    return [sys.executable] + args


def curve_iters(pre: dict) -> List[int]:
    """Iterations at which the probe is measured (the last one included)."""
    its = list(range(pre['curve_every'], pre['iters'] + 1, pre['curve_every']))
    return its if its and its[-1] == pre['iters'] else its + [pre['iters']]


def run_pretrain(name: str,
                 method_cfg: str,
                 protocol: dict,
                 root: str,
                 seed: int,
                 proposals: Optional[str],
                 work: str,
                 launcher: Optional[List[str]] = None) -> Dict[str, object]:
    """Train one run with ``tools/train.py`` (resuming a killed one).

    Returns:
        dict: ``checkpoints`` ``{iteration: path}``, ``config``, ``seed``.
    """
    os.makedirs(work, exist_ok=True)
    cfg = pretrain_config(method_cfg, protocol, root, seed, proposals)
    derived = osp.join(work, f'{name}_seed{seed}.py')
    cfg.dump(derived)
    cmd = train_cmd(derived, work, launcher)
    if osp.isfile(osp.join(work, 'last_checkpoint')):
        cmd.append('--resume')
    run_command(cmd, osp.join(work, 'train.log'))
    ckpts = {}
    for it in curve_iters(protocol['pretrain']):
        path = osp.join(work, f'iter_{it}.pth')
        if not osp.isfile(path):
            raise RuntimeError(f'{work}: checkpoint iter_{it}.pth missing '
                               'after training')
        ckpts[it] = path
    return dict(
        checkpoints=ckpts, config=method_cfg, seed=seed, proposals=proposals)

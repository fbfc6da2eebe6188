"""Evaluate a checkpoint with a config (mmdet fine-tuning configs).

Examples:
    python tools/test.py configs/benchmarks/mask-rcnn_r18_fpn_toy.py \
        W/epoch_1.pth
    python tools/test.py CONFIG CKPT --show-dir vis   # draw predictions
    python tools/test.py CONFIG CKPT --tta            # flip test-time aug.
"""
import argparse
import copy
import os
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

from mmengine.config import ConfigDict
from mmengine.runner import Runner

import mmregion  # noqa: F401  (safe checkpoint loader, version checks)
from mmregion.apis.cli import (add_cfg_options_args, apply_cfg_options,
                               load_config, run_cli, setup_cpu_distributed)
from mmregion.utils.errors import UserError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out', help='dump predictions to a pickle file for offline eval')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. If specified, '
        'it will be automatically saved to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation (the config\'s tta_model / '
        'tta_pipeline; a horizontal-flip TTA when it has none)')
    add_cfg_options_args(parser)
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_visualization(cfg, args) -> None:
    """Make the config's ``VisualizationHook`` draw (``--show[-dir]``).

    Raises:
        UserError: The config has no ``default_hooks.visualization``.
    """
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise UserError('--show/--show-dir need a VisualizationHook in '
                        'default_hooks.visualization of the config (mmdet: '
                        "dict(type='DetVisualizationHook'))")
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        hook['test_out_dir'] = args.show_dir


# meta keys of the default flip TTA (those mmdet's PackDetInputs packs, plus
# the flip that DetTTAModel undoes)
_TTA_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape',
                  'scale_factor', 'flip', 'flip_direction')


def enable_tta(cfg) -> None:
    """Wrap the model in ``tta_model`` and test with ``tta_pipeline``.

    A config without them gets mmdet's defaults: ``DetTTAModel`` (NMS 0.5,
    100 boxes per image) over the test pipeline with its resize kept and the
    packing replaced by a flip / no-flip pair.
    """
    roi_head = cfg.model.get('roi_head') or {}
    if 'tta_model' not in cfg and roi_head.get('mask_head') is not None:
        raise UserError('--tta: mmdet\'s DetTTAModel merges boxes only and '
                        'refuses instance masks; this config has '
                        'model.roi_head.mask_head (set tta_model in the '
                        'config to use another TTA model)')
    if 'tta_model' not in cfg:
        print(
            'warning: the config has no tta_model: using DetTTAModel '
            '(NMS 0.5, 100 per image)',
            file=sys.stderr)
        # DetTTAModel and TestTimeAug live in mmengine's root registries
        cfg.tta_model = dict(
            type='DetTTAModel',
            tta_cfg=dict(
                nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:  # dataset wrappers
        dataset = dataset['dataset']
    if 'tta_pipeline' not in cfg:
        print(
            'warning: the config has no tta_pipeline: using the test '
            'pipeline with a horizontal-flip TTA',
            file=sys.stderr)
        pipeline = copy.deepcopy(dataset.pipeline)
        pack = pipeline[-1]
        if 'Pack' not in str(pack.get('type', '')):
            raise UserError('--tta: the last test pipeline step is not a '
                            f'Pack* transform ({pack.get("type")}); set '
                            'tta_pipeline in the config')
        pack = dict(pack)
        pack['meta_keys'] = _TTA_META_KEYS
        pipeline[-1] = dict(
            type='TestTimeAug',
            transforms=[[
                dict(type='mmdet.RandomFlip', prob=1.),
                dict(type='mmdet.RandomFlip', prob=0.)
            ], [pack]])
        cfg.tta_pipeline = pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    dataset.pipeline = cfg.tta_pipeline


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise UserError(f'checkpoint {args.checkpoint} does not exist')
    cfg = load_config(args.config)
    apply_cfg_options(cfg, args)
    cfg.launcher = args.launcher
    setup_cpu_distributed(cfg, args.launcher)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if cfg.get('test_dataloader') is None:
        raise UserError(f'config {args.config} has no test_dataloader')
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.tta:
        enable_tta(cfg)

    runner = Runner.from_cfg(cfg)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise UserError('--out must be a .pkl file')
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    run_cli(main)

"""Train a model (pre-training or fine-tuning) from a config.

Examples:
    python tools/train.py configs/mmregion/ccop_r18_toy.py --work-dir W
    python tools/train.py CONFIG --resume            # latest ckpt in work_dir
    python tools/train.py CONFIG --resume W/iter_20.pth
    bash tools/dist_train.sh configs/mmregion/ccop_r50_coco.py 8

Known errors (a config value of the wrong type, a checkpoint that does not
fit, a non-finite loss) end as one ``error: ...`` line; the environment,
config and hook table go to the log file. ``MMREGION_DEBUG=1`` in the
environment shows mmengine's full output and the traceback.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

import mmregion  # noqa: F401  (safe checkpoint loader, version checks)
from mmregion.apis.cli import (add_cfg_options_args, apply_cfg_options,
                               check_config_values, explain_downloads,
                               explain_exception, load_config, run_cli,
                               setup_cpu_distributed)
from mmregion.apis.quiet_runner import QuietRunner
from mmregion.apis.resume_check import (check_resume_checkpoint,
                                        resume_checkpoint_path)
from mmregion.utils.errors import UserError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='whether not to evaluate the checkpoint during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='whether to auto scale the learning rate according to the '
        'actual batch size and the original batch size.')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='set pin_memory=False in every dataloader')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='set persistent_workers=False in every dataloader')
    add_cfg_options_args(parser)
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch (torch >= 2.0) passes --local-rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


# optim wrapper -> its mixed-precision counterpart (for --amp)
AMP_WRAPPERS = {
    'OptimWrapper': 'AmpOptimWrapper',
    'AmpOptimWrapper': 'AmpOptimWrapper',
    'FiniteCheckOptimWrapper': 'FiniteCheckAmpOptimWrapper',
    'FiniteCheckAmpOptimWrapper': 'FiniteCheckAmpOptimWrapper',
}


def merge_args(cfg, args):
    """Merge CLI arguments into the config."""
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    if args.amp:
        import torch
        if not torch.cuda.is_available():
            raise UserError('--amp needs a CUDA GPU (float16 autocast with '
                            'a GradScaler) and this machine has none: drop '
                            '--amp')
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper not in AMP_WRAPPERS:
            raise UserError(
                f'--amp supports optim_wrapper.type {", ".join(AMP_WRAPPERS)}'
                f'; the config has {optim_wrapper}')
        cfg.optim_wrapper.type = AMP_WRAPPERS[optim_wrapper]
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise UserError(f'--resume checkpoint {args.resume} does not '
                            'exist')
        cfg.resume = True
        cfg.load_from = args.resume
    if args.resume is not None:
        # the config's lr wins over the checkpoint's (logged), so that
        # `--resume --cfg-options optim_wrapper.optimizer.lr=X` works
        hooks = list(cfg.get('custom_hooks') or [])
        if not any('ResumeLrHook' in str(h.get('type')) for h in hooks):
            hooks.append(dict(type='mmregion.ResumeLrHook'))
        cfg.custom_hooks = hooks

    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if loader is None:
            continue
        if args.no_pin_memory:
            loader['pin_memory'] = False
        if args.no_persistent_workers:
            loader['persistent_workers'] = False

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or \
                'base_batch_size' not in cfg.auto_scale_lr:
            raise UserError('--auto-scale-lr needs `auto_scale_lr = '
                            'dict(base_batch_size=...)` in the config')
        cfg.auto_scale_lr.enable = True
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config)
    apply_cfg_options(cfg, args)
    cfg.launcher = args.launcher
    setup_cpu_distributed(cfg, args.launcher)
    cfg = merge_args(cfg, args)

    check_config_values(cfg)

    with explain_downloads(cfg):
        if 'runner_type' not in cfg:
            # the environment and config dump go to the log file only
            runner = QuietRunner.from_cfg(cfg)
        else:
            from mmengine.registry import RUNNERS
            runner = RUNNERS.build(cfg)
        resume_from = resume_checkpoint_path(
            cfg.get('resume'), cfg.get('load_from'), cfg.work_dir)
        if resume_from is not None:
            check_resume(runner, resume_from)
        try:
            runner.train()
        except ValueError as e:
            line = explain_exception(e)
            if resume_from is None or line is None or \
                    not line.startswith('--resume'):
                raise
            raise UserError(line.replace('the checkpoint\'s',
                                         f'checkpoint {resume_from}:', 1)) \
                from e


def check_resume(runner, path):
    """One line naming ``path`` when it cannot be resumed by this config's
    model (another method, a changed queue length), before mmengine loads
    it (which logs every mismatching key and re-initialises buffers of
    another shape)."""
    from mmengine.model import is_model_wrapper

    from mmregion.utils.checkpoint import load_checkpoint_safely
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    checkpoint = load_checkpoint_safely(path, map_location='cpu')
    check_resume_checkpoint(model.state_dict(), checkpoint, path)
    del checkpoint


if __name__ == '__main__':
    run_cli(main)

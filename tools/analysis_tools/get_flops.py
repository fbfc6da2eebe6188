"""FLOPs and parameters of a config's model (mmengine.analysis).

Counts one forward pass of ``model(inputs, data_samples, mode='tensor')`` on
a random ``(1, 3, H, W)`` batch: for the pre-training algorithms that is the
transferred encoder (their ``extract_feat``), for an mmdet detector the
network without post-processing. ``--module backbone`` counts one submodule
only. The count depends on the input size; ``--shape 64`` keeps it fast.

Example::

    python tools/analysis_tools/get_flops.py \
        configs/mmregion/ccop_r50_coco.py --shape 224 224
"""
import argparse
import os.path as osp
import sys

import torch
import torch.nn as nn

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

import mmregion  # noqa: F401  (registers the modules)
from mmregion.apis.cli import (add_cfg_options_args, apply_cfg_options,
                               load_config, run_cli)
from mmregion.utils.errors import UserError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Count the FLOPs and parameters of a config\'s model')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[224, 224],
        help='input image size: H [W] (default: 224 224)')
    parser.add_argument(
        '--module',
        default=None,
        help='count only this submodule (dotted name, e.g. backbone)')
    parser.add_argument(
        '--show-table', action='store_true', help='print the per-module table')
    add_cfg_options_args(parser)
    return parser.parse_args(argv)


class _TensorForward(nn.Module):
    """``model(x, data_samples, mode='tensor')`` as a one-input module."""

    def __init__(self, model: nn.Module, data_samples) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, x: torch.Tensor):
        return self.model(x, self.data_samples, mode='tensor')


def _data_samples(model: nn.Module, h: int, w: int):
    """Minimal data samples: mmdet detectors need the image shapes."""
    try:
        from mmdet.models.detectors import BaseDetector
        from mmdet.structures import DetDataSample
    except ImportError:  # pragma: no cover
        return None
    if not isinstance(model, BaseDetector):
        return None
    meta = dict(
        img_shape=(h, w),
        ori_shape=(h, w),
        pad_shape=(h, w),
        batch_input_shape=(h, w),
        scale_factor=(1., 1.))
    return [DetDataSample(metainfo=meta)]


def get_flops(cfg, shape, module=None, show_table=False) -> dict:
    """Build ``cfg.model`` and count its FLOPs on a ``(1, 3, H, W)`` input.

    Args:
        cfg (Config): Config with ``model``.
        shape (Sequence[int]): ``(H, W)`` or ``(S,)``.
        module (str, optional): Dotted name of the submodule to count.
        show_table (bool): Also return the per-module table.

    Returns:
        dict: ``flops``, ``params`` (numbers), ``flops_str``,
        ``params_str``, ``shape`` and ``out_table``.
    """
    from mmengine.analysis import get_model_complexity_info
    from mmengine.registry import init_default_scope

    from mmregion.registry import MODELS
    if len(shape) == 1:
        shape = (shape[0], shape[0])
    if len(shape) != 2 or min(shape) < 1:
        raise UserError(f'--shape takes H [W] > 0, got {list(shape)}')
    h, w = shape
    init_default_scope(cfg.get('default_scope', 'mmregion'))
    if 'model' not in cfg:
        raise UserError('the config has no model')
    model = MODELS.build(cfg.model)
    model.eval()
    target: nn.Module = model
    if module is not None:
        try:
            target = model.get_submodule(module)
        except AttributeError:
            names = [n for n, _ in model.named_children()]
            raise UserError(f'--module {module}: no such submodule; top-level '
                            f'ones are {", ".join(names)}') from None
        inputs = (torch.rand(1, 3, h, w), )
    else:
        target = _TensorForward(model, _data_samples(model, h, w))
        inputs = (torch.rand(1, 3, h, w), )
    with torch.no_grad():
        info = get_model_complexity_info(
            target, inputs=inputs, show_table=show_table, show_arch=False)
    info['shape'] = (h, w)
    return info


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config)
    apply_cfg_options(cfg, args)
    info = get_flops(cfg, args.shape, args.module, args.show_table)
    if args.show_table:
        print(info['out_table'])
    h, w = info['shape']
    split = '=' * 30
    what = args.module or 'model (mode="tensor")'
    print(f'{split}\nInput shape: (1, 3, {h}, {w})\nModule: {what}\n'
          f'Flops: {info["flops_str"]}\nParams: {info["params_str"]}\n'
          f'{split}')
    print('The FLOPs count depends on the input size and covers only the '
          'operators fvcore-style counting knows (mmengine.analysis); check '
          'it before quoting it in a paper. Params count every parameter of '
          'the module (momentum/teacher copies included); --module backbone '
          'counts the transferred backbone only.')


if __name__ == '__main__':
    run_cli(main)

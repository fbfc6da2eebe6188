"""Convert an official DETReg checkpoint (amirbar/DETReg) to mmregion / mmdet.

The official checkpoint (``main.py``) is ``{'model', 'optimizer',
'lr_scheduler', 'epoch', 'args'}``; ``model`` is a Deformable DETR
(fundamentalvision/Deformable-DETR naming): ``backbone.0.body.*`` (torchvision
ResNet-50, frozen BN without ``num_batches_tracked``), ``input_proj.{l}.{0,1}``
(conv + GroupNorm), ``transformer.{encoder,decoder}.layers.*``,
``transformer.level_embed``, ``transformer.reference_points``,
``query_embed``, ``class_embed.*``, ``bbox_embed.*.layers.*`` and DETReg's
``feature_embed.layers.*``. ``args`` (an ``argparse.Namespace``, a plain
attribute container) is allowed for this load only.

Name mapping to mmdet 3.x ``DeformableDETR``: encoder ``norm1/norm2`` ->
``norms.0/1``, ``linear1/linear2`` -> ``ffn.layers.0.0/ffn.layers.1``;
decoder self-attention ``norm2`` -> ``norms.0``, cross-attention ``norm1``
-> ``norms.1``, ``norm3`` -> ``norms.2`` (the official decoder layer runs
self-attn, norm2, cross-attn, norm1, FFN, norm3);
``input_proj.0-2`` -> ``neck.convs.0-2``, ``input_proj.3`` ->
``neck.extra_convs.0``. The official ``input_proj`` convolutions have a bias
before their GroupNorm; mmdet's ``ChannelMapper`` with a norm has none
(``bias='auto'``), so it is dropped and reported (not exactly equivalent: GN
removes only the group mean of the bias). ``--keep-input-proj-bias`` keeps
it for a config with ``neck=dict(bias=True)``.

Targets:

- ``backbone``: mmdet ``ResNet`` names without prefix (``Pretrained`` init).
- ``detector``: an mmdet ``DeformableDETR`` state dict (``load_from``).
- ``algorithm``: mmregion's DETReg model
  (``detreg_deformable-detr_r50_coco.py``:
  ``detector.*`` + ``neck.*`` from ``feature_embed``).

Example::

    python tools/model_converters/detreg_to_mmregion.py \
        checkpoint_coco.pth detreg_ddetr.pth --target detector
"""
import argparse
import os.path as osp
import sys
from typing import List

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

from mmregion.apis.checkpoint_convert import (Rule, converter_arg_parser,
                                              run_conversion,
                                              torchvision_resnet_rules)
from mmregion.apis.cli import run_cli

TARGETS = ('backbone', 'detector', 'algorithm')
NUM_BACKBONE_LEVELS = 3  # input_proj 0-2 read C3-C5, 3 is the extra level
_ENC = r'transformer\.encoder\.layers\.(\d+)\.'
_DEC = r'transformer\.decoder\.layers\.(\d+)\.'


def _input_proj(p: str):

    def rename(m) -> str:
        level, part = int(m.group(1)), 'conv' if m.group(2) == '0' else 'gn'
        if level < NUM_BACKBONE_LEVELS:
            return f'{p}neck.convs.{level}.{part}.{m.group(3)}'
        return (f'{p}neck.extra_convs.{level - NUM_BACKBONE_LEVELS}.{part}.'
                f'{m.group(3)}')

    return rename


def _detector_rules(p: str, keep_bias: bool = False) -> List[Rule]:
    """Deformable DETR -> mmdet ``DeformableDETR`` under prefix ``p``."""
    rules = torchvision_resnet_rules(r'backbone\.0\.body\.', p + 'backbone.')
    if not keep_bias:
        rules.append(
            Rule(r'input_proj\.\d+\.0\.bias', None,
                 'input_proj conv bias, not in ChannelMapper+GN'))
    return rules + [
        Rule(r'input_proj\.(\d+)\.([01])\.(weight|bias)', _input_proj(p)),
        Rule(r'transformer\.level_embed', p + 'level_embed'),
        Rule(r'transformer\.reference_points\.(weight|bias)',
             p + r'reference_points_fc.\1'),
        Rule(r'query_embed\.weight', p + 'query_embedding.weight'),
        # encoder layers
        Rule(_ENC + r'self_attn\.(.+)', p + r'encoder.layers.\1.self_attn.\2'),
        Rule(_ENC + r'linear1\.(weight|bias)',
             p + r'encoder.layers.\1.ffn.layers.0.0.\2'),
        Rule(_ENC + r'linear2\.(weight|bias)',
             p + r'encoder.layers.\1.ffn.layers.1.\2'),
        Rule(_ENC + r'norm1\.(weight|bias)',
             p + r'encoder.layers.\1.norms.0.\2'),
        Rule(_ENC + r'norm2\.(weight|bias)',
             p + r'encoder.layers.\1.norms.1.\2'),
        # decoder layers
        Rule(_DEC + r'cross_attn\.(.+)',
             p + r'decoder.layers.\1.cross_attn.\2'),
        Rule(_DEC + r'self_attn\.(.+)',
             p + r'decoder.layers.\1.self_attn.attn.\2'),
        Rule(_DEC + r'norm2\.(weight|bias)',
             p + r'decoder.layers.\1.norms.0.\2'),
        Rule(_DEC + r'norm1\.(weight|bias)',
             p + r'decoder.layers.\1.norms.1.\2'),
        Rule(_DEC + r'norm3\.(weight|bias)',
             p + r'decoder.layers.\1.norms.2.\2'),
        Rule(_DEC + r'linear1\.(weight|bias)',
             p + r'decoder.layers.\1.ffn.layers.0.0.\2'),
        Rule(_DEC + r'linear2\.(weight|bias)',
             p + r'decoder.layers.\1.ffn.layers.1.\2'),
        # heads (one entry per decoder layer, shared or not)
        Rule(r'class_embed\.(\d+)\.(weight|bias)',
             p + r'bbox_head.cls_branches.\1.\2'),
        Rule(
            r'bbox_embed\.(\d+)\.layers\.(\d+)\.(weight|bias)',
            lambda m: f'{p}bbox_head.reg_branches.{m.group(1)}.'
            f'{2 * int(m.group(2))}.{m.group(3)}'),
        Rule(r'transformer\.decoder\.(?:bbox|class)_embed\..+', None,
             'decoder copies of the heads (box refinement)'),
        Rule(r'.*(?:total_ops|total_params)', None, 'profiler counters'),
    ]


def detreg_rules(target: str, keep_bias: bool = False) -> List[Rule]:
    """The conversion rules of one target (see the module docstring)."""
    if target not in TARGETS:
        raise ValueError(f'target must be one of {TARGETS}, got {target}')
    if target == 'backbone':
        # the detector's keys are known but not used; anything else is
        # reported as unknown
        known = [
            Rule(r.pattern, None, r.why or 'detector')
            for r in _detector_rules('', keep_bias)
            if not r.pattern.startswith(r'backbone\.0\.body')
        ]
        return torchvision_resnet_rules(r'backbone\.0\.body\.', '') + known + [
            Rule(r'feature_embed\..+', None, 'detector')
        ]
    if target == 'detector':
        return _detector_rules('', keep_bias) + [
            Rule(r'feature_embed\..+', None, 'object-embedding head'),
        ]
    return _detector_rules('detector.', keep_bias) + [
        # DETReg's 2-layer MLP is mmdet's MLP, as ObjectEmbeddingNeck
        Rule(r'feature_embed\.layers\.(\d+)\.(weight|bias)',
             r'neck.layers.\1.\2'),
    ]


def main(argv=None):
    parser = converter_arg_parser(
        'Convert an official DETReg checkpoint to mmregion / mmdet names',
        TARGETS)
    parser.add_argument(
        '--keep-input-proj-bias',
        action='store_true',
        help='keep the input_proj conv biases (for a config whose '
        'ChannelMapper has bias=True)')
    args = parser.parse_args(argv)
    run_conversion(
        args.in_file,
        args.out_file,
        detreg_rules(args.target, args.keep_input_proj_bias),
        f'DETReg -> {args.target}',
        extra_safe_globals=[argparse.Namespace])


if __name__ == '__main__':
    run_cli(main)

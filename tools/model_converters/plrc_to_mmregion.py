"""Convert an official PLRC checkpoint (facebookresearch/PLRC) to mmregion.

The official training checkpoint (``main_plrc.py``) holds the DDP state dict
``module.encoder_{q,k}.enc.*``: a torchvision-style ResNet-50
(``conv1``/``bn1``/``layer1-4``), the point projector ``fcs`` (Linear-ReLU-
Linear) and the DINO head ``fcs_2`` (``mlp.{0,1,3,4,6}`` and a weight-normed
``last_layer.weight_{g,v}``), plus loss buffers ``plrc_loss*`` (queues and
the distillation centre). A Detectron2 export of the backbone (MoCo's
``convert-pretrain-to-detectron2`` names ``stem.*``/``res2-5.*``) is
accepted for the backbone target.

Targets:

- ``backbone``: mmdet/mmpretrain ``ResNet`` names without prefix, for
  ``backbone.init_cfg=dict(type='Pretrained', checkpoint=OUT)``.
- ``algorithm``: mmregion's ``PLRC`` state dict (``plrc_r50_coco.py``):
  backbone, ``point_neck`` (= ``fcs``), ``dino_neck`` (= ``fcs_2``;
  prototypes = ``weight_v``, prototype norms = ``weight_g``), their
  momentum copies and the distillation centre. Our separate image neck
  (``img_neck``) and image queue have no official counterpart (the release
  averages ``fcs`` over locations) and keep their initial values.

Example::

    python tools/model_converters/plrc_to_mmregion.py model_final.pth \
        plrc_r50_backbone.pth
"""
import os.path as osp
import sys
from typing import List

import torch

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

from mmregion.apis.checkpoint_convert import (Rule, converter_arg_parser,
                                              d2_resnet_rules, run_conversion,
                                              torchvision_resnet_rules)
from mmregion.apis.cli import run_cli

TARGETS = ('backbone', 'algorithm')
_MOMENTUM = 'momentum_encoder.module.'


def _heads(src: str, dst: str) -> List[Rule]:
    """``fcs`` -> ``point_neck``, ``fcs_2`` -> ``dino_neck`` (one encoder)."""
    g = r'(?:weight_g|parametrizations\.weight\.original0)'
    v = r'(?:weight_v|parametrizations\.weight\.original1)'
    return [
        Rule(src + r'fcs\.(\d+)\.(weight|bias)',
             dst + r'point_neck.mlp.\1.\2'),
        Rule(src + r'fcs_2\.mlp\.(\d+\.\w+)', dst + r'dino_neck.mlp.\1'),
        Rule(src + r'fcs_2\.last_layer\.' + v, dst + 'dino_neck.prototypes'),
        Rule(
            src + r'fcs_2\.last_layer\.' + g,
            dst + 'dino_neck.prototype_norm',
            transform=lambda t: t.reshape(-1)),
    ]


def plrc_rules(target: str) -> List[Rule]:
    """The conversion rules of one target (see the module docstring)."""
    if target not in TARGETS:
        raise ValueError(f'target must be one of {TARGETS}, got {target}')
    loss_skips = [
        Rule(r'plrc_loss(?:_image)?\.(?:queue_x|ptr)', None,
             'official queues (no counterpart)'),
        Rule(r'plrc_loss_image\.self_distillation\.center', None,
             'unused distillation centre'),
    ]
    if target == 'backbone':
        return (torchvision_resnet_rules(r'encoder_q\.enc\.', '') +
                d2_resnet_rules(r'(?:backbone\.)?', '') + [
                    Rule(r'encoder_q\.enc\.fcs(?:_2)?\..+', None,
                         'projection heads'),
                    Rule(r'encoder_k\..+', None, 'momentum encoder'),
                    Rule(r'plrc_loss.*', None, 'loss buffers'),
                ])
    return (torchvision_resnet_rules(r'encoder_q\.enc\.', 'backbone.') +
            torchvision_resnet_rules(r'encoder_k\.enc\.',
                                     _MOMENTUM + 'backbone.') +
            _heads(r'encoder_q\.enc\.', '') +
            _heads(r'encoder_k\.enc\.', _MOMENTUM) + [
                Rule(r'plrc_loss\.self_distillation\.center',
                     'head.loss_distill_module.center')
            ] + loss_skips)


def main(argv=None):
    parser = converter_arg_parser(
        'Convert an official PLRC checkpoint to mmregion / mmdet names',
        TARGETS)
    args = parser.parse_args(argv)
    # the official key encoder is kept: a non-zero EMA step count stops
    # mmengine's EMA from copying the online weights at its first update
    extra = dict() if args.target == 'backbone' else {
        'momentum_encoder.steps': torch.tensor(1)
    }
    run_conversion(
        args.in_file,
        args.out_file,
        plrc_rules(args.target),
        f'PLRC -> {args.target}',
        extra=extra)


if __name__ == '__main__':
    run_cli(main)

"""Convert an official CCOP checkpoint (ChenhongyiYang/CCOP) to mmregion.

The official model (``openselfsup/models/ccop.py``) is a Detectron2 R-50 + FPN
query encoder ``backbone_q.{bottom_up,fpn_*}``, a key encoder ``backbone_k``,
``LinearNormNeck`` projections ``img_neck_{q,k}`` / ``roi_neck_{q,k}``
(``mlp.linear_1.0`` + ``mlp.last_linear``), queues ``img_queue`` /
``roi_queue`` stored as ``(dim, length)`` and the step counter ``iter``. The
outputs of its ``tools/to_d2_backbone.py`` (``backbone.bottom_up.*`` / bare
``stem.*`` keys under ``model``) are accepted too.

Targets:

- ``backbone``: mmdet/mmpretrain ``ResNet`` names without prefix, for
  ``backbone.init_cfg=dict(type='Pretrained', checkpoint=OUT)``.
- ``detector``: ``backbone.*`` + ``neck.*`` (mmdet ``FPN`` with BN, as CCOP
  trains it) for an mmdet FPN detector's ``load_from`` (CCOP transfers the
  FPN too).
- ``algorithm``: the state dict of mmregion's ``CCOP``
  (``configs/mmregion/ccop_r50_coco.py``) including the momentum encoder and
  the queues, for ``load_from`` to continue pre-training. The curriculum
  position (``box_jitter.progress``) is not converted: ``CCOPCurriculumHook``
  sets it from the iteration of the new run.

Example::

    python tools/model_converters/ccop_to_mmregion.py ccop_official.pth \
        ccop_r50_backbone.pth --target backbone
"""
import os.path as osp
import sys
from typing import List

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

from mmregion.apis.checkpoint_convert import (Rule, converter_arg_parser,
                                              d2_fpn_rules, d2_resnet_rules,
                                              run_conversion)
from mmregion.apis.cli import run_cli

TARGETS = ('backbone', 'detector', 'algorithm')
# source prefixes of the query encoder: training checkpoint, to_d2_backbone
# output, its classification variant (bare Detectron2 ResNet names)
_Q_BOTTOM_UP = (r'backbone_q\.bottom_up\.', r'backbone\.bottom_up\.', '')
_Q_FPN = (r'backbone_q\.', r'backbone\.')
_MOMENTUM = 'momentum_encoder.module.'


def _linear_norm_neck(src: str, dst: str) -> List[Rule]:
    """Official ``LinearNormNeck`` (norm='', 1 hidden layer) -> ours.

    ``mlp.linear_1.0`` (Linear; ``.1`` is Dropout) -> ``mlp.0`` and
    ``mlp.last_linear`` -> ``mlp.3`` of :class:`LinearProjNeck`.
    """
    return [
        Rule(src + r'mlp\.linear_1\.0\.(weight|bias)', dst + r'mlp.0.\1'),
        Rule(src + r'mlp\.last_linear\.(weight|bias)', dst + r'mlp.3.\1'),
    ]


def _skips() -> List[Rule]:
    return [
        Rule(r'backbone_k\..+', None, 'momentum encoder'),
        Rule(r'(?:img|roi)_neck_[qk]\..+', None, 'projection heads'),
        Rule(r'(?:img|roi)_queue(?:_ptr)?', None, 'queues'),
        Rule(r'pixel_mean|pixel_std|iter', None, 'buffers'),
    ]


def ccop_rules(target: str) -> List[Rule]:
    """The conversion rules of one target (see the module docstring)."""
    if target not in TARGETS:
        raise ValueError(f'target must be one of {TARGETS}, got {target}')
    rules: List[Rule] = []
    if target == 'backbone':
        for src in _Q_BOTTOM_UP:
            rules += d2_resnet_rules(src, '')
        rules.append(
            Rule(r'(?:backbone_q\.|backbone\.)fpn_.+', None,
                 'FPN (--target detector keeps it)'))
        return rules + _skips()
    if target == 'detector':
        for src in _Q_BOTTOM_UP:
            rules += d2_resnet_rules(src, 'backbone.')
        for src in _Q_FPN:
            rules += d2_fpn_rules(src, 'neck.')
        return rules + _skips()
    # algorithm: online and momentum encoders, necks, queues
    rules += d2_resnet_rules(r'backbone_q\.bottom_up\.', 'backbone.')
    rules += d2_fpn_rules(r'backbone_q\.', 'neck.')
    rules += d2_resnet_rules(r'backbone_k\.bottom_up\.',
                             _MOMENTUM + 'backbone.')
    rules += d2_fpn_rules(r'backbone_k\.', _MOMENTUM + 'neck.')
    for side, prefix in (('q', ''), ('k', _MOMENTUM)):
        rules += _linear_norm_neck(rf'img_neck_{side}\.', prefix + 'img_neck.')
        rules += _linear_norm_neck(rf'roi_neck_{side}\.',
                                   prefix + 'region_neck.mlp.')
    rules += [
        # official queues are (dim, length); FeatureQueue holds (length, dim)
        Rule(r'img_queue', 'img_queue.queue', transform=lambda t: t.t()),
        Rule(r'roi_queue', 'region_queue.queue', transform=lambda t: t.t()),
        Rule(r'img_queue_ptr', 'img_queue.ptr'),
        Rule(r'roi_queue_ptr', 'region_queue.ptr'),
        # steps already taken: a non-zero EMA step count keeps the converted
        # key encoder (at step 0 mmengine's EMA copies the online weights)
        Rule(
            r'iter',
            'momentum_encoder.steps',
            transform=lambda t: t.reshape(()).clamp(min=1).long()),
        Rule(r'pixel_mean|pixel_std', None,
             'normalisation buffers (our data_preprocessor)'),
    ]
    return rules


def main(argv=None):
    parser = converter_arg_parser(
        'Convert an official CCOP checkpoint to mmregion / mmdet names',
        TARGETS)
    args = parser.parse_args(argv)
    run_conversion(args.in_file, args.out_file, ccop_rules(args.target),
                   f'CCOP -> {args.target}')


if __name__ == '__main__':
    run_cli(main)

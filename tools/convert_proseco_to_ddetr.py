"""Export a ProSeCo / DETReg pre-training checkpoint to an mmdet detector.

Keeps the student detector (``detector.*`` keys, prefix removed) and drops the
pre-training parts: the EMA teacher, the object-embedding neck and, when its
shapes differ from the fine-tuning model's (class-agnostic pre-training vs.
``--num-classes`` classes), the classification branch. The output is a
checkpoint that an mmdet Deformable DETR fine-tuning config loads with
``load_from``; with ``--config`` the keys are checked against a freshly built
fine-tuning model and a report of missing / unexpected / shape-mismatched
keys is printed.

Example::

    python tools/convert_proseco_to_ddetr.py work_dirs/proseco/iter_1000.pth \
        proseco_ddetr.pth --config my_ddetr_finetune.py
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch

PREFIX = 'detector.'
CLS_KEY = 'bbox_head.cls_branches.'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a ProSeCo/DETReg checkpoint for mmdet '
        'Deformable DETR fine-tuning (load_from).')
    parser.add_argument('checkpoint', help='pre-training checkpoint (.pth)')
    parser.add_argument('out', help='output checkpoint path')
    parser.add_argument(
        '--config',
        default=None,
        help='mmdet fine-tuning config; the converted keys are checked '
        'against the model it builds')
    parser.add_argument(
        '--num-classes',
        type=int,
        default=None,
        help='classes of the fine-tuning head; the pre-trained '
        '(class-agnostic) cls branch is dropped when it differs')
    parser.add_argument(
        '--keep-cls',
        action='store_true',
        help='keep the class-agnostic cls branch even if shapes differ')
    return parser.parse_args(argv)


def load_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read the model state dict with the safe (weights_only) loader."""
    import mmregion  # noqa: F401  (registers the safe globals)
    from mmregion.utils import load_checkpoint_safely
    ckpt = load_checkpoint_safely(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f'{path}: no state_dict found in the checkpoint.')
    return state


def convert(state: Dict[str, torch.Tensor],
            num_classes: Optional[int] = None,
            ref_state: Optional[Dict[str, torch.Tensor]] = None,
            keep_cls: bool = False) -> Tuple[OrderedDict, List[str]]:
    """Extract the student detector's weights.

    Args:
        state (dict): ProSeCo state dict.
        num_classes (int, optional): Classes of the fine-tuning head.
        ref_state (dict, optional): State dict of the fine-tuning model, used
            to detect cls-branch shape mismatches.
        keep_cls (bool): Never drop the cls branch.

    Returns:
        tuple[OrderedDict, list[str]]: the detector state dict and the
        dropped detector keys.
    """
    det = OrderedDict(
        (k[len(PREFIX):], v) for k, v in state.items() if k.startswith(PREFIX))
    if not det:
        raise ValueError('no "detector." key in the checkpoint: is it a '
                         'ProSeCo/DETReg pre-training checkpoint?')
    dropped = []
    if not keep_cls:
        for k in list(det):
            if CLS_KEY not in k:
                continue
            mismatch = False
            if ref_state is not None and k in ref_state:
                mismatch = ref_state[k].shape != det[k].shape
            elif num_classes is not None and k.endswith('weight'):
                mismatch = det[k].shape[0] != num_classes
            elif num_classes is not None and k.endswith('bias'):
                mismatch = det[k].shape[0] != num_classes
            if mismatch:
                dropped.append(k)
                del det[k]
    return det, dropped


def build_reference(config: str) -> Dict[str, torch.Tensor]:
    """Build the fine-tuning model of an mmdet config (no weights loaded)."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmregion  # noqa: F401
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = cfg.model
    # never download weights just to check key names
    model_cfg.get('backbone', {}).pop('init_cfg', None)
    return MODELS.build(model_cfg).state_dict()


def report(det: Dict[str, torch.Tensor],
           ref: Dict[str, torch.Tensor]) -> Dict[str, List[str]]:
    """Missing / unexpected / shape-mismatched keys of ``det`` vs ``ref``."""
    missing = sorted(k for k in ref if k not in det)
    unexpected = sorted(k for k in det if k not in ref)
    shape = sorted(
        k for k in det
        if k in ref and tuple(det[k].shape) != tuple(ref[k].shape))
    return dict(missing=missing, unexpected=unexpected, shape_mismatch=shape)


def save_atomic(obj: dict, path: str) -> None:
    """``torch.save`` through a temporary file in the target folder, then
    rename (no half-written checkpoint on failure; the usual umask
    permissions, not ``mkstemp``'s 0600)."""
    from mmregion.utils.atomic_io import atomic_save
    atomic_save(obj, path)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    import mmregion  # noqa: F401
    from mmregion.utils import CheckpointError
    try:
        state = load_state_dict(args.checkpoint)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        # one line naming the file (refused, truncated, missing, no weights)
        print(f'error: {e}', file=sys.stderr)
        return 1
    ref = build_reference(args.config) if args.config else None
    det, dropped = convert(state, args.num_classes, ref, args.keep_cls)
    n_teacher = sum(k.startswith('teacher.') for k in state)
    n_embed = sum(k.startswith('neck.') for k in state)
    print(f'kept {len(det)} detector tensors; dropped {n_teacher} teacher, '
          f'{n_embed} object-embedding neck and {len(dropped)} cls-branch '
          'tensors')
    for k in dropped:
        print(f'  dropped (shape differs from fine-tuning head): {k}')
    if ref is not None:
        rep = report(det, ref)
        for name, keys in rep.items():
            print(f'{name}: {len(keys)}')
            for k in keys:
                print(f'  {k}')
        if rep['shape_mismatch']:
            print(
                'error: shape mismatches remain; they would fail '
                'load_from',
                file=sys.stderr)
            return 1
    save_atomic(
        dict(
            state_dict=det,
            meta=dict(
                source=osp.abspath(args.checkpoint),
                converter='tools/convert_proseco_to_ddetr.py')), args.out)
    print(f'saved {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

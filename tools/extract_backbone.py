"""Extract the online backbone of an mmregion pre-training checkpoint.

The output is an mmengine-style checkpoint ``{'state_dict': ..., 'meta': ...}``
whose keys are the backbone's own parameter/buffer names (no ``backbone.``
prefix), so that an mmdet/mmpretrain config loads it with::

    model = dict(backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='OUT.pth')))

Only the ONLINE (student / query) encoder is exported: keys of momentum or
teacher copies (``momentum_encoder.*``, ``encoder_k.*``, ``teacher.*``, ...)
are skipped even when they happen to carry the prefix. A DDP ``module.``
prefix is stripped first.

Usage::

    python tools/extract_backbone.py work_dirs/ccop/epoch_800.pth \
        checkpoints/ccop_r50_backbone.pth [--prefix backbone.]

The checkpoint is read with ``torch.load(weights_only=True)`` (mmregion's
safe loader, which allow-lists mmengine's benign types) and written
atomically (``mmregion.utils.atomic_io.atomic_save``: temporary file, fsync,
``os.replace``; the file gets the usual umask permissions). A checkpoint
that is refused, truncated or missing is reported in one line (exit status 1).
"""
import argparse
import os.path as osp
import re
import sys
import time
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Tuple

import torch

# key fragments of momentum / teacher / EMA copies (matched on whole
# dot-separated components of the key, after stripping ``module.``)
DEFAULT_EXCLUDE = ('momentum_encoder', 'momentum_backbone', 'momentum_neck',
                   'encoder_k', 'backbone_k', 'key_encoder', 'teacher',
                   'target_net', 'target_encoder', 'ema', 'ema_model')


def _is_excluded(key: str, exclude: Iterable[str]) -> bool:
    parts = key.split('.')
    return any(p in exclude for p in parts)


def extract_backbone_state_dict(
    state_dict: Dict[str, torch.Tensor],
    prefix: str = 'backbone.',
    exclude: Iterable[str] = DEFAULT_EXCLUDE
) -> Tuple['OrderedDict[str, torch.Tensor]', List[str]]:
    """Select the online backbone's weights and strip their prefix.

    Args:
        state_dict (dict[str, Tensor]): The algorithm's full state dict.
        prefix (str): Prefix of the online backbone's keys; a missing
            trailing dot is added. Defaults to ``'backbone.'``.
        exclude (Iterable[str]): Key components that mark a momentum/teacher
            copy; such keys are skipped. Defaults to :data:`DEFAULT_EXCLUDE`.

    Returns:
        tuple: ``(backbone_state_dict, skipped)`` where ``skipped`` lists the
        keys of momentum/teacher copies (reported, never exported).

    Raises:
        KeyError: No key starts with ``prefix`` (the message lists the
            top-level key groups found instead).
    """
    if not prefix.endswith('.'):
        prefix = prefix + '.'
    exclude = set(exclude)
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    skipped = []
    for key, value in state_dict.items():
        k = re.sub(r'^module\.', '', key)
        if not k.startswith(prefix) or _is_excluded(k[len(prefix):], exclude):
            if _is_excluded(k, exclude):
                skipped.append(key)
            continue
        if not torch.is_tensor(value):
            continue
        out[k[len(prefix):]] = value.detach().cpu()
    if not out:
        groups = sorted(
            {re.sub(r'^module\.', '', k).split('.')[0]
             for k in state_dict})
        raise KeyError(
            f'no key of the checkpoint starts with the prefix "{prefix}" '
            f'(outside momentum/teacher copies). Top-level key groups found: '
            f'{groups}. Pass the right --prefix.')
    return out, skipped


def _simple_meta(meta: Optional[dict]) -> dict:
    """Keep only plain (str/int/float/bool) entries of a checkpoint's meta."""
    if not isinstance(meta, dict):
        return {}
    keep = {}
    for k, v in meta.items():
        if isinstance(v, (str, int, float, bool)) and not isinstance(v, bytes):
            keep[str(k)] = v
    return keep


def load_checkpoint(path: str) -> dict:
    """Load a checkpoint with the safe (``weights_only=True``) loader."""
    import mmregion  # noqa: F401  (allow-lists mmengine's types)
    from mmregion.utils import load_checkpoint_safely
    return load_checkpoint_safely(path, map_location='cpu')


def extract_backbone(ckpt_path: str,
                     out_path: str,
                     prefix: str = 'backbone.',
                     exclude: Iterable[str] = DEFAULT_EXCLUDE) -> dict:
    """Read ``ckpt_path``, write the backbone checkpoint to ``out_path``.

    Args:
        ckpt_path (str): mmregion pre-training checkpoint.
        out_path (str): Output file (its folder is created).
        prefix (str): Online backbone prefix. Defaults to ``'backbone.'``.
        exclude (Iterable[str]): Momentum/teacher key components to skip.

    Returns:
        dict: The checkpoint written (``state_dict`` and ``meta``).
    """
    ckpt = load_checkpoint(ckpt_path)
    if isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'), dict):
        state_dict, src_meta = ckpt['state_dict'], ckpt.get('meta')
    elif isinstance(ckpt, dict) and all(isinstance(k, str) for k in ckpt):
        state_dict, src_meta = ckpt, None  # a bare state dict
    else:
        raise TypeError(f'{ckpt_path}: expected a checkpoint dict with a '
                        f'"state_dict" entry, got {type(ckpt).__name__}')
    weights, skipped = extract_backbone_state_dict(state_dict, prefix, exclude)
    from mmregion import __version__
    meta = dict(
        source=osp.abspath(ckpt_path),
        prefix=prefix,
        num_keys=len(weights),
        num_skipped_momentum_keys=len(skipped),
        mmregion_version=__version__,
        time=time.strftime('%Y%m%d_%H%M%S', time.localtime()),
        source_meta=_simple_meta(src_meta))
    out = dict(state_dict=weights, meta=meta)
    from mmregion.utils.atomic_io import atomic_save
    atomic_save(out, out_path)
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Extract the online backbone weights of an mmregion '
        'pre-training checkpoint for mmdet/mmpretrain fine-tuning.')
    parser.add_argument('checkpoint', help='pre-training checkpoint')
    parser.add_argument('out', help='output backbone checkpoint')
    parser.add_argument(
        '--prefix',
        default='backbone.',
        help='key prefix of the online backbone (default: backbone.)')
    parser.add_argument(
        '--exclude',
        nargs='+',
        default=list(DEFAULT_EXCLUDE),
        help='key components marking momentum/teacher copies to skip')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    import mmregion  # noqa: F401
    from mmregion.utils.errors import UserError  # incl. CheckpointError
    args = parse_args(argv)
    try:
        out = extract_backbone(args.checkpoint, args.out, args.prefix,
                               args.exclude)
    except (KeyError, TypeError, FileNotFoundError, UserError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f'extract_backbone: {args.checkpoint}: {msg}', file=sys.stderr)
        return 1
    meta = out['meta']
    print(f'extracted {meta["num_keys"]} keys with prefix "{meta["prefix"]}" '
          f'from {args.checkpoint} (skipped '
          f'{meta["num_skipped_momentum_keys"]} momentum/teacher keys) '
          f'-> {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

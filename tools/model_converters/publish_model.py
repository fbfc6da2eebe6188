"""Prepare a checkpoint for release: keep the weights, add a hash suffix.

Drops what only resuming needs (``optimizer``, ``message_hub``,
``param_schedulers``, ``ema_state_dict``, ...), keeps ``state_dict`` and
``meta`` (``--save-keys`` to choose) and names the file
``<out stem>-<first 8 hex digits of its sha256>.pth``, as mmdet's
``publish_model.py`` does, so that a download can be checked against its
name.

Example::

    python tools/model_converters/publish_model.py \
        work_dirs/ccop/epoch_800.pth ccop_r50_coco_800e.pth
    # -> ccop_r50_coco_800e-1a2b3c4d.pth
"""
import argparse
import hashlib
import io
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

from mmregion.apis.cli import run_cli
from mmregion.utils import UnsafeCheckpointError, load_checkpoint_safely
from mmregion.utils.atomic_io import atomic_write
from mmregion.utils.errors import UserError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Strip a checkpoint to its weights and add a sha256 '
        'suffix to its name')
    parser.add_argument('in_file', help='input checkpoint')
    parser.add_argument('out_file', help='output checkpoint (.pth)')
    parser.add_argument(
        '--save-keys',
        nargs='+',
        default=['meta', 'state_dict'],
        help='top-level entries to keep (default: meta state_dict)')
    return parser.parse_args(argv)


def publish(in_file: str, out_file: str, save_keys=('meta', 'state_dict')):
    """Write the published checkpoint; return ``(path, dropped keys)``.

    Raises:
        UserError: ``out_file`` does not end with ``.pth`` or the checkpoint
            has none of ``save_keys``.
    """
    if not out_file.endswith('.pth'):
        raise UserError(f'the output file must end with .pth: {out_file}')
    try:
        ckpt = load_checkpoint_safely(in_file, map_location='cpu')
    except (UnsafeCheckpointError, RuntimeError, EOFError) as e:
        first = (str(e).strip().splitlines() or [''])[0]
        raise UserError(f'cannot read checkpoint {in_file}: {first}') \
            from None
    if not isinstance(ckpt, dict):
        raise UserError(f'{in_file}: not a checkpoint dict')
    if 'state_dict' not in ckpt and all(
            torch.is_tensor(v) for v in ckpt.values()):
        ckpt = dict(state_dict=ckpt)  # a bare state dict
    kept = {k: ckpt[k] for k in save_keys if k in ckpt}
    if 'state_dict' not in kept:
        raise UserError(f'{in_file}: none of the kept keys {list(save_keys)} '
                        f'holds the weights (entries: {sorted(ckpt)})')
    weights = kept['state_dict']
    if not isinstance(weights, dict) or not weights or not all(
            isinstance(k, str) and torch.is_tensor(v)
            for k, v in weights.items()):
        what = (f'{len(weights)} entries'
                if isinstance(weights, dict) else type(weights).__name__)
        raise UserError(f'{in_file}: "state_dict" must be a non-empty dict '
                        f'of named tensors, got {what}; nothing published')
    dropped = sorted(set(ckpt) - set(kept))
    buf = io.BytesIO()
    torch.save(kept, buf)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    final = f'{out_file[:-len(".pth")]}-{sha[:8]}.pth'
    with atomic_write(final, 'wb') as f:
        f.write(data)
    return final, dropped


def main(argv=None):
    args = parse_args(argv)
    final, dropped = publish(args.in_file, args.out_file, args.save_keys)
    print(f'published {args.in_file} -> {final} (dropped: '
          f'{", ".join(dropped) or "nothing"})')


if __name__ == '__main__':
    run_cli(main)

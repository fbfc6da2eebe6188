"""Public shard API of a proposal directory: read, check and write one shard.

A shard is an ``.npz`` (no pickles) with ``keys``, ``offsets``, ``boxes``,
``failed`` and ``run_sha1`` (see :mod:`mmregion.proposals.format`). Shards
are written atomically (:func:`mmregion.utils.atomic_io.atomic_write`) and
read fully into memory (the file is closed right away, so the result is
safe to use from forked dataloader workers).
"""
import os
import os.path as osp
import stat
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

from mmregion.utils.atomic_io import atomic_write
from mmregion.utils.input_checks import InputError
from .format import META_FILE, PackedBoxes, show_value

__all__ = [
    'read_shard', 'write_shard', 'read_shard_failed', 'read_shard_digest',
    'iter_shard_boxes', 'settings_mismatch_error'
]


def check_regular_file(path: str) -> None:
    """Refuse FIFOs, devices and folders (reading them could hang)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise InputError(f'Proposal shard {path} cannot be read: '
                         f'{type(e).__name__}') from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f'Proposal shard {path} is not a regular file')


def read_shard(path: str) -> PackedBoxes:
    """Load and validate one shard.

    Args:
        path (str): The ``shard-NNNNN.npz`` file.

    Returns:
        PackedBoxes: Its keys and (M, 4) float32 xyxy boxes.

    Raises:
        InputError: The file is not a regular file, not a readable ``.npz``
            or its arrays are inconsistent (naming the shard).
    """
    check_regular_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys, offsets, boxes = z['keys'], z['offsets'], z['boxes']
    except Exception as e:  # zip/format errors come in many types
        raise InputError(f'Corrupt proposal shard {path}: '
                         f'{type(e).__name__}: {show_value(str(e), 200)}') \
            from None
    if (keys.ndim != 1 or keys.dtype.kind != 'U'
            or offsets.shape != (len(keys) + 1, ) or boxes.ndim != 2
            or boxes.shape[1] != 4 or offsets.dtype.kind not in 'iu'
            or len(offsets) == 0 or offsets[0] != 0
            or offsets[-1] != len(boxes) or np.any(np.diff(offsets) < 0)):
        raise InputError(f'Corrupt proposal shard {path}: inconsistent '
                         f'keys {keys.shape}, offsets {offsets.shape}, '
                         f'boxes {boxes.shape}')
    return PackedBoxes(keys, offsets.astype(np.int64),
                       boxes.astype(np.float32, copy=False))


def read_shard_failed(path: str) -> List[str]:
    """Keys recorded as failed (unreadable images) in one shard."""
    with np.load(path, allow_pickle=False) as z:
        return [str(k) for k in z['failed']] if 'failed' in z else []


def read_shard_digest(path: str) -> Optional[str]:
    """The ``run_sha1`` a shard was written with (None: older shard).

    Only the zip directory and this tiny member are read, so checking every
    shard of a store is cheap. Raises :class:`InputError` naming the shard
    when it is not a readable ``.npz`` with keys/offsets/boxes.
    """
    check_regular_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {'keys', 'offsets', 'boxes'} - set(z.files)
            digest = str(z['run_sha1']) if 'run_sha1' in z.files else None
    except Exception as e:
        raise InputError(f'Corrupt proposal shard {path}: '
                         f'{type(e).__name__}: {show_value(str(e), 200)}') \
            from None
    if missing:
        raise InputError(f'Corrupt proposal shard {path}: no '
                         f'{sorted(missing)} array')
    return digest


def write_shard(path: str,
                boxes_of: Dict[str, np.ndarray],
                failed: Iterable[str] = (),
                run_sha1: str = '') -> None:
    """Atomically write one shard.

    Args:
        path (str): Target ``shard-NNNNN.npz``.
        boxes_of (dict): ``{key: (N, 4) boxes}`` of the processed images
            (``N`` may be 0).
        failed (Iterable[str]): Keys of images that could not be read.
        run_sha1 (str): The run digest (:func:`~.format.run_digest`).
    """
    failed = sorted(failed)
    packed = PackedBoxes.from_dict(boxes_of)
    failed_arr = np.array(
        failed, dtype=str) if failed else np.zeros(
            0, dtype='<U1')

    with atomic_write(path) as f:
        np.savez(
            f,
            keys=packed.keys,
            offsets=packed.offsets,
            boxes=packed.boxes,
            failed=failed_arr,
            run_sha1=np.array(run_sha1))


def iter_shard_boxes(path: str) -> Iterator[Tuple[str, np.ndarray]]:
    """``(key, (N, 4) boxes)`` of every image of one shard, in key order."""
    shard = read_shard(path)
    for i, key in enumerate(shard.keys):
        yield str(key), shard.boxes[shard.offsets[i]:shard.offsets[i + 1]]


def settings_mismatch_error(shard: str, store: str) -> InputError:
    return InputError(
        f'Proposal shard {shard} was written with other settings or images '
        f'than {osp.join(store, META_FILE)} says (another run wrote into '
        f'{store}?); regenerate it: tools/generate_proposals.py ... '
        '--overwrite')

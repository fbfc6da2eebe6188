"""Public shard API of a proposal directory: read, check and write one shard.

A shard is an ``.npz`` (no pickles) with ``keys``, ``offsets``, ``boxes``,
``failed`` and ``run_sha1`` (see :mod:`mmregion.proposals.format`). Shards
are written atomically (:func:`mmregion.utils.atomic_io.atomic_write`) and
read fully into memory (the file is closed right away, so the result is
safe to use from forked dataloader workers).
"""
import contextlib
import errno
import io
import math
import os
import os.path as osp
import stat
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

from mmregion.utils.atomic_io import atomic_write
from mmregion.utils.input_checks import InputError, show_value
from .format import META_FILE, PackedBoxes

__all__ = [
    'read_shard', 'write_shard', 'read_shard_failed', 'read_shard_digest',
    'read_shard_num_keys', 'iter_shard_boxes', 'settings_mismatch_error',
    'writing_error_names'
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


# caps checked on the .npy headers before anything is decompressed
MAX_KEY_CHARS = 4096  # PATH_MAX
MAX_SHARD_MEMBER_BYTES = 1 << 30
# the dtypes the writer uses; anything else is a corrupt shard
_MEMBER_KINDS = {
    'keys': 'U',
    'failed': 'U',
    'run_sha1': 'U',
    'offsets': np.dtype('<i8'),
    'boxes': np.dtype('<f4'),
}


def _member_header(z: 'np.lib.npyio.NpzFile', name: str) -> tuple:
    """``(shape, dtype)`` of an ``.npz`` member, from its header only."""
    with z.zip.open(name + '.npy') as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    return shape, dtype


def _check_member(z, name: str, path: str) -> None:
    """Refuse a member of the wrong dtype or too large, before reading."""
    shape, dtype = _member_header(z, name)
    want = _MEMBER_KINDS[name]
    if isinstance(want, str):
        ok = dtype.kind == want and dtype.itemsize <= 4 * MAX_KEY_CHARS
    else:
        ok = dtype == want
    nbytes = math.prod(shape) * dtype.itemsize
    if not ok or nbytes > MAX_SHARD_MEMBER_BYTES:
        limit = f'at most {MAX_SHARD_MEMBER_BYTES} bytes'
        if isinstance(want, str):
            want = f'unicode (U) of at most {MAX_KEY_CHARS} characters'
        raise InputError(
            f'Corrupt proposal shard {path}: "{name}" is a {shape} {dtype} '
            f'array ({nbytes} bytes); expected {want}, {limit}')


def _load_members(path: str, names: tuple) -> dict:
    """Read members of a shard after checking their headers."""
    check_regular_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {}
            for name in names:
                if name not in z.files:
                    if name in ('keys', 'offsets', 'boxes'):
                        raise InputError(f'Corrupt proposal shard {path}: no '
                                         f'"{name}" array')
                    continue
                _check_member(z, name, path)
                out[name] = z[name]
            return out
    except InputError:
        raise
    except Exception as e:  # zip/format errors come in many types
        raise InputError(f'Corrupt proposal shard {path}: '
                         f'{type(e).__name__}: {show_value(str(e), 200)}') \
            from None


def read_shard(path: str,
               expect_run: Optional[str] = None,
               store: Optional[str] = None) -> PackedBoxes:
    """Load and validate one shard.

    Every array's header is checked (dtype as written, size caps) before
    it is decompressed.

    Args:
        path (str): The ``shard-NNNNN.npz`` file.
        expect_run (str, optional): The ``run_sha1`` the shard must have
            (that of the store when it was opened). Defaults to None.
        store (str, optional): The store, for the message.

    Returns:
        PackedBoxes: Its keys and (M, 4) float32 xyxy boxes.

    Raises:
        InputError: The file is not a regular file, not a readable ``.npz``
            or its arrays are inconsistent, or it belongs to another run
            (naming the shard).
    """
    z = _load_members(path, ('keys', 'offsets', 'boxes', 'run_sha1'))
    keys, offsets, boxes = z['keys'], z['offsets'], z['boxes']
    if expect_run is not None and 'run_sha1' in z and \
            str(z['run_sha1']) != expect_run:
        raise InputError(
            f'Proposal shard {path} belongs to another run than the one '
            f'{store or osp.dirname(path)} was opened with: the store was '
            'regenerated while being read. Restart the reader (training) '
            'once tools/generate_proposals.py has finished.')
    if (keys.ndim != 1 or offsets.shape != (len(keys) + 1, ) or boxes.ndim != 2
            or boxes.shape[1] != 4 or len(offsets) == 0 or offsets[0] != 0
            or offsets[-1] != len(boxes) or np.any(np.diff(offsets) < 0)
            or np.any(keys[1:] <= keys[:-1])):
        raise InputError(f'Corrupt proposal shard {path}: inconsistent '
                         f'keys {keys.shape}, offsets {offsets.shape}, '
                         f'boxes {boxes.shape} (offsets must start at 0, '
                         'never decrease and end at the number of boxes; '
                         'keys must be sorted and unique)')
    return PackedBoxes(keys, offsets, boxes)


def read_shard_failed(path: str) -> List[str]:
    """Keys recorded as failed (unreadable images) in one shard."""
    z = _load_members(path, ('keys', 'offsets', 'boxes', 'failed'))
    return [str(k) for k in z['failed']] if 'failed' in z else []


def read_shard_num_keys(path: str) -> int:
    """Number of images stored in a shard (read from its header only)."""
    check_regular_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            _check_member(z, 'keys', path)
            shape, _ = _member_header(z, 'keys')
    except InputError:
        raise
    except Exception as e:
        raise InputError(f'Corrupt proposal shard {path}: '
                         f'{type(e).__name__}: {show_value(str(e), 200)}') \
            from None
    return int(shape[0]) if len(shape) == 1 else 0


def read_shard_digest(path: str) -> Optional[str]:
    """The ``run_sha1`` a shard was written with (None: older shard).

    Only the zip directory, the array headers and this tiny member are
    read, so checking every shard of a store is cheap. Raises
    :class:`InputError` naming the shard when it is not a readable
    ``.npz`` with keys/offsets/boxes of the right types and sizes.
    """
    check_regular_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {'keys', 'offsets', 'boxes'} - set(z.files)
            if missing:
                raise InputError(f'Corrupt proposal shard {path}: no '
                                 f'{sorted(missing)} array')
            for name in ('keys', 'offsets', 'boxes'):
                _check_member(z, name, path)
            digest = None
            if 'run_sha1' in z.files:
                _check_member(z, 'run_sha1', path)
                digest = str(z['run_sha1'])
    except InputError:
        raise
    except Exception as e:
        raise InputError(f'Corrupt proposal shard {path}: '
                         f'{type(e).__name__}: {show_value(str(e), 200)}') \
            from None
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

    # the archive is built in memory and written in one go: a write error
    # (disk full) then leaves no half-closed ZipFile behind, whose __del__
    # printed a second traceback
    buf = io.BytesIO()
    np.savez(
        buf,
        keys=packed.keys,
        offsets=packed.offsets,
        boxes=packed.boxes,
        failed=failed_arr,
        run_sha1=np.array(run_sha1))
    with writing_error_names(path, 'proposal shard'):
        with atomic_write(path) as f:
            f.write(buf.getbuffer())


@contextlib.contextmanager
def writing_error_names(path: str, what: str) -> Iterator[None]:
    """Re-raise an ``OSError`` of the body naming ``path`` (a disk-full
    ``ENOSPC`` said only "No space left on device"). The atomic write has
    left the previous file (if any) in place."""
    try:
        yield
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        hint = ' (the disk is full: free space and run again, finished ' \
            'shards are kept)' if e.errno == errno.ENOSPC else ''
        raise OSError(e.errno,
                      f'cannot write {what} {path}: {reason}{hint}') from None


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

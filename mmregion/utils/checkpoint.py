"""Safe checkpoint loading for torch >= 2.6 with mmengine 0.10.x.

torch >= 2.6 loads checkpoints with ``weights_only=True``: only tensors,
containers and allow-listed types may be unpickled. mmengine 0.10.7 writes
numpy arrays/scalars and ``HistoryBuffer`` objects (message hub) into its
checkpoints, so ``resume=True`` and ``load_from`` fail with
``UnpicklingError: Weights only load failed``.

We keep the safe loader and allow-list exactly those benign types. We also
replace mmengine's local-file loader so that a refused checkpoint gives one
clear message naming the file and the refused global, instead of a long
traceback. We never set ``weights_only=False`` or
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``. On torch < 2.6, whose
``add_safe_globals`` lacks the form we need, the same allow-list is enforced
by a restricted unpickler (:mod:`mmregion.utils.restricted_torch_load`).
"""
import os
import os.path as osp
import pickle
import stat
import zipfile
from typing import Any, List, Optional

import numpy as np
import torch

from .errors import UserError
from .restricted_torch_load import (restricted_torch_load,
                                    torch_has_tuple_safe_globals)
from .safe_numpy import (DtypeSpec, UnsafeArrayError, as_dtype, check_array,
                         empty_bytes, scalar_from_bytes)

__all__ = [
    'safe_checkpoint_globals', 'install_safe_checkpoint_loader',
    'load_checkpoint_safely', 'CheckpointError', 'UnsafeCheckpointError',
    'CorruptCheckpointError', 'CheckedArray'
]


class CheckpointError(UserError):
    """A checkpoint file that can not be used; the message is one line
    naming the file (``tools/*.py`` print it without a traceback)."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint holds a pickled object that is not allow-listed."""


class CorruptCheckpointError(CheckpointError, RuntimeError):
    """A checkpoint is empty, truncated, not a file or not a checkpoint."""


# what torch.load raises on a file cut short or not written by torch.save
_CORRUPT_ERRORS = (EOFError, RuntimeError, KeyError, ValueError, IndexError,
                   TypeError, AttributeError, UnicodeDecodeError, OSError,
                   ImportError)


class CheckedArray(np.ndarray):
    """A numpy array loaded from a checkpoint, rebuilt from checked data.

    ``numpy.core.multiarray._reconstruct`` of a checkpoint gives an empty
    instance of this subclass; its ``__setstate__`` accepts only a plain
    dtype (:class:`~mmregion.utils.safe_numpy.DtypeSpec`), a shape and raw
    bytes of exactly ``prod(shape) * itemsize`` (capped), never numpy's own
    state with object fields or offsets. It pickles as a plain ndarray.
    """

    def __new__(cls, *args, **kwargs):
        raise pickle.UnpicklingError(
            'refusing to call numpy.ndarray() from a checkpoint')

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1
                and isinstance(state[3], bool)):
            raise UnsafeArrayError(f'refusing ndarray state {state!r:.80}')
        dtype = as_dtype(state[2])
        shape, data = check_array(state[1], dtype, state[4])
        super().__setstate__((1, shape, dtype, state[3], data.tobytes()))

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.view(np.ndarray).__reduce_ex__(protocol)

    def __reduce__(self) -> Any:
        return self.view(np.ndarray).__reduce__()


def _reconstruct(cls: Any, shape: Any, code: Any) -> CheckedArray:
    """``numpy.core.multiarray._reconstruct``, for an empty array only."""
    if cls is not CheckedArray or shape != (0, ) or code != b'b':
        raise UnsafeArrayError(
            f'refusing _reconstruct{(cls, shape, code)!r:.80}')
    return np.ndarray.__new__(CheckedArray, (0, ), 'b')


def _scalar(dtype: Any, data: Any) -> Any:
    """``numpy.core.multiarray.scalar`` of a plain dtype from its bytes."""
    return scalar_from_bytes(as_dtype(dtype), data)


def safe_checkpoint_globals() -> List[Any]:
    """What a checkpoint may name, beyond torch's own weights-only list.

    numpy arrays, scalars and dtypes (mmengine writes them into the message
    hub) are built by checked stand-ins from a dtype of
    :data:`~mmregion.utils.safe_numpy.SAFE_DTYPES`, a shape and bytes of
    the right size (:class:`CheckedArray`), never by numpy's pickle helpers;
    and mmengine's ``HistoryBuffer``.

    Returns:
        list: Objects and ``(object, 'module.name')`` pairs for
        ``torch.serialization.add_safe_globals``.
    """
    allowed: List[Any] = []
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        allowed += [(_reconstruct, f'{mod}._reconstruct'),
                    (_scalar, f'{mod}.scalar')]
    allowed += [(CheckedArray, 'numpy.ndarray'), (DtypeSpec, 'numpy.dtype'),
                (empty_bytes, 'builtins.bytes')]
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed.append(HistoryBuffer)
    # HistoryBuffer pickles its statistics methods as
    # ``getattr(HistoryBuffer, 'mean')``: allow that getattr, and only that.
    allowed.append((_history_buffer_getattr, 'builtins.getattr'))
    return allowed


_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """The only ``getattr`` a checkpoint may call: a HistoryBuffer
    statistic."""
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed = set(_HISTORY_BUFFER_METHODS) | set(
        HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'Unsupported global: getattr({obj!r}, {name!r}) is not allowed')


def load_checkpoint_safely(filename: str,
                           map_location: Optional[Any] = None) -> Any:
    """``torch.load`` with ``weights_only=True`` and a clear error.

    Args:
        filename (str): Path of a local checkpoint.
        map_location: As in :func:`torch.load`. Defaults to None.

    Returns:
        The unpickled checkpoint (usually a dict).

    Raises:
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: The checkpoint holds a global that is not
            allow-listed (it may run code when unpickled); it is refused.
        CorruptCheckpointError: The file is empty, truncated, not a regular
            file or not a torch checkpoint.
    """
    if not isinstance(filename, str) or not filename.strip():
        raise CorruptCheckpointError(
            f'checkpoint path {filename!r} is empty (an empty '
            'work_dir/last_checkpoint?); name a checkpoint file')
    filename = osp.expanduser(filename)
    try:
        st = os.stat(filename)
    except FileNotFoundError:
        raise FileNotFoundError(
            f'checkpoint {filename} can not be found.') from None
    except (ValueError, OSError) as e:  # a NUL byte, a name too long...
        raise CorruptCheckpointError(
            f'checkpoint path {filename!r:.300} cannot be used: {e}') \
            from None
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block torch.load
        raise CorruptCheckpointError(
            f'checkpoint {filename} is not a regular file.')
    if st.st_size == 0:
        raise CorruptCheckpointError(
            f'checkpoint {filename} is empty (0 bytes): it was not written '
            'completely; use an older checkpoint.')
    try:
        if not torch_has_tuple_safe_globals():  # torch < 2.6
            return restricted_torch_load(filename, map_location,
                                         safe_checkpoint_globals())
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if not zipfile.is_zipfile(filename) and 'GLOBAL' not in str(e):
            _raise_corrupt(filename, st.st_size, e)  # raw bytes, no archive
        first = str(e).strip().splitlines()
        detail = next((ln for ln in first if ln.startswith('refusing')
                       or 'GLOBAL' in ln or 'Unsupported' in ln),
                      first[0] if first else '')
        detail = detail.split('. Please use')[0]
        raise UnsafeCheckpointError(
            f'Refused to load checkpoint {filename}: it contains a pickled '
            'object that is not on the weights-only allow-list '
            f'({detail.strip()}). '
            'Loading it could execute arbitrary code. If you trust the file, '
            'add the type with torch.serialization.add_safe_globals.'
        ) from None
    except _CORRUPT_ERRORS as e:
        if zipfile.is_zipfile(filename) and not isinstance(
                e, (EOFError, KeyError)) and not _is_zip_read_error(e):
            raise  # a readable archive: not a broken file (e.g. a device)
        _raise_corrupt(filename, st.st_size, e)


def _raise_corrupt(filename: str, size: int, e: BaseException) -> None:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    if isinstance(e, pickle.UnpicklingError):  # torch's long preamble
        lines = [ln for ln in lines if 'Unsupported' in ln] or lines
    detail = (lines[0] if lines else '').split('. This is an')[0]
    raise CorruptCheckpointError(
        f'checkpoint {filename} ({size} bytes) is truncated or not a '
        f'checkpoint written by torch.save ({type(e).__name__}: '
        f'{detail[:200]}); use an older checkpoint.') from None


def _is_zip_read_error(e: BaseException) -> bool:
    """A ``PytorchStreamReader`` error of a damaged archive."""
    return isinstance(e, RuntimeError) and 'PytorchStreamReader' in str(e)


def load_from_local_safely(filename: str, map_location: Any = None) -> Any:
    """mmengine's local-file loader, safe (logged as 'local_safely')."""
    return load_checkpoint_safely(filename, map_location)


_INSTALLED = False


def install_safe_checkpoint_loader() -> None:
    """Allow-list mmengine's types and route local loads through us.

    The one import-time change of checkpoint loading (idempotent; called
    once by ``import mmregion``):

    - torch >= 2.6: :func:`safe_checkpoint_globals` are added with
      ``torch.serialization.add_safe_globals``; without them torch's
      ``weights_only`` loader refuses every checkpoint mmengine writes;
    - :func:`load_from_local_safely` is registered for local paths with
      mmengine's ``CheckpointLoader.register_scheme`` (its extension point
      for loaders), so every path of mmengine that reads a local checkpoint
      (``load_from``, ``resume``, ``init_cfg=dict(type='Pretrained')``)
      gives one-line errors naming the file, refuses FIFOs, and enforces the
      same allow-list on torch < 2.6.
    """
    global _INSTALLED
    if _INSTALLED:
        return
    if torch_has_tuple_safe_globals():
        torch.serialization.add_safe_globals(safe_checkpoint_globals())
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_safely, force=True)
    _INSTALLED = True

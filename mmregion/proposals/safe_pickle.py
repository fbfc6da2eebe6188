"""The data-only reader of mmdet proposal pickles (never runs code).

No object of numpy, torch or mmengine is built by the unpickler: their
pickled constructors are replaced by *specs* that only record their
arguments (``numpy.dtype`` -> :class:`~mmregion.utils.safe_numpy.DtypeSpec`,
``_reconstruct``/``_frombuffer`` -> :class:`ArraySpec`, ``scalar`` ->
:class:`ScalarSpec`, ``InstanceData`` -> :class:`InstanceDataSpec`, a
tensor -> :class:`TensorSpec`). What comes out of the unpickler is plain
containers, numbers, strings, bytes and specs; :func:`resolve` then builds
every array itself from ``(shape, a dtype of a short numeric list, bytes)``
after checking ``len(bytes) == prod(shape) * itemsize`` and a size cap
(:mod:`mmregion.utils.safe_numpy`). The arrays built may total at most the
size of the file (a pickle cannot make many arrays out of one buffer).
"""
import io
import os
import pickle
from typing import Any, Dict

import numpy as np

from mmregion.utils.input_checks import InputError, show_value
from mmregion.utils.safe_numpy import (DtypeSpec, UnsafeArrayError,
                                       array_from_bytes, as_dtype, empty_bytes)

__all__ = [
    'UnsafeProposalFileError', 'ProposalUnpickler', 'load_proposal_pickle',
    'resolve', 'ArraySpec', 'ScalarSpec', 'InstanceDataSpec', 'TensorSpec'
]


class UnsafeProposalFileError(InputError, pickle.UnpicklingError):
    """A proposal pickle asks for a global outside the allow-list."""


class _NdarrayMarker:
    """Stands in for the class ``numpy.ndarray`` (never instantiated)."""

    def __new__(cls, *args, **kwargs):
        raise UnsafeArrayError('refusing to call numpy.ndarray()')


class ArraySpec:
    """An array described by ``_reconstruct`` + BUILD or ``_frombuffer``."""

    def __init__(self,
                 shape: Any = None,
                 dtype: Any = None,
                 data: Any = None,
                 fortran: bool = False) -> None:
        self.shape, self.dtype, self.data = shape, dtype, data
        self.fortran = fortran

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1
                and isinstance(state[3], bool)):
            raise UnsafeArrayError('refusing ndarray state '
                                   f'{show_value(state)}')
        _, self.shape, self.dtype, self.fortran, self.data = state


def _reconstruct(cls: Any, shape: Any, code: Any) -> ArraySpec:
    if cls is not _NdarrayMarker or shape != (0, ) or code != b'b':
        raise UnsafeArrayError('refusing _reconstruct('
                               f'{show_value((cls, shape, code))})')
    return ArraySpec()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> ArraySpec:
    if order not in ('C', 'F'):
        raise UnsafeArrayError(f'refusing array order {show_value(order)}')
    return ArraySpec(shape, dtype, buf, order == 'F')


class ScalarSpec:
    """A numpy scalar described by ``scalar(dtype, bytes)``."""

    def __init__(self, dtype: Any, data: Any = None) -> None:
        self.dtype, self.data = dtype, data


class InstanceDataSpec:
    """mmengine's ``InstanceData`` (mmdet 3.x results): its state only."""

    def __init__(self, *args) -> None:
        if args:
            raise UnsafeArrayError('refusing InstanceData with arguments')
        self.state: Any = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state


class StorageBytes:
    """``torch.storage._load_from_bytes(b)``: a tensor storage, unread."""

    def __init__(self, data: Any) -> None:
        if not isinstance(data, (bytes, bytearray)):
            raise UnsafeArrayError('refusing a tensor storage of type '
                                   f'{type(data).__name__}')
        self.data = data


class TensorSpec:
    """``torch._utils._rebuild_tensor_v2(storage, offset, size, ...)``."""

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any,
                 *unused) -> None:
        self.storage, self.offset = storage, offset
        self.size, self.stride = size, stride


def _latin1_encode(obj: Any, encoding: str = 'utf-8') -> bytes:
    """``_codecs.encode`` for protocol-2 numpy pickles, latin-1 only."""
    if encoding not in ('latin1', 'latin-1') or not isinstance(obj, str):
        raise pickle.UnpicklingError(
            f'refusing _codecs.encode({type(obj).__name__}, '
            f'{show_value(encoding)}): only latin-1 text is expected')
    return obj.encode('latin-1')


def _set(items: Any = ()) -> set:
    """``set(list)``: protocol 2 pickles sets so (``InstanceData`` fields)."""
    if not isinstance(items, list):
        raise pickle.UnpicklingError('refusing set() of '
                                     f'{type(items).__name__}')
    return set(items)


def _ordered_dict(*args) -> dict:
    """``collections.OrderedDict(...)`` as a plain dict (no BUILD on it)."""
    return dict(*args)


class ProposalUnpickler(pickle.Unpickler):
    """Unpickles proposal files into plain data and specs, never code.

    Only exact ``(module, name)`` pairs are resolved, never a dotted name
    (protocol 4 allows ``name='a.b.c'``, which walks attributes), never a
    whole module, and each to a stand-in of ours (see the module doc).
    ``persistent_load`` is refused by the base class.
    """

    _ALLOWED: Dict[tuple, Any] = {
        ('collections', 'OrderedDict'): _ordered_dict,
        ('numpy', 'ndarray'): _NdarrayMarker,
        ('numpy', 'dtype'): DtypeSpec,
        ('numpy.core.multiarray', '_reconstruct'): _reconstruct,
        ('numpy.core.multiarray', 'scalar'): ScalarSpec,
        ('numpy.core.numeric', '_frombuffer'): _frombuffer,
        ('numpy._core.multiarray', '_reconstruct'): _reconstruct,
        ('numpy._core.multiarray', 'scalar'): ScalarSpec,
        ('numpy._core.numeric', '_frombuffer'): _frombuffer,
        ('mmengine.structures.instance_data', 'InstanceData'):
        InstanceDataSpec,
        ('torch._utils', '_rebuild_tensor_v2'): TensorSpec,
        ('torch.storage', '_load_from_bytes'): StorageBytes,
        ('_codecs', 'encode'): _latin1_encode,
        ('__builtin__', 'bytes'): empty_bytes,
        ('builtins', 'bytes'): empty_bytes,
        ('__builtin__', 'set'): _set,
        ('builtins', 'set'): _set,
    }

    def find_class(self, module: str, name: str) -> Any:
        pair = (module, name)
        if isinstance(module, str) and isinstance(name, str) and \
                '.' not in name and pair in self._ALLOWED:
            return self._ALLOWED[pair]
        raise UnsafeProposalFileError(
            f'refusing to unpickle {show_value(module)}.{show_value(name)}: '
            'proposal pickles may only hold arrays, tensors, lists/dicts and '
            'InstanceData')


class _Resolver:
    """Turns specs into arrays, at most ``budget`` bytes of them."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.done: Dict[int, Any] = {}

    def _spend(self, nbytes: int) -> None:
        self.budget -= nbytes
        if self.budget < 0:
            raise UnsafeArrayError(
                'refusing arrays larger in total than the file (the pickle '
                'builds many arrays out of the same bytes)')

    def array(self, spec: ArraySpec) -> np.ndarray:
        dtype = as_dtype(spec.dtype)
        arr = array_from_bytes(spec.shape, dtype, spec.data, spec.fortran)
        self._spend(arr.nbytes)
        return arr

    def tensor(self, spec: TensorSpec) -> np.ndarray:
        import torch
        if not isinstance(spec.storage, StorageBytes):
            raise UnsafeArrayError('refusing a tensor without a storage')
        storage = torch.load(io.BytesIO(spec.storage.data), weights_only=True)
        if not isinstance(storage, (torch.UntypedStorage, torch.TypedStorage)):
            raise UnsafeArrayError('refusing a tensor storage of type '
                                   f'{type(storage).__name__}')
        size, stride, offset = spec.size, spec.stride, spec.offset
        ok = (
            isinstance(size, tuple) and isinstance(stride, tuple)
            and len(size) == len(stride) <= 32 and type(offset) is int
            and offset >= 0
            and all(type(n) is int and n >= 0 for n in size + stride))
        dtype = getattr(storage, 'dtype', None)
        if not ok or dtype not in (torch.float16, torch.float32, torch.float64,
                                   torch.int32, torch.int64, torch.uint8,
                                   torch.int16, torch.int8, torch.bool,
                                   torch.bfloat16):
            raise UnsafeArrayError(
                f'refusing tensor {show_value((size, stride, offset))} '
                f'of {dtype}')
        numel = int(np.prod(size, dtype=np.int64)) if size else 1
        avail = storage.size()
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if numel and (last >= avail or numel > avail):
            raise UnsafeArrayError(
                f'refusing tensor of size {size} on a storage of {avail} '
                'elements')
        t = torch.empty(0, dtype=dtype).set_(storage, offset, size, stride)
        arr = t.float().numpy() if dtype == torch.bfloat16 else t.numpy()
        arr = np.ascontiguousarray(arr).copy()
        self._spend(arr.nbytes)
        return arr

    def __call__(self, obj: Any) -> Any:
        key = id(obj)
        if key in self.done:
            return self.done[key]
        if isinstance(obj, (str, bytes, int, float, bool, type(None))):
            return obj
        if isinstance(obj, dict):
            out: Any = {self(k): self(v) for k, v in obj.items()}
        elif isinstance(obj, (list, tuple)):
            out = [self(v) for v in obj]
        elif isinstance(obj, ArraySpec):
            out = self.array(obj)
        elif isinstance(obj, ScalarSpec):
            out = array_from_bytes((), as_dtype(obj.dtype), obj.data)[()]
        elif isinstance(obj, InstanceDataSpec):
            state = obj.state
            if isinstance(state, tuple) and len(state) == 2:
                state = state[0]
            if not isinstance(state, dict):
                raise UnsafeArrayError('refusing InstanceData state of type '
                                       f'{type(state).__name__}')
            out = {
                k: self(v)
                for k, v in state.items() if k in ('bboxes', 'scores')
            }
        elif isinstance(obj, TensorSpec):
            out = self.tensor(obj)
        elif isinstance(obj, DtypeSpec):
            out = obj.dtype
        else:
            raise UnsafeArrayError(
                f'refusing a value of type {type(obj).__name__}')
        self.done[key] = out
        return out


def resolve(obj: Any, budget: int) -> Any:
    """Build the arrays the specs of ``obj`` describe (at most ``budget``
    bytes in total); dicts and lists are copied, tuples become lists."""
    return _Resolver(budget)(obj)


def load_proposal_pickle(path: str) -> Any:
    """Read a proposal pickle as data: containers, numbers, str, arrays.

    Raises:
        UnsafeProposalFileError: A global outside the allow-list.
        InputError: Anything else that is not plain data (an unsafe dtype,
            a size mismatch, a truncated file...), naming ``path``.
    """
    try:
        size = os.path.getsize(path)
        with open(path, 'rb') as f:
            obj = ProposalUnpickler(f).load()
        return resolve(obj, budget=size)
    except UnsafeProposalFileError as e:
        raise UnsafeProposalFileError(f'{path}: {e}') from None
    except RecursionError:
        raise InputError(f'{path}: not a usable proposal pickle: nested too '
                         'deeply') from None
    except Exception as e:  # truncated, not a pickle, bad arguments...
        raise InputError(
            f'{path}: not a readable proposal pickle: '
            f'{type(e).__name__}: {show_value(str(e), 200)}') from None

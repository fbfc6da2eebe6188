"""The restricted unpickler of mmdet proposal pickles (never runs code)."""
import importlib
import io
import pickle
from typing import Any

from mmregion.utils.input_checks import InputError
from .format import show_value

__all__ = ['UnsafeProposalFileError', 'ProposalUnpickler']


def _load_tensor_bytes(data: bytes) -> Any:
    """Tensors inside a plain pickle: read with torch's safe loader."""
    import torch
    return torch.load(io.BytesIO(data), weights_only=True)


def _latin1_encode(obj: Any, encoding: str = 'utf-8') -> bytes:
    """``_codecs.encode`` for protocol-2 numpy pickles, latin-1 only."""
    if encoding not in ('latin1', 'latin-1') or not isinstance(obj, str):
        raise pickle.UnpicklingError(
            f'refusing _codecs.encode({type(obj).__name__}, '
            f'{show_value(encoding)}): only latin-1 text is expected')
    return obj.encode('latin-1')


class UnsafeProposalFileError(InputError, pickle.UnpicklingError):
    """A proposal pickle asks for a global outside the allow-list."""


class ProposalUnpickler(pickle.Unpickler):
    """Unpickles proposal files with an allow-list, never arbitrary code.

    Only exact ``(module, name)`` pairs are resolved, never a dotted name
    (protocol 4 allows ``name='a.b.c'``, which walks attributes, e.g.
    ``numpy.dtypes`` + ``__builtins__.get`` reaches ``eval``), and never a
    whole module. Allowed: ``OrderedDict``, numpy arrays/scalars/dtypes
    (their constructors), torch tensors (their bytes go through
    ``torch.load(weights_only=True)``), mmengine's ``InstanceData`` (mmdet
    3.x proposal results) and latin-1 ``_codecs.encode`` (protocol-2 numpy
    pickles). ``persistent_load`` is refused by the base class.
    """

    _ALLOWED = frozenset({
        ('collections', 'OrderedDict'),
        ('numpy', 'ndarray'),
        ('numpy', 'dtype'),
        ('numpy.core.multiarray', '_reconstruct'),
        ('numpy.core.multiarray', 'scalar'),
        ('numpy.core.numeric', '_frombuffer'),
        ('numpy._core.multiarray', '_reconstruct'),
        ('numpy._core.multiarray', 'scalar'),
        ('numpy._core.numeric', '_frombuffer'),
        ('mmengine.structures.instance_data', 'InstanceData'),
        ('torch._utils', '_rebuild_tensor_v2'),
    })
    # replaced by a safe function of ours
    _REPLACED = {
        ('torch.storage', '_load_from_bytes'): '_load_tensor_bytes',
        ('_codecs', 'encode'): '_latin1_encode',
    }

    def find_class(self, module: str, name: str) -> Any:
        pair = (module, name)
        if isinstance(module, str) and isinstance(name, str) and \
                '.' not in name:
            if pair in self._REPLACED:
                return globals()[self._REPLACED[pair]]
            if pair in self._ALLOWED:
                return getattr(importlib.import_module(module), name)
        raise UnsafeProposalFileError(
            f'refusing to unpickle {show_value(module)}.{show_value(name)}: '
            'proposal pickles may only hold arrays, tensors, lists/dicts and '
            'InstanceData')


_ProposalUnpickler = ProposalUnpickler  # old private name

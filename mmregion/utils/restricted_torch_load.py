"""Allow-listed checkpoint loading for torch < 2.6.

:mod:`mmregion.utils.checkpoint` allow-lists mmengine's checkpoint types
with ``torch.serialization.add_safe_globals``. That API appeared in torch 2.4
and accepts the ``(object, 'module.name')`` form we need for
``HistoryBuffer``'s ``getattr`` only from torch 2.6 (pytorch/pytorch#142153).
On older torch (e.g. 2.1-2.3 with a prebuilt mmcv 2.1.0 wheel) this module
gives the same guarantee another way: ``torch.load`` with a *restricted
unpickler* (the ``pickle_module`` argument, present in every torch 2.x)
whose ``find_class`` resolves only torch's own weights-only allow-list
(``torch._weights_only_unpickler._get_allowed_globals``) plus
:func:`~mmregion.utils.checkpoint.safe_checkpoint_globals`. Every callable a
pickle can invoke comes through ``find_class``, so anything else is refused.
"""
import pickle
import types
from typing import Any, Dict, Sequence

import _compat_pickle
import torch

__all__ = ['torch_has_tuple_safe_globals', 'restricted_torch_load']


def _version_tuple(version: str) -> tuple:
    """'2.3.1+cu121' -> (2, 3, 1)."""
    parts = []
    for piece in version.split('+')[0].split('.')[:3]:
        digits = ''.join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def torch_has_tuple_safe_globals() -> bool:
    """Whether ``add_safe_globals`` exists and takes ``(obj, name)`` tuples.

    Returns:
        bool: True on torch >= 2.6 (the form
        :func:`~mmregion.utils.checkpoint.safe_checkpoint_globals` uses).
    """
    return hasattr(torch.serialization, 'add_safe_globals') and \
        _version_tuple(torch.__version__) >= (2, 6)


def _allowed_globals(extra: Sequence[Any]) -> Dict[str, Any]:
    """``'module.name'`` -> object for every global a checkpoint may use:
    torch's own allow-list plus ``extra`` (objects or ``(obj, name)``)."""
    from torch import _weights_only_unpickler
    allowed = dict(_weights_only_unpickler._get_allowed_globals())
    for item in extra:
        if isinstance(item, tuple):
            obj, full_name = item
        else:
            obj = item
            full_name = f'{item.__module__}.{item.__qualname__}'
        allowed[full_name] = obj
    return allowed


def _restricted_pickle_module(allowed: Dict[str, Any]) -> types.ModuleType:
    """A stand-in for :mod:`pickle` whose Unpickler only knows ``allowed``."""

    class RestrictedUnpickler(pickle.Unpickler):

        def find_class(self, module: str, name: str) -> Any:
            # protocol-2 pickles (torch.save's default) name Python 2
            # modules, e.g. ``__builtin__.getattr``: map them as pickle does
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
            full_name = f'{module}.{name}'
            if full_name in allowed:
                return allowed[full_name]
            raise pickle.UnpicklingError(
                f'Unsupported global: GLOBAL {full_name} was not an allowed '
                'global')

    module = types.ModuleType('mmregion_restricted_pickle')
    module.__dict__.update(
        {k: getattr(pickle, k)
         for k in dir(pickle) if not k.startswith('__')})
    module.Unpickler = RestrictedUnpickler
    module.load = lambda f, **kw: RestrictedUnpickler(f, **kw).load()
    return module


def restricted_torch_load(filename: str,
                          map_location: Any = None,
                          extra_globals: Sequence = ()) -> Any:
    """``torch.load`` that unpickles only allow-listed globals.

    Args:
        filename (str): Path of the checkpoint.
        map_location: As in :func:`torch.load`. Defaults to None.
        extra_globals (Sequence): Allowed besides torch's own list, as for
            ``torch.serialization.add_safe_globals`` (mmregion passes
            :func:`~mmregion.utils.checkpoint.safe_checkpoint_globals`).

    Returns:
        The unpickled checkpoint.

    Raises:
        pickle.UnpicklingError: The checkpoint uses a global that is not
            allow-listed (the message starts with ``Unsupported global``).
    """
    return torch.load(
        filename,
        map_location=map_location,
        weights_only=False,
        pickle_module=_restricted_pickle_module(
            _allowed_globals(extra_globals)))

"""Rebuilding numpy arrays from untrusted pickles, data only.

numpy's own pickle helpers (``numpy.dtype`` + ``__setstate__``,
``_reconstruct`` + ``ndarray.__setstate__``) trust their arguments: a dtype
state with object fields and an out-of-range offset makes ``np.asarray``
dereference an attacker-chosen pointer (a segfault, or heap memory read as
data). So no numpy object is built from a pickle's own arguments. A pickle
may only *describe* an array: a dtype name from :data:`SAFE_DTYPES` (plain
booleans, integers and floats, with a byte order, nothing else in its state),
a shape of non-negative ints and raw bytes whose length is exactly
``prod(shape) * itemsize`` and at most ``max_bytes``; this module checks the
description and builds the array itself (:func:`array_from_bytes`).

Used by the proposal-pickle reader (:mod:`mmregion.proposals.safe_pickle`)
and the checkpoint loader (:mod:`mmregion.utils.checkpoint`).
"""
import math
import pickle
from typing import Any, Optional, Tuple

import numpy as np

__all__ = [
    'SAFE_DTYPES', 'MAX_ARRAY_BYTES', 'UnsafeArrayError', 'DtypeSpec',
    'checked_dtype', 'checked_shape', 'check_array', 'array_from_bytes',
    'scalar_from_bytes', 'as_dtype', 'empty_bytes'
]

# dtype names numpy writes into a pickle (``dtype.__reduce__``)
SAFE_DTYPES = ('b1', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'f2',
               'f4', 'f8')
# one array read from a pickle
MAX_ARRAY_BYTES = 1 << 31
_MAX_NDIM = 32


class UnsafeArrayError(pickle.UnpicklingError):
    """A pickle describes an array that is not plain data of a safe size."""


def _short(value: Any) -> str:
    text = ascii(value)
    return text if len(text) <= 80 else text[:80] + '...'


def checked_dtype(name: Any, state: Any = None) -> np.dtype:
    """A plain numeric dtype from a pickled ``numpy.dtype`` description.

    Args:
        name: The dtype name numpy pickles (``'f4'``, ``'i8'``, ...).
        state: The ``__setstate__`` tuple, ``(3, byteorder, None, None,
            None, -1, -1, 0)`` for a plain dtype; None: native order.

    Returns:
        np.dtype: A new dtype built by us from the name and byte order.

    Raises:
        UnsafeArrayError: Any other name, or a state with fields, names,
            a sub-array, metadata or a custom size/alignment.
    """
    if not isinstance(name, str) or name not in SAFE_DTYPES:
        raise UnsafeArrayError(
            f'refusing numpy dtype {_short(name)}: only plain '
            f'{"/".join(SAFE_DTYPES)} arrays are read from a pickle')
    dtype = np.dtype(name)
    if state is None:
        return dtype
    if not (isinstance(state, tuple) and len(state) in (8, 9)
            and state[0] in (3, 4) and state[1] in ('<', '>', '|', '=')
            and state[2:5] == (None, None, None) and state[5:7] == (-1, -1)
            and type(state[7]) is int and state[7] in (0, 16) and
            (len(state) == 8 or state[8] is None)):
        raise UnsafeArrayError(
            f'refusing numpy dtype {name} with state {_short(state)}: '
            'fields, sub-arrays, metadata and custom sizes are not read '
            'from a pickle')
    if state[1] in '<>' and dtype.itemsize > 1:
        dtype = dtype.newbyteorder(state[1])
    return dtype


def checked_shape(shape: Any) -> Tuple[int, ...]:
    """A shape: a tuple/list of at most 32 non-negative ints."""
    if not isinstance(shape, (tuple, list)) or len(shape) > _MAX_NDIM or \
            not all(type(n) is int and n >= 0 for n in shape):
        raise UnsafeArrayError(f'refusing array shape {_short(shape)}')
    return tuple(shape)


def _raw_bytes(data: Any) -> memoryview:
    if not isinstance(data,
                      (bytes, bytearray, memoryview, pickle.PickleBuffer)):
        raise UnsafeArrayError(
            f'refusing array data of type {type(data).__name__}: only raw '
            'bytes are read from a pickle')
    view = memoryview(data)
    if not view.contiguous:
        raise UnsafeArrayError('refusing non-contiguous array data')
    return view.cast('B')


def check_array(
    shape: Any,
    dtype: np.dtype,
    data: Any,
    max_bytes: Optional[int] = MAX_ARRAY_BYTES
) -> Tuple[Tuple[int, ...], memoryview]:
    """Check an array description; returns its shape and a byte view.

    Raises:
        UnsafeArrayError: A bad shape, data that is not raw bytes, a size
            over ``max_bytes`` or ``len(data) != prod(shape) * itemsize``.
    """
    shape = checked_shape(shape)
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if max_bytes is not None and nbytes > max_bytes:
        raise UnsafeArrayError(
            f'refusing a {shape} {dtype} array: {nbytes} bytes is over the '
            f'{max_bytes}-byte cap')
    view = _raw_bytes(data)
    if view.nbytes != nbytes:
        raise UnsafeArrayError(
            f'refusing a {shape} {dtype} array: {view.nbytes} data bytes, '
            f'expected {nbytes}')
    return shape, view


def array_from_bytes(shape: Any,
                     dtype: np.dtype,
                     data: Any,
                     fortran: bool = False,
                     max_bytes: Optional[int] = MAX_ARRAY_BYTES) -> np.ndarray:
    """Build a (writable) array from a checked description.

    Args:
        shape: Its shape (see :func:`checked_shape`).
        dtype (np.dtype): A dtype from :func:`checked_dtype`.
        data: Its raw bytes (``bytes``, ``bytearray``, ``PickleBuffer``).
        fortran (bool): Column-major data. Defaults to False.
        max_bytes (int, optional): Size cap. Defaults to 2 GiB.

    Returns:
        np.ndarray: A new array owning a copy of ``data``.

    Raises:
        UnsafeArrayError: See :func:`check_array`.
    """
    shape, view = check_array(shape, dtype, data, max_bytes)
    arr = np.frombuffer(view, dtype=dtype).copy()
    return arr.reshape(shape, order='F' if fortran else 'C')


def scalar_from_bytes(dtype: np.dtype, data: Any) -> Any:
    """A numpy scalar of ``dtype`` (checked) from its ``itemsize`` bytes."""
    return array_from_bytes((), dtype, data)[()]


def empty_bytes(*args) -> bytes:
    """``bytes()``: protocol 2 pickles ``b''`` so (an empty array's data).
    ``bytes(n)`` would allocate ``n`` bytes: refused."""
    if args:
        raise UnsafeArrayError('refusing bytes() with arguments')
    return b''


class DtypeSpec:
    """What a pickled ``numpy.dtype(name, align, copy)`` + BUILD describes.

    Stands in for ``numpy.dtype`` in the unpicklers: the call and its
    ``__setstate__`` only record and check, :attr:`dtype` is built by
    :func:`checked_dtype`.
    """

    def __init__(self, name: Any, align: Any = False, copy: Any = True):
        if align not in (False, 0):
            raise UnsafeArrayError(f'refusing numpy dtype {_short(name)} '
                                   'with align=True')
        self.dtype = checked_dtype(name)
        self.name = name

    def __setstate__(self, state: Any) -> None:
        self.dtype = checked_dtype(self.name, state)

    def __repr__(self) -> str:
        return f'dtype({self.name!r})'


def as_dtype(value: Any) -> np.dtype:
    """The checked dtype of a :class:`DtypeSpec` (anything else: refused)."""
    if not isinstance(value, DtypeSpec):
        raise UnsafeArrayError(
            f'refusing array dtype of type {type(value).__name__}')
    return value.dtype

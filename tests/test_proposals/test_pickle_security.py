"""Hostile proposal pickles are refused and run nothing (issue 16 item 1).

Every hostile file would, if the unpickler resolved it, create the marker
file; each must fail with a one-line error naming the file instead.
"""
import collections
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest

from mmregion.proposals import load_proposal_store
from mmregion.proposals.safe_pickle import \
    ProposalUnpickler as _ProposalUnpickler
from mmregion.utils.input_checks import InputError


def _u(text: str) -> bytes:
    """BINUNICODE opcode pushing ``text``."""
    data = text.encode('utf-8')
    return b'X' + struct.pack('<I', len(data)) + data


def _stack_global(module: str, name: str) -> bytes:
    return _u(module) + _u(name) + b'\x93'  # STACK_GLOBAL (protocol 4)


def _refused(tmp_path, name: str, payload: bytes):
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(InputError) as info:
        load_proposal_store(str(path))
    msg = str(info.value)
    assert str(path) in msg and '\n' not in msg
    assert not (tmp_path / 'marker').exists()
    return msg


def _shell(tmp_path) -> str:
    return f"__import__('os').system('touch {tmp_path / 'marker'}')"


def test_dotted_name_to_eval_is_refused(tmp_path):
    """numpy.dtypes + '__builtins__.get' reached eval -> os.system before."""
    payload = (b'\x80\x04' +
               _stack_global('numpy.dtypes', '__builtins__.get') + _u('eval') +
               b'\x85R' + _u(_shell(tmp_path)) + b'\x85R.')
    msg = _refused(tmp_path, 'dtypes.pkl', payload)
    assert 'refusing to unpickle' in msg and '__builtins__.get' in msg
    # the same through a GLOBAL opcode (protocols 0-3) and a dotted name
    # under an allowed pair
    for module, name in [('numpy.dtypes', '__builtins__.get'),
                         ('numpy', 'ndarray.__init__.__globals__'),
                         ('collections', 'OrderedDict.fromkeys')]:
        payload = (b'c' + module.encode() + b'\n' + name.encode() + b'\n' +
                   _u('eval') + b'\x85R.')
        _refused(tmp_path, 'global.pkl', payload)


@pytest.mark.parametrize(
    'module',
    sorted({m
            for m, _ in _ProposalUnpickler._ALLOWED}
           | {'numpy.dtypes', 'torch.storage', '_codecs'}))
def test_allowed_modules_with_other_names_are_refused(tmp_path, module):
    for name in ('eval', 'system', '__builtins__', '__builtins__.get', 'exec',
                 'load', '_load_from_bytes.__globals__'):
        payload = (b'\x80\x04' + _stack_global(module, name) +
                   _u(_shell(tmp_path)) + b'\x85R.')
        _refused(tmp_path, 'other.pkl', payload)


@pytest.mark.parametrize('module,name', [('builtins', 'eval'),
                                         ('os', 'system'), ('posix', 'system'),
                                         ('subprocess', 'Popen'),
                                         ('numpy', 'load'), ('torch', 'load'),
                                         ('copyreg', '_reconstructor')])
def test_dangerous_globals_are_refused(tmp_path, module, name):
    payload = (b'\x80\x02c' + module.encode() + b'\n' + name.encode() + b'\n' +
               _u(_shell(tmp_path)) + b'\x85R.')
    _refused(tmp_path, 'danger.pkl', payload)


class _Reduce:
    """Pickles as ``func(*args)`` with ``state`` (BUILD), if given."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        if self.state is None:
            return (self.func, self.args)
        return (self.func, self.args, self.state)


def test_reduce_build_setstate_on_allowed_classes(tmp_path):
    from mmengine.structures import InstanceData
    shell = _shell(tmp_path)
    cases = {
        # REDUCE of allowed callables with hostile arguments
        'reconstruct':
        _Reduce(np.core.multiarray._reconstruct, (shell, (0, ), b'b')),
        'dtype':
        _Reduce(np.dtype, (shell, )),
        'scalar':
        _Reduce(np.core.multiarray.scalar, (np.dtype('f4'), shell)),
        # BUILD / __setstate__ with a hostile state
        'dtype_state':
        _Reduce(np.dtype, ('f4', False, True), (shell, ) * 8),
        'ndarray_state':
        _Reduce(np.core.multiarray._reconstruct, (np.ndarray, (0, ), b'b'),
                (1, (2, ), np.dtype('f4'), False, shell)),
        'instancedata_state':
        _Reduce(InstanceData, (), {
            '_data_fields': {'bboxes'},
            'bboxes': shell,
            '__setstate__': shell
        }),
        'ordereddict_state':
        _Reduce(collections.OrderedDict, ([('a.jpg', shell)], ),
                {'__reduce__': shell}),
    }
    for name, obj in cases.items():
        for proto in (2, 4):
            payload = pickle.dumps({'a.jpg': obj}, protocol=proto)
            msg = _refused(tmp_path, f'{name}.pkl', payload)
            assert msg.startswith(str(tmp_path / f'{name}.pkl'))


def test_legit_numpy_pickles_still_load(tmp_path):
    boxes = np.array([[0, 0, 10, 10], [1, 2, 5, 6]], np.float32)
    for proto in (2, 4, 5):
        path = tmp_path / f'p{proto}.pkl'
        data = collections.OrderedDict([('a.jpg', boxes),
                                        ('b/c.jpg',
                                         boxes[:1].astype(np.float64))])
        path.write_bytes(pickle.dumps(data, protocol=proto))
        store = load_proposal_store(str(path))
        np.testing.assert_array_equal(store.get('a.jpg'), boxes)
        np.testing.assert_array_equal(store.get('b/c.jpg'), boxes[:1])


# --- issue 26 item 1: numpy states are never built by the unpickler -------
class _Dtype:
    """A pickled ``numpy.dtype`` with a hand-written ``__setstate__``."""

    def __init__(self, name, state):
        self.name, self.state = name, state

    def __reduce__(self):
        return (np.dtype, (self.name, False, True), self.state)


class _Array:
    """A pickled array: ``_reconstruct`` + BUILD with a given state."""

    def __init__(self, shape, dtype, data):
        self.shape, self.dtype, self.data = shape, dtype, data

    def __reduce__(self):
        return (np.core.multiarray._reconstruct, (np.ndarray, (0, ), b'b'),
                (1, self.shape, self.dtype, False, self.data))


# (a) object fields: np.asarray dereferenced b'AAAA...' as a pointer
_POINTER = _Array((4, ),
                  _Dtype('V8', (3, '|', None, ('a', ), {
                      'a': (np.dtype('O'), 0)
                  }, 8, 1, 16)), b'A' * 32)
# (b) a field offset of 100000: heap memory read as 64 boxes
_OFFSET = _Array((64, 4),
                 _Dtype('f4', (3, '<', None, ('a', ), {
                     'a': (np.dtype('f4'), 100000)
                 }, 4, 1, 16)), b'\0' * 1024)


def _load_in_child(path: str, loader: str) -> subprocess.CompletedProcess:
    """Load in a child process: a regression would segfault, not pytest."""
    code = (f'import sys; import mmregion\n'
            f'from {loader.rsplit(".", 1)[0]} import '
            f'{loader.rsplit(".", 1)[1]} as load\n'
            'try:\n'
            f'    load({path!r})\n'
            'except ValueError as e:\n'
            '    print("REFUSED", e); sys.exit(3)\n'
            'except Exception as e:\n'
            '    print("REFUSED", type(e).__name__, e); sys.exit(3)\n'
            'print("LOADED")\n')
    return subprocess.run([sys.executable, '-c', code],
                          capture_output=True,
                          text=True,
                          timeout=120)


@pytest.mark.parametrize('name,gadget', [('pointer', _POINTER),
                                         ('offset', _OFFSET)])
def test_numpy_state_gadgets_are_refused(tmp_path, name, gadget):
    for proto in (2, ):
        path = tmp_path / f'{name}{proto}.pkl'
        path.write_bytes(pickle.dumps({'000000.jpg': gadget}, protocol=proto))
        out = _load_in_child(
            str(path), 'mmregion.proposals.load_proposal_store')
        assert out.returncode == 3, (out.returncode, out.stdout, out.stderr)
        assert 'refusing numpy dtype' in out.stdout
        assert str(path) in out.stdout


@pytest.mark.parametrize(
    'name,value,match',
    [
        # declared size larger than the bytes (uninitialised memory before)
        ('short', _Array((10**6, 4), _Dtype('f4', None),
                         b'\0' * 16), '16 data bytes, expected 16000000'),
        ('huge', _Array((10**12, 4), _Dtype('f8', None), b'\0'), 'cap'),
        ('bytes_call', _Reduce(bytes, (10**9, )), 'bytes'),
        ('negative', _Array((-1, 4), _Dtype('f4', None), b''), 'shape'),
        ('object', _Array((1, ), _Dtype('O', None), b'\0' * 8), "dtype 'O'"),
        ('string', _Array(
            (1, ), _Dtype('U5', None), b'\0' * 20), "dtype 'U5'"),
        ('ndarray_call', _Reduce(np.ndarray,
                                 ((10**9, ), 'f4')), 'numpy.ndarray'),
    ])
def test_array_descriptions_are_checked(tmp_path, name, value, match):
    path = tmp_path / f'{name}.pkl'
    path.write_bytes(pickle.dumps({'a.jpg': value}, protocol=2))
    with pytest.raises(InputError, match=match) as info:
        load_proposal_store(str(path))
    assert str(path) in str(info.value)


def test_arrays_cannot_outgrow_the_file(tmp_path):
    """1000 arrays over the same memoised 40 KB buffer (40 MB from a
    ~60 KB file) are refused: arrays may total at most the file size."""
    data = b'\0' * 40000
    dtype = _Dtype('f4', None)
    values = {f'{i}.jpg': _Array((2500, 4), dtype, data) for i in range(1000)}
    path = tmp_path / 'memo.pkl'
    path.write_bytes(pickle.dumps(values, protocol=2))
    assert path.stat().st_size < 200000
    with pytest.raises(InputError, match='larger in total than the file'):
        load_proposal_store(str(path))


def test_instance_data_and_tensors_still_load(tmp_path):
    import torch
    from mmengine.structures import InstanceData
    boxes = np.array([[0, 0, 10, 10], [1, 2, 5, 6]], np.float32)
    inst = InstanceData(
        bboxes=torch.from_numpy(boxes), scores=torch.tensor([0.1, 0.9]))
    for proto in (2, 4, 5):
        path = tmp_path / f'i{proto}.pkl'
        path.write_bytes(
            pickle.dumps(
                {
                    'a.jpg': inst,
                    'b.jpg':
                    torch.from_numpy(boxes)[:, :4].t().contiguous().t()
                },
                protocol=proto))
        store = load_proposal_store(str(path))
        np.testing.assert_allclose(store.get('a.jpg'), boxes[::-1])
        np.testing.assert_allclose(store.get('b.jpg'), boxes)


def test_empty_arrays_load_with_protocol_2(tmp_path):
    path = tmp_path / 'empty.pkl'
    path.write_bytes(
        pickle.dumps({'a.jpg': np.zeros((0, 4), np.float32)}, protocol=2))
    assert load_proposal_store(str(path)).get('a.jpg').shape == (0, 4)

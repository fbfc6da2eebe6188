"""Hostile proposal pickles are refused and run nothing (issue 16 item 1).

Every hostile file would, if the unpickler resolved it, create the marker
file; each must fail with a one-line error naming the file instead.
"""
import collections
import pickle
import struct

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

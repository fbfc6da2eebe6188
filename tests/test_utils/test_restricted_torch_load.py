"""The torch < 2.6 checkpoint path (restricted unpickler), on this torch."""
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from mmregion.utils import checkpoint as ckpt_mod
from mmregion.utils.checkpoint import safe_checkpoint_globals
from mmregion.utils.restricted_torch_load import (restricted_torch_load,
                                                  torch_has_tuple_safe_globals)


def _mmengine_like_checkpoint(path):
    buf = HistoryBuffer()
    buf.update(1.5)
    buf.update(2.5)
    torch.save(
        {
            'state_dict': {
                'w': torch.arange(6.).view(2, 3)
            },
            'meta': {
                'seed': np.int64(3),
                'arr': np.arange(4, dtype=np.float32)
            },
            'message_hub': {
                'log_scalars': {
                    'train/loss': buf
                }
            },
        }, path)


class _Evil:

    def __reduce__(self):
        return (os.system, ('echo owned', ))


def test_this_torch_uses_add_safe_globals():
    assert torch_has_tuple_safe_globals()  # tested stack: torch 2.13


def test_restricted_load_reads_mmengine_types(tmp_path):
    path = str(tmp_path / 'ok.pth')
    _mmengine_like_checkpoint(path)
    ckpt = restricted_torch_load(path, 'cpu', safe_checkpoint_globals())
    assert torch.equal(ckpt['state_dict']['w'], torch.arange(6.).view(2, 3))
    assert ckpt['meta']['seed'] == 3
    np.testing.assert_array_equal(ckpt['meta']['arr'], np.arange(4))
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer) and buf.mean() == 2.0


def test_restricted_load_refuses_other_globals(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'x': _Evil()}, path)
    with pytest.raises(pickle.UnpicklingError, match='Unsupported global'):
        restricted_torch_load(path, 'cpu', safe_checkpoint_globals())


def test_safe_loader_falls_back_on_old_torch(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt_mod, 'torch_has_tuple_safe_globals',
                        lambda: False)
    good, evil = str(tmp_path / 'ok.pth'), str(tmp_path / 'evil.pth')
    _mmengine_like_checkpoint(good)
    torch.save({'x': _Evil()}, evil)
    assert ckpt_mod.load_checkpoint_safely(good)['meta']['seed'] == 3
    with pytest.raises(ckpt_mod.UnsafeCheckpointError, match='evil.pth'):
        ckpt_mod.load_checkpoint_safely(evil)

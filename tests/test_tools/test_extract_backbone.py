import os
import os.path as osp

import numpy as np
import pytest
import torch
from tool_utils import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_tool():
    return load_tool('extract_backbone')


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Give every parameter and buffer distinctive values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.dtype.is_floating_point:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.fill_(7)


def _fake_algorithm_checkpoint(path, seed=0):
    """A CCOP-like state dict: online ``backbone.*`` + momentum copies."""
    from mmengine.runner.checkpoint import save_checkpoint
    from mmpretrain.models import ResNet as PretrainResNet

    online = PretrainResNet(depth=18, out_indices=(3, ))
    momentum = PretrainResNet(depth=18, out_indices=(3, ))
    _randomise(online, seed)
    _randomise(momentum, seed + 1)
    state = {}
    for k, v in online.state_dict().items():
        state[f'backbone.{k}'] = v
    for k, v in momentum.state_dict().items():
        # mmengine ExponentialMovingAverage(nn.Sequential(backbone, neck))
        state[f'momentum_encoder.module.0.{k}'] = v
        # and a MoCo-style key encoder that also carries the prefix
        state[f'backbone.encoder_k.{k}'] = v
    state['neck.fc.weight'] = torch.zeros(4, 4)
    state['queue'] = torch.zeros(8, 4)
    ckpt = dict(
        state_dict=state,
        meta=dict(epoch=3, iter=np.int64(30), seed=5, note='fake'))
    save_checkpoint(ckpt, str(path))
    return online


def test_extract_and_load_into_mmdet_resnet(tmp_path, capsys):
    from mmdet.models.backbones import ResNet as DetResNet

    import mmregion  # noqa: F401

    tool = _load_tool()
    src = tmp_path / 'pretrain.pth'
    online = _fake_algorithm_checkpoint(src)
    out = tmp_path / 'sub' / 'backbone.pth'
    assert tool.main([str(src), str(out)]) == 0
    printed = capsys.readouterr().out
    n = len(online.state_dict())
    assert f'extracted {n} keys' in printed
    assert osp.isfile(out)
    assert not [f for f in os.listdir(out.parent) if '.tmp.' in f]

    ckpt = torch.load(str(out), map_location='cpu', weights_only=True)
    assert set(ckpt['state_dict']) == set(online.state_dict())
    assert ckpt['meta']['num_keys'] == n
    assert ckpt['meta']['num_skipped_momentum_keys'] == 2 * n
    assert ckpt['meta']['source_meta']['epoch'] == 3

    det = DetResNet(
        depth=18, init_cfg=dict(type='Pretrained', checkpoint=str(out)))
    # no missing / unexpected keys: identical key sets ...
    assert set(det.state_dict()) == set(ckpt['state_dict'])
    det.init_weights()
    # ... and every entry loaded (the sources are distinctive)
    for k, v in online.state_dict().items():
        assert torch.equal(det.state_dict()[k], v), k


def test_no_prefix_is_a_clear_error(tmp_path, capsys):
    from mmengine.runner.checkpoint import save_checkpoint
    tool = _load_tool()
    src = tmp_path / 'x.pth'
    save_checkpoint(
        dict(state_dict={'encoder.w': torch.ones(2)}, meta={}), str(src))
    out = tmp_path / 'y.pth'
    assert tool.main([str(src), str(out), '--prefix', 'backbone']) == 1
    err = capsys.readouterr().err
    assert 'backbone.' in err and 'encoder' in err
    assert not out.exists()
    with pytest.raises(KeyError, match='prefix'):
        tool.extract_backbone_state_dict({'a.b': torch.ones(1)})


def test_prefix_and_ddp_and_teacher_keys():
    tool = _load_tool()
    sd = {
        'module.backbone.conv1.weight': torch.ones(1),
        'module.backbone.momentum_encoder.conv1.weight': torch.zeros(1),
        'teacher.backbone.conv1.weight': torch.zeros(1),
        'student.backbone.conv1.weight': torch.full((1, ), 2.),
    }
    out, skipped = tool.extract_backbone_state_dict(sd)
    assert list(out) == ['conv1.weight'] and out['conv1.weight'].item() == 1
    assert len(skipped) == 2
    out, _ = tool.extract_backbone_state_dict(sd, prefix='student.backbone')
    assert out['conv1.weight'].item() == 2

import pytest
import torch
import torch.nn as nn
from mmdet.models.backbones import ResNet

from mmregion.models.utils.region_features import (backbone_level,
                                                   region_targets)

C = 4


class _ConstantBackbone(nn.Module):
    """One level whose map is constant per image and channel: every RoIAlign
    or crop of it gives that constant (no ``res_layers``: runs in full)."""

    def forward(self, x):
        return (x.mean((2, 3), keepdim=True)[:, :1].expand(-1, C, 8, 8) *
                torch.arange(1., C + 1)[None, :, None, None], )


def test_backbone_level_stops_at_its_stage():
    torch.manual_seed(0)
    bb = ResNet(depth=18, out_indices=(1, 3))
    bb.eval()
    seen = []
    bb.layer4.register_forward_hook(lambda *a: seen.append(1))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        full = bb(x)
        seen.clear()
        torch.testing.assert_close(backbone_level(bb, x, 0), full[0])
        assert not seen  # stopped after layer2
        torch.testing.assert_close(backbone_level(bb, x, 1), full[1])
    assert len(bb.layer2._forward_hooks) == 0  # the stop hook is removed
    with pytest.raises(ValueError, match='no level 2'):
        backbone_level(bb, x, 2)


@pytest.mark.parametrize('kind', ['roi', 'crop', 'patch'])
def test_targets_per_box_in_box_order(kind):
    images = torch.stack(
        [torch.full((3, 32, 32), 1.),
         torch.full((3, 32, 32), 3.)])
    boxes = [
        torch.tensor([[0., 0., 8., 8.], [8., 8., 24., 24.]]),
        torch.zeros(0, 4),
        torch.tensor([[4., 4., 20., 20.]])
    ]
    images = torch.cat([images, images[:1]])  # image 2 = image 0
    patches = [
        torch.full((len(b), 3, 16, 16), v)
        for b, v in zip(boxes, (5., 6., 7.))
    ]
    out = region_targets(
        _ConstantBackbone(),
        images,
        boxes,
        kind,
        0,
        roi_size=2,
        crop_size=8,
        patches=patches)
    assert [tuple(t.shape) for t in out] == [(2, C), (0, C), (1, C)]
    level = torch.arange(1., C + 1)
    expect = (5., 7.) if kind == 'patch' else (1., 1.)
    torch.testing.assert_close(out[0], torch.stack([level, level]) * expect[0])
    torch.testing.assert_close(out[2], level[None] * expect[1])
    assert not any(t.requires_grad for t in out)


def test_patch_target_needs_one_patch_per_box():
    boxes = [torch.tensor([[0., 0., 8., 8.]])]
    with pytest.raises(ValueError, match='BoxPatches'):
        region_targets(_ConstantBackbone(), torch.zeros(1, 3, 16, 16), boxes,
                       'patch', 0)
    with pytest.raises(ValueError, match='BoxPatches'):
        region_targets(
            _ConstantBackbone(),
            torch.zeros(1, 3, 16, 16),
            boxes,
            'patch',
            0,
            patches=[torch.zeros(2, 3, 8, 8)])


def test_no_box_gives_empty_targets():
    out = region_targets(_ConstantBackbone(), torch.zeros(2, 3, 16, 16),
                         [torch.zeros(0, 4)] * 2, 'roi', 0)
    assert [len(t) for t in out] == [0, 0]

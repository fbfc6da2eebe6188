import pytest
import torch
import torch.nn as nn
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmregion.registry import MODELS
from mmregion.utils import register_all_modules

D = 4


class _FixedAssigner:
    """Returns fixed ``gt_inds`` (1-based, 0 = unmatched) per image."""

    def __init__(self, gt_inds):
        self.gt_inds = list(gt_inds)

    def assign(self, pred_instances, gt_instances, img_meta):
        return InstanceData(gt_inds=self.gt_inds.pop(0))


class _ConstantBackbone(nn.Module):
    """One level whose map is constant per image and channel: every RoIAlign
    on it gives that constant."""

    def forward(self, x):
        return (x.mean((2, 3), keepdim=True)[:, :1].expand(-1, D, 8, 8) *
                torch.arange(1., D + 1)[None, :, None, None], )


def _det(num_gt, size=32):
    det = DetDataSample(metainfo=dict(img_shape=(size, size)))
    det.gt_instances = InstanceData(
        bboxes=torch.tensor([[2., 2., 12., 12.]]).repeat(num_gt, 1),
        labels=torch.zeros(num_gt, dtype=torch.long))
    return det


@pytest.mark.parametrize('with_feats', [False, True])
def test_loss_pairs_matched_queries_with_their_box_targets(with_feats):
    register_all_modules()
    head = MODELS.build(
        dict(type='DETRegHead', loss=dict(type='mmdet.L1Loss'), roi_size=2))
    g = torch.Generator().manual_seed(0)
    images = torch.stack(
        [torch.full((3, 32, 32), 1.),
         torch.full((3, 32, 32), 3.)])
    embeds = torch.randn(2, 5, D, generator=g).requires_grad_()
    # image 0: queries 1 and 3 matched to boxes 2 and 1; image 1: query 0
    gt_inds = [torch.tensor([0, 2, 0, 1, 0]), torch.tensor([1, 0, 0, 0, 0])]
    boxes = [
        torch.tensor([[0., 0., 8., 8.], [8., 8., 24., 24.]]),
        torch.tensor([[4., 4., 20., 20.]])
    ]
    backbone = _ConstantBackbone()
    feats = backbone(images) if with_feats else None
    out = head.loss(embeds, torch.zeros(2, 5, 1), torch.full((2, 5, 4), .5),
                    [_det(2), _det(1)], boxes, images, backbone,
                    _FixedAssigner(gt_inds), feats)
    assert set(out) == {'loss_embed'}
    level = torch.arange(1., D + 1)
    pred = torch.stack([embeds[0, 1], embeds[0, 3], embeds[1, 0]])
    target = torch.stack([level * 1., level * 1., level * 3.])
    torch.testing.assert_close(out['loss_embed'], (pred - target).abs().mean())
    out['loss_embed'].backward()
    assert embeds.grad[0, 0].abs().sum() == 0
    assert embeds.grad[0, 1].abs().sum() > 0


def test_no_match_gives_a_zero_loss_in_the_graph():
    register_all_modules()
    head = MODELS.build(
        dict(type='DETRegHead', loss=dict(type='mmdet.L1Loss')))
    embeds = torch.randn(1, 3, D, requires_grad=True)
    out = head.loss(embeds, torch.zeros(1, 3, 1), torch.full((1, 3, 4), .5),
                    [_det(0)], [torch.zeros(0, 4)], torch.zeros(1, 3, 32, 32),
                    _ConstantBackbone(), _FixedAssigner([]))
    assert float(out['loss_embed']) == 0 and out['loss_embed'].requires_grad


def test_bad_target_kind():
    register_all_modules()
    with pytest.raises(ValueError, match='"patch", "crop" or "roi"'):
        MODELS.build(
            dict(
                type='DETRegHead',
                loss=dict(type='mmdet.L1Loss'),
                target='box'))

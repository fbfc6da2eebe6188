import pytest
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmregion.registry import MODELS, TASK_UTILS
from mmregion.utils import register_all_modules

D = 4


@TASK_UTILS.register_module(force=True)
class _FixedAssigner:
    """Returns fixed ``gt_inds`` (1-based, 0 = unmatched) per image."""

    def __init__(self, gt_inds):
        self.gt_inds = list(gt_inds)

    def assign(self, pred_instances, gt_instances, img_meta):
        return InstanceData(gt_inds=self.gt_inds.pop(0))


def _det(num_gt, size=32):
    det = DetDataSample(metainfo=dict(img_shape=(size, size)))
    det.gt_instances = InstanceData(
        bboxes=torch.tensor([[2., 2., 12., 12.]]).repeat(num_gt, 1),
        labels=torch.zeros(num_gt, dtype=torch.long))
    return det


def _head(gt_inds=(), **kwargs):
    register_all_modules()
    return MODELS.build(
        dict(
            type='DETRegHead',
            loss=dict(type='mmdet.L1Loss'),
            assigner=dict(type='_FixedAssigner', gt_inds=list(gt_inds)),
            **kwargs))


def test_loss_pairs_matched_queries_with_their_box_targets():
    # image 0: queries 1 and 3 matched to boxes 2 and 1; image 1: query 0
    head = _head(
        [torch.tensor([0, 2, 0, 1, 0]),
         torch.tensor([1, 0, 0, 0, 0])])
    g = torch.Generator().manual_seed(0)
    embeds = torch.randn(2, 5, D, generator=g).requires_grad_()
    targets = [torch.randn(2, D, generator=g), torch.randn(1, D, generator=g)]
    out = head.loss(embeds, torch.zeros(2, 5, 1), torch.full((2, 5, 4), .5),
                    [_det(2), _det(1)], targets)
    assert set(out) == {'loss_embed'}
    pred = torch.stack([embeds[0, 1], embeds[0, 3], embeds[1, 0]])
    target = torch.stack([targets[0][1], targets[0][0], targets[1][0]])
    # DETReg's F.l1_loss(pred, target, reduction='mean'): mean over pairs
    # and dimensions
    torch.testing.assert_close(out['loss_embed'],
                               F.l1_loss(pred, target, reduction='mean'))
    out['loss_embed'].backward()
    assert embeds.grad[0, 0].abs().sum() == 0
    assert embeds.grad[0, 1].abs().sum() > 0


def test_hungarian_assigner_uses_each_box_once():
    register_all_modules()
    head = MODELS.build(
        dict(
            type='DETRegHead',
            loss=dict(type='mmdet.L1Loss'),
            assigner=dict(
                type='mmdet.HungarianAssigner',
                match_costs=[
                    dict(type='mmdet.FocalLossCost'),
                    dict(type='mmdet.BBoxL1Cost', box_format='xywh')
                ])))
    # every box gets a query: each target row used once
    embeds = torch.randn(1, 6, D, requires_grad=True)
    det = _det(3)
    det.gt_instances.bboxes = torch.tensor([[0., 0., 8., 8.],
                                            [10., 10., 30., 30.],
                                            [4., 16., 12., 28.]])
    boxes = torch.rand(1, 6, 4) * 0.5 + 0.25
    seen = []
    head.loss_module.register_forward_hook(
        lambda mod, args, out: seen.append(args))
    targets = [torch.arange(3.)[:, None].expand(3, D)]
    head.loss(embeds, torch.randn(1, 6, 1), boxes, [det], targets)
    assert sorted(seen[0][1][:, 0].tolist()) == [0., 1., 2.]


def test_no_match_gives_a_zero_loss_in_the_graph():
    head = _head([])
    embeds = torch.randn(1, 3, D, requires_grad=True)
    out = head.loss(embeds, torch.zeros(1, 3, 1), torch.full((1, 3, 4), .5),
                    [_det(0)], [torch.zeros(0, 0)])
    assert float(out['loss_embed']) == 0 and out['loss_embed'].requires_grad


def test_target_channels_must_match_the_embedding():
    head = _head([torch.tensor([1, 0])])
    with pytest.raises(ValueError, match='out_channels=4 must equal'):
        head.loss(
            torch.randn(1, 2, D), torch.zeros(1, 2, 1),
            torch.full((1, 2, 4), .5), [_det(1)], [torch.zeros(1, D + 1)])


def test_bad_target_kind():
    with pytest.raises(ValueError, match='target must be one of'):
        _head(target='box')

import pytest
import torch

from mmregion.registry import MODELS
from mmregion.utils import register_all_modules

EMBED = 32


def tiny_detector_cfg(num_queries: int = 10) -> dict:
    """A tiny class-agnostic Deformable DETR (ResNet-18, 1+1 layers)."""
    return dict(
        type='mmdet.DeformableDETR',
        num_queries=num_queries,
        num_feature_levels=2,
        with_box_refine=False,
        as_two_stage=False,
        backbone=dict(
            type='mmdet.ResNet',
            depth=18,
            num_stages=4,
            out_indices=(2, 3),
            frozen_stages=-1,
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=False,
            style='pytorch',
            init_cfg=None),
        neck=dict(
            type='mmdet.ChannelMapper',
            in_channels=[256, 512],
            kernel_size=1,
            out_channels=EMBED,
            act_cfg=None,
            norm_cfg=dict(type='GN', num_groups=8),
            num_outs=2),
        encoder=dict(
            num_layers=1,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=EMBED, num_heads=4, num_levels=2,
                    num_points=2, batch_first=True),
                ffn_cfg=dict(
                    embed_dims=EMBED, feedforward_channels=64,
                    ffn_drop=0.0))),
        decoder=dict(
            num_layers=1,
            return_intermediate=True,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=EMBED, num_heads=4, dropout=0.0,
                    batch_first=True),
                cross_attn_cfg=dict(
                    embed_dims=EMBED, num_heads=4, num_levels=2,
                    num_points=2, batch_first=True),
                ffn_cfg=dict(
                    embed_dims=EMBED, feedforward_channels=64,
                    ffn_drop=0.0)),
            post_norm_cfg=None),
        positional_encoding=dict(
            num_feats=EMBED // 2, normalize=True, offset=-0.5),
        bbox_head=dict(
            type='mmdet.DeformableDETRHead',
            num_classes=1,
            embed_dims=EMBED,
            sync_cls_avg_factor=False,
            loss_cls=dict(
                type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0,
                alpha=0.25, loss_weight=2.0),
            loss_bbox=dict(type='mmdet.L1Loss', loss_weight=5.0),
            loss_iou=dict(type='mmdet.GIoULoss', loss_weight=2.0)),
        train_cfg=dict(
            assigner=dict(
                type='mmdet.HungarianAssigner',
                match_costs=[
                    dict(type='mmdet.FocalLossCost', weight=2.0),
                    dict(type='mmdet.BBoxL1Cost', weight=5.0,
                         box_format='xywh'),
                    dict(type='mmdet.IoUCost', iou_mode='giou', weight=2.0)
                ])),
        test_cfg=dict(max_per_img=10))


def tiny_model_cfg(**kwargs) -> dict:
    cfg = dict(
        type='ProSeCo',
        detector=tiny_detector_cfg(),
        embed_head=dict(
            type='ObjectEmbeddingHead', in_channels=EMBED, hid_channels=32,
            out_channels=16),
        matcher=dict(type='ProposalHungarianMatcher'),
        contrast_loss=dict(type='LocSCELoss', iou_thr=0.5),
        teacher_momentum=0.1)
    cfg.update(kwargs)
    return cfg


def _batch(num_boxes=(3, 0), size=64, zero_area=False):
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randn(len(num_boxes), 3, size, size, generator=gen)
              for _ in range(2)]
    samples = []
    for k in num_boxes:
        xy = torch.rand(k, 2, generator=gen) * size / 2
        wh = torch.rand(k, 2, generator=gen) * size / 2 + 2
        b = torch.cat([xy, xy + wh], 1)
        if zero_area and k:
            b[0, 2:] = b[0, :2]
        s = DataSample()
        s.set_field(torch.stack([b, b]), 'boxes')
        s.set_metainfo(dict(img_shape=[(size, size), (size, size)]))
        samples.append(s)
    return inputs, samples


def _build(**kwargs):
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(**kwargs))
    model.train()
    return model


def test_proseco_loss_backward():
    model = _build()
    inputs, samples = _batch((3, 2))
    losses = model(inputs, samples, mode='loss')
    assert {'loss_cls', 'loss_bbox', 'loss_iou',
            'loss_contrast'} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.embed_head.mlp[0].weight.grad.abs().sum() > 0
    assert model.detector.query_embedding.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())
    # the teacher stays in eval mode while the student trains
    assert not model.teacher.training and model.detector.training


def test_proseco_no_proposals_and_zero_area_no_nan():
    model = _build()
    inputs, samples = _batch((0, 0))
    losses = model(inputs, samples, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    inputs, samples = _batch((2, 3), zero_area=True)
    losses = model(inputs, samples, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all()
               for p in model.parameters() if p.grad is not None)


def test_teacher_is_ema_of_student():
    momentum = 0.1
    model = _build(teacher_momentum=momentum)
    model.update_teacher()  # first update: a copy
    name = 'detector.query_embedding.weight'
    t_params = dict(model.teacher.module.named_parameters())
    torch.testing.assert_close(t_params[name],
                               dict(model.named_parameters())[name])
    old = t_params[name].detach().clone()
    with torch.no_grad():
        model.detector.query_embedding.weight.add_(1.0)
    new = dict(model.named_parameters())[name].detach().clone()
    model.update_teacher()
    # mmengine convention: teacher = (1 - m) * teacher + m * student
    torch.testing.assert_close(t_params[name],
                               (1 - momentum) * old + momentum * new)
    assert not torch.allclose(t_params[name], new)
    # a training step updates the teacher before computing its targets
    steps = int(model.teacher.steps)
    inputs, samples = _batch((2, 2))
    model(inputs, samples, mode='loss')
    assert int(model.teacher.steps) == steps + 1


def test_proposal_topk_and_tensor_mode():
    model = _build(num_teacher_proposals=4)
    inputs, samples = _batch((2, 2))
    losses = model(inputs, samples, mode='loss')
    assert torch.isfinite(losses['loss_contrast'])
    cls, boxes = model(inputs, samples, mode='tensor')[:2]
    assert cls.shape[-2:] == (10, 1) and boxes.shape[-2:] == (10, 4)
    cls2 = model(inputs, mode='tensor')[0]
    assert cls2.shape == cls.shape
    with pytest.raises(RuntimeError, match='mode'):
        model(inputs, samples, mode='predict')


def test_detreg_baseline_mode():
    model = _build(
        contrast_loss=None,
        embed_loss=dict(type='mmdet.L1Loss', loss_weight=1.0),
        embed_head=dict(
            type='ObjectEmbeddingHead', in_channels=EMBED, hid_channels=32,
            out_channels=256))  # = channels of ResNet-18 stage 3 (level 0)
    assert model.teacher is None
    inputs, samples = _batch((3, 0))
    losses = model(inputs, samples, mode='loss')
    assert 'loss_embed' in losses and 'loss_contrast' not in losses
    assert losses['loss_embed'] > 0
    losses['loss_embed'].backward()
    assert model.embed_head.mlp[0].weight.grad.abs().sum() > 0
    inputs, samples = _batch((0, 0))
    assert model(inputs, samples, mode='loss')['loss_embed'] == 0


def test_bad_configs():
    det = tiny_detector_cfg()
    det['bbox_head']['num_classes'] = 3
    with pytest.raises(ValueError, match='class-agnostic'):
        _build(detector=det)
    with pytest.raises(ValueError, match='teacher_view'):
        _build(teacher_view=2)
    model = _build()
    with pytest.raises(ValueError, match='list of 2'):
        model.loss(torch.zeros(1, 3, 64, 64), [])


def _toy_cfg(toy_coco, toy_proposals):
    import os.path as osp

    from mmengine.config import Config
    repo = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    cfg = Config.fromfile(
        osp.join(repo, 'configs/mmregion/proseco_deformable-detr_r18_toy.py'))
    ds = cfg.train_dataloader.dataset
    ds.data_root = str(toy_coco)
    for t in ds.pipeline:
        if t['type'] == 'LoadProposals':
            t['proposal_file'] = str(toy_proposals)
    return cfg


@pytest.mark.slow
def test_toy_config_trains_and_loss_falls(toy_coco, toy_proposals):
    from mmengine.dataset import default_collate

    from mmregion.registry import DATASETS
    register_all_modules()
    cfg = _toy_cfg(toy_coco, toy_proposals)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = default_collate([dataset[i] for i in range(4)])
    data = model.data_preprocessor(batch, training=True)
    assert len(data['inputs']) == 2
    assert data['inputs'][0].shape == (4, 3, 96, 96)
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3)
    totals = []
    for _ in range(8):  # overfit one batch
        losses = model(**data, mode='loss')
        total = sum(v for k, v in losses.items() if 'loss' in k)
        assert torch.isfinite(total)
        optim.zero_grad()
        total.backward()
        optim.step()
        totals.append(total.item())
    assert sum(totals[-3:]) < sum(totals[:3]), totals

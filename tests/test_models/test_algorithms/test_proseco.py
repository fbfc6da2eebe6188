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
                    embed_dims=EMBED,
                    num_heads=4,
                    num_levels=2,
                    num_points=2,
                    batch_first=True),
                ffn_cfg=dict(
                    embed_dims=EMBED, feedforward_channels=64, ffn_drop=0.0))),
        decoder=dict(
            num_layers=1,
            return_intermediate=True,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=EMBED,
                    num_heads=4,
                    dropout=0.0,
                    batch_first=True),
                cross_attn_cfg=dict(
                    embed_dims=EMBED,
                    num_heads=4,
                    num_levels=2,
                    num_points=2,
                    batch_first=True),
                ffn_cfg=dict(
                    embed_dims=EMBED, feedforward_channels=64, ffn_drop=0.0)),
            post_norm_cfg=None),
        positional_encoding=dict(
            num_feats=EMBED // 2, normalize=True, offset=-0.5),
        bbox_head=dict(
            type='mmdet.DeformableDETRHead',
            num_classes=1,
            embed_dims=EMBED,
            sync_cls_avg_factor=False,
            loss_cls=dict(
                type='mmdet.FocalLoss',
                use_sigmoid=True,
                gamma=2.0,
                alpha=0.25,
                loss_weight=2.0),
            loss_bbox=dict(type='mmdet.L1Loss', loss_weight=5.0),
            loss_iou=dict(type='mmdet.GIoULoss', loss_weight=2.0)),
        train_cfg=dict(
            assigner=dict(
                type='mmdet.HungarianAssigner',
                match_costs=[
                    dict(type='mmdet.FocalLossCost', weight=2.0),
                    dict(
                        type='mmdet.BBoxL1Cost', weight=5.0,
                        box_format='xywh'),
                    dict(type='mmdet.IoUCost', iou_mode='giou', weight=2.0)
                ])),
        test_cfg=dict(max_per_img=10))


def tiny_model_cfg(**kwargs) -> dict:
    cfg = dict(
        type='ProSeCo',
        detector=tiny_detector_cfg(),
        neck=dict(
            type='ObjectEmbeddingNeck',
            in_channels=EMBED,
            hid_channels=32,
            out_channels=16),
        head=dict(
            type='ProSeCoHead',
            matcher=dict(type='ProposalHungarianMatcher'),
            loss=dict(type='LocSCELoss', pos_iou_thr=0.5)),
        momentum=0.1)
    cfg.update(kwargs)
    return cfg


def _batch(num_boxes=(3, 0), size=64, zero_area=False):
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(0)
    inputs = [
        torch.randn(len(num_boxes), 3, size, size, generator=gen)
        for _ in range(2)
    ]
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
    # mmdet's DeformableDETR leaves e.g. ``level_embed`` as uninitialised
    # memory until init_weights (random NaNs otherwise)
    model.init_weights()
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
    assert model.neck.layers[0].weight.grad.abs().sum() > 0
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
    assert all(
        torch.isfinite(p.grad).all() for p in model.parameters()
        if p.grad is not None)


def test_teacher_is_ema_of_student():
    momentum = 0.1
    model = _build(momentum=momentum)
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
    model = _build(
        head=dict(
            type='ProSeCoHead', loss=dict(type='LocSCELoss'), num_proposals=4))
    assert model.head.num_proposals == 4
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
    model = _detreg()
    assert model.teacher is None
    inputs, samples = _batch((3, 0))
    losses = model(inputs, samples, mode='loss')
    assert 'loss_embed' in losses and 'loss_contrast' not in losses
    assert losses['loss_embed'] > 0
    losses['loss_embed'].backward()
    assert model.neck.layers[0].weight.grad.abs().sum() > 0
    inputs, samples = _batch((0, 0))
    assert model(inputs, samples, mode='loss')['loss_embed'] == 0


def test_bad_configs():
    det = tiny_detector_cfg()
    det['bbox_head']['num_classes'] = 3
    with pytest.raises(ValueError, match='class-agnostic'):
        _build(detector=det)
    with pytest.raises(ValueError, match='teacher_view'):
        _build(teacher_view=2)
    with pytest.raises(ValueError, match='target_view'):
        _build(target_view=2)
    with pytest.raises(ValueError, match='nothing to train'):
        _build(head=None, loc_loss=False)
    with pytest.raises(ValueError, match='momentum must be'):
        _build(momentum=1.0)
    model = _build()
    with pytest.raises(ValueError, match='list of 2'):
        model.loss(torch.zeros(1, 3, 64, 64), [])


def _toy_cfg(toy_coco, toy_proposals, name='proseco'):
    import os.path as osp

    from mmengine.config import Config
    repo = osp.dirname(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    cfg = Config.fromfile(
        osp.join(repo, f'configs/mmregion/{name}_deformable-detr_r18_toy.py'))
    ds = cfg.train_dataloader.dataset
    ds.data_root = str(toy_coco)
    for t in ds.pipeline:
        if t['type'] == 'LoadProposals':
            t['proposal_file'] = str(toy_proposals)
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize('name, views, head_loss',
                         [('proseco', 2, 'loss_contrast'),
                          ('detreg', 1, 'loss_embed')])
def test_toy_config_trains_and_loss_falls(toy_coco, toy_proposals, name, views,
                                          head_loss):
    from mmengine.dataset import default_collate

    from mmregion.registry import DATASETS
    register_all_modules()
    cfg = _toy_cfg(toy_coco, toy_proposals, name)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = default_collate([dataset[i] for i in range(4)])
    data = model.data_preprocessor(batch, training=True)
    assert len(data['inputs']) == views
    assert data['inputs'][0].shape == (4, 3, 96, 96)
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3)
    totals = []
    for _ in range(8):  # overfit one batch
        losses = model(**data, mode='loss')
        assert head_loss in losses
        total = sum(v for k, v in losses.items() if 'loss' in k)
        assert torch.isfinite(total)
        optim.zero_grad()
        total.backward()
        optim.step()
        totals.append(total.item())
    assert sum(totals[-3:]) < sum(totals[:3]), totals


def _detreg(target='roi', **kwargs):
    cfg = dict(
        head=dict(
            type='DETRegHead',
            loss=dict(type='mmdet.L1Loss', loss_weight=1.0),
            assigner=tiny_detector_cfg()['train_cfg']['assigner'],
            target=target,
            crop_size=32),
        neck=dict(
            type='ObjectEmbeddingNeck',
            in_channels=EMBED,
            hid_channels=32,
            out_channels=256,  # = channels of ResNet-18 stage 3 (level 0)
            num_layers=2))
    cfg.update(kwargs)
    return _build(**cfg)


def _capture_embed_pairs(model):
    """Record the (pred, target) pairs and kwargs given to the head's
    loss module."""
    seen = []
    model.head.loss_module.register_forward_hook(
        lambda mod, args, kwargs, out: seen.append((args, kwargs, out)),
        with_kwargs=True)
    return seen


def test_detreg_embed_loss_is_elementwise_mean():
    """Audit critical 1: DETReg's F.l1_loss(pred, target, 'mean'), i.e. the
    mean over matched boxes x embedding dims (not the sum over dims)."""
    import torch.nn.functional as F
    model = _detreg()
    seen = _capture_embed_pairs(model)
    inputs, samples = _batch((3, 2))
    loss = model(inputs, samples, mode='loss')['loss_embed']
    (pred, target), kwargs, _ = seen[-1]
    assert pred.shape == target.shape and pred.size(0) >= 2
    assert not target.requires_grad
    ref = F.l1_loss(pred, target, reduction='mean')
    torch.testing.assert_close(loss, ref)


@pytest.mark.parametrize('target', ['roi', 'crop'])
def test_detreg_target_from_another_view(target):
    """Major 12/13: the detector sees view 0; the target comes from view 1
    (RoIAlign of its feature, or DETReg's per-box crop + GAP)."""
    model = _detreg(target, student_view=0, target_view=1)
    seen = _capture_embed_pairs(model)
    inputs, samples = _batch((3, 2))
    torch.manual_seed(1)  # same dropout masks in both calls
    loss = model(inputs, samples, mode='loss')['loss_embed']
    assert torch.isfinite(loss)
    target = seen[-1][0][1]
    # changing only the target view changes the target, not the prediction
    inputs2 = [inputs[0], torch.randn_like(inputs[1])]
    torch.manual_seed(1)
    model(inputs2, samples, mode='loss')
    pred1, pred2 = seen[0][0][0], seen[1][0][0]
    torch.testing.assert_close(pred1, pred2)
    assert not torch.allclose(target, seen[1][0][1])


def test_frozen_backbone_needs_pretrained_init(tmp_path):
    det = tiny_detector_cfg()
    det['backbone'].update(
        frozen_stages=4,
        norm_eval=True,
        norm_cfg=dict(type='BN', requires_grad=False))
    with pytest.raises(ValueError, match='init_cfg=dict'):
        _build(detector=det)
    # a SwAV-layout checkpoint ('module.' prefix, extra heads) really loads
    from mmdet.models.backbones import ResNet
    src = ResNet(depth=18, out_indices=(2, 3))
    for p in src.parameters():
        torch.nn.init.normal_(p)
    swav = {f'module.{k}': v for k, v in src.state_dict().items()}
    swav['module.projection_head.0.weight'] = torch.zeros(4, 4)
    swav['module.prototypes.weight'] = torch.zeros(3, 4)
    path = tmp_path / 'swav_like.pth.tar'
    torch.save(swav, path)
    det['backbone']['init_cfg'] = dict(type='Pretrained', checkpoint=str(path))
    model = _build(detector=det)
    model.init_weights()
    got = model.detector.backbone.state_dict()
    for k, v in src.state_dict().items():
        torch.testing.assert_close(got[k], v, msg=k)
    assert not any(p.requires_grad
                   for p in model.detector.backbone.parameters())


def test_det_samples_use_the_view_img_shape():
    """Minor: teacher and student samples carry the view's own img_shape,
    the padded batch size as batch_input_shape (mmdet's convention)."""
    model = _build()
    inputs, samples = _batch((2, 1))
    for s in samples:
        s.set_metainfo(dict(img_shape=[(48, 60), (40, 64)]))
    for view, with_gt in ((0, False), (1, True)):
        dets = model._det_samples(samples, inputs[view], view, with_gt)
        assert dets[0].metainfo['img_shape'] == [(48, 60), (40, 64)][view]
        assert dets[0].metainfo['batch_input_shape'] == (64, 64)
        assert ('gt_instances' in dets[0]) == with_gt
    losses = model(inputs, samples, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize('action', ['raise', 'skip'])
def test_nonfinite_predictions_reach_the_guard(action):
    """Issue 16 item 3: a diverged model used to stop inside the Hungarian
    matcher ('matrix contains invalid numeric entries'); now the optim
    wrapper's on_nonfinite decides, and its message names the quantity."""
    from mmengine.logging import MessageHub

    from mmregion.engine.optim_wrappers import FiniteCheckOptimWrapper
    model = _build()
    MessageHub.get_current_instance().update_info('iter', 4)
    wrapper = FiniteCheckOptimWrapper(
        torch.optim.AdamW(model.parameters(), lr=1e-3), on_nonfinite=action)
    with torch.no_grad():
        model.detector.bbox_head.reg_branches[0][0].weight.fill_(float('nan'))
    before = model.neck.layers[0].weight.detach().clone()
    inputs, samples = _batch((3, 2))
    data = dict(inputs=inputs, data_samples=samples)
    if action == 'raise':
        with pytest.raises(
                FloatingPointError,
                match='loss_nonfinite_student_bbox_preds.*'
                'iteration 5'):
            model.train_step(data, wrapper)
    else:
        log_vars = model.train_step(data, wrapper)
        assert 'loss_nonfinite_student_bbox_preds' in log_vars
        assert wrapper.num_skipped == 1
        torch.testing.assert_close(model.neck.layers[0].weight, before)
    MessageHub.get_current_instance().pop_info('iter')


def test_detreg_patch_target_uses_the_pipeline_patches():
    """Issue 24 item 5: target='patch' takes each matched box's patch
    made by BoxPatches (normalised like the views: BGR -> RGB, mean, std)
    through the backbone up to the target level, globally averaged."""
    from mmregion.models.utils.region_features import backbone_level
    model = _detreg(
        'patch',
        student_view=0,
        data_preprocessor=dict(
            type='mmpretrain.SelfSupDataPreprocessor',
            mean=[100., 110., 120.],
            std=[50., 60., 70.],
            to_rgb=True))
    seen = _capture_embed_pairs(model)
    inputs, samples = _batch((3, 2))
    gen = torch.Generator().manual_seed(3)
    for s in samples:
        k = s.boxes.shape[1]
        s.set_field(
            torch.randint(
                0, 256, (k, 3, 24, 24), dtype=torch.uint8, generator=gen),
            'patches')
    loss = model(inputs, samples, mode='loss')['loss_embed']
    assert torch.isfinite(loss)
    target = seen[-1][0][1]
    assert target.shape[0] == 5  # 10 queries: every box is matched
    patches = torch.cat([s.patches for s in samples])[:, [2, 1, 0]].float()
    mean = torch.tensor([100., 110., 120.]).view(1, 3, 1, 1)
    std = torch.tensor([50., 60., 70.]).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = backbone_level(model.detector.backbone, (patches - mean) / std,
                             0).mean((2, 3))
    # each target row is the feature of one patch, each patch used once
    dist = torch.cdist(target, ref)
    assert dist.min(1).values.max() < 1e-4
    assert sorted(dist.argmin(1).tolist()) == list(range(5))
    del samples[1].patches
    with pytest.raises(ValueError, match='BoxPatches'):
        model(inputs, samples, mode='loss')

import copy

import pytest
import torch
from mmpretrain.structures import DataSample

from mmregion.models.algorithms.plrc import (PLRC, match_dense_cells,
                                             select_regions)
from mmregion.registry import MODELS

IMG = 64


def _cfg(**kw):
    cfg = dict(
        type='PLRC',
        backbone=dict(
            type='mmpretrain.ResNet',
            depth=18,
            base_channels=16,
            out_indices=(3, ),
            norm_cfg=dict(type='BN')),
        img_neck=dict(
            type='mmpretrain.MoCoV2Neck',
            in_channels=128,
            hid_channels=64,
            out_channels=32,
            with_avg_pool=True),
        point_neck=dict(
            type='PointProjNeck',
            in_channels=128,
            hid_channels=64,
            out_channels=32),
        dino_head=dict(
            type='DINOProjHead',
            in_channels=128,
            hid_channels=64,
            bottleneck_channels=16,
            num_prototypes=32),
        point_sampler=dict(type='RegionPointSampler', num_points=4),
        img_queue_len=64,
        img_feat_dim=32,
        distill_size=8,
        momentum=0.01,
        data_preprocessor=dict(
            type='mmpretrain.SelfSupDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True))
    cfg.update(kw)
    return cfg


def _grid_views(B=3, jitter=0., seed=0):
    """Two random crops (with flips) of a 128 px image with a 4x4 grid of
    regions, resized to 64 px; boxes aligned across views."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(4), torch.arange(4), indexing='ij')
    grid = torch.stack([xs, ys, xs + 1, ys + 1], -1).view(-1, 4).float() * 32
    samples = []
    for _ in range(B):
        affs, vboxes = [], []
        for _ in range(2):
            side = float(torch.rand(1, generator=g)) * 40 + 80
            x0 = float(torch.rand(1, generator=g)) * (128 - side)
            y0 = float(torch.rand(1, generator=g)) * (128 - side)
            s = IMG / side
            aff = [s, -s * x0, s, -s * y0]
            if torch.rand(1, generator=g) < 0.5:
                aff = [-s, IMG + s * x0, s, -s * y0]
            a = torch.tensor(aff)
            bx = torch.stack([
                a[0] * grid[:, 0] + a[1], a[2] * grid[:, 1] + a[3],
                a[0] * grid[:, 2] + a[1], a[2] * grid[:, 3] + a[3]
            ], -1)
            bx = torch.stack([
                torch.minimum(bx[:, 0], bx[:, 2]), bx[:, 1],
                torch.maximum(bx[:, 0], bx[:, 2]), bx[:, 3]
            ], -1).clamp(0, IMG)
            affs.append(a)
            vboxes.append(bx)
        boxes = torch.stack(vboxes)  # (2, 16, 4)
        keep = ((boxes[..., 2] - boxes[..., 0] > 2) &
                (boxes[..., 3] - boxes[..., 1] > 2)).all(0)
        boxes = boxes[:, keep]
        if jitter:
            boxes = boxes + torch.randn(boxes.shape, generator=g) * jitter
        ds = DataSample()
        ds.set_field(boxes, 'boxes')
        ds.set_field(torch.stack(affs), 'view_affine')
        samples.append(ds)
    inputs = [torch.randn(B, 3, IMG, IMG, generator=g) for _ in range(2)]
    return inputs, samples


def test_match_dense_cells():
    ident = torch.tensor([[[1., 0., 1., 0.], [1., 0., 1., 0.]]])
    idx, ok = match_dense_cells(ident, (32, 32), 4, 0, 1)
    assert ok.all() and torch.equal(idx[0], torch.arange(16))
    flip = torch.tensor([[[1., 0., 1., 0.], [-1., 32., 1., 0.]]])
    idx, ok = match_dense_cells(flip, (32, 32), 4, 0, 1)
    expected = (torch.arange(4)[:, None] * 4 + 3 - torch.arange(4)[None])
    assert ok.all() and torch.equal(idx[0], expected.view(-1))
    # view 1 shows the top-right quarter of the image at 2x
    quarter = torch.tensor([[[1., 0., 1., 0.], [2., -32., 2., 0.]]])
    idx, ok = match_dense_cells(quarter, (32, 32), 4, 0, 1)
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[:2, 2:] = True
    assert torch.equal(ok.view(4, 4), expected)
    # src cell (row 0, col 2), centre (20, 4) -> dst pixel (8, 8): cell 5
    assert idx.view(4, 4)[0, 2] == 5


def test_select_regions():
    boxes = torch.arange(2 * 2 * 5 * 4).float().view(2, 2, 5, 4)
    valid = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]).bool()
    b2, v2 = select_regions(boxes, valid, 3)
    assert b2.shape == (2, 2, 3, 4) and v2.sum(1).tolist() == [2, 3]
    assert select_regions(boxes, valid, None)[0] is boxes


def test_plrc_loss_grads_only_online():
    torch.manual_seed(0)
    model = MODELS.build(_cfg())
    assert isinstance(model, PLRC)
    assert model.loss_distill.out_dim == 8 * 8 + 32
    inputs, samples = _grid_views()
    ptr0 = int(model.img_queue.ptr)
    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss_img', 'loss_point', 'loss_distill'}
    for v in losses.values():
        assert torch.isfinite(v) and v.item() > 0
    sum(losses.values()).backward()
    assert int(model.img_queue.ptr) == ptr0 + 3
    for name in ('backbone', 'img_neck', 'point_neck', 'dino_head'):
        grads = [p.grad for p in getattr(model, name).parameters()
                 if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    for p in model.momentum_encoder.parameters():
        assert not p.requires_grad and p.grad is None
    # each loss reaches the online point/dino heads
    model.zero_grad()
    model.loss(inputs, samples)['loss_point'].backward()
    assert model.point_neck.mlp[0].weight.grad.abs().sum() > 0
    model.zero_grad()
    model.loss(inputs, samples)['loss_distill'].backward()
    assert model.dino_head.mlp[0].weight.grad.abs().sum() > 0


def test_plrc_weights_and_no_regions():
    model = MODELS.build(
        _cfg(
            loss_point=dict(type='PointInfoNCELoss', loss_weight=0.),
            loss_distill=dict(
                type='PointAffinityDistillationLoss', loss_weight=0.),
            num_distill_points=5,
            max_regions=2))
    inputs, samples = _grid_views(B=2)
    # an image without regions: masked, no NaN
    samples[1].set_field(torch.zeros(2, 0, 4), 'boxes')
    losses = model.loss(inputs, samples)
    assert losses['loss_point'] == 0 and losses['loss_distill'] == 0
    assert torch.isfinite(losses['loss_img'])
    with pytest.raises(ValueError, match='view_affine'):
        bad = DataSample()
        bad.set_field(torch.zeros(2, 1, 4), 'boxes')
        model.loss(inputs, [bad, bad])


def test_plrc_noisy_regions_train_without_nan():
    torch.manual_seed(0)
    model = MODELS.build(_cfg(num_distill_points=16))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for step in range(3):
        # jittered boxes: partly outside the view, some degenerate
        inputs, samples = _grid_views(jitter=12., seed=step)
        losses = model.loss(inputs, samples)
        loss = sum(losses.values())
        assert torch.isfinite(loss), losses
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters()
                   if p.grad is not None)
        opt.step()


def test_plrc_train_step_via_data_preprocessor():
    model = MODELS.build(_cfg())
    inputs, samples = _grid_views(B=2)
    data = dict(
        inputs=[(x * 50 + 120).clamp(0, 255).to(torch.uint8) for x in inputs],
        data_samples=samples)
    from mmengine.optim import OptimWrapper
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    log_vars = model.train_step(data, ow)
    assert 'loss' in log_vars and torch.isfinite(log_vars['loss'])
    copy.deepcopy(model)  # the EMA copy deep-copies (weight norm w/o hooks)


def test_plrc_point_losses_fall_on_fixed_batch():
    torch.manual_seed(0)
    model = MODELS.build(_cfg(momentum=0.5))
    model.loss_distill.warmup_epochs = 0  # fixed teacher temperature
    inputs, samples = _grid_views(B=4, seed=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    hist = []
    for _ in range(8):
        losses = model.loss(inputs, samples)
        loss = losses['loss_point'] + losses['loss_distill']
        hist.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert sum(hist[-2:]) < sum(hist[:2]), hist


def test_read_upsampled_rows_equals_interpolate():
    import torch.nn.functional as F

    from mmregion.models.algorithms.plrc import read_upsampled_rows
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, 4, generator=g)
    for S in (8, 7, 3):
        idx = torch.randint(0, S * S, (2, 11), generator=g)
        dense = F.interpolate(
            x, size=(S, S), mode='bilinear', align_corners=False)
        dense = dense.flatten(2).transpose(1, 2)  # (2, S*S, 5)
        ref = dense.gather(1, idx[..., None].expand(-1, -1, 5))
        out = read_upsampled_rows(x, idx, S)
        assert torch.allclose(out, ref, atol=1e-5), S


def _dense_distill_reference(model, online, teacher, directions, aff,
                             img_shape):
    """The loss on the full upsampled S x S maps (the official order:
    upsample, then all-pairs affinities, then pick the paired cells)."""
    import torch.nn.functional as F

    from mmregion.models.losses.point_affinity_distillation_loss import \
        point_affinity_distillation_loss
    S = model.distill_size

    def up(x):
        x = F.interpolate(x, size=(S, S), mode='bilinear',
                          align_corners=False)
        return x.flatten(2).transpose(1, 2)

    terms, weights = [], []
    for on, te, (s, t) in zip(online, teacher, directions):
        idx_t, ok = match_dense_cells(aff, img_shape, S, s, t,
                                      model.distill_pos_ratio)
        f_s, l_s = up(on['dino_feat']), up(on['dino_logits'])
        f_t, l_t = up(te['dino_feat']), up(te['dino_logits'])
        ref = f_t.transpose(1, 2)
        s_vec = torch.cat([f_s @ ref * model.affinity_scale, l_s], -1)
        t_vec = torch.cat([f_t @ ref * model.affinity_scale, l_t], -1)
        t_vec = t_vec.gather(1, idx_t[..., None].expand_as(t_vec))
        loss = point_affinity_distillation_loss(
            s_vec.flatten(0, 1), t_vec.flatten(0, 1),
            model.loss_distill.center, model.loss_distill.student_temp,
            model.loss_distill.teacher_temp)
        terms.append(loss)
        weights.append(ok.flatten().float())
    loss, w = torch.cat(terms), torch.cat(weights)
    return model.loss_distill.loss_weight * (loss * w).sum() / w.sum()


@pytest.mark.parametrize('symmetric', [False, True])
def test_distill_loss_equals_dense_reference(symmetric):
    torch.manual_seed(0)
    model = MODELS.build(_cfg(symmetric=symmetric))
    model.loss_distill.eval()  # no centre update between the two calls
    model.loss_distill.center.normal_()
    _, samples = _grid_views(B=3, seed=2)
    aff = torch.stack([s.view_affine for s in samples])
    g = torch.Generator().manual_seed(1)

    def enc():
        return dict(
            dino_feat=torch.randn(3, 16, 2, 3, generator=g),
            dino_logits=torch.randn(3, 32, 2, 3, generator=g))

    dirs = model.directions
    online = [enc() for _ in dirs]
    teacher = [enc() for _ in dirs]
    ours = model.distill_loss(online, teacher, dirs, aff, (IMG, IMG))
    ref = _dense_distill_reference(model, online, teacher, dirs, aff,
                                   (IMG, IMG))
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-5), (ours, ref)


@pytest.mark.parametrize('symmetric', [False, True])
def test_plrc_one_backbone_pass_per_view_and_encoder(symmetric):
    model = MODELS.build(_cfg(symmetric=symmetric))
    inputs, samples = _grid_views(B=2)
    calls = {'online': [], 'teacher': []}
    model.backbone.register_forward_hook(
        lambda m, i, o: calls['online'].append(i[0]))
    model.momentum_module('backbone').register_forward_hook(
        lambda m, i, o: calls['teacher'].append(i[0]))
    losses = model.loss(inputs, samples)
    assert all(torch.isfinite(v) for v in losses.values())
    if symmetric:
        assert len(calls['online']) == 2 and len(calls['teacher']) == 2
    else:
        # MoCo v2's work: online on view 1, teacher on view 2, once each
        assert len(calls['online']) == 1 and len(calls['teacher']) == 1
        assert torch.equal(calls['online'][0], inputs[0])
        assert torch.equal(calls['teacher'][0], inputs[1])


def test_plrc_point_head_after_sampling_variant():
    torch.manual_seed(0)
    model = MODELS.build(_cfg(dense_point_head=False))
    inputs, samples = _grid_views(B=2)
    loss = model.loss(inputs, samples)['loss_point']
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.point_neck.mlp[0].weight.grad.abs().sum() > 0

import copy
import math

import pytest
import torch
from mmpretrain.structures import DataSample

from mmregion.models.algorithms.plrc import PLRC
from mmregion.models.heads.plrc_head import (PLRCHead, dense_cell_pairs,
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


def _grid_views(B=3, jitter=0., seed=0, V=3):
    """``V`` random crops (with flips) of a 128 px image with a 4x4 grid of
    regions, resized to 64 px; boxes aligned across views (a region is kept
    when it is in views 0 and 1)."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(4), torch.arange(4), indexing='ij')
    grid = torch.stack([xs, ys, xs + 1, ys + 1], -1).view(-1, 4).float() * 32
    samples = []
    for _ in range(B):
        affs, vboxes = [], []
        for _ in range(V):
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
        boxes = torch.stack(vboxes)  # (V, 16, 4)
        keep = ((boxes[:2, :, 2] - boxes[:2, :, 0] > 2) &
                (boxes[:2, :, 3] - boxes[:2, :, 1] > 2)).all(0)
        boxes = boxes[:, keep]
        if jitter:
            boxes = boxes + torch.randn(boxes.shape, generator=g) * jitter
        ds = DataSample()
        ds.set_field(boxes, 'boxes')
        ds.set_field(torch.stack(affs), 'view_affine')
        ds.set_metainfo(dict(ori_shape=(128, 128)))
        samples.append(ds)
    inputs = [torch.randn(B, 3, IMG, IMG, generator=g) for _ in range(V)]
    return inputs, samples


def _official_pairs(aff, img_shape, ori_shape, S, src, dst, ratio=0.5):
    """The release's rule (PLRC ``models/utils.py`` ``overlap()``), written
    as a loop: each view's crop as ``(x1, y1, x2, y2)`` in coordinates
    normalised by the original ``(W - 1, H - 1)`` (x1 > x2 when flipped,
    ``RandomHorizontalFlipCoord``), cell centres ``x1 + (k + 0.5) * (x2 -
    x1) / S``, a pair when the distance of the centres is below ``ratio``
    times the larger cell diagonal. Returns the set of (b, i, j)."""
    H, W = img_shape
    pairs = set()
    for b in range(aff.size(0)):
        oh, ow = (float(v) for v in ori_shape[b])
        coords = []
        for v in (src, dst):
            sx, tx, sy, ty = (float(c) for c in aff[b, v])
            coords.append(((0 - tx) / sx / (ow - 1), (0 - ty) / sy / (oh - 1),
                           (W - tx) / sx / (ow - 1), (H - ty) / sy / (oh - 1)))
        cells = []
        for x1, y1, x2, y2 in coords:
            bw, bh = (x2 - x1) / S, (y2 - y1) / S
            cells.append(([(x1 + (k % S + 0.5) * bw, y1 + (k // S + 0.5) * bh)
                           for k in range(S * S)], math.hypot(bw, bh)))
        (cq, dq), (ck, dk) = cells
        for i, (xq, yq) in enumerate(cq):
            for j, (xk, yk) in enumerate(ck):
                if math.hypot(xq - xk, yq - yk) / max(dq, dk) < ratio:
                    pairs.add((b, i, j))
    return pairs


def _pair_set(src, dst, ok):
    return {(b, int(src[b, m]), int(dst[b, m]))
            for b, m in ok.nonzero().tolist()}


def test_dense_cell_pairs_equal_the_official_rule():
    # views 0, 1 (flipped), 0' (smaller crop: its cells pair with several)
    _, samples = _grid_views(B=3, seed=3, V=3)
    aff = torch.stack([s.view_affine for s in samples])
    ori = torch.tensor([[128., 128.], [96., 160.], [150., 110.]])
    scale = 1. / (ori[:, [1, 0]] - 1)
    S = 8
    for src, dst in [(0, 1), (0, 2), (2, 0), (1, 0)]:
        got = _pair_set(
            *dense_cell_pairs(aff, (IMG, IMG), S, src, dst, 0.5, scale))
        ref = _official_pairs(aff, (IMG, IMG), ori, S, src, dst)
        assert got == ref, (src, dst, len(got), len(ref))
        assert len(ref) > 0
    # several target cells per student cell, as the release
    _, counts = torch.tensor(sorted(got))[:, :2].unique(
        dim=0, return_counts=True)
    assert counts.max() > 1


def test_dense_cell_pairs_simple_geometry():
    ident = torch.tensor([[[1., 0., 1., 0.], [1., 0., 1., 0.]]])
    src, dst, ok = dense_cell_pairs(ident, (32, 32), 4, 0, 1)
    assert ok.all() and torch.equal(src[0], torch.arange(16))
    assert torch.equal(dst[0], torch.arange(16))  # only itself within 0.5
    flip = torch.tensor([[[1., 0., 1., 0.], [-1., 32., 1., 0.]]])
    src, dst, ok = dense_cell_pairs(flip, (32, 32), 4, 0, 1)
    expected = (torch.arange(4)[:, None] * 4 + 3 - torch.arange(4)[None])
    assert ok.all() and torch.equal(dst[0], expected.view(-1))
    # view 1 shows the top-right quarter at 2x: its cells are half as wide,
    # so each view-0 cell of that quarter is within reach of 2x2 of them
    quarter = torch.tensor([[[1., 0., 1., 0.], [2., -32., 2., 0.]]])
    src, dst, ok = dense_cell_pairs(quarter, (32, 32), 4, 0, 1)
    pairs = _pair_set(src, dst, ok)
    assert {i for _, i, _ in pairs} == {2, 3, 6, 7}
    assert {j for _, i, j in pairs if i == 2} == {0, 1, 4, 5}
    assert len(pairs) == 16


def test_distill_pair_frame_needs_ori_shape():
    model = MODELS.build(_cfg())
    assert model.head.distill_pair_frame == 'normalized'
    inputs, samples = _grid_views(B=2)
    for s in samples:
        s.set_metainfo(dict(ori_shape=None))
    with pytest.raises(ValueError, match='ori_shape'):
        model.loss(inputs, samples)
    model = MODELS.build(_cfg(distill_pair_frame='pixels'))
    assert torch.isfinite(model.loss(inputs, samples)['loss_distill'])
    with pytest.raises(ValueError, match='distill_pair_frame'):
        MODELS.build(_cfg(distill_pair_frame='cells'))


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
    for name in ('backbone', 'point_neck', 'dino_head'):
        grads = [
            p.grad for p in getattr(model, name).parameters()
            if p.requires_grad
        ]
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
            regions_per_image=2))
    inputs, samples = _grid_views(B=2)
    # an image without regions: masked, no NaN
    samples[1].set_field(torch.zeros(3, 0, 4), 'boxes')
    losses = model.loss(inputs, samples)
    assert losses['loss_point'] == 0 and losses['loss_distill'] == 0
    assert torch.isfinite(losses['loss_img'])
    with pytest.raises(ValueError, match='view_affine'):
        bad = DataSample()
        bad.set_field(torch.zeros(3, 1, 4), 'boxes')
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
        assert all(
            torch.isfinite(p.grad).all() for p in model.parameters()
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

    from mmregion.models.utils.dense_ops import read_upsampled_rows
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


MODES = dict(
    three=dict(num_views=3),  # the release: view 0' is the target
    two=dict(num_views=2),
    symmetric=dict(num_views=2, symmetric=True))


def _dense_distill_reference(model, online, target, reference, pairs, aff,
                             img_shape, ori_shape):
    """The loss on the full upsampled S x S maps (the official order:
    upsample, then all-pairs affinities, then pick the pairs of the official
    ``overlap()`` rule, :func:`_official_pairs`), the mean over all pairs."""
    import torch.nn.functional as F

    from mmregion.models.losses.point_affinity_distillation_loss import \
        point_affinity_distillation_loss
    S = model.head.distill_size

    def up(x):
        x = F.interpolate(x, size=(S, S), mode='bilinear', align_corners=False)
        return x.flatten(2).transpose(1, 2)

    terms = []
    for on, te, rf, (s, d) in zip(online, target, reference, pairs):
        f_s, l_s = up(on['dino_feat']), up(on['dino_logits'])
        f_t, l_t = up(te['dino_feat']), up(te['dino_logits'])
        ref = up(rf['dino_feat']).transpose(1, 2)
        s_vec = torch.cat([f_s @ ref * model.head.affinity_scale, l_s], -1)
        t_vec = torch.cat([f_t @ ref * model.head.affinity_scale, l_t], -1)
        b, i, j = torch.tensor(
            sorted(_official_pairs(aff, img_shape, ori_shape, S, s, d))).t()
        terms.append(
            point_affinity_distillation_loss(s_vec[b, i], t_vec[b, j],
                                             model.loss_distill.center,
                                             model.loss_distill.student_temp,
                                             model.loss_distill.teacher_temp))
    return model.loss_distill.loss_weight * torch.cat(terms).mean()


@pytest.mark.parametrize('mode', list(MODES))
def test_distill_loss_equals_dense_reference(mode):
    torch.manual_seed(0)
    model = MODELS.build(_cfg(**MODES[mode]))
    model.loss_distill.eval()  # no centre update between the two calls
    model.loss_distill.center.normal_()
    _, samples = _grid_views(B=3, seed=2, V=model.num_views)
    aff = torch.stack([s.view_affine for s in samples])
    g = torch.Generator().manual_seed(1)

    def enc():
        return dict(
            dino_feat=torch.randn(3, 16, 2, 3, generator=g),
            dino_logits=torch.randn(3, 32, 2, 3, generator=g))

    dirs = model.directions
    pairs = [(s, model.distill_target_view(s, t)) for s, t in dirs]
    if mode == 'three':
        assert pairs == [(0, 2)]
    else:
        assert pairs == list(dirs)
    online = [enc() for _ in dirs]
    target = [enc() for _ in dirs]
    reference = [enc() for _ in dirs]
    ori = torch.tensor([[128., 128.], [90., 140.], [130., 100.]])
    ours = model.head.distill_loss(
        online,
        target,
        pairs,
        aff, (IMG, IMG),
        reference=reference,
        ori_shape=ori)
    ref = _dense_distill_reference(model, online, target, reference, pairs,
                                   aff, (IMG, IMG), ori)
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-5), (ours, ref)
    # the two-view form: the target is its own reference
    ours = model.head.distill_loss(
        online, target, pairs, aff, (IMG, IMG), ori_shape=ori)
    ref = _dense_distill_reference(model, online, target, target, pairs, aff,
                                   (IMG, IMG), ori)
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-5), (ours, ref)


@pytest.mark.parametrize('mode', list(MODES))
def test_plrc_one_backbone_pass_per_view_and_encoder(mode):
    model = MODELS.build(_cfg(**MODES[mode]))
    inputs, samples = _grid_views(B=2, V=model.num_views)
    calls = {'online': [], 'teacher': []}
    model.backbone.register_forward_hook(
        lambda m, i, o: calls['online'].append(i[0]))
    model.momentum_module('backbone').register_forward_hook(
        lambda m, i, o: calls['teacher'].append(i[0]))
    losses = model.loss(inputs, samples)
    assert all(torch.isfinite(v) for v in losses.values())

    def same_images(x, y):  # up to the shuffle-BN permutation
        return torch.equal(
            x.sum((1, 2, 3)).sort()[0],
            y.sum((1, 2, 3)).sort()[0])

    if mode == 'symmetric':
        assert len(calls['online']) == 2 and len(calls['teacher']) == 2
        return
    # MoCo v2's work: online on view 0 once; the teacher on view 1 (after
    # view 0', the distillation target, with three views: the release's
    # order, test_teacher_order_follows_the_release)
    assert len(calls['online']) == 1
    assert torch.equal(calls['online'][0], inputs[0])
    assert len(calls['teacher']) == model.num_views - 1
    for x, v in zip(calls['teacher'], range(model.num_views - 1, 0, -1)):
        assert same_images(x, inputs[v])


def test_plrc_point_head_after_sampling_variant():
    torch.manual_seed(0)
    model = MODELS.build(_cfg(dense_point_head=False))
    inputs, samples = _grid_views(B=2)
    loss = model.loss(inputs, samples)['loss_point']
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.point_neck.mlp[0].weight.grad.abs().sum() > 0


# ---- fidelity to the release (docs/fidelity.md, PLRC) -------------------
def test_image_embedding_is_point_mean_and_trains_point_head():
    """The release's image embedding: normalize(mean_hw(fcs(C5)))
    (builder.py:140,230); the image loss alone reaches the point head."""
    import torch.nn.functional as F
    torch.manual_seed(0)
    model = MODELS.build(_cfg())
    assert model.img_neck is None and model.point_mean_embedding
    inputs, samples = _grid_views(B=2)
    c5 = model.backbone(inputs[0])[-1]
    enc = model._encode(c5, momentum=False)
    dense = model.point_neck((c5.permute(0, 2, 3, 1), ))[0]  # (B, h, w, D)
    expected = F.normalize(dense.mean((1, 2)), dim=1)
    assert torch.allclose(
        model._image_embedding(enc, momentum=False), expected, atol=1e-5)
    model.zero_grad()
    model.loss(inputs, samples)['loss_img'].backward()
    assert model.point_neck.mlp[0].weight.grad.abs().sum() > 0
    assert model.point_neck.mlp[-1].weight.grad.abs().sum() > 0


def test_separate_image_neck_option():
    torch.manual_seed(0)
    model = MODELS.build(
        _cfg(
            img_neck=dict(
                type='mmpretrain.MoCoV2Neck',
                in_channels=128,
                hid_channels=64,
                out_channels=24,
                with_avg_pool=True),
            img_feat_dim=24))
    assert not model.point_mean_embedding
    assert model.img_queue.features.shape[1] == 24
    inputs, samples = _grid_views(B=2)
    model.loss(inputs, samples)['loss_img'].backward()
    assert model.img_neck.mlp[0].weight.grad.abs().sum() > 0
    assert model.point_neck.mlp[0].weight.grad is None
    with pytest.raises(ValueError, match='img_feat_dim'):
        MODELS.build(_cfg(img_feat_dim=24))  # point_neck gives 32


def _release_supcon(p, q, T=0.2, Tb=0.07):
    """SupCon of the release for one region per image (the formula of
    ``SupConLoss.compute_cont_loss``, 'all' mode): ``p``, ``q`` ``(B, P, C)``
    normalised teacher and online points; positives = the other points of
    the same image, every other point a negative."""
    feats = torch.cat([p, q], 1)  # (B, 2P, C)
    B, n = feats.shape[:2]
    contrast = torch.cat(torch.unbind(feats, 1), 0)  # (n * B, C)
    logits = contrast @ contrast.t() / T
    logits = logits - logits.max(1, keepdim=True)[0]
    not_self = 1 - torch.eye(n * B)
    pos = torch.eye(B).repeat(n, n) * not_self
    log_prob = logits - torch.log((logits.exp() * not_self).sum(1, True))
    mean_log_prob_pos = (pos * log_prob).sum(1) / pos.sum(1)
    return (-(T / Tb) * mean_log_prob_pos).mean()


def _loop_supcon(q, k, valid, T=0.2, Tb=0.07):
    """Per-anchor loop: positives = the other points of the same region of
    the same image (both views), negatives = every other valid point."""
    B, K, P, _ = q.shape
    pts, lab = [], []
    for b in range(B):
        for r in range(K):
            if valid[b, r]:
                for x in torch.cat([q[b, r], k[b, r]]):
                    pts.append(x)
                    lab.append((b, r))
    losses = []
    for a, za in enumerate(pts):
        others = [c for c in range(len(pts)) if c != a]
        denom = torch.stack([(za @ pts[c]) / T for c in others]).logsumexp(0)
        pos = [c for c in others if lab[c] == lab[a]]
        lp = torch.stack([(za @ pts[c]) / T - denom for c in pos])
        losses.append(-(T / Tb) * lp.mean())
    return torch.stack(losses).mean()


def _rand_points(B, K, P, D, seed):
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(B, K, P, D, generator=g), dim=-1)
    k = F.normalize(torch.randn(B, K, P, D, generator=g), dim=-1)
    return q, k


def test_one_region_per_image_equals_release_supcon():
    model = MODELS.build(_cfg())
    assert model.head.regions_per_image == 1
    q, k = _rand_points(4, 1, 5, 8, seed=0)
    ours = model.head.point_contrast_loss([q], [k], torch.ones(4, 1).bool())
    ref = model.head.loss_point.loss_weight * _release_supcon(k[:, 0], q[:, 0])
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6), (ours, ref)


def test_multi_region_mode_equals_loop_reference():
    model = MODELS.build(_cfg(regions_per_image=None))
    q, k = _rand_points(3, 4, 3, 8, seed=1)
    valid = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]]).bool()
    ours = model.head.point_contrast_loss([q], [k], valid)
    ref = model.head.loss_point.loss_weight * _loop_supcon(q, k, valid)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6), (ours, ref)


@pytest.mark.parametrize('regions_per_image', [1, 2, None])
def test_regions_per_image_sets_the_contrasted_regions(regions_per_image):
    torch.manual_seed(0)
    model = MODELS.build(_cfg(regions_per_image=regions_per_image))
    inputs, samples = _grid_views(B=3)
    num_in = [s.boxes.shape[1] for s in samples]
    seen = {}

    def spy(q, k, valid):
        seen['valid'] = valid
        return PLRCHead.point_contrast_loss(model.head, q, k, valid)

    model.head.point_contrast_loss = spy
    model.loss(inputs, samples)
    counts = seen['valid'].sum(1).tolist()
    if regions_per_image is None:
        assert seen['valid'].shape[1] == max(num_in)
        assert sum(counts) > 3  # other regions of an image are negatives
    else:
        assert seen['valid'].shape[1] == regions_per_image
        assert all(c <= regions_per_image for c in counts)


def test_teacher_heads_in_or_out_of_the_shuffle_align():
    """Outputs come back in the input order whichever frame the teacher's
    heads run in (one process: the same batch statistics)."""
    torch.manual_seed(0)
    model = MODELS.build(_cfg())
    inputs, _ = _grid_views(B=4)
    outs = []
    for shuffle, heads_in in [(False, True), (True, True), (True, False)]:
        model.shuffle_bn, model.teacher_heads_in_shuffle = shuffle, heads_in
        torch.manual_seed(1)
        outs.append(model._encode_teacher(inputs[1]))
    for out in outs[1:]:
        assert set(out) == set(outs[0])
        for key in out:
            assert torch.allclose(out[key], outs[0][key], atol=1e-5), key


def test_view_count_errors():
    model = MODELS.build(_cfg())
    inputs, samples = _grid_views(B=2, V=2)
    with pytest.raises(ValueError, match='3 view tensors'):
        model.loss(inputs, samples)
    with pytest.raises(ValueError, match='symmetric=True needs num_views=2'):
        MODELS.build(_cfg(symmetric=True))
    with pytest.raises(ValueError, match='num_views must be'):
        MODELS.build(_cfg(num_views=4))


def test_head_built_from_flat_keys_and_old_checkpoint_keys_load():
    model = MODELS.build(
        _cfg(regions_per_image=2, head=dict(affinity_scale=0.5)))
    head = model.head
    assert type(head).__name__ == 'PLRCHead'
    assert head.regions_per_image == 2 and head.affinity_scale == 0.5
    assert head.distill_size == 8 and head.point_sampler.num_points == 4
    assert model.loss_distill is head.loss_distill  # PLRCTeacherTempHook
    # a checkpoint from before the head: loss_distill.center at the top
    state = model.state_dict()
    state['loss_distill.center'] = torch.rand_like(
        state.pop('head.loss_distill.center'))
    fresh = MODELS.build(_cfg())
    fresh.load_state_dict(state, strict=True)
    assert torch.equal(fresh.head.loss_distill.center,
                       state['loss_distill.center'])


@pytest.mark.parametrize('mode', list(MODES))
def test_teacher_order_follows_the_release(mode):
    """builder.py: the teacher encodes view 0' with the previous step's
    weights, then takes its momentum step, then encodes view 1 (a teacher
    that records its calls and the weights it ran with)."""
    torch.manual_seed(0)
    model = MODELS.build(_cfg(momentum=0.5, **MODES[mode]))
    inputs, samples = _grid_views(B=2, V=model.num_views)
    calls, weights = [], {}
    update, encode = model.update_momentum_encoder, model._encode_teacher
    teacher_conv = model.momentum_module('backbone').conv1.weight

    def recording_update():
        calls.append('update')
        update()

    def recording_encode(x, with_point=True):
        v = next(i for i, inp in enumerate(inputs) if inp is x)
        calls.append(f'teacher{v}')
        weights[v] = teacher_conv.detach().clone()
        return encode(x, with_point)

    model.update_momentum_encoder = recording_update
    model._encode_teacher = recording_encode
    expected = dict(
        three=['teacher2', 'update', 'teacher1'],
        two=['update', 'teacher1'],
        symmetric=['update', 'teacher0', 'teacher1'])[mode]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sum(model.loss(inputs, samples).values()).backward()
    # the first step syncs the teacher with the online encoder first
    assert calls == ['update'] + expected
    opt.step()  # the online encoder moves: the EMA step changes the teacher
    calls.clear()
    before = teacher_conv.detach().clone()
    model.loss(inputs, samples)
    assert calls == expected
    after = teacher_conv.detach().clone()
    assert not torch.allclose(before, after)
    assert torch.equal(weights[1], after)
    if mode == 'three':  # view 0' saw the weights before the update
        assert torch.equal(weights[2], before)


def test_symmetric_image_term_averages_both_directions():
    torch.manual_seed(0)
    model = MODELS.build(_cfg(num_views=2, symmetric=True))
    inputs, samples = _grid_views(B=2, V=2)
    seen = []
    loss_img = model.head.loss_img
    forward = loss_img.forward

    def recording(q, k, queue):
        out = forward(q, k, queue)
        seen.append((q.detach(), k, queue.clone(), out.detach()))
        return out

    loss_img.forward = recording
    ptr = int(model.img_queue.ptr)
    losses = model.loss(inputs, samples)
    assert len(seen) == 2
    (q0, k1, queue0, l0), (q1, k0, queue1, l1) = seen
    assert torch.equal(queue0, queue1)  # both against the queue before
    assert not torch.allclose(q0, q1) and not torch.allclose(k0, k1)
    assert torch.allclose(losses['loss_img'], (l0 + l1) / 2)
    assert int(model.img_queue.ptr) == ptr + 4  # keys of both views

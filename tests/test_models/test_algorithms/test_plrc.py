"""PLRC, the algorithm: encoders, teacher order, views, image queue (the
objective's terms: test_heads/test_plrc_head.py)."""
import copy

import pytest
import torch
from mmpretrain.structures import DataSample
from plrc_views import grid_views

from mmregion.models.algorithms.plrc import PLRC
from mmregion.models.heads.plrc_head import PLRCHead
from mmregion.registry import MODELS


def _cfg(head=None, **kw):
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
        dino_neck=dict(
            type='DINOProjNeck',
            in_channels=128,
            hid_channels=64,
            bottleneck_channels=16,
            num_prototypes=32),
        head=dict(type='PLRCHead', num_prototypes=32, distill_size=8),
        point_sampler=dict(type='RegionPointSampler', num_points=4),
        img_queue_len=64,
        img_feat_dim=32,
        momentum=0.01,
        data_preprocessor=dict(
            type='mmpretrain.SelfSupDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True))
    cfg['head'].update(head or {})
    cfg.update(kw)
    return cfg


def test_distill_pair_frame_needs_ori_shape():
    model = MODELS.build(_cfg())
    assert model.head.distill_pair_frame == 'normalized'
    inputs, samples = grid_views(B=2)
    for s in samples:
        s.set_metainfo(dict(ori_shape=None))
    with pytest.raises(ValueError, match='ori_shape'):
        model.loss(inputs, samples)
    model = MODELS.build(_cfg(head=dict(distill_pair_frame='pixels')))
    assert torch.isfinite(model.loss(inputs, samples)['loss_distill'])


def test_plrc_loss_grads_only_online():
    torch.manual_seed(0)
    model = MODELS.build(_cfg())
    assert isinstance(model, PLRC)
    assert model.head.loss_distill_module.out_dim == 8 * 8 + 32
    inputs, samples = grid_views()
    ptr0 = int(model.img_queue.ptr)
    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss_img', 'loss_point', 'loss_distill'}
    for v in losses.values():
        assert torch.isfinite(v) and v.item() > 0
    sum(losses.values()).backward()
    assert int(model.img_queue.ptr) == ptr0 + 3
    for name in ('backbone', 'point_neck', 'dino_neck'):
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
    assert model.dino_neck.mlp[0].weight.grad.abs().sum() > 0


def test_plrc_weights_and_no_regions():
    model = MODELS.build(
        _cfg(
            head=dict(
                loss_point=dict(type='PointInfoNCELoss', loss_weight=0.),
                loss_distill=dict(
                    type='PointAffinityDistillationLoss', loss_weight=0.),
                num_distill_points=5),
            regions_per_image=2))
    inputs, samples = grid_views(B=2)
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
    model = MODELS.build(_cfg(head=dict(num_distill_points=16)))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for step in range(3):
        # jittered boxes: partly outside the view, some degenerate
        inputs, samples = grid_views(jitter=12., seed=step)
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
    inputs, samples = grid_views(B=2)
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
    model.head.loss_distill_module.warmup_epochs = 0  # fixed teacher temp
    inputs, samples = grid_views(B=4, seed=1)
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


MODES = dict(
    three=dict(num_views=3),  # the release: view 0' is the target
    two=dict(num_views=2),
    symmetric=dict(num_views=2, symmetric=True))


@pytest.mark.parametrize('mode', list(MODES))
def test_plrc_one_backbone_pass_per_view_and_encoder(mode):
    model = MODELS.build(_cfg(**MODES[mode]))
    inputs, samples = grid_views(B=2, V=model.num_views)
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
    inputs, samples = grid_views(B=2)
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
    inputs, samples = grid_views(B=2)
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
    inputs, samples = grid_views(B=2)
    model.loss(inputs, samples)['loss_img'].backward()
    assert model.img_neck.mlp[0].weight.grad.abs().sum() > 0
    assert model.point_neck.mlp[0].weight.grad is None
    with pytest.raises(ValueError, match='img_feat_dim'):
        MODELS.build(_cfg(img_feat_dim=24))  # point_neck gives 32


@pytest.mark.parametrize('regions_per_image', [1, 2, None])
def test_regions_per_image_sets_the_contrasted_regions(regions_per_image):
    torch.manual_seed(0)
    model = MODELS.build(_cfg(regions_per_image=regions_per_image))
    inputs, samples = grid_views(B=3)
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
    inputs, _ = grid_views(B=4)
    outs = []
    for shuffle, heads_in in [(False, True), (True, True), (True, False)]:
        model.shuffle_bn, model.teacher_heads_in_shuffle = shuffle, heads_in
        torch.manual_seed(1)
        outs.append(model._encode_teacher(inputs[1]))
    for out in outs[1:]:
        assert set(out) == set(outs[0])
        for key in out:
            assert torch.allclose(out[key], outs[0][key], atol=1e-5), key


def test_head_is_built_from_its_config():
    model = MODELS.build(_cfg(head=dict(affinity_scale=0.5)))
    assert isinstance(model.head, PLRCHead)
    assert model.head.affinity_scale == 0.5 and model.head.distill_size == 8
    assert model.point_sampler.num_points == 4
    assert 'head.loss_distill_module.center' in model.state_dict()
    with pytest.raises(ValueError, match='num_prototypes'):
        MODELS.build(_cfg(head=dict(num_prototypes=16)))
    with pytest.raises(ValueError, match='regions_per_image'):
        MODELS.build(_cfg(regions_per_image=0))
    with pytest.raises(TypeError):  # no flat head keys on the algorithm
        MODELS.build(_cfg(distill_size=8))


def test_view_count_errors():
    model = MODELS.build(_cfg())
    inputs, samples = grid_views(B=2, V=2)
    with pytest.raises(ValueError, match='3 view tensors'):
        model.loss(inputs, samples)
    with pytest.raises(ValueError, match='symmetric=True needs num_views=2'):
        MODELS.build(_cfg(symmetric=True))
    with pytest.raises(ValueError, match='num_views must be'):
        MODELS.build(_cfg(num_views=4))


@pytest.mark.parametrize('mode', list(MODES))
def test_teacher_order_follows_the_release(mode):
    """builder.py: the teacher encodes view 0' with the previous step's
    weights, then takes its momentum step, then encodes view 1 (a teacher
    that records its calls and the weights it ran with)."""
    torch.manual_seed(0)
    model = MODELS.build(_cfg(momentum=0.5, **MODES[mode]))
    inputs, samples = grid_views(B=2, V=model.num_views)
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
    inputs, samples = grid_views(B=2, V=2)
    seen = []
    loss_img = model.head.loss_img_module
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

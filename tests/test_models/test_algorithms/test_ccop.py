import copy

import pytest
import torch
from mmpretrain.structures import DataSample

from mmregion.registry import MODELS

VIEW = 64


def _cfg():
    return dict(
        type='CCOP',
        backbone=dict(
            type='mmpretrain.ResNet',
            depth=18,
            stem_channels=16,
            base_channels=16,
            out_indices=(0, 1, 2, 3)),
        neck=dict(
            type='mmdet.FPN',
            in_channels=[16, 32, 64, 128],
            out_channels=16,
            num_outs=4,
            norm_cfg=dict(type='BN')),
        img_neck=dict(
            type='LinearProjNeck',
            in_channels=128,
            hid_channels=32,
            out_channels=8,
            dropout=0.1),
        region_neck=dict(
            type='RoIProjNeck',
            in_channels=16,
            hid_channels=32,
            out_channels=8),
        head=dict(type='CCOPHead'),
        box_jitter=dict(type='CurriculumBoxJitter', n_jitter=4),
        img_queue_len=16,
        region_queue_len=16,
        feat_dim=8,
        momentum=0.1)


def _samples(counts, seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = []
    for k in counts:
        xy = torch.rand(2, k, 2, generator=g) * (VIEW / 2)
        wh = torch.rand(2, k, 2, generator=g) * (VIEW / 2) + 4
        sample = DataSample()
        sample.set_data(dict(boxes=torch.cat([xy, xy + wh], dim=-1)))
        samples.append(sample)
    return samples


def _inputs(batch):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(batch, 3, VIEW, VIEW, generator=g) for _ in range(2)]


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    m = MODELS.build(_cfg())
    m.init_weights()
    return m


def test_ccop_losses_and_gradients_only_online(model):
    model = copy.deepcopy(model)
    img_ptr, reg_ptr = int(model.img_queue.ptr), int(model.region_queue.ptr)
    losses = model(_inputs(3), _samples([3, 1, 0]), mode='loss')
    assert set(losses) == {'loss_img', 'loss_region', 'loss_intra'}
    assert all(torch.isfinite(v) and v.item() >= 0 for v in losses.values())
    assert losses['loss_region'].item() > 0
    sum(losses.values()).backward()
    online = [model.backbone, model.neck, model.img_neck, model.region_neck]
    assert all(p.grad is not None for m in online for p in m.parameters())
    assert all(not p.requires_grad and p.grad is None
               for p in model.momentum_encoder.parameters())
    assert int(model.img_queue.ptr) == (img_ptr + 3) % 16
    assert int(model.region_queue.ptr) == (reg_ptr + 4) % 16  # 4 regions
    assert model(_inputs(3)[0], mode='tensor')[-1].shape[1] == 128


def test_ccop_momentum_changes_only_by_ema(model):
    model = copy.deepcopy(model)
    teacher = model.momentum_module('backbone')
    model.loss(_inputs(2), _samples([2, 2]))  # first update copies
    for p_t, p_o in zip(teacher.parameters(), model.backbone.parameters()):
        assert torch.equal(p_t, p_o)
    with torch.no_grad():  # move the online encoder
        for p in model.backbone.parameters():
            p.add_(torch.randn_like(p))
    old_t = [p.clone() for p in teacher.parameters()]
    model.loss(_inputs(2), _samples([2, 2]))
    for p_t, p_old, p_o in zip(teacher.parameters(), old_t,
                               model.backbone.parameters()):
        assert torch.allclose(p_t, 0.9 * p_old + 0.1 * p_o, atol=1e-6)


def test_ccop_without_regions_is_finite(model):
    model = copy.deepcopy(model)
    for counts in ([0, 0], [1, 0], [1, 1]):
        losses = model.loss(_inputs(2), _samples(counts))
        total = sum(losses.values())
        assert torch.isfinite(total)
        assert losses['loss_intra'].item() == 0
        total.backward()
    assert all(
        torch.isfinite(p.grad).all() for p in model.region_neck.parameters())


def test_ccop_picks_hardest_valid_candidate(model, monkeypatch):
    model = copy.deepcopy(model).eval()  # no dropout: deterministic keys
    model.shuffle_bn = False
    samples = _samples([3])
    boxes = samples[0].boxes[1]
    cands = torch.stack([boxes + d for d in (0., 2., 4., 6., 0.)], dim=1)
    valid = torch.tensor([[True, False, True, True, True]] * 3)
    monkeypatch.setattr(model.box_jitter, 'forward', lambda b, shape:
                        (cands, valid))
    inputs = _inputs(1)
    model.loss(inputs, samples)
    enqueued = model.region_queue.queue[:3].clone()
    # recompute the candidate embeddings with the momentum encoder
    with torch.no_grad():
        q = model._embed_regions(
            model.neck(model.backbone(inputs[0])),
            torch.cat([torch.zeros(3, 1), samples[0].boxes[0]], 1), VIEW,
            False)
        _, fpn_k = model.forward_momentum(inputs[1])
        rois = torch.cat([torch.zeros(15, 1), cands.reshape(-1, 4)], 1)
        k = model._embed_regions(fpn_k, rois, VIEW, True).view(3, 5, -1)
        sim = torch.einsum('nd,njd->nj', q, k).masked_fill(~valid, 9.)
        expect = k[torch.arange(3), sim.argmin(1)]
    assert torch.allclose(enqueued, expect, atol=1e-5)


def test_ccop_bad_inputs(model):
    with pytest.raises(ValueError, match='2 view'):
        model.loss(_inputs(2)[:1], _samples([1, 1]))


def test_ccop_builds_its_head_and_feeds_the_shared_image_term(model):
    from mmregion.models.heads import CCOPHead
    model = copy.deepcopy(model)
    assert isinstance(model.head, CCOPHead)
    assert 'loss_region' not in dict(model.named_children())
    seen = []
    image_loss = model.head.image_loss

    def spy(query, key, queue):
        seen.append((len(query), queue.clone()))
        return image_loss(query, key, queue)

    model.head.image_loss = spy
    queue_before = model.img_queue.queue.clone()
    losses = model.loss(_inputs(2), _samples([2, 1]))
    assert len(seen) == 1 and seen[0][0] == 1  # one direction
    assert torch.equal(seen[0][1], queue_before)  # negatives: the old queue
    assert torch.isfinite(losses['loss_img'])
    with pytest.raises(TypeError):  # no flat loss keys on the algorithm
        MODELS.build(dict(_cfg(), loss_region=dict(type='InfoNCELoss')))

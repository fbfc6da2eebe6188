"""PLRCHead: the PLRC objective moved out of the algorithm (issue 13)."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

from mmregion.models.heads.plrc_head import PLRCHead, legacy_head_keys_hook
from mmregion.registry import MODELS

# PLRC.loss_img / point_contrast_loss of the pre-refactor algorithm (commit
# 1c63192) on ``_inputs()`` (distill_size=6, 8 prototypes, default losses);
# loss_distill: every cell pair of the release's overlap() rule (issue 24; it
# was 2.8918869495391846 with one target cell per student cell), equal to
# the brute-force reference of test_plrc.py (_dense_distill_reference)
PRE_REFACTOR = dict(
    loss_img=2.717386245727539,
    loss_point=4.338202953338623,
    loss_distill=2.8280587196350098)


def _inputs():
    g = torch.Generator().manual_seed(0)

    def unit(*shape, dim=-1):
        return F.normalize(torch.randn(*shape, generator=g), dim=dim)

    def dense():  # per-location DINO features and logits on a 3x3 grid
        return dict(
            dino_feat=unit(2, 5, 3, 3, dim=1),
            dino_logits=torch.randn(2, 8, 3, 3, generator=g))

    aff = torch.tensor([[[1., 0., 1., 0.], [-.5, 40., .5, 2.],
                         [.8, -3., .8, -1.]],
                        [[1.2, -4., 1.2, -2.], [1., 0., 1., 0.],
                         [-1., 24., 1., 0.]]])
    return dict(
        img_q=[unit(2, 8)],
        img_k=[unit(2, 8)],
        img_queue=unit(16, 8),
        point_q=[unit(2, 3, 4, 8)],
        point_k=[unit(2, 3, 4, 8)],
        valid=torch.tensor([[1, 1, 0], [1, 0, 1]]).bool(),
        online=[dense()],
        target=[dense()],
        reference=[dense()],
        pairs=[(0, 2)],
        view_affine=aff,
        img_shape=(24, 24),
        ori_shape=torch.tensor([[24., 24.], [30., 40.]]))


def _head(**kw):
    init_default_scope('mmregion')
    return MODELS.build(
        dict(type='PLRCHead', num_prototypes=8, distill_size=6, **kw))


def test_loss_keys_and_values_match_the_pre_refactor_algorithm():
    head = _head()
    assert head.loss_distill.out_dim == 6 * 6 + 8
    losses = head.loss(**_inputs())
    assert list(losses) == ['loss_img', 'loss_point', 'loss_distill']
    for key, ref in PRE_REFACTOR.items():
        assert losses[key].item() == pytest.approx(ref, rel=1e-6), key


def test_loss_is_the_sum_of_its_parts():
    head = _head()
    head.loss_distill.eval()  # no centre update between the calls
    x = _inputs()
    losses = head.loss(**x)
    assert torch.equal(
        losses['loss_img'],
        head.loss_img(x['img_q'][0], x['img_k'][0], x['img_queue']))
    assert torch.equal(
        losses['loss_point'],
        head.point_contrast_loss(x['point_q'], x['point_k'], x['valid']))
    assert torch.equal(
        losses['loss_distill'],
        head.distill_loss(x['online'], x['target'], x['pairs'],
                          x['view_affine'], x['img_shape'], x['reference'],
                          x['ori_shape']))


def test_gradients_reach_only_the_online_inputs():
    head = _head()
    x = _inputs()
    for t in [x['img_q'][0], x['point_q'][0], x['online'][0]['dino_feat']]:
        t.requires_grad_(True)
    for t in [
            x['img_k'][0], x['point_k'][0], x['target'][0]['dino_feat'],
            x['reference'][0]['dino_feat']
    ]:
        t.requires_grad_(True)
    sum(head.loss(**x).values()).backward()
    assert x['img_q'][0].grad.abs().sum() > 0
    assert x['point_q'][0].grad.abs().sum() > 0
    assert x['online'][0]['dino_feat'].grad.abs().sum() > 0
    assert x['point_k'][0].grad is None
    assert x['target'][0]['dino_feat'].grad is None
    assert x['reference'][0]['dino_feat'].grad is None


def test_sample_points_keeps_regions_per_image():
    torch.manual_seed(0)
    head = _head(regions_per_image=2)
    boxes = torch.tensor([[0., 0., 12., 12.], [4., 4., 20., 20.],
                          [2., 6., 10., 22.]]).expand(2, 2, 3, 4)
    valid = torch.ones(2, 3, dtype=torch.bool)
    aff = torch.tensor([1., 0., 1., 0.]).expand(2, 2, 4)
    points, valid = head.sample_points(boxes, valid, aff)
    assert points.shape == (2, 2, 2, 16, 2) and valid.shape == (2, 2)
    # identical views: the points of a region are the same in both
    assert torch.equal(points[:, 0], points[:, 1])


def test_arguments_are_checked():
    with pytest.raises(ValueError, match='num_distill_points'):
        _head(num_distill_points=0)
    with pytest.raises(ValueError, match='regions_per_image'):
        _head(regions_per_image=0)


def test_legacy_loss_keys_are_renamed():
    state = {'loss_distill.center': torch.ones(1, 3), 'backbone.w': 1}
    legacy_head_keys_hook(state, '')
    assert set(state) == {'head.loss_distill.center', 'backbone.w'}
    state = {'model.loss_distill.center': torch.ones(1, 3)}
    legacy_head_keys_hook(state, 'model.')
    assert set(state) == {'model.head.loss_distill.center'}
    assert MODELS.get('PLRCHead') is PLRCHead

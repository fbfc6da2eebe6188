"""PLRCHead: the point-contrast and distillation terms against loop and
dense references."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from plrc_views import IMG, grid_views, official_pairs

from mmregion.models.heads.plrc_head import DistillInputs
from mmregion.models.losses.point_affinity_distillation_loss import \
    point_affinity_distillation_loss
from mmregion.registry import MODELS

# (student, target) view pairs of the directions of each PLRC mode
MODES = dict(three=[(0, 2)], two=[(0, 1)], symmetric=[(0, 1), (1, 0)])


def _head(**kw):
    init_default_scope('mmregion')
    cfg = dict(type='PLRCHead', num_prototypes=8, distill_size=6)
    cfg.update(kw)
    return MODELS.build(cfg)


def _unit(g, *shape, dim=-1):
    return F.normalize(torch.randn(*shape, generator=g), dim=dim)


def _distill(g, views, B=2, h=3, w=3, Cb=5, Np=8):
    """Random per-location DINO outputs of one direction."""
    return DistillInputs(
        _unit(g, B, Cb, h, w, dim=1), torch.randn(B, Np, h, w, generator=g),
        _unit(g, B, Cb, h, w, dim=1), torch.randn(B, Np, h, w, generator=g),
        _unit(g, B, Cb, h, w, dim=1), views)


def _inputs():
    g = torch.Generator().manual_seed(0)
    aff = torch.tensor([[[1., 0., 1., 0.], [-.5, 40., .5, 2.],
                         [.8, -3., .8, -1.]],
                        [[1.2, -4., 1.2, -2.], [1., 0., 1., 0.],
                         [-1., 24., 1., 0.]]])
    return dict(
        point_q=[_unit(g, 2, 3, 4, 8)],
        point_k=[_unit(g, 2, 3, 4, 8)],
        point_valid=torch.tensor([[1, 1, 0], [1, 0, 1]]).bool(),
        distill=[_distill(g, (0, 2))],
        view_affine=aff,
        img_shape=(24, 24),
        ori_shape=torch.tensor([[24., 24.], [30., 40.]]))


def test_loss_keys_and_parts():
    head = _head()
    assert head.loss_distill_module.out_dim == 6 * 6 + 8
    head.loss_distill_module.eval()  # no centre update between the calls
    x = _inputs()
    losses = head.loss(**x)
    assert list(losses) == ['loss_point', 'loss_distill']
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    assert torch.equal(
        losses['loss_point'],
        head.point_contrast_loss(x['point_q'], x['point_k'], x['point_valid']))
    assert torch.equal(
        losses['loss_distill'],
        head.distill_loss(x['distill'], x['view_affine'], x['img_shape'],
                          x['ori_shape']))


def test_gradients_reach_only_the_online_inputs():
    head = _head()
    x = _inputs()
    d = x['distill'][0]
    for t in (x['point_q'][0], x['point_k'][0], *d[:5]):
        t.requires_grad_(True)
    sum(head.loss(**x).values()).backward()
    assert x['point_q'][0].grad.abs().sum() > 0
    assert d.student_feat.grad.abs().sum() > 0
    assert d.student_logits.grad.abs().sum() > 0
    assert x['point_k'][0].grad is None
    for t in (d.target_feat, d.target_logits, d.reference_feat):
        assert t.grad is None


def test_arguments_are_checked():
    with pytest.raises(ValueError, match='num_distill_points'):
        _head(num_distill_points=0)
    with pytest.raises(ValueError, match='distill_pair_frame'):
        _head(distill_pair_frame='cells')
    with pytest.raises(ValueError, match='ori_shape'):
        x = _inputs()
        _head().loss(**dict(x, ori_shape=None))
    x = _inputs()
    losses = _head(distill_pair_frame='pixels').loss(**dict(x, ori_shape=None))
    assert torch.isfinite(losses['loss_distill'])


def _dense_distill_reference(head, distill, aff, img_shape, ori_shape):
    """The loss on the full upsampled S x S maps (the official order:
    upsample, then all-pairs affinities, then pick the pairs of the official
    ``overlap()`` rule), the mean over all pairs."""
    S = head.distill_size
    loss = head.loss_distill_module

    def up(x):
        x = F.interpolate(x, size=(S, S), mode='bilinear', align_corners=False)
        return x.flatten(2).transpose(1, 2)

    terms = []
    for d in distill:
        ref = up(d.reference_feat).transpose(1, 2)
        s_vec = torch.cat([
            up(d.student_feat) @ ref * head.affinity_scale,
            up(d.student_logits)
        ], -1)
        t_vec = torch.cat([
            up(d.target_feat) @ ref * head.affinity_scale,
            up(d.target_logits)
        ], -1)
        b, i, j = torch.tensor(
            sorted(official_pairs(aff, img_shape, ori_shape, S,
                                  *d.views))).t()
        terms.append(
            point_affinity_distillation_loss(s_vec[b,
                                                   i], t_vec[b,
                                                             j], loss.center,
                                             loss.student_temperature,
                                             loss.teacher_temperature))
    return loss.loss_weight * torch.cat(terms).mean()


@pytest.mark.parametrize('mode', list(MODES))
def test_distill_loss_equals_dense_reference(mode):
    head = _head(num_prototypes=32, distill_size=8)
    head.loss_distill_module.eval()  # no centre update between the calls
    head.loss_distill_module.center.normal_()
    _, samples = grid_views(B=3, seed=2, V=3)
    aff = torch.stack([s.view_affine for s in samples])
    ori = torch.tensor([[128., 128.], [90., 140.], [130., 100.]])
    g = torch.Generator().manual_seed(1)
    distill = [
        _distill(g, views, B=3, h=2, w=3, Cb=16, Np=32)
        for views in MODES[mode]
    ]
    ours = head.distill_loss(distill, aff, (IMG, IMG), ori)
    ref = _dense_distill_reference(head, distill, aff, (IMG, IMG), ori)
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-5), (ours, ref)
    # the two-view form: the target is its own reference
    distill = [d._replace(reference_feat=d.target_feat) for d in distill]
    ours = head.distill_loss(distill, aff, (IMG, IMG), ori)
    ref = _dense_distill_reference(head, distill, aff, (IMG, IMG), ori)
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-5), (ours, ref)


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
    g = torch.Generator().manual_seed(seed)
    return _unit(g, B, K, P, D), _unit(g, B, K, P, D)


def test_one_region_per_image_equals_release_supcon():
    head = _head()
    q, k = _rand_points(4, 1, 5, 8, seed=0)
    ours = head.point_contrast_loss([q], [k], torch.ones(4, 1).bool())
    ref = head.loss_point_module.loss_weight * _release_supcon(
        k[:, 0], q[:, 0])
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6), (ours, ref)


def test_multi_region_mode_equals_loop_reference():
    head = _head()
    q, k = _rand_points(3, 4, 3, 8, seed=1)
    valid = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]]).bool()
    ours = head.point_contrast_loss([q], [k], valid)
    ref = head.loss_point_module.loss_weight * _loop_supcon(q, k, valid)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6), (ours, ref)
    # two directions: the mean of the two
    q2, k2 = _rand_points(3, 4, 3, 8, seed=2)
    both = head.point_contrast_loss([q, q2], [k, k2], valid)
    ref2 = head.loss_point_module.loss_weight * _loop_supcon(q2, k2, valid)
    assert torch.allclose(both, (ref + ref2) / 2, rtol=1e-5, atol=1e-6)

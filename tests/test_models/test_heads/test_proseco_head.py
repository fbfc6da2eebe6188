import itertools

import torch

from mmregion.models.heads import ProSeCoHead
from mmregion.registry import MODELS
from mmregion.utils import register_all_modules


def _head(**kwargs) -> ProSeCoHead:
    register_all_modules()
    return MODELS.build(
        dict(
            type='ProSeCoHead',
            matcher=dict(type='ProposalHungarianMatcher'),
            loss=dict(type='LocSCELoss', pos_iou_thr=0.5),
            **kwargs))


def _inputs(b=2, n=4, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    s_embeds = torch.randn(b, n, d, generator=g).requires_grad_()
    s_boxes = torch.rand(b, n, 2, generator=g) * 0.5 + 0.25
    s_boxes = torch.cat(
        [s_boxes, torch.rand(b, n, 2, generator=g) * .4 + .1], -1)
    t_scores = torch.randn(b, n, generator=g)
    t_embeds = torch.randn(b, n, d, generator=g)
    t_boxes = (s_boxes + 0.05 * torch.randn(b, n, 4, generator=g)).clamp(
        0.05, 0.95)
    return s_embeds, s_boxes, t_scores, t_embeds, t_boxes


def _xyxy(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def _brute_force_match(cost):
    """(N_t, N_s) cost -> the student index of each teacher proposal."""
    n_t, n_s = cost.shape
    best = min(
        itertools.permutations(range(n_s), n_t),
        key=lambda p: sum(float(cost[i, j]) for i, j in enumerate(p)))
    return torch.tensor(best)


def test_loss_against_a_brute_force_reference():
    head = _head()
    s_embeds, s_boxes, t_scores, t_embeds, t_boxes = _inputs()
    losses = head.loss(s_embeds, s_boxes, t_scores, t_embeds, t_boxes)
    assert set(losses) == {'loss_contrast'}
    cost = head.matcher.cost(t_embeds, t_boxes, s_embeds.detach(), s_boxes)
    inds = torch.stack([_brute_force_match(c) for c in cost])
    matched = torch.stack([s_embeds[b, inds[b]] for b in range(2)])
    ref = head.loss_module(matched, t_embeds, _xyxy(t_boxes))
    torch.testing.assert_close(losses['loss_contrast'], ref)
    losses['loss_contrast'].backward()
    assert s_embeds.grad.abs().sum() > 0


def test_top_k_keeps_the_most_objectlike_teacher_queries():
    head = _head(num_proposals=2)
    seen = []
    head.loss_module.register_forward_hook(
        lambda mod, args, out: seen.append(args))
    s_embeds, s_boxes, t_scores, t_embeds, t_boxes = _inputs()
    head.loss(s_embeds, s_boxes, t_scores, t_embeds, t_boxes)
    _, teacher, boxes = seen[-1]
    assert teacher.shape == (2, 2, 8)
    for b in range(2):
        top = t_scores[b].argsort(descending=True)[:2]
        torch.testing.assert_close(teacher[b], t_embeds[b, top])
        torch.testing.assert_close(boxes[b], _xyxy(t_boxes[b, top]))


def test_nonfinite_teacher_gives_named_terms_in_the_graph():
    head = _head()
    s_embeds, s_boxes, t_scores, t_embeds, t_boxes = _inputs()
    t_embeds[0, 1, 0] = float('nan')
    out = head.loss(s_embeds, s_boxes, t_scores, t_embeds, t_boxes)
    assert set(out) == {'loss_nonfinite_teacher_embeds'}
    assert out['loss_nonfinite_teacher_embeds'].requires_grad
    assert torch.isnan(out['loss_nonfinite_teacher_embeds'])

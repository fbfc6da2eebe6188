import pytest
import torch
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_overlaps

from mmregion.models.heads import CCOPHead
from mmregion.registry import MODELS
from mmregion.utils import register_all_modules


def _normed(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


@pytest.fixture
def head():
    register_all_modules()
    return MODELS.build(
        dict(
            type='CCOPHead',
            loss_region=dict(type='InfoNCELoss', temperature=0.2),
            loss_intra=dict(
                type='IntraImageDiscriminationLoss',
                margin=0.4,
                neg_iou_thr=0.05)))


def test_select_positives_is_the_hardest_valid_candidate():
    q = _normed(3, 8, seed=0)
    cands = _normed(3, 5, 8, seed=1)
    valid = torch.tensor([[True, False, True, True, True],
                          [False, False, False, False, True],
                          [True, True, True, True, True]])
    pos, orig = CCOPHead.select_positives(q, cands, valid)
    for n in range(3):  # loop reference
        best, best_sim = None, None
        for j in range(5):
            if valid[n, j]:
                sim = float(q[n] @ cands[n, j])
                if best_sim is None or sim < best_sim:
                    best, best_sim = j, sim
        assert torch.equal(pos[n], cands[n, best])
        assert torch.equal(orig[n], cands[n, -1])
    assert not pos.requires_grad


def test_loss_keys_and_values_against_a_loop_reference(head):
    # 2 images, up to 3 regions, image 1 has one padded slot: N = 5
    valid = torch.tensor([[True, True, True], [True, True, False]])
    boxes = torch.tensor([[[0., 0., 10., 10.], [1., 1., 11., 11.],
                           [30., 30., 40., 40.]],
                          [[0., 0., 5., 5.], [20., 20., 30., 30.],
                           [0., 0., 0., 0.]]])
    q = _normed(5, 8, seed=2).requires_grad_()
    k_pos = _normed(5, 8, seed=3)
    k_orig = _normed(5, 8, seed=4)
    queue = _normed(6, 8, seed=5)
    losses = head.loss(q, k_pos, k_orig, queue, boxes, valid)
    assert set(losses) == {'loss_region', 'loss_intra'}

    # region InfoNCE: -log softmax([q.k+, q.queue] / tau)[0], mean over N
    region = []
    for n in range(5):
        logits = torch.cat([(q[n] @ k_pos[n])[None], queue @ q[n]]) / 0.2
        region.append(-torch.log_softmax(logits, 0)[0])
    torch.testing.assert_close(losses['loss_region'],
                               torch.stack(region).mean())

    # intra-image: hinge over pairs (a != b) of real regions of one image
    # with IoU < 0.05, mean over those pairs
    rows = {(b, r): i for i, (b, r) in enumerate(valid.nonzero().tolist())}
    terms = []
    for (b, a), ia in rows.items():
        for (b2, c), ic in rows.items():
            if b2 != b or a == c:
                continue
            iou = bbox_overlaps(boxes[b, a:a + 1], boxes[b, c:c + 1])[0, 0]
            if iou < 0.05:
                terms.append(
                    F.relu(q[ia] @ k_orig[ic] - q[ic] @ k_orig[ic] + 0.4))
    assert len(terms) == 6  # image 0: (0,2),(2,0),(1,2),(2,1); image 1: 2
    torch.testing.assert_close(losses['loss_intra'], torch.stack(terms).mean())
    sum(losses.values()).backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_loss_without_regions_is_zero_and_differentiable(head):
    valid = torch.zeros(2, 0, dtype=torch.bool)
    q = torch.zeros(0, 8, requires_grad=True)
    losses = head.loss(q, torch.zeros(0, 8), torch.zeros(0, 8),
                       _normed(4, 8, seed=0), torch.zeros(2, 0, 4), valid)
    assert all(float(v) == 0 for v in losses.values())
    sum(losses.values()).backward()

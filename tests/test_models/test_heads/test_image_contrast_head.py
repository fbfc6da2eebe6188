"""ImageContrastHead: the MoCo v2 image term of CCOP and PLRC."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

from mmregion.models.heads import CCOPHead, ImageContrastHead, PLRCHead
from mmregion.registry import MODELS


def _loop_infonce(q, k, queue, T):
    """-log softmax of the positive among [k_i, queue] per query, mean."""
    losses = []
    for qi, ki in zip(q, k):
        logits = torch.cat([(qi @ ki)[None], queue @ qi]) / T
        losses.append(torch.logsumexp(logits, 0) - logits[0])
    return torch.stack(losses).mean()


def test_image_loss_is_moco_v2_infonce_averaged_over_directions():
    init_default_scope('mmregion')
    head = MODELS.build(
        dict(
            type='ImageContrastHead',
            loss_img=dict(
                type='InfoNCELoss', temperature=0.2, loss_weight=0.5)))
    g = torch.Generator().manual_seed(0)
    q = [F.normalize(torch.randn(4, 8, generator=g), dim=1) for _ in '01']
    k = [F.normalize(torch.randn(4, 8, generator=g), dim=1) for _ in '01']
    queue = F.normalize(torch.randn(16, 8, generator=g), dim=1)
    one = head.image_loss(q[:1], k[:1], queue)
    assert torch.allclose(one, 0.5 * _loop_infonce(q[0], k[0], queue, 0.2))
    both = head.loss(q, k, queue)['loss_img']
    ref = 0.5 * (_loop_infonce(q[0], k[0], queue, 0.2) +
                 _loop_infonce(q[1], k[1], queue, 0.2)) / 2
    assert torch.allclose(both, ref, atol=1e-6)
    with pytest.raises(ValueError, match='one key per query'):
        head.image_loss(q, k[:1], queue)


def test_ccop_and_plrc_heads_share_the_image_term():
    assert issubclass(CCOPHead, ImageContrastHead)
    assert issubclass(PLRCHead, ImageContrastHead)
    assert PLRCHead.image_loss is ImageContrastHead.image_loss
    assert CCOPHead.image_loss is ImageContrastHead.image_loss

import pytest
import torch
from mmdet.structures.bbox import bbox_overlaps

from mmregion.models.task_modules import CurriculumBoxJitter
from mmregion.registry import TASK_UTILS


def _boxes(n=30, size=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * (size - 20)
    wh = torch.rand(n, 2, generator=g) * (size - xy - 1) + 1
    return torch.cat([xy, xy + wh], dim=1)


def test_schedule_is_linear():
    jitter = TASK_UTILS.build(dict(type='CurriculumBoxJitter'))
    assert jitter.current() == pytest.approx(
        dict(progress=0., iou_thr=0.8, mag_xy=0.15, mag_wh=0.35))
    jitter.set_progress(0.5)
    assert jitter.current() == pytest.approx(
        dict(progress=0.5, iou_thr=0.6, mag_xy=0.375, mag_wh=0.875))
    jitter.set_progress(3.)  # clamped
    assert jitter.current() == pytest.approx(
        dict(progress=1., iou_thr=0.4, mag_xy=0.6, mag_wh=1.4))
    assert 'progress' in jitter.state_dict()


@pytest.mark.parametrize('progress', [0., 0.5, 1.])
def test_candidates_in_image_and_valid_by_iou(progress):
    torch.manual_seed(0)
    jitter = CurriculumBoxJitter(n_jitter=10)
    jitter.set_progress(progress)
    boxes = _boxes(size=80).view(3, 10, 4)  # arbitrary batch dims
    cands, valid = jitter(boxes, (96, 80))
    assert cands.shape == (3, 10, 11, 4) and valid.shape == (3, 10, 11)
    assert (cands[..., 0::2] >= 0).all() and (cands[..., 0::2] <= 80).all()
    assert (cands[..., 1::2] >= 0).all() and (cands[..., 1::2] <= 96).all()
    assert torch.equal(cands[..., -1, :], boxes)  # original appended
    assert valid[..., -1].all()
    ious = bbox_overlaps(
        cands, boxes[..., None, :].expand_as(cands), is_aligned=True)
    thr = jitter.current()['iou_thr']
    assert torch.equal(valid[..., :-1], ious[..., :-1] >= thr)
    # some candidates are really jittered and some are rejected late on
    assert (ious[..., :-1] < 0.999).all()
    if progress == 1.:
        assert (~valid).any()


def test_noise_grows_with_progress():
    torch.manual_seed(0)
    jitter = CurriculumBoxJitter(n_jitter=50)
    boxes = _boxes(20, size=400) * 0.25 + 150  # well inside: no clipping
    mean_iou = []
    for p in (0., 1.):
        jitter.set_progress(p)
        cands, _ = jitter(boxes, (400, 400))
        ious = bbox_overlaps(
            cands[:, :-1], boxes[:, None].expand(-1, 50, 4), is_aligned=True)
        mean_iou.append(ious.mean().item())
    assert mean_iou[0] > mean_iou[1] + 0.1


def test_empty_and_bad_config():
    cands, valid = CurriculumBoxJitter(n_jitter=3)(torch.zeros(0, 4), (32, 32))
    assert cands.shape == (0, 4, 4) and valid.shape == (0, 4)
    with pytest.raises(ValueError, match='iou_thr'):
        CurriculumBoxJitter(iou_thr=(0.8, ))

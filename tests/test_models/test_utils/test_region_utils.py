import pytest
import torch
from mmengine.structures import BaseDataElement

from mmregion.models.utils import check_views, stack_regions, stack_view_affine


def _sample(k, v=2):
    s = BaseDataElement()
    s.boxes = torch.arange(v * k * 4, dtype=torch.float32).reshape(v, k, 4) + 1
    return s


def test_stack_regions_pads_and_masks():
    samples = [_sample(3), _sample(0), _sample(1)]
    boxes, valid = stack_regions(samples, num_views=2)
    assert boxes.shape == (3, 2, 3, 4) and boxes.dtype == torch.float32
    assert valid.dtype == torch.bool
    assert valid.tolist() == [[True] * 3, [False] * 3, [True, False, False]]
    assert torch.equal(boxes[0], samples[0].boxes)
    assert torch.equal(boxes[2, :, :1], samples[2].boxes)
    assert boxes[1].abs().sum() == 0 and boxes[2, :, 1:].abs().sum() == 0


def test_stack_regions_all_empty_has_one_invalid_slot():
    boxes, valid = stack_regions([_sample(0, v=3)] * 2, num_views=3)
    assert boxes.shape == (2, 3, 1, 4)
    assert not valid.any() and valid.shape == (2, 1)


def test_stack_regions_checks_shapes():
    with pytest.raises(ValueError, match=r'data_samples\[0\].boxes'):
        stack_regions([_sample(2, v=3)], num_views=2)
    with pytest.raises(ValueError, match='no "boxes"'):
        stack_regions([BaseDataElement()], num_views=2)


def test_check_views_names_the_caller():
    views = [torch.zeros(1, 3, 4, 4)] * 2
    check_views(views, 2, 'X.loss')
    with pytest.raises(ValueError, match=r'X\.loss: .* 3 view .*got 2, hint'):
        check_views(views, 3, 'X.loss', ', hint')
    with pytest.raises(ValueError, match='got Tensor'):
        check_views(views[0], 2, 'X.loss')


def test_stack_view_affine_is_float32_and_checks_the_field():
    samples = [BaseDataElement(), BaseDataElement()]
    for i, s in enumerate(samples):
        s.view_affine = [[1., i, 1., 0.], [2., 0., 2., i]]
    out = stack_view_affine(samples)
    assert out.shape == (2, 2, 4) and out.dtype == torch.float32
    assert out[1, 0, 1] == 1 and out[1, 1, 3] == 1
    with pytest.raises(
            ValueError, match=r'data_samples\[0\] has no '
            '"view_affine"'):
        stack_view_affine([BaseDataElement()])

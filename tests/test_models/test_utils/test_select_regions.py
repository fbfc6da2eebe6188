"""models/utils/region_utils.py: select_regions (PLRC's regions_per_image)."""
import torch

from mmregion.models.utils.region_utils import select_regions


def test_select_regions_keeps_at_most_k_valid_regions():
    boxes = torch.arange(2 * 2 * 5 * 4).float().view(2, 2, 5, 4)
    valid = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]).bool()
    torch.manual_seed(0)
    b2, v2 = select_regions(boxes, valid, 3)
    assert b2.shape == (2, 2, 3, 4) and v2.sum(1).tolist() == [2, 3]
    # the valid regions are preferred, and both views keep the same regions
    for b in range(2):
        for k in range(3):
            if v2[b, k]:
                match = (boxes[b, 0] == b2[b, 0, k]).all(-1).nonzero()
                r = int(match[0])
                assert valid[b, r]
                assert torch.equal(b2[b, 1, k], boxes[b, 1, r])
    assert select_regions(boxes, valid, None)[0] is boxes
    assert select_regions(boxes, valid, 5)[0] is boxes

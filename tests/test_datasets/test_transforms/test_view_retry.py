"""MultiViewRegions(retry='per_view'): CCOP's crop acceptance (issue 24)."""
import numpy as np
import pytest

from mmregion.datasets.transforms import MultiViewRegions
from mmregion.structures import identity_affine


class _Draws:
    """A view pipeline whose n-th call keeps the regions ``kept[n]``."""

    def __init__(self, kept):
        self.kept, self.calls = list(kept), 0

    def __call__(self, results):
        ids = np.array(sorted(self.kept[self.calls]), dtype=np.int64)
        self.calls += 1
        results['proposals'] = results['proposals'][ids]
        results['region_ids'] = ids
        return results


def _results(n=5):
    xy = np.arange(n, dtype=np.float32)[:, None].repeat(2, 1)
    return dict(
        img=np.zeros((16, 16, 3), np.uint8),
        proposals=np.concatenate([xy, xy + 4], 1),
        region_ids=np.arange(n, dtype=np.int64),
        view_affine=identity_affine())


def _ccop_apply_aug(draws, wanted, max_try):
    """The loop of CCOP ``apply_aug`` on the kept-box counts of the draws:
    the first draw keeping ``wanted``, else the last of the largest."""
    best, best_n = None, -1
    for kept in draws[:max_try]:
        if len(kept) >= wanted:
            return kept
        if len(kept) >= best_n:
            best, best_n = kept, len(kept)
    return best


def test_per_view_accepts_each_view_on_its_own():
    v0 = [{0}, {0, 1, 2}, {3, 4}]
    v1 = [{3}, {1}, {4}]
    d0, d1 = _Draws(v0), _Draws(v1)
    MultiViewRegions.reset_counters()
    t = MultiViewRegions(
        transforms=[[d0], [d1]], min_regions=2, max_tries=3, retry='per_view')
    out = t(_results())
    assert (d0.calls, d1.calls) == (2, 3)
    ref = set(_ccop_apply_aug(v0, 2, 3)) & set(_ccop_apply_aug(v1, 2, 3))
    assert set(out['region_ids'].tolist()) == ref == set()
    assert MultiViewRegions.num_short == 1  # fewer common regions: counted
    # 'common' (default) re-draws the pair until two regions are common
    d0, d1 = _Draws([{0}, {0, 1, 2}]), _Draws([{3}, {1, 2}])
    out = MultiViewRegions(
        transforms=[[d0], [d1]], min_regions=2, max_tries=3)(
            _results())
    assert out['region_ids'].tolist() == [1, 2] and d0.calls == 2


def test_per_view_is_checked():
    with pytest.raises(ValueError, match='per_view'):
        MultiViewRegions(
            transforms=[[]],
            num_views=3,
            retry='per_view',
            overlap_pairs=[(0, 2)])
    with pytest.raises(ValueError, match='retry'):
        MultiViewRegions(transforms=[[]], retry='pair')

"""PLRC's third view: a companion crop of view 0 with >= 50 % overlap."""
import numpy as np
import pytest

from mmregion.datasets.transforms import LoadProposals, MultiViewRegions
from mmregion.datasets.transforms.wrappers import crop_overlap
from mmregion.structures import affine_boxes, clip_boxes

VIEW = [
    dict(
        type='RegionRandomResizedCrop',
        scale=32,
        crop_ratio_range=(0.05, 1.),
        min_area=1),
    dict(type='RegionRandomFlip', prob=0.5)
]


def _view(h, w, affine):
    return dict(
        img=np.zeros((h, w, 3), np.uint8),
        view_affine=np.asarray(affine, np.float32))


def _loaded(helpers, rng, h=80, w=100):
    store = helpers.FakeStore({'i.jpg': helpers.random_boxes(rng, 16, h, w)})
    res = dict(
        img=helpers.coord_image(h, w),
        img_path='/d/i.jpg',
        proposal_key='i.jpg')
    return LoadProposals(store).transform(res)


def test_crop_overlap_known_values():
    # view a shows the whole 40x40 image at 20 px; view b its left half
    # (flipped) at 20x40 px: overlap = 800 / 1600
    a = _view(20, 20, [0.5, 0., 0.5, 0.])
    b = _view(40, 20, [-1., 20., 1., 0.])
    assert crop_overlap(a, b) == pytest.approx(0.5)
    assert crop_overlap(b, a) == pytest.approx(0.5)
    assert crop_overlap(a, a) == pytest.approx(1.)
    # disjoint: the right half
    c = _view(40, 20, [1., -20., 1., 0.])
    assert crop_overlap(b, c) == 0.


def test_companion_view_overlaps_and_takes_no_part_in_regions(helpers):
    mv = MultiViewRegions([VIEW],
                          num_views=3,
                          region_views=(0, 1),
                          overlap_pairs=[(0, 2)],
                          min_overlap=0.5)
    overlaps = []
    for seed in range(40):
        np.random.seed(seed)
        res = _loaded(helpers, np.random.default_rng(seed))
        orig = res['proposals'].copy()
        out = mv.transform(res)
        boxes, ids, aff = out['boxes'], out['region_ids'], out['view_affine']
        assert len(out['img']) == 3 and aff.shape == (3, 4)
        assert boxes.shape == (3, len(ids), 4)
        views = [dict(img=im, view_affine=a) for im, a in zip(out['img'], aff)]
        overlaps.append(crop_overlap(views[0], views[2]))
        # every row of every view is the region mapped in and clipped; the
        # companion view's rows may be empty (a region outside it is kept)
        for v in range(3):
            expected = clip_boxes(affine_boxes(orig[ids], aff[v]), (32, 32))
            np.testing.assert_allclose(boxes[v], expected, atol=1e-3)
    assert min(overlaps) >= 0.5
    assert MultiViewRegions.num_low_overlap == 0


def test_unconstrained_views_overlap_less_often(helpers):
    """The constraint does something: without it some pairs overlap < 0.5."""
    mv = MultiViewRegions([VIEW], num_views=3, region_views=(0, 1))
    low = 0
    for seed in range(40):
        np.random.seed(seed)
        out = mv.transform(_loaded(helpers, np.random.default_rng(seed)))
        views = [
            dict(img=im, view_affine=a)
            for im, a in zip(out['img'], out['view_affine'])
        ]
        low += crop_overlap(views[0], views[2]) < 0.5
    assert low > 0


def test_impossible_overlap_is_counted_not_a_hang(helpers):
    # crops of at most 1 % of the image rarely overlap by 99 %
    view = [
        dict(
            type='RegionRandomResizedCrop',
            scale=16,
            crop_ratio_range=(0.005, 0.01),
            min_area=0)
    ]
    mv = MultiViewRegions([view],
                          num_views=3,
                          region_views=(0, 1),
                          overlap_pairs=[(0, 2)],
                          min_overlap=0.99,
                          overlap_tries=3,
                          min_regions=0)
    np.random.seed(0)
    out = mv.transform(_loaded(helpers, np.random.default_rng(0)))
    assert len(out['img']) == 3
    assert MultiViewRegions.num_low_overlap == 1


@pytest.mark.parametrize('kwargs', [
    dict(region_views=(0, 3)),
    dict(region_views=()),
    dict(overlap_pairs=[(0, 1), (1, 2)]),
    dict(overlap_pairs=[(0, 5)]),
    dict(overlap_pairs=[(0, 2)], min_overlap=1.5),
])
def test_bad_companion_arguments(kwargs):
    with pytest.raises(ValueError, match='MultiViewRegions'):
        MultiViewRegions([[]], num_views=3, **kwargs)

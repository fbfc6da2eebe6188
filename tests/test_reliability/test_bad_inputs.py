"""Bad inputs at the pipeline level: a clear error or a counted, logged skip.

See ``docs/reliability.md`` (the table of bad inputs).
"""
import copy
import json
import os.path as osp
import pickle
import re

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmregion.datasets import RegionDataset
from mmregion.datasets.transforms import LoadProposals, MultiViewRegions
from mmregion.proposals import load_proposal_store
from mmregion.registry import TRANSFORMS
from mmregion.structures import identity_affine
from mmregion.utils import log_utils

pytest.importorskip('mmpretrain')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY_CFG = osp.join(REPO, 'configs/_base_/datasets/toy_regions_2view.py')
H, W = 60, 80


@pytest.fixture
def logs(monkeypatch):
    LoadProposals.reset_counters()
    MultiViewRegions.reset_counters()
    messages = []
    # every counted skip is logged through mmregion.utils.log_utils
    monkeypatch.setattr(log_utils, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    yield messages
    LoadProposals.reset_counters()
    MultiViewRegions.reset_counters()


def _results(key):
    return dict(
        img=np.zeros((H, W, 3), np.uint8),
        img_path=f'/data/{key}',
        proposal_key=key)


@pytest.fixture
def pkl_store(tmp_path):
    """An mmdet-style proposal pickle with bad entries."""
    boxes = {
        'good.jpg':
        np.array([[10, 10, 30, 40], [0, 0, 80, 60]], np.float32),
        'empty.jpg':
        np.zeros((0, 4), np.float32),
        'degenerate.jpg':
        np.array(
            [
                [5, 5, 5, 20],  # zero width
                [30, 30, 10, 50],  # negative width
                [np.nan, 1, 10, 10],  # NaN
                [1, 1, np.inf, 10],  # inf
                [100, 70, 150, 90],  # outside the image
                [-20, -20, -1, -1],  # outside the image
                [70, 50, 120, 99],  # partly outside: clipped, kept
                [2, 3, 12, 13],  # fine
            ],
            np.float32),
        'all_bad.jpg':
        np.array([[5, 5, 5, 5], [np.nan] * 4], np.float32),
    }
    path = tmp_path / 'proposals.pkl'
    with open(path, 'wb') as f:
        pickle.dump(boxes, f)
    return str(path)


def test_missing_proposal_file_names_it(tmp_path, logs):
    missing = str(tmp_path / 'no_such_proposals')
    with pytest.raises(FileNotFoundError, match='no_such_proposals'):
        load_proposal_store(missing)
    t = LoadProposals(proposal_file=missing)  # opened lazily: no error yet
    with pytest.raises(FileNotFoundError, match='no_such_proposals'):
        t(_results('good.jpg'))
    # an existing directory that is not a proposal store
    with pytest.raises(FileNotFoundError, match='meta.json'):
        load_proposal_store(str(tmp_path))


def test_missing_proposal_file_through_dataset(toy_coco, tmp_path, logs):
    missing = str(tmp_path / 'proposals' / 'train')
    with DefaultScope.overwrite_default_scope('mmregion'):
        ds = RegionDataset(
            data_root=str(toy_coco),
            ann_file='annotations/instances_train.json',
            data_prefix=dict(img='train/'),
            pipeline=[
                dict(type='LoadImageFromFileSafe'),
                dict(type='LoadProposals', proposal_file=missing)
            ])
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        ds[0]


def test_image_absent_from_store_uses_counted_fallback(pkl_store, logs):
    t = LoadProposals(proposal_file=pkl_store)
    out = t(_results('not_in_store.jpg'))
    np.testing.assert_array_equal(out['proposals'], [[0, 0, W, H]])
    assert LoadProposals.num_missing == 1 and LoadProposals.num_empty == 0
    assert len(logs) == 1
    assert '"not_in_store.jpg" is absent from' in logs[0]
    assert pkl_store in logs[0] and 'whole_image' in logs[0]
    t(_results('not_in_store_2.jpg'))
    t(_results('not_in_store_3.jpg'))
    assert LoadProposals.num_missing == 3 and len(logs) == 2  # 1, 2 logged
    strict = LoadProposals(proposal_file=pkl_store, fallback='error')
    with pytest.raises(KeyError, match='not_in_store.jpg'):
        strict(_results('not_in_store.jpg'))


@pytest.mark.parametrize('key,given', [('empty.jpg', 0), ('all_bad.jpg', 2)])
def test_zero_regions_use_counted_fallback(pkl_store, logs, key, given):
    t = LoadProposals(proposal_file=pkl_store, fallback='grid', grid_size=2)
    out = t(_results(key))
    assert out['proposals'].shape == (4, 4)  # 2 x 2 grid
    np.testing.assert_array_equal(out['proposals'][-1], [40, 30, 80, 60])
    np.testing.assert_array_equal(out['region_ids'], np.arange(4))
    assert LoadProposals.num_empty == 1 and LoadProposals.num_missing == 0
    assert f'"{key}" has no valid box ({given} given)' in logs[0]


def test_degenerate_boxes_dropped(pkl_store, logs):
    out = LoadProposals(proposal_file=pkl_store)(_results('degenerate.jpg'))
    np.testing.assert_array_equal(out['proposals'],
                                  [[70, 50, 80, 60], [2, 3, 12, 13]])
    np.testing.assert_array_equal(out['region_ids'], [0, 1])
    assert np.isfinite(out['proposals']).all()
    assert LoadProposals.num_empty == 0 and logs == []  # a normal image
    # with min_size=11 no box is left (both are 10 px): counted fallback
    small = LoadProposals(proposal_file=pkl_store, min_size=11)
    out = small(_results('degenerate.jpg'))
    np.testing.assert_array_equal(out['proposals'], [[0, 0, W, H]])
    assert LoadProposals.num_empty == 1
    assert '"degenerate.jpg" has no valid box (8 given)' in logs[0]


def test_regions_lost_in_views_counted(logs):
    """Views that keep no region: K = 0, counted and logged, no error."""

    def drop_all(results):
        results['proposals'] = results['proposals'][:0]
        results['region_ids'] = results['region_ids'][:0]
        return results

    mv = MultiViewRegions(transforms=[[drop_all]], max_tries=3)
    res = _results('good.jpg')
    res.update(
        proposals=np.array([[1, 1, 9, 9]], np.float32),
        region_ids=np.arange(1),
        view_affine=identity_affine())
    out = mv(res)
    assert out['boxes'].shape == (2, 0, 4) and out['region_ids'].shape == (0, )
    assert MultiViewRegions.num_short == 1
    assert '"/data/good.jpg" has 0 region(s) in all 2 views' in logs[0]


def test_empty_dataset_clear_error(tmp_path):
    ann = tmp_path / 'empty.json'
    ann.write_text(json.dumps(dict(images=[], annotations=[])))
    with pytest.raises(ValueError, match='no image found in annotation file'):
        RegionDataset(ann_file=str(ann), pipeline=[])
    (tmp_path / 'empty_dir').mkdir()
    with pytest.raises(ValueError, match='empty_dir'):
        RegionDataset(data_prefix=dict(img=str(tmp_path / 'empty_dir')))


def test_more_regions_requested_than_exist(toy_coco, toy_proposals, logs):
    store = load_proposal_store(str(toy_proposals))
    key = store.keys()[0]
    n_raw = len(store.get(key))
    img = np.zeros((128, 128, 3), np.uint8)
    res = dict(img=img, img_path=key, proposal_key=key)
    out = LoadProposals(proposal_file=str(toy_proposals), topk=100000)(res)
    n = len(out['proposals'])
    assert 0 < n <= n_raw
    with DefaultScope.overwrite_default_scope('mmregion'):
        mv = TRANSFORMS.build(
            dict(
                type='MultiViewRegions',
                transforms=[[dict(type='RegionRandomFlip', prob=0.5)]],
                max_regions=100000))
    out = mv(out)
    assert out['boxes'].shape == (2, n, 4)  # K = what exists
    np.testing.assert_array_equal(out['region_ids'], np.arange(n))

    # the whole toy pipeline with huge topk / max_regions: no error
    from mmengine.runner import Runner
    cfg = Config.fromfile(TOY_CFG)
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg.dataset.data_root = str(toy_coco)
    for t in loader_cfg.dataset.pipeline:
        if t['type'] == 'LoadProposals':
            t.update(proposal_file=str(toy_proposals), topk=100000)
        if t['type'] == 'MultiViewRegions':
            t['max_regions'] = 100000
    with DefaultScope.overwrite_default_scope('mmregion'):
        batch = next(iter(Runner.build_dataloader(loader_cfg, seed=0)))
    for s in batch['data_samples']:
        k = len(s.region_ids)
        assert s.boxes.shape == (2, k, 4)
        assert len(store.get(osp.basename(s.img_path))) >= k
    assert LoadProposals.num_missing == 0


def test_boxes_of_wrong_shape_name_the_key(logs):

    class Store:

        def get(self, key):
            return np.ones((3, 3), np.float32)

    with pytest.raises(ValueError, match=r'"odd.jpg".*shape \(3, 3\)'):
        LoadProposals(proposal_file=Store())(_results('odd.jpg'))


def test_topk_filter_is_chunked_and_equal_to_full_filter():
    """issue 26 item 6: 10^7 boxes for one image were all filtered before
    topk; now chunk by chunk until topk valid boxes are found, with the
    same result as filtering everything."""
    rng = np.random.default_rng(0)
    xy = rng.uniform(-20, W + 20, (50000, 2)).astype(np.float32)
    wh = rng.uniform(-5, 40, (50000, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], 1)
    boxes[rng.random(50000) < 0.1] = np.nan
    for topk in (1, 50, 3000, 40000):
        t = LoadProposals(proposal_file='unused', topk=topk, min_size=4)
        full = LoadProposals(proposal_file='unused', topk=None, min_size=4)
        expected = full.filter_boxes(boxes, H, W, 'k')[:topk]
        np.testing.assert_array_equal(
            t.filter_boxes(boxes, H, W, 'k'), expected)

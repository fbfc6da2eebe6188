import json
import os.path as osp

import numpy as np
import pytest
from tool_utils import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_tool():
    return load_tool('make_mini_coco')


mini = _load_tool()


def _fake_coco(path, num_images=1000, seed=1, rare_image=None):
    """COCO json; category 4 ('rare') only in image ``rare_image``."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(num_images):
        img_id = 1000 + 7 * i  # non-contiguous ids
        images.append(
            dict(id=img_id, file_name=f'{i:06d}.jpg', width=64, height=64))
        for c in rng.choice([1, 2, 3],
                            size=int(rng.integers(1, 3)),
                            replace=False):
            anns.append(
                dict(
                    id=len(anns) + 1,
                    image_id=img_id,
                    category_id=int(c),
                    bbox=[1, 1, 10, 10],
                    area=100.0,
                    iscrowd=0))
    if rare_image is not None:
        anns.append(
            dict(
                id=len(anns) + 1,
                image_id=1000 + 7 * rare_image,
                category_id=4,
                bbox=[2, 2, 5, 5],
                area=25.0,
                iscrowd=0))
    rng.shuffle(images)  # the input order must not matter
    cats = [
        dict(id=k, name=n)
        for k, n in [(1, 'a'), (2, 'b'), (3, 'c'), (4, 'rare')]
    ]
    coco = dict(
        info=dict(description='fake'),
        licenses=[],
        images=images,
        annotations=anns,
        categories=cats)
    with open(path, 'w') as f:
        json.dump(coco, f)
    return coco


def _ids(path):
    with open(path) as f:
        d = json.load(f)
    return d, {im['id'] for im in d['images']}


def test_splits_nested_deterministic_and_covering(tmp_path):
    src = tmp_path / 'instances_train2017.json'
    _fake_coco(src, num_images=1000, rare_image=950)
    s1 = mini.make_mini_coco(
        str(src), str(tmp_path / 'a'), [1, 5, 10], seed=3, verbose=False)
    mini.make_mini_coco(
        str(src), str(tmp_path / 'b'), [10, 1, 5], seed=3, verbose=False)
    sets = {}
    for tag in ('1', '5', '10'):
        f1 = tmp_path / 'a' / f'instances_train2017_{tag}pct_seed3.json'
        f2 = tmp_path / 'b' / f'instances_train2017_{tag}pct_seed3.json'
        assert f1.read_bytes() == f2.read_bytes()  # deterministic
        d, ids = _ids(f1)
        sets[tag] = ids
        # sizes: round(p% of 1000)
        assert len(ids) == {'1': 10, '5': 50, '10': 100}[tag]
        # every category present (the rare one needed a swap)
        assert {a['category_id'] for a in d['annotations']} == {1, 2, 3, 4}
        # annotations belong to the kept images only, and all are kept
        assert {a['image_id'] for a in d['annotations']} <= ids
        assert d['info']['mini_coco']['seed'] == 3
        assert s1['splits'][tag]['instances_per_category']['rare'] == 1
    assert sets['1'] < sets['5'] < sets['10']
    assert s1['splits']['1']['swaps'] >= 1
    assert osp.isfile(tmp_path / 'a' /
                      'instances_train2017_mini_summary_seed3.json')

    # another seed gives another subset
    mini.make_mini_coco(
        str(src), str(tmp_path / 'c'), [5], seed=4, verbose=False)
    _, other = _ids(tmp_path / 'c' / 'instances_train2017_5pct_seed4.json')
    assert other != sets['5']


def test_annotations_complete(tmp_path):
    src = tmp_path / 'x.json'
    coco = _fake_coco(src, num_images=50)
    mini.make_mini_coco(str(src), str(tmp_path), [20], seed=0, verbose=False)
    d, ids = _ids(tmp_path / 'x_20pct_seed0.json')
    expected = [a for a in coco['annotations'] if a['image_id'] in ids]
    assert sorted(a['id']
                  for a in d['annotations']) == sorted(a['id']
                                                       for a in expected)


def test_impossible_coverage_is_an_error(tmp_path):
    src = tmp_path / 'y.json'
    _fake_coco(src, num_images=100, rare_image=5)
    # 1 % of 100 = 1 image cannot hold 4 categories (at most 3 per image)
    with pytest.raises(ValueError, match='cannot contain every category'):
        mini.make_mini_coco(str(src), str(tmp_path), [1], verbose=False)
    s = mini.make_mini_coco(
        str(src), str(tmp_path), [1], verbose=False, allow_missing=True)
    assert s['splits']['1']['missing_categories']
    assert mini.main([str(src), str(tmp_path), '--percent', '1']) == 1


def test_bad_input(tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'images': []}))
    with pytest.raises(KeyError, match='annotations'):
        mini.make_mini_coco(str(bad), str(tmp_path), [1], verbose=False)
    with pytest.raises(ValueError, match='percent'):
        mini.nested_splits([1, 2], {}, [0], seed=0)


def test_toy_coco(toy_coco, tmp_path):
    ann = toy_coco / 'annotations' / 'instances_train.json'
    s = mini.make_mini_coco(
        str(ann), str(tmp_path), [50, 100], seed=0, verbose=False)
    half = tmp_path / 'instances_train_50pct_seed0.json'
    d, ids = _ids(half)
    _, all_ids = _ids(tmp_path / 'instances_train_100pct_seed0.json')
    assert ids < all_ids
    assert s['splits']['50']['num_images'] == len(all_ids) // 2
    assert len({a['category_id'] for a in d['annotations']}) == 4
    assert '| 50 % |' in mini.format_summary(s)


def test_detreg_split_mode_draws_like_detreg(tmp_path):
    """Independent splits: default_rng(42).choice over the sorted ids, as
    DETReg's datasets/coco.py (``--filter_pct``)."""
    src = tmp_path / 'instances_train2017.json'
    coco = _fake_coco(src, num_images=1000)
    assert mini.main([
        str(src),
        str(tmp_path / 'd'), '--percent', '1', '10', '--split-mode', 'detreg'
    ]) == 0
    ids = sorted(im['id'] for im in coco['images'])
    sets = {}
    for p in (1, 10):
        d, got = _ids(tmp_path / 'd' /
                      f'instances_train2017_{p}pct_detreg_seed42.json')
        expected = np.random.default_rng(42).choice(
            ids, size=round(float(len(ids)) * (p / 100.)), replace=False)
        assert got == set(expected.tolist())
        assert d['info']['mini_coco']['split_mode'] == 'detreg'
        sets[p] = got
    # drawn independently: the 1 % split is not the head of the 10 % one
    assert not sets[1] <= sets[10]
    # the nested default is unchanged (other file names, nested sets)
    assert mini.main([str(src),
                      str(tmp_path / 'd'), '--percent', '1', '10']) == 0
    _, n1 = _ids(tmp_path / 'd' / 'instances_train2017_1pct_seed0.json')
    _, n10 = _ids(tmp_path / 'd' / 'instances_train2017_10pct_seed0.json')
    assert n1 < n10


def test_detreg_split_mode_file_order_and_missing(tmp_path):
    src = tmp_path / 'voc.json'
    coco = _fake_coco(src, num_images=200, rare_image=3)
    file_ids = [im['id'] for im in coco['images']]
    s = mini.make_mini_coco(
        str(src),
        str(tmp_path), [5],
        seed=42,
        verbose=False,
        split_mode='detreg',
        detreg_order='file')
    _, got = _ids(tmp_path / 'voc_5pct_detreg_seed42.json')
    expected = np.random.default_rng(42).choice(
        file_ids, size=10, replace=False)
    assert got == set(expected.tolist())
    # no swap is made; a missing category is reported
    assert s['splits']['5']['swaps'] == 0
    if 1000 + 7 * 3 not in got:
        assert s['splits']['5']['missing_categories'] == ['rare']
    with pytest.raises(ValueError, match='split_mode'):
        mini.make_mini_coco(
            str(src), str(tmp_path), [5], verbose=False, split_mode='bad')

import hashlib
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from tool_utils import load_tool

from mmregion.testing.toy_data import CATEGORIES, make_toy_coco

REPO_ROOT = __file__.rsplit('/tests/', 1)[0]


def _load(root, split):
    with open(root / 'annotations' / f'instances_{split}.json') as f:
        return json.load(f)


def test_layout_and_boxes(toy_coco):
    for split, num in (('train', 8), ('val', 4)):
        coco = _load(toy_coco, split)
        assert len(coco['images']) == num
        assert {c['id']
                for c in coco['categories']} == {c['id']
                                                 for c in CATEGORIES}
        assert len(coco['annotations']) >= 2 * num
        sizes = {}
        for im in coco['images']:
            img = cv2.imread(str(toy_coco / split / im['file_name']))
            assert img is not None and img.shape == (128, 128, 3)
            sizes[im['id']] = (im['width'], im['height'])
            assert '/' not in im['file_name']
        ids = [a['id'] for a in coco['annotations']]
        assert len(set(ids)) == len(ids)
        for a in coco['annotations']:
            x, y, w, h = a['bbox']
            iw, ih = sizes[a['image_id']]
            assert w > 0 and h > 0
            assert x >= 0 and y >= 0 and x + w <= iw and y + h <= ih
            assert a['segmentation'] and a['iscrowd'] == 0
            assert 0 < a['area'] <= w * h


def test_pycocotools_masks_match_boxes(toy_coco):
    pytest.importorskip('pycocotools')
    from pycocotools.coco import COCO
    coco = COCO(str(toy_coco / 'annotations' / 'instances_train.json'))
    assert len(coco.getImgIds()) == 8
    assert len(coco.getCatIds()) == len(CATEGORIES)
    for ann in coco.loadAnns(coco.getAnnIds()):
        mask = coco.annToMask(ann)
        ys, xs = np.nonzero(mask)
        assert len(xs) > 0
        mask_box = np.array(
            [xs.min(), ys.min(),
             xs.max() + 1, ys.max() + 1], np.float64)
        x, y, w, h = ann['bbox']
        np.testing.assert_allclose(mask_box, [x, y, x + w, y + h], atol=1)


def test_box_is_polygon_extent(toy_coco):
    coco = _load(toy_coco, 'val')
    for a in coco['annotations']:
        pts = np.concatenate(
            [np.reshape(p, (-1, 2)) for p in a['segmentation']])
        x, y, w, h = a['bbox']
        assert tuple(pts.min(0)) == (x, y)
        assert tuple(pts.max(0)) == (x + w, y + h)


def _digest(root):
    h = hashlib.sha1()
    for p in sorted(root.rglob('*')):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_deterministic(tmp_path):
    a, b, c = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
    make_toy_coco(str(a), num_train=3, num_val=1, size=64, seed=1)
    make_toy_coco(str(b), num_train=3, num_val=1, size=64, seed=1)
    make_toy_coco(str(c), num_train=3, num_val=1, size=64, seed=2)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_cli(tmp_path, capsys):
    tool = load_tool('make_toy_coco')
    out = tmp_path / 'toy'
    tool.main([str(out), '--num-train', '2', '--num-val', '1', '--size', '64'])
    assert len(_load(out, 'train')['images']) == 2
    assert len(list((out / 'val').glob('*.jpg'))) == 1
    assert 'Wrote 2 train + 1 val images' in capsys.readouterr().out


@pytest.mark.slow
def test_cli_subprocess(tmp_path):
    out = tmp_path / 'toy'
    subprocess.run([
        sys.executable, f'{REPO_ROOT}/tools/make_toy_coco.py',
        str(out), '--num-train', '1', '--num-val', '1', '--size', '64'
    ],
                   check=True,
                   capture_output=True)
    assert len(_load(out, 'val')['images']) == 1

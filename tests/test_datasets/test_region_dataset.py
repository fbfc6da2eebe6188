import json

import pytest

from mmregion.datasets import RegionDataset
from mmregion.registry import DATASETS


def test_coco_json_images(tiny_coco):
    root, _ = tiny_coco
    ds = DATASETS.build(
        dict(
            type='RegionDataset',
            data_root=str(root),
            ann_file='ann.json',
            data_prefix=dict(img='images/')))
    assert len(ds) == 3
    info = ds.get_data_info(2)
    assert info['img_path'] == str(root / 'images' / 'sub' / 'c.jpg')
    assert info['proposal_key'] == 'sub/c.jpg'
    assert info['img_id'] == 12
    assert info['ori_shape'] == (64, 64)
    assert ds.get_data_info(0)['ori_shape'] == (72, 96)


def test_image_folder_sorted_recursive(tiny_coco):
    root, _ = tiny_coco
    (root / 'images' / 'notes.txt').write_text('not an image')
    ds = RegionDataset(data_prefix=dict(img=str(root / 'images')))
    keys = [ds.get_data_info(i)['proposal_key'] for i in range(len(ds))]
    assert keys == ['a.jpg', 'b.jpg', 'sub/c.jpg']
    info = ds.get_data_info(1)
    assert info['img_path'] == str(root / 'images' / 'b.jpg')
    assert info['img_id'] == 1 and 'ori_shape' not in info
    # ``img_path`` is accepted as the prefix key too
    ds = RegionDataset(
        data_root=str(root), data_prefix=dict(img_path='images'))
    assert len(ds) == 3


def test_empty_sources_raise_naming_them(tmp_path):
    empty = tmp_path / 'empty.json'
    empty.write_text(json.dumps(dict(images=[])))
    with pytest.raises(ValueError, match='empty.json'):
        RegionDataset(ann_file=str(empty))
    (tmp_path / 'nothing').mkdir()
    with pytest.raises(ValueError, match='nothing'):
        RegionDataset(data_prefix=dict(img=str(tmp_path / 'nothing')))
    with pytest.raises(ValueError, match='does not exist'):
        RegionDataset(data_prefix=dict(img=str(tmp_path / 'missing')))
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps(dict(annotations=[])))
    with pytest.raises(ValueError, match='bad.json.*images'):
        RegionDataset(ann_file=str(bad))

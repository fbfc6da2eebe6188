"""LoadImageFromFileSafe: bad images are skipped (counted, logged)."""
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.registry import DefaultScope

from mmregion.datasets import RegionDataset
from mmregion.datasets.transforms import LoadImageFromFileSafe
from mmregion.registry import TRANSFORMS
from mmregion.utils import log_utils
from mmregion.utils.images import find_truncation

BAD = ('truncated.jpg', 'zero.jpg', 'random.jpg')
GOOD = ('good.jpg', 'gray.png', 'rgba.png', 'deep.png')


@pytest.fixture
def image_dir(tmp_path):
    """Good, grayscale, RGBA, 16-bit, truncated, empty, random-byte images."""
    ys, xs = np.mgrid[0:72, 0:96]
    img = np.stack([xs * 2, ys * 3, (xs + ys)], -1).astype(np.uint8)
    ok, jpg = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    jpg = jpg.tobytes()
    (tmp_path / 'good.jpg').write_bytes(jpg)
    (tmp_path / 'truncated.jpg').write_bytes(jpg[:int(len(jpg) * 0.7)])
    (tmp_path / 'zero.jpg').write_bytes(b'')
    (tmp_path / 'random.jpg').write_bytes(np.random.default_rng(0).bytes(2000))
    cv2.imwrite(str(tmp_path / 'gray.png'), img[..., 1])
    cv2.imwrite(str(tmp_path / 'deep.png'), img.astype(np.uint16) * 256)
    rgba = np.concatenate([img, np.full((72, 96, 1), 7, np.uint8)], -1)
    cv2.imwrite(str(tmp_path / 'rgba.png'), rgba)
    return tmp_path


@pytest.fixture
def logs(monkeypatch):
    LoadImageFromFileSafe.reset_counters()
    messages = []
    monkeypatch.setattr(log_utils, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    yield messages
    LoadImageFromFileSafe.reset_counters()


def test_bad_images_skipped_counted_logged(image_dir, logs):
    t = TRANSFORMS.build(dict(type='LoadImageFromFileSafe'))
    for i, name in enumerate(BAD):
        assert t(dict(img_path=str(image_dir / name))) is None
        assert LoadImageFromFileSafe.num_corrupt == i + 1
    assert t(dict(img_path=str(image_dir / 'missing.jpg'))) is None
    assert LoadImageFromFileSafe.num_missing == 1
    # logged at counts 1, 2 (not 3) of the unreadable ones, 1 of the missing
    assert len(logs) == 3
    assert 'truncated.jpg' in logs[0] and 'truncated JPEG' in logs[0]
    assert 'zero.jpg' in logs[1] and '0 bytes' in logs[1]
    assert 'missing.jpg' in logs[2] and 'FileNotFoundError' in logs[2]


def test_grayscale_rgba_16bit_become_bgr_uint8(image_dir, logs):
    t = LoadImageFromFileSafe()
    good = t(dict(img_path=str(image_dir / 'good.jpg')))['img']
    for name in GOOD:
        out = t(dict(img_path=str(image_dir / name)))
        img = out['img']
        assert img.shape == (72, 96, 3) and img.dtype == np.uint8, name
        assert out['img_shape'] == out['ori_shape'] == (72, 96)
    gray = t(dict(img_path=str(image_dir / 'gray.png')))['img']
    assert (gray[..., 0] == gray[..., 1]).all()
    rgba = t(dict(img_path=str(image_dir / 'rgba.png')))['img']
    assert np.abs(rgba.astype(int) - good.astype(int)).mean() < 3  # alpha gone
    assert LoadImageFromFileSafe.num_corrupt == 0 and logs == []


def test_find_truncation(image_dir):
    jpg = (image_dir / 'good.jpg').read_bytes()
    png = (image_dir / 'gray.png').read_bytes()
    assert find_truncation(jpg) is None and find_truncation(png) is None
    assert find_truncation(jpg + b'\0' * 100) is None  # padding is fine
    assert 'JPEG' in find_truncation(jpg[:-10])
    assert 'PNG' in find_truncation(png[:-20])


def test_dataset_refetches_a_good_sample(image_dir, logs):
    with DefaultScope.overwrite_default_scope('mmregion'):
        ds = RegionDataset(
            data_prefix=dict(img=str(image_dir)),
            pipeline=[dict(type='LoadImageFromFileSafe')])
    names = [
        osp.basename(ds.get_data_info(i)['img_path']) for i in range(len(ds))
    ]
    assert sorted(names) == sorted(BAD + GOOD)
    np.random.seed(0)
    for name in BAD:
        out = ds[names.index(name)]
        assert osp.basename(out['img_path']) in GOOD
        assert out['img'].shape == (72, 96, 3)
    assert LoadImageFromFileSafe.num_corrupt >= 3
    assert any('truncated.jpg' in m for m in logs)


def test_base_configs_use_safe_loading():
    from mmengine.config import Config
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    for name in ('coco_regions_2view.py', 'toy_regions_2view.py'):
        cfg = Config.fromfile(
            osp.join(root, 'configs', '_base_', 'datasets', name))
        pipeline = cfg.train_dataloader.dataset.pipeline
        assert pipeline[0]['type'] == 'LoadImageFromFileSafe', name

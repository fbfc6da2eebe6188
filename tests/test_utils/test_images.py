"""mmregion.utils.images: image listing, COCO image lists, BGR conversion."""
import os

import cv2
import numpy as np
import pytest

from mmregion.utils.images import (IMG_EXTENSIONS, read_coco_images,
                                   scan_image_folder, to_bgr)


def test_scan_image_folder_lists_what_the_readers_must_refuse(tmp_path):
    (tmp_path / 'sub').mkdir()
    for name in ('b.JPG', 'a.png', 'sub/c.webp', 'notes.txt', '.hidden.jpg'):
        (tmp_path / name).write_bytes(b'x')
    if hasattr(os, 'mkfifo'):
        os.mkfifo(tmp_path / 'fifo.jpg')  # listed: the loader counts it
    keys = scan_image_folder(str(tmp_path))
    expected = ['a.png', 'b.JPG', 'sub/c.webp']
    if hasattr(os, 'mkfifo'):
        expected = ['a.png', 'b.JPG', 'fifo.jpg', 'sub/c.webp']
    assert keys == expected
    # relative to another root, '/'-separated
    assert scan_image_folder(
        str(tmp_path / 'sub'), root=str(tmp_path)) == ['sub/c.webp']
    assert scan_image_folder(str(tmp_path), extensions=('.png', )) == ['a.png']
    assert '.jpg' in IMG_EXTENSIONS and '.webp' in IMG_EXTENSIONS


def test_read_coco_images_names_the_file(tmp_path):
    ann = tmp_path / 'a.json'
    ann.write_text('{"images": [{"file_name": "x.jpg"}]}')
    assert read_coco_images(str(ann))[0]['file_name'] == 'x.jpg'
    with pytest.raises(ValueError, match='remote/a.json'):
        read_coco_images(str(ann), need_id=True, name='remote/a.json')


def test_to_bgr_shapes():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for img in (gray, gray[..., None], cv2.cvtColor(gray,
                                                    cv2.COLOR_GRAY2BGRA)):
        out = to_bgr(img)
        assert out.shape == (3, 4, 3)
        assert (out == gray[..., None]).all()
    bgr = np.zeros((2, 2, 3), np.uint8)
    assert to_bgr(bgr) is bgr

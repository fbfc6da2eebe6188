"""The one home of each shared helper (issue 13) and the old import paths."""
import logging
import os

import cv2
import numpy as np
import pytest

from mmregion.utils import atomic_io, log_utils
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


def test_log_count_at_powers_of_two(monkeypatch):
    logged = []
    monkeypatch.setattr(log_utils, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw['level'])))
    for n in range(1, 10):
        log_utils.log_count(n, f'n={n}')
    assert [m for m, _ in logged] == ['n=1', 'n=2', 'n=4', 'n=8']
    assert {lv for _, lv in logged} == {logging.WARNING}


def test_atomic_write_json_and_stale_files_of_other_hosts(tmp_path):
    atomic_io.atomic_write_json(tmp_path / 'a.json', dict(b=1), indent=1)
    assert (tmp_path / 'a.json').read_text() == '{\n "b": 1\n}'
    other = tmp_path / '.a.json.otherhost.1.0123abcd.tmp'
    mine = tmp_path / f'.a.json.{atomic_io._HOST}.{os.getpid()}.0123abcd.tmp'
    other.write_text('x')
    mine.write_text('x')
    assert atomic_io.remove_stale_tmp_files(tmp_path) == []
    assert sorted(
        atomic_io.remove_stale_tmp_files(
            tmp_path, other_hosts=True,
            own_pid=True)) == sorted([other.name, mine.name])


def test_shard_api_round_trip(tmp_path):
    from mmregion.proposals import (iter_shard_boxes, read_shard,
                                    read_shard_digest, read_shard_failed,
                                    write_shard)
    path = str(tmp_path / 'shard-00000.npz')
    boxes = {'b.jpg': np.ones((2, 4)), 'a.jpg': np.zeros((0, 4))}
    write_shard(path, boxes, failed=['c.jpg'], run_sha1='abc')
    shard = read_shard(path)
    assert list(shard.keys) == ['a.jpg', 'b.jpg']
    assert shard.get('b.jpg').dtype == np.float32
    assert read_shard_failed(path) == ['c.jpg']
    assert read_shard_digest(path) == 'abc'
    listed = [(k, len(b)) for k, b in iter_shard_boxes(path)]
    assert listed == [('a.jpg', 0), ('b.jpg', 2)]

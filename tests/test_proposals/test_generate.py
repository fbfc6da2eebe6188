import os
import shutil

import numpy as np
import pytest

from mmregion.proposals import (generate_proposals, list_images,
                                load_proposal_store)


def _same(a, b):
    sa, sb = load_proposal_store(str(a)), load_proposal_store(str(b))
    assert sa.keys() == sb.keys()
    for k in sa.keys():
        np.testing.assert_array_equal(sa.get(k), sb.get(k))


def test_toy_proposals_fixture(toy_coco, toy_proposals):
    store = load_proposal_store(str(toy_proposals))
    assert len(store) == 8
    assert store.keys() == [f'{i:06d}.jpg' for i in range(8)]
    for k in store.keys():
        b = store.get(k)
        assert b.dtype == np.float32 and b.shape[1] == 4 and len(b) > 0
        assert (b[:, :2] >= 0).all() and (b[:, 2:] <= 128).all()
        assert ((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all()


def test_list_images(toy_coco):
    keys, root = list_images(
        str(toy_coco / 'annotations' / 'instances_val.json'))
    assert root == str(toy_coco / 'val')
    assert keys == [f'{i:06d}.jpg' for i in range(4)]
    keys, root = list_images(str(toy_coco))
    assert root == str(toy_coco)
    assert 'train/000000.jpg' in keys and len(keys) == 12
    with pytest.raises(FileNotFoundError, match='nope'):
        list_images(str(toy_coco / 'nope'))


def test_resume_after_lost_shard(toy_coco, tmp_path):
    src = str(toy_coco / 'train')
    full, part = tmp_path / 'full', tmp_path / 'part'
    kw = dict(
        method='selective_search', mode='single', shard_size=3, progress=False)
    s = generate_proposals(src, str(full), **kw)
    assert (s['total'], s['done'], s['skipped'], s['failed']) == (8, 8, 0, 0)
    assert s['num_stored'] == 8 and s['mean_boxes'] > 0
    # an interrupted run: shard 1 never written, meta not complete
    shutil.copytree(full, part)
    os.remove(part / 'shard-00001.npz')
    s = generate_proposals(src, str(part), **kw)
    assert (s['done'], s['skipped']) == (3, 5)
    _same(full, part)
    # a third run has nothing left to do
    s = generate_proposals(src, str(part), **kw)
    assert (s['done'], s['skipped']) == (0, 8)


def test_workers_do_not_change_output(toy_coco, tmp_path):
    src = str(toy_coco / 'annotations' / 'instances_train.json')
    kw = dict(
        method='selective_search', mode='single', shard_size=5, progress=False)
    generate_proposals(src, str(tmp_path / 'w1'), workers=1, **kw)
    generate_proposals(src, str(tmp_path / 'w2'), workers=2, **kw)
    _same(tmp_path / 'w1', tmp_path / 'w2')


def test_corrupt_image_is_skipped(toy_coco, tmp_path):
    imgs = tmp_path / 'imgs'
    shutil.copytree(toy_coco / 'val', imgs)
    (imgs / 'broken.jpg').write_bytes(b'\xff\xd8 not a jpeg')
    out = tmp_path / 'out'
    s = generate_proposals(
        str(imgs),
        str(out),
        method='grid',
        grid_sizes=(2, ),
        shard_size=2,
        progress=False)
    assert (s['total'], s['done'], s['failed'], s['num_stored']) == (5, 4, 1,
                                                                     4)
    store = load_proposal_store(str(out))
    assert 'broken.jpg' not in store and len(store) == 4
    assert store.get('000000.jpg').shape == (4, 4)
    # resuming does not retry or lose the failure count
    s = generate_proposals(
        str(imgs),
        str(out),
        method='grid',
        grid_sizes=(2, ),
        shard_size=2,
        progress=False)
    assert (s['done'], s['skipped'], s['failed_total']) == (0, 5, 1)


def test_empty_results_are_stored(toy_coco, tmp_path):
    out = tmp_path / 'out'
    s = generate_proposals(
        str(toy_coco / 'val'),
        str(out),
        mode='single',
        min_size=1000,
        progress=False)
    assert s['empty'] == 4 and s['num_boxes'] == 0
    store = load_proposal_store(str(out))
    assert len(store) == 4 and store.get('000001.jpg').shape == (0, 4)


def test_random_source_is_per_image(toy_coco, tmp_path):
    out = tmp_path / 'out'
    generate_proposals(
        str(toy_coco / 'val'),
        str(out),
        method='random',
        num_random=7,
        progress=False)
    store = load_proposal_store(str(out))
    a, b = store.get('000000.jpg'), store.get('000001.jpg')
    assert a.shape == (7, 4) and not np.array_equal(a, b)
    with pytest.raises(ValueError, match='different run'):
        generate_proposals(
            str(toy_coco / 'val'),
            str(out),
            method='random',
            num_random=8,
            progress=False)


def test_dead_worker_raises_and_run_resumes(toy_coco, tmp_path, monkeypatch):
    """A worker killed mid-run (here: it exits on one image) gives a clear
    error instead of a hang; re-running completes the same output."""
    import mmregion.proposals.generate as gen
    src = str(toy_coco / 'train')
    kw = dict(method='grid', shard_size=2, progress=False)
    generate_proposals(src, str(tmp_path / 'full'), **kw)
    process = gen._process

    def dies_on_image_5(task):
        if task[0] == '000005.jpg':
            os._exit(9)  # as if killed by the OOM killer
        return process(task)

    monkeypatch.setattr(gen, '_process', dies_on_image_5)
    with pytest.raises(RuntimeError, match='worker process died'):
        generate_proposals(
            src, str(tmp_path / 'part'), workers=2, start_method='fork', **kw)
    monkeypatch.setattr(gen, '_process', process)
    s = generate_proposals(src, str(tmp_path / 'part'), workers=2, **kw)
    assert s['done'] + s['skipped'] == 8 and s['failed'] == 0
    _same(tmp_path / 'full', tmp_path / 'part')

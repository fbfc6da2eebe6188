import json
import multiprocessing as mp
import os
import pickle

import numpy as np
import pytest

from mmregion.proposals import (InMemoryProposalStore, ProposalWriter,
                                ShardedProposalStore, load_proposal_store)


def _boxes(n, seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 50, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(1, 30, (n, 2))],
                          1).astype(np.float32)


@pytest.fixture
def written(tmp_path):
    keys = [f'dir{i % 2}/img_{i:03d}.jpg' for i in range(7)]
    data = {k: _boxes(i % 4, i) for i, k in enumerate(keys)}  # some empty
    out = tmp_path / 'props'
    w = ProposalWriter(str(out), keys, shard_size=3, params=dict(a=1))
    assert w.num_shards == 3
    for i in range(w.num_shards):
        w.write_shard(i, {k: data[k] for k in w.shard_keys(i)})
    w.finalize(dict(num_stored=7))
    return out, data


def test_round_trip(written):
    out, data = written
    store = load_proposal_store(str(out))
    assert isinstance(store, ShardedProposalStore)
    assert len(store) == 7
    assert store.keys() == sorted(data)
    for k, v in data.items():
        got = store.get(k)
        assert got.dtype == np.float32 and got.shape == (len(v), 4)
        np.testing.assert_array_equal(got, v)
        assert k in store
    assert store.get('dir0/missing.jpg') is None
    assert 'aaa.jpg' not in store and store.get('zzz.jpg') is None
    # no temp files left behind
    assert sorted(os.listdir(out)) == [
        'meta.json', 'shard-00000.npz', 'shard-00001.npz', 'shard-00002.npz'
    ]


def test_small_cache_and_fork(written):
    out, data = written
    store = load_proposal_store(str(out), cache_shards=1)
    for k in sorted(data, reverse=True) + sorted(data):
        np.testing.assert_array_equal(store.get(k), data[k])
    # usable from a forked worker (no shared open file handles)
    ctx = mp.get_context('fork')
    with ctx.Pool(1) as pool:
        res = pool.map(store.get, sorted(data))
    for k, r in zip(sorted(data), res):
        np.testing.assert_array_equal(r, data[k])


def test_incomplete_store(written):
    out, data = written
    os.remove(out / 'shard-00001.npz')
    meta = json.loads((out / 'meta.json').read_text())
    meta['complete'] = False
    (out / 'meta.json').write_text(json.dumps(meta))
    store = load_proposal_store(str(out))
    missing = sorted(data)[3:6]
    assert len(store) == 4
    for k in missing:
        assert store.get(k) is None and k not in store
    np.testing.assert_array_equal(
        store.get(sorted(data)[0]), data[sorted(data)[0]])


def test_writer_rejects_other_run(written, tmp_path):
    out, data = written
    with pytest.raises(ValueError, match='different run'):
        ProposalWriter(str(out), list(data), shard_size=3, params=dict(a=2))
    with pytest.raises(ValueError, match='different run'):
        ProposalWriter(
            str(out), list(data)[:5], shard_size=3, params=dict(a=1))
    w = ProposalWriter(
        str(out), list(data), shard_size=3, params=dict(a=2), overwrite=True)
    assert not any(w.is_done(i) for i in range(w.num_shards))
    with pytest.raises(ValueError, match='do not match'):
        w.write_shard(0, {'x.jpg': _boxes(1, 0)})


def test_corrupt_shard_is_named(written):
    out, data = written
    (out / 'shard-00002.npz').write_bytes(b'garbage')
    with pytest.raises(ValueError, match='shard-00002.npz'):
        load_proposal_store(str(out))  # checked when opened
    store = ShardedProposalStore(str(out), verify=False)
    with pytest.raises(ValueError, match='shard-00002.npz'):
        store.get(sorted(data)[-1])  # else at first use
    w = ProposalWriter(str(out), list(data), shard_size=3, params=dict(a=1))
    assert w.is_done(0) and not w.is_done(2)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope'):
        load_proposal_store(str(tmp_path / 'nope'))
    (tmp_path / 'x.txt').write_text('hi')
    with pytest.raises(ValueError, match='x.txt'):
        load_proposal_store(str(tmp_path / 'x.txt'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='meta.json'):
        load_proposal_store(str(tmp_path / 'empty'))
    (tmp_path / 'bad.json').write_text('[1, 2]')
    with pytest.raises(ValueError, match='bad.json'):
        load_proposal_store(str(tmp_path / 'bad.json'))


def _coco(tmp_path):
    coco = dict(
        images=[
            dict(id=5, file_name='a/1.jpg', width=100, height=80),
            dict(id=2, file_name='b.jpg', width=100, height=80),
            dict(id=9, file_name='c.jpg', width=100, height=80),
        ],
        annotations=[
            dict(id=1, image_id=5, bbox=[10, 20, 30, 40], category_id=1),
            dict(id=2, image_id=2, bbox=[0, 0, 5, 5], category_id=1),
            dict(id=3, image_id=5, bbox=[1, 2, 3, 4], category_id=1),
        ],
        categories=[dict(id=1, name='RoI')])
    path = tmp_path / 'ss.json'
    path.write_text(json.dumps(coco))
    return path


def test_coco_json_store(tmp_path):
    store = load_proposal_store(str(_coco(tmp_path)))
    assert isinstance(store, InMemoryProposalStore)
    assert store.keys() == ['a/1.jpg', 'b.jpg', 'c.jpg']
    np.testing.assert_array_equal(
        store.get('a/1.jpg'), [[10, 20, 40, 60], [1, 2, 4, 6]])
    assert store.get('c.jpg').shape == (0, 4)
    assert 'c.jpg' in store and store.get('d.jpg') is None


def test_pickle_stores(tmp_path):
    ann = _coco(tmp_path)
    # mmdet 2.x style: list aligned with the json's images, (N, 5) + score
    lst = [
        np.array([[0, 0, 10, 10, 0.1], [5, 5, 20, 20, 0.9]], np.float32),
        np.zeros((0, 5), np.float32),
        np.array([[1, 1, 2, 2, 0.5]], np.float32),
    ]
    p = tmp_path / 'props.pkl'
    p.write_bytes(pickle.dumps(lst))
    with pytest.raises(ValueError, match='ann_file'):
        load_proposal_store(str(p))
    store = load_proposal_store(str(p), ann_file=str(ann))
    np.testing.assert_array_equal(
        store.get('a/1.jpg'), [[5, 5, 20, 20], [0, 0, 10, 10]])  # by score
    assert store.get('b.jpg').shape == (0, 4)
    p2 = tmp_path / 'props2.pkl'
    p2.write_bytes(pickle.dumps(lst[:2]))
    with pytest.raises(ValueError, match='2 entries'):
        load_proposal_store(str(p2), ann_file=str(ann))
    # mmdet 3.x style: dict keyed by file name, dict values
    d = {
        'x.jpg':
        dict(
            bboxes=np.array([[0, 0, 4, 4], [1, 1, 3, 3]]),
            scores=np.array([0.2, 0.8])),
        'y.jpg':
        np.array([[0, 0, 1, 1]]),
    }
    p3 = tmp_path / 'props3.pickle'
    p3.write_bytes(pickle.dumps(d))
    store = load_proposal_store(str(p3))
    assert store.keys() == ['x.jpg', 'y.jpg']
    np.testing.assert_array_equal(
        store.get('x.jpg'), [[1, 1, 3, 3], [0, 0, 4, 4]])
    p4 = tmp_path / 'bad.pkl'
    p4.write_bytes(pickle.dumps({'z.jpg': np.zeros((3, 3))}))
    with pytest.raises(ValueError, match='z.jpg'):
        load_proposal_store(str(p4))


def test_proposal_pickle_is_read_with_an_allow_list(tmp_path):
    """mmdet 3.x proposals (InstanceData + tensors) load; code never runs."""
    import os
    import pickle

    import torch
    from mmengine.structures import InstanceData

    from mmregion.proposals import load_proposal_store

    inst = InstanceData()
    inst.bboxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 5., 5.]])
    inst.scores = torch.tensor([0.5, 0.9])
    path = tmp_path / 'props.pkl'
    with open(path, 'wb') as f:
        pickle.dump({'a.jpg': inst}, f)
    boxes = load_proposal_store(str(path)).get('a.jpg')
    np.testing.assert_allclose(boxes, [[1, 1, 5, 5], [0, 0, 10, 10]])

    marker = tmp_path / 'pwned'

    class _Evil:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    with open(path, 'wb') as f:
        pickle.dump({'a.jpg': _Evil()}, f)
    with pytest.raises(pickle.UnpicklingError, match='refusing to unpickle'):
        load_proposal_store(str(path))
    assert not marker.exists()

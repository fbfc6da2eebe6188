"""mmregion.proposals.shard_io: the public shard API."""
import numpy as np

from mmregion.proposals import (iter_shard_boxes, read_shard,
                                read_shard_digest, read_shard_failed,
                                write_shard)


def test_shard_api_round_trip(tmp_path):
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

import pickle

import numpy as np
import pytest

from mmregion.datasets.transforms import LoadProposals
from mmregion.utils import log_utils


def _results(h=60, w=80, key='img.jpg'):
    return dict(
        img=np.zeros((h, w, 3), np.uint8),
        img_path=f'/x/{key}',
        proposal_key=key)


def test_degenerate_boxes_are_dropped(helpers):
    nan, inf = float('nan'), float('inf')
    boxes = [
        [10, 10, 30, 40],  # kept
        [nan, 0, 10, 10],  # NaN
        [0, 0, inf, 10],  # inf
        [5, 5, 5, 20],  # zero width
        [20, 20, 10, 30],  # negative width
        [100, 10, 120, 20],  # right of the 80 px image
        [-20, -20, -1, -1],  # above-left of the image
        [70, 50, 95, 70],  # partly outside: clipped
        [0, 0, 2, 40],  # 2 px wide: under min_size=3
    ]
    store = helpers.FakeStore({'img.jpg': boxes})
    out = LoadProposals(store, min_size=3).transform(_results())
    np.testing.assert_allclose(out['proposals'],
                               [[10, 10, 30, 40], [70, 50, 80, 60]])
    assert out['proposals'].dtype == np.float32
    np.testing.assert_array_equal(out['region_ids'], [0, 1])
    assert out['region_ids'].dtype == np.int64
    np.testing.assert_array_equal(out['view_affine'], [1, 0, 1, 0])
    assert out['view_affine'].dtype == np.float32
    assert LoadProposals.num_empty == 0 and LoadProposals.num_missing == 0


def test_topk_keeps_the_first_valid(helpers):
    boxes = [[0, 0, 10, 10], [0, 0, 0, 0], [1, 1, 11, 11], [2, 2, 12, 12]]
    store = helpers.FakeStore({'img.jpg': boxes})
    out = LoadProposals(store, topk=2).transform(_results())
    np.testing.assert_allclose(out['proposals'],
                               [[0, 0, 10, 10], [1, 1, 11, 11]])


@pytest.mark.parametrize('raw', [None, np.zeros((0, 4)), [[5, 5, 1, 1]]])
def test_whole_image_fallback_is_counted(helpers, raw):
    store = helpers.FakeStore({} if raw is None else {'img.jpg': raw})
    t = LoadProposals(store)
    out = t.transform(_results(h=60, w=80))
    np.testing.assert_allclose(out['proposals'], [[0, 0, 80, 60]])
    np.testing.assert_array_equal(out['region_ids'], [0])
    t.transform(_results(h=60, w=80))
    if raw is None:
        assert (LoadProposals.num_missing, LoadProposals.num_empty) == (2, 0)
    else:
        assert (LoadProposals.num_missing, LoadProposals.num_empty) == (0, 2)


def test_grid_fallback_covers_the_image(helpers):
    t = LoadProposals(helpers.FakeStore({}), fallback='grid', grid_size=3)
    out = t.transform(_results(h=60, w=90))
    boxes = out['proposals']
    assert boxes.shape == (9, 4)
    np.testing.assert_allclose(boxes[0], [0, 0, 30, 20])
    np.testing.assert_allclose(boxes[-1], [60, 40, 90, 60])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert areas.sum() == pytest.approx(60 * 90)
    assert LoadProposals.num_missing == 1


def test_error_fallback_names_image_and_file(helpers):
    store = helpers.FakeStore({'empty.jpg': np.zeros((0, 4))})
    t = LoadProposals(store, fallback='error')
    with pytest.raises(KeyError, match='absent.jpg'):
        t.transform(_results(key='absent.jpg'))
    with pytest.raises(KeyError, match='empty.jpg.*no valid box'):
        t.transform(_results(key='empty.jpg'))

    t = LoadProposals('some/proposals', fallback='error')
    t._store, t._store_pid = store, __import__('os').getpid()
    with pytest.raises(KeyError, match='some/proposals'):
        t.transform(_results(key='absent.jpg'))


def test_fallback_logged_at_powers_of_two(helpers, monkeypatch):
    logged = []
    monkeypatch.setattr(log_utils, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    t = LoadProposals(helpers.FakeStore({}))
    counts = []
    for _ in range(5):
        t.transform(_results())
        counts.append(len(logged))
    assert counts == [1, 2, 2, 3, 3]  # logged at counts 1, 2, 4
    assert 'img.jpg' in logged[0] and 'whole_image' in logged[0]


def test_store_is_opened_lazily_once(helpers, monkeypatch):
    import mmregion.proposals as proposals
    opened = []

    def fake_load(path):
        opened.append(path)
        return helpers.FakeStore({'img.jpg': [[1, 2, 3, 4]]})

    monkeypatch.setattr(
        proposals, 'load_proposal_store', fake_load, raising=False)
    t = LoadProposals('data/props')
    assert opened == []
    t.transform(_results())
    t.transform(_results())
    assert opened == ['data/props']
    # the store is not pickled (re-opened in each worker)
    t2 = pickle.loads(pickle.dumps(t))
    assert t2._store is None
    out = t2.transform(_results())
    np.testing.assert_allclose(out['proposals'], [[1, 2, 3, 4]])
    assert opened == ['data/props', 'data/props']


def test_key_defaults_to_basename_and_needs_image(helpers):
    store = helpers.FakeStore({'b.jpg': [[1, 1, 5, 5]]})
    res = dict(img=np.zeros((8, 8, 3), np.uint8), img_path='/data/b.jpg')
    out = LoadProposals(store, fallback='error').transform(res)
    np.testing.assert_allclose(out['proposals'], [[1, 1, 5, 5]])
    with pytest.raises(KeyError, match='LoadImageFromFile'):
        LoadProposals(store).transform(dict(proposal_key='b.jpg'))


def test_bad_box_shape_and_arguments(helpers):
    store = helpers.FakeStore({'img.jpg': np.zeros((3, 5))})
    with pytest.raises(ValueError, match='img.jpg.*shape'):
        LoadProposals(store).transform(_results())
    with pytest.raises(ValueError, match='fallback'):
        LoadProposals(store, fallback='none')

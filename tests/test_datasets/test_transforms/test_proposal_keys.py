"""LoadProposals with datasets that give no proposal_key (issue 15.4)."""
import shutil

import numpy as np
import pytest

from mmregion.datasets.transforms import LoadProposals
from mmregion.proposals import generate_proposals

pytest.importorskip('mmpretrain')


@pytest.fixture
def nested(toy_coco, tmp_path):
    """An ImageNet-like folder (two classes) and its proposal store."""
    root = tmp_path / 'imagenet' / 'train'
    for i, cls in enumerate(('n01', 'n02')):
        (root / cls).mkdir(parents=True)
        for j in range(3):
            shutil.copy(toy_coco / 'train' / f'{i * 3 + j:06d}.jpg',
                        root / cls / f'{j}.jpg')
    store = tmp_path / 'props'
    generate_proposals(
        str(root), str(store), method='random', num_random=3, progress=False)
    return root, store


def _results(path):
    return dict(img=np.zeros((128, 128, 3), np.uint8), img_path=str(path))


def test_custom_dataset_keys_relative_to_data_root(nested):
    from mmpretrain.datasets import CustomDataset
    root, store = nested
    ds = CustomDataset(data_root=str(root), with_label=True)
    assert len(ds) == 6
    t = LoadProposals(str(store), max_missing_ratio=0.0, missing_check_after=1)
    seen = set()
    for i in range(len(ds)):
        out = t(
            dict(ds.get_data_info(i), img=np.zeros((128, 128, 3), np.uint8)))
        np.testing.assert_array_equal(
            out['proposals'],
            t.store.get(t._key_of(ds.get_data_info(i)['img_path'])))
        seen.add(t._key_of(ds.get_data_info(i)['img_path']))
    # n01/0.jpg and n02/0.jpg share a basename but have their own boxes
    assert seen == {f'n0{c}/{j}.jpg' for c in (1, 2) for j in range(3)}
    assert not np.array_equal(
        t(_results(root / 'n01' / '0.jpg'))['proposals'],
        t(_results(root / 'n02' / '0.jpg'))['proposals'])
    assert t._found_root == str(root)
    # an explicit key_root gives the same keys
    t2 = LoadProposals(str(store), key_root=str(root))
    assert t2._key_of(str(root / 'n02' / '1.jpg')) == 'n02/1.jpg'


def test_too_many_missing_fails_loudly(nested, tmp_path):
    root, store = nested
    t = LoadProposals(str(store), max_missing_ratio=0.2, missing_check_after=5)
    other = tmp_path / 'other'
    for i in range(4):  # found: fine
        t(_results(root / 'n01' / f'{i % 3}.jpg'))
    t(_results(other / 'first_missing.jpg'))  # 1 of 5 = 0.2: tolerated
    with pytest.raises(KeyError) as e:
        t(_results(other / 'b.jpg'))  # 2 of 6 > 0.2
    msg = str(e.value)
    assert 'first_missing.jpg' in msg and str(store) in msg
    assert '2 of the 6 images' in msg and 'key_root' in msg
    # None: never raises (the counted fallback only)
    lax = LoadProposals(str(store), max_missing_ratio=None)
    for i in range(30):
        lax(_results(other / f'{i}.jpg'))
    with pytest.raises(ValueError, match='max_missing_ratio'):
        LoadProposals(str(store), max_missing_ratio=2)

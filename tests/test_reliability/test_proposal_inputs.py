"""Bad entries and files on the proposal side (issue 16 items 7-9)."""
import importlib
import json
import shutil
import sys

import numpy as np
import pytest

from mmregion.datasets import RegionDataset
from mmregion.proposals import (generate_proposals, list_images,
                                load_proposal_store)
from mmregion.utils.input_checks import InputError, check_file_name

REPO_ROOT = __file__.rsplit('/tests/', 1)[0]


def _tool(name='generate_proposals'):
    """A module of tools/ (imported from the checkout)."""
    if f'{REPO_ROOT}/tools' not in sys.path:
        sys.path.insert(0, f'{REPO_ROOT}/tools')
    return importlib.import_module(name)


def _coco_with(tmp_path, file_name, name='ann.json'):
    path = tmp_path / name
    path.write_text(
        json.dumps(
            dict(
                images=[
                    dict(id=1, file_name='000000.jpg'),
                    dict(id=2, file_name=file_name)
                ],
                annotations=[])))
    return path


@pytest.mark.parametrize('name,why', [('a\0b.jpg', 'NUL byte'),
                                      ('../secret.jpg', '".."'),
                                      ('x/../../secret.jpg', '".."'),
                                      ('/etc/passwd', 'absolute'),
                                      ('C:\\x.jpg', 'absolute'),
                                      ('', 'non-empty string'),
                                      (7, 'non-empty string')])
def test_check_file_name(name, why):
    with pytest.raises(InputError, match='images\\[1\\] of a.json') as e:
        check_file_name(name, 'images[1] of a.json')
    assert why in str(e.value) and '\n' not in str(e.value)


def test_check_file_name_opt_in():
    assert check_file_name('../x.jpg', 'w', allow_unsafe_paths=True)
    assert check_file_name('/abs/x.jpg', 'w', allow_unsafe_paths=True)
    with pytest.raises(InputError, match='NUL'):
        check_file_name('a\0', 'w', allow_unsafe_paths=True)
    assert check_file_name('a/b..c/d.jpg', 'w') == 'a/b..c/d.jpg'


@pytest.mark.parametrize('bad', ['../train/000001.jpg', 'a\0.jpg'])
def test_unsafe_names_refused_everywhere(toy_coco, tmp_path, bad, capsys):
    ann = _coco_with(tmp_path, bad)
    root = str(toy_coco / 'train')
    with pytest.raises(InputError, match=f'images\\[1\\] of {ann}'):
        RegionDataset(ann_file=str(ann), data_prefix=dict(img=root))
    with pytest.raises(InputError, match=f'images\\[1\\] of {ann}'):
        list_images(str(ann), root)
    with pytest.raises(InputError, match=f'images\\[1\\] of {ann}'):
        load_proposal_store(str(ann))  # a COCO-json proposal file
    # the tool: one line, exit 1, nothing written
    with pytest.raises(SystemExit) as e:
        _tool('generate_proposals').run_tool(
            _tool('generate_proposals').main,
            [str(ann), str(tmp_path / 'out'), '--img-root', root])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: images[1] of')
    assert not (tmp_path / 'out').exists()
    if '\0' not in bad:  # opt-in
        ds = RegionDataset(
            ann_file=str(ann),
            data_prefix=dict(img=root),
            allow_unsafe_paths=True)
        assert ds.get_data_info(1)['proposal_key'] == bad
        keys, _ = list_images(str(ann), root, allow_unsafe_paths=True)
        assert bad in keys


@pytest.mark.parametrize(
    'text,what',
    [('{"images": [', 'not valid json'), ('[1, 2]', 'no "images" list'),
     ('{"images": {"a": 1}}', 'no "images" list'),
     ('{"images": [5]}', 'images[0] of .* is not an object'),
     ('{"images": [{"id": 1}]}', 'images[0] of .* has no "file_name"'),
     ('{"images": [{"file_name": "a.jpg"}]}', 'has no "id"'),
     ('{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": '
      '[{"image_id": 1, "bbox": "x"}]}', 'annotations\\[0\\]: bbox'),
     ('{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": '
      '[{"image_id": 9, "bbox": [0, 0, 1, 1]}]}', 'unknown image_id 9'),
     ('{"images": [{"id": [1], "file_name": "a.jpg"}]}', 'image id'),
     (b'\xff\xfe{}', 'not UTF-8')])
def test_malformed_coco_proposal_json(tmp_path, text, what):
    path = tmp_path / 'props.json'
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(InputError) as e:
        load_proposal_store(str(path))
    msg = str(e.value)
    assert str(path) in msg and '\n' not in msg
    import re
    assert re.search(what.replace('[0] of', '\\[0\\] of'), msg), msg


@pytest.mark.parametrize(
    'text',
    ['{"images": [', '{"images": 3}', '{"images": [{"file_name": null}]}'])
def test_malformed_coco_dataset_json(tmp_path, text):
    path = tmp_path / 'ann.json'
    path.write_text(text)
    with pytest.raises(InputError, match=str(path)):
        RegionDataset(ann_file=str(path), data_prefix=dict(img=''))
    with pytest.raises(InputError, match=str(path)):
        list_images(str(path))


def test_truncated_jpeg_and_fifo_are_refused(toy_coco, tmp_path):
    import os
    imgs = tmp_path / 'imgs'
    shutil.copytree(toy_coco / 'val', imgs)
    data = (imgs / '000000.jpg').read_bytes()
    (imgs / 'cut.jpg').write_bytes(data[:len(data) * 2 // 3])
    os.mkfifo(imgs / 'fifo.jpg')  # reading it would block forever
    s = generate_proposals(
        str(imgs), str(tmp_path / 'out'), method='grid', progress=False)
    assert (s['total'], s['done'], s['failed']) == (6, 4, 2)
    store = load_proposal_store(str(tmp_path / 'out'))
    assert 'cut.jpg' not in store and 'fifo.jpg' not in store
    assert store.meta['stats']['failed_total'] == 2


def test_browse_refuses_unsafe_keys(toy_coco, tmp_path, capsys):
    import pickle
    pkl = tmp_path / 'p.pkl'
    pkl.write_bytes(
        pickle.dumps({
            '../val/000000.jpg': np.array([[0, 0, 5, 5]], np.float32),
            '000001.jpg': np.array([[0, 0, 5, 5]], np.float32)
        }))
    with pytest.raises(InputError, match='".."'):
        load_proposal_store(str(pkl))
    tool = _tool('browse_proposals')
    with pytest.raises(SystemExit):
        tool.run_tool(
            tool.main,
            [str(pkl), str(toy_coco / 'train'),
             str(tmp_path / 'b')])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(pkl) in err[0]


def test_wrong_img_root_is_an_error_not_a_success(toy_coco, tmp_path, capsys):
    """issue 23 item 6: a wrong --img-root made every image fail, with one
    WARNING per image, an empty store and exit status 0."""
    from mmengine.logging import MMLogger
    ann = str(toy_coco / 'annotations' / 'instances_train.json')
    out = tmp_path / 'out'
    MMLogger.get_current_instance()
    with pytest.raises(InputError) as info:
        generate_proposals(
            ann,
            str(out),
            img_root=str(tmp_path / 'nowhere'),
            method='grid',
            shard_size=3,
            progress=False)
    msg = str(info.value)
    assert '\n' not in msg
    assert '8 of the first 8 images could not be read' in msg
    assert 'is --img-root right?' in msg and '000000.jpg' in msg
    assert not list(out.glob('shard-*'))  # no store of failures
    # the tool: one error line, exit status 1, not a success
    tool = _tool()
    with pytest.raises(SystemExit) as ex:
        from mmregion.apis.cli import run_tool
        run_tool(tool.main, [
            ann,
            str(tmp_path / 'out2'), '--img-root',
            str(tmp_path / 'nowhere'), '--method', 'grid', '--no-progress'
        ])
    assert ex.value.code == 1
    err = capsys.readouterr().err
    assert err.count('error: ') == 1 and 'is --img-root right?' in err
    # the same images with a few failures (below the ratio) still finish
    shutil.copytree(toy_coco / 'train', tmp_path / 'imgs')
    (tmp_path / 'imgs' / '000001.jpg').unlink()
    stats = generate_proposals(
        ann,
        str(tmp_path / 'out3'),
        img_root=str(tmp_path / 'imgs'),
        method='grid',
        progress=False)
    assert stats['failed'] == 1 and stats['done'] == 7


def test_failures_are_logged_up_to_a_limit(tmp_path, monkeypatch):
    """Failures beyond 20 are counted, not logged one per line."""
    from mmregion.proposals import generate
    from mmregion.proposals.generate import _generate_locked
    logged = []
    monkeypatch.setattr(generate, 'print_log',
                        lambda msg, *a, **k: logged.append(msg))
    keys = [f'missing{i:03d}.jpg' for i in range(30)]
    stats = _generate_locked(
        str(tmp_path / 'out'),
        keys,
        str(tmp_path),
        dict(method='grid', seed=0, grid_sizes=[2]),
        workers=1,
        shard_size=10,
        overwrite=False,
        progress=False,
        start_method=None,
        chunksize=1,
        max_failed_ratio=1.0)
    assert stats['failed'] == 30
    assert sum('Skipping unreadable image' in m for m in logged) == 20


def test_symlink_loops_and_non_utf8_names(toy_coco, tmp_path, monkeypatch):
    """issue 26 items 5 and 7: `ln -s . a; ln -s . b` hung the folder
    scan, `sub/up -> ..` listed 573 keys for 8 files, and one non-UTF-8
    name aborted the whole run with "surrogates not allowed"."""
    import os

    import mmengine.logging
    logged = []
    monkeypatch.setattr(mmengine.logging, 'print_log',
                        lambda msg, *a, **k: logged.append(msg))
    src = tmp_path / 'imgs'
    (src / 'sub').mkdir(parents=True)
    shutil.copy(toy_coco / 'train' / '000000.jpg', src / 'x.jpg')
    shutil.copy(toy_coco / 'train' / '000001.jpg', src / 'sub' / 'y.jpg')
    shutil.copy(toy_coco / 'train' / '000002.jpg',
                os.path.join(os.fsencode(src), b'bad\xff\xfe.jpg'))
    os.symlink('.', src / 'a')
    os.symlink('.', src / 'b')
    os.symlink('..', src / 'sub' / 'up')
    keys, _ = list_images(str(src))
    assert keys == ['sub/y.jpg', 'x.jpg']
    stats = generate_proposals(
        str(src), str(tmp_path / 'out'), method='grid', progress=False)
    assert stats['total'] == 2 and stats['done'] == 2
    log = '\n'.join(logged)
    assert 'symlink loop' in log
    assert r"bad\udcff\udcfe.jpg" in log and 'not valid UTF-8' in log


@pytest.mark.parametrize('name,match', [('a' * 100000 + '.jpg', '100004 '
                                         'characters long'),
                                        ('bad\ud800.jpg', 'not valid UTF-8')])
def test_long_and_surrogate_file_names_refused(tmp_path, name, match):
    """issue 26 item 4: one 100,000-character file_name among 20,000
    images made fixed-width '<U' keys of 8 GB."""
    path = _coco_with(tmp_path, name)
    with pytest.raises(InputError, match=match):
        load_proposal_store(str(path))
    with pytest.raises(InputError, match=match):
        check_file_name(name, 'x', allow_unsafe_paths=True)


@pytest.mark.parametrize('kwargs,match', [
    (dict(method='grid', grid_sizes=(0, )), 'grid_sizes'),
    (dict(method='random', num_random=-5), 'num_random'),
    (dict(method='grid', shard_size=0), 'shard_size'),
])
def test_nonsense_counts_are_refused(toy_coco, tmp_path, kwargs, match):
    """issue 26 minor: --grid-sizes 0 / --num-random -5 were reported as
    48 unreadable images with exit 0 and the store marked complete."""
    with pytest.raises(InputError, match=f'{match}=.* must be >= 1'):
        generate_proposals(
            str(toy_coco / 'val'),
            str(tmp_path / 'o'),
            progress=False,
            **kwargs)
    assert not (tmp_path / 'o').exists()

"""The minor cases of issue 26 (round 3): each used to pass silently or to
end in an unrelated error; each is now one line naming the file or key
(or a logged, counted skip)."""
import contextlib
import errno
import io
import json
import logging
import os

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger

from mmregion.utils.input_checks import InputError, check_file_name


def _coco(images, anns=(), cats=({'id': 1, 'name': 'a'}, )):
    return dict(
        images=list(images), annotations=list(anns), categories=list(cats))


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


@pytest.mark.parametrize('images, anns, needle', [
    ([dict(id=True, file_name='a.jpg')], [], 'not an int or string'),
    ([dict(id=1, file_name='a.jpg'),
      dict(id=1, file_name='b.jpg')], [], 'duplicate image id 1'),
    ([dict(id=1, file_name='a.jpg'),
      dict(id=2, file_name='a.jpg')], [], "duplicate file_name 'a.jpg'"),
    ([dict(id=1, file_name='a.jpg')], [dict(image_id=True, bbox=[0, 0, 1, 1])
                                       ], 'unknown image_id True'),
])
def test_proposal_json_ids_are_checked(tmp_path, images, anns, needle):
    """Duplicate or boolean ids used to give an image another's boxes."""
    from mmregion.proposals.adapters import load_coco_json_store
    path = _write(tmp_path / 'p.json', _coco(images, anns))
    with pytest.raises(InputError, match=needle) as e:
        load_coco_json_store(path)
    assert path in str(e.value)


@pytest.mark.parametrize('change, needle', [
    (lambda c: c['categories'].append({
        'id': 1,
        'name': 'b'
    }), 'duplicate category id 1'),
    (lambda c: c['annotations'][0].update(category_id=7),
     'category_id 7 is not an id'),
    (lambda c: c['images'][0].update(width=0), 'width must be an int >= 1'),
    (lambda c: c['images'][0].update(file_name='a\0.jpg'), 'NUL'),
    (lambda c: c['images'][0].update(file_name=3), 'non-empty string'),
    (lambda c: c['annotations'][0].update(bbox=['1', 2, 3, 4]),
     'is not 4 numbers'),
    (lambda c: c['images'][0].update(id=True), 'needs an int "id"'),
])
def test_make_mini_coco_refuses_bad_entries(tmp_path, change, needle):
    from tool_utils import load_tool
    tool = load_tool('make_mini_coco')
    coco = _coco([
        dict(id=i, file_name=f'{i}.jpg', width=8, height=8) for i in range(4)
    ], [
        dict(id=i, image_id=i, category_id=1, bbox=[0, 0, 2, 2])
        for i in range(4)
    ])
    path = _write(tmp_path / 'ok.json', coco)
    assert tool.make_mini_coco(
        path, str(tmp_path / 'out'), [50], verbose=False)['splits']
    change(coco)
    bad = _write(tmp_path / 'bad.json', coco)
    with pytest.raises(InputError, match=needle) as e:
        tool.make_mini_coco(bad, str(tmp_path / 'out2'), [50], verbose=False)
    assert 'bad.json' in str(e.value)
    assert not (tmp_path / 'out2').exists()


@pytest.mark.parametrize('tool_name, argv, needle', [
    ('browse_proposals', ['p', 'r', 'o', '--num', '-3'], '--num must be'),
    ('browse_proposals', ['p', 'r', 'o', '--topk', '0'], '--topk must be'),
    ('make_toy_coco', ['o', '--num-train', '-3'], '--num-train must be'),
    ('make_toy_coco', ['o', '--size', '0'], '--size must be'),
])
def test_negative_counts_are_refused(tool_name, argv, needle, capsys):
    """`--num -3` used to draw all images but 3."""
    from tool_utils import load_tool
    with pytest.raises(SystemExit):
        load_tool(tool_name).parse_args(argv)
    assert needle in capsys.readouterr().err


def test_unsafe_path_hint_names_the_config_key():
    """train.py has no --allow-unsafe-paths: the hint names the key too."""
    with pytest.raises(InputError) as e:
        check_file_name('../x.jpg', 'images[0] of a.json')
    assert 'train_dataloader.dataset.allow_unsafe_paths=True' in str(e.value)


def test_disk_full_names_the_shard_and_leaves_no_zip_traceback(
        tmp_path, monkeypatch, recwarn):
    import mmregion.proposals.shard_io as shard_io
    real = shard_io.atomic_write

    class Full(io.RawIOBase):

        def writable(self):
            return True

        def write(self, b):
            raise OSError(errno.ENOSPC, 'No space left on device')

    @contextlib.contextmanager
    def full(path, mode='wb'):
        with real(path, mode):
            yield Full()

    monkeypatch.setattr(shard_io, 'atomic_write', full)
    target = tmp_path / 'shard-00000.npz'
    with pytest.raises(OSError) as e:
        shard_io.write_shard(
            str(target), {'a.jpg': np.zeros((2, 4), np.float32)})
    assert e.value.errno == errno.ENOSPC
    assert f'cannot write proposal shard {target}' in str(e.value)
    assert 'disk is full' in str(e.value)
    assert not target.exists() and os.listdir(tmp_path) == []
    assert not [w for w in recwarn if 'ZipFile' in str(w.message)]


def test_finished_store_in_a_read_only_folder_is_checked(
        tmp_path, toy_coco, monkeypatch):
    """The lock file could not be created, so a finished store in a
    read-only folder could not be re-checked."""
    import shutil

    from mmregion.proposals import generate_proposals
    from mmregion.proposals.writer import ProposalDirLock
    kw = dict(
        img_root=str(toy_coco / 'train'),
        method='grid',
        grid_sizes=[2],
        workers=1,
        progress=False)
    ann = str(toy_coco / 'annotations' / 'instances_train.json')
    out = tmp_path / 'store'
    stats = generate_proposals(ann, str(out), **kw)
    half = tmp_path / 'half'
    shutil.copytree(out, half)
    os.remove(half / 'shard-00000.npz')
    mtimes = {f: os.stat(out / f).st_mtime_ns for f in os.listdir(out)}

    def denied(self):
        raise PermissionError(errno.EACCES, 'Permission denied',
                              self.lock_path)

    monkeypatch.setattr(ProposalDirLock, 'acquire', denied)
    again = generate_proposals(ann, str(out), **kw)
    assert again['skipped'] == again['total'] == stats['total']
    assert again['done'] == 0
    for key in ('num_stored', 'num_boxes', 'failed_total', 'empty'):
        assert again[key] == stats[key]
    assert mtimes == {f: os.stat(out / f).st_mtime_ns for f in os.listdir(out)}
    with pytest.raises(InputError, match='not writable.*not complete'):
        generate_proposals(ann, str(half), **kw)
    with pytest.raises(InputError, match='not writable.*different run'):
        generate_proposals(ann, str(out), **dict(kw, grid_sizes=[3]))


def test_converter_refuses_nan_weights(tmp_path):
    from mmregion.apis.checkpoint_convert import Rule, run_conversion
    from mmregion.utils.errors import UserError
    src = tmp_path / 'official.pth'
    weight = torch.ones(2, 2)
    weight[0, 0] = float('nan')
    torch.save(
        dict(state_dict={
            'enc.w': weight,
            'enc.b': torch.ones(2)
        }), str(src))
    out = tmp_path / 'converted.pth'
    with pytest.raises(UserError) as e:
        run_conversion(
            str(src), str(out), [Rule(r'enc\.(.*)', r'x.\1')], 'test')
    assert 'x.w' in str(e.value) and 'NaN/inf' in str(e.value)
    assert str(src) in str(e.value) and not out.exists()


def test_symlinks_out_of_the_image_folder_are_skipped_and_counted(tmp_path):
    """They used to be followed: the scan read outside the image root."""
    from mmregion.utils.images import scan_image_folder
    outside = tmp_path / 'elsewhere'
    outside.mkdir()
    (outside / 'secret.jpg').write_bytes(b'x')
    folder = tmp_path / 'images'
    (folder / 'sub').mkdir(parents=True)
    (folder / 'a.jpg').write_bytes(b'x')
    os.symlink(outside, folder / 'linked_dir')
    os.symlink(outside / 'secret.jpg', folder / 'linked.jpg')
    os.symlink(folder / 'a.jpg', folder / 'sub' / 'inside.jpg')  # kept
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        keys = scan_image_folder(str(folder))
    finally:
        logger.removeHandler(handler)
    assert keys == ['a.jpg', 'sub/inside.jpg']
    msg = ' '.join(r.getMessage() for r in records)
    assert '2 symlink(s) pointing outside the image folder skipped' in msg
    assert 'allow_unsafe_paths=True' in msg
    assert scan_image_folder(
        str(folder), allow_outside_links=True) == [
            'a.jpg', 'linked.jpg', 'linked_dir/secret.jpg', 'sub/inside.jpg'
        ]

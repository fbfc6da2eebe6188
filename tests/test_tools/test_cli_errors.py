"""Bad command lines get one clear line on stderr and a non-zero exit."""
import os.path as osp
import subprocess
import sys
import textwrap

import pytest

from mmregion.apis.cli import check_cfg_options, explain_exception
from mmregion.utils.errors import UserError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN = osp.join(ROOT, 'tools', 'train.py')


def _run(*args):
    return subprocess.run([sys.executable, TRAIN, *args],
                          capture_output=True,
                          text=True,
                          cwd=ROOT,
                          timeout=300)


def _assert_one_line_error(out, *needles):
    assert out.returncode != 0
    assert 'Traceback' not in out.stderr, out.stderr[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('error: '), out.stderr[-3000:]
    for needle in needles:
        assert needle in last, last


def _write_cfg(tmp_path, body):
    path = tmp_path / 'cfg.py'
    path.write_text(textwrap.dedent(body))
    return str(path)


@pytest.mark.slow
def test_missing_config(tmp_path):
    out = _run(str(tmp_path / 'nope.py'))
    _assert_one_line_error(out, 'nope.py', 'does not exist')


@pytest.mark.slow
def test_unknown_type(tmp_path):
    cfg = _write_cfg(
        tmp_path, """
        default_scope = 'mmregion'
        model = dict(type='ResNet', depth=18)
        """)
    out = _run(cfg, '--work-dir', str(tmp_path / 'w'))
    _assert_one_line_error(out, 'ResNet', 'mmregion::model',
                           'mmpretrain.ResNet')


@pytest.mark.slow
def test_unknown_cfg_options_key(tmp_path):
    cfg = _write_cfg(
        tmp_path, """
        default_scope = 'mmregion'
        optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))
        """)
    out = _run(cfg, '--cfg-options', 'optim_wraper.optimizer.lr=0.2',
               '--strict-cfg-options')
    _assert_one_line_error(out, 'optim_wraper', 'did you mean optim_wrapper')


def test_check_cfg_options_accepts_existing_and_list_keys():
    from mmengine.config import Config
    cfg = Config(dict(a=dict(b=1), c=[dict(d=2)]))
    check_cfg_options(cfg, {'a.b': 3, 'c.0.d': 4})
    with pytest.raises(UserError, match='no "e" under a'):
        check_cfg_options(cfg, {'a.e': 1})
    with pytest.raises(UserError, match='no "5" under c'):
        check_cfg_options(cfg, {'c.5.d': 1})


def test_explain_exception_ignores_unrelated_errors():
    assert explain_exception(KeyError('some_key')) is None
    assert explain_exception(RuntimeError('boom')) is None
    line = explain_exception(FileNotFoundError('x.pth can not be found.'))
    assert line == 'file not found: x.pth can not be found.'


# ------------------------------------------- issue #23 item 7 (user path) --

TOY = osp.join(ROOT, 'configs', 'mmregion', 'ccop_r18_toy.py')


@pytest.mark.slow
def test_cfg_options_typo_in_a_module_argument(tmp_path):
    """Used to warn, then fail ~450 lines later in ResNet's constructor."""
    out = _run(TOY, '--work-dir', str(tmp_path), '--cfg-options',
               'model.backbone.dept=50')
    _assert_one_line_error(out, 'model.backbone.dept', 'did you mean depth')


@pytest.mark.slow
def test_cfg_options_top_level_variable(tmp_path):
    """``data_root=...`` used to be set silently and train on the old
    data."""
    out = _run(TOY, '--work-dir', str(tmp_path), '--cfg-options',
               f'data_root={tmp_path}/')
    _assert_one_line_error(out, 'data_root',
                           'train_dataloader.dataset.data_root')


def _toy_user_config(tmp_path, body):
    return _write_cfg(tmp_path, f'_base_ = {TOY!r}\n' + textwrap.dedent(body))


@pytest.mark.slow
def test_empty_image_folder(tmp_path):
    """Used to end in a 42-line traceback."""
    empty = tmp_path / 'my_images'
    empty.mkdir()
    cfg = _toy_user_config(
        tmp_path, f"""
        train_dataloader = dict(dataset=dict(
            ann_file='', data_root={str(empty)!r}, data_prefix=dict(img='')))
        """)
    out = _run(cfg, '--work-dir', str(tmp_path / 'w'))
    _assert_one_line_error(out, 'no image found', 'my_images',
                           'put images there')


@pytest.mark.slow
def test_images_missing_from_the_proposal_store(tmp_path, toy_coco,
                                                toy_proposals):
    """Used to run on whole-image fallbacks, then stop with a KeyError
    traceback."""
    import shutil
    mine = tmp_path / 'mine'
    mine.mkdir()
    for img in sorted((toy_coco / 'train').iterdir()):
        shutil.copy(img, mine / f'renamed_{img.name}')
    cfg = _toy_user_config(
        tmp_path, f"""
        train_dataloader = dict(batch_size=2, dataset=dict(
            ann_file='', data_root={str(mine)!r}, data_prefix=dict(img='')))
        """)
    out = _run(
        cfg, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
        f'train_dataloader.dataset.pipeline.1.proposal_file='
        f'{toy_proposals}',
        'train_dataloader.dataset.pipeline.1.missing_check_after=4')
    _assert_one_line_error(out, 'absent from the proposal store',
                           str(toy_proposals), 'renamed_')


def test_offline_checkpoint_download_names_file_and_place(tmp_path):
    """The default ProSeCo R-50 config offline used to end in a URLError
    traceback; now the line names each checkpoint, where torch's cache
    expects it and the key to point at a local copy."""
    import urllib.error

    import torch.hub
    from mmengine.config import Config

    from mmregion.apis.cli import explain_downloads
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'mmregion',
                 'proseco_deformable-detr_r50_coco.py'))
    with pytest.raises(UserError) as e:
        with explain_downloads(cfg):
            raise urllib.error.URLError('[Errno -3] name resolution')
    msg = str(e.value)
    url = cfg.swav_checkpoint
    assert url in msg and 'offline' in msg
    assert osp.join(torch.hub.get_dir(), 'checkpoints',
                    osp.basename(url)) in msg
    assert 'init_cfg.checkpoint=<local .pth>' in msg
    # an error that is not a download passes through unchanged
    with pytest.raises(ValueError):
        with explain_downloads(cfg):
            raise ValueError('x')


def test_amp_without_gpu(monkeypatch):
    import torch
    from mmengine.config import Config
    from tool_utils import load_tool
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    train = load_tool('train')
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper')))
    with pytest.raises(UserError, match='--amp needs a CUDA GPU.*drop --amp'):
        train.merge_args(cfg, train.parse_args(['cfg.py', '--amp']))


def test_user_key_error_from_a_dataloader_worker_is_one_line():
    """torch re-raises a worker's error with the worker's traceback in the
    message; the line shown is the original message."""
    from mmregion.utils.errors import UserKeyError
    exc = UserKeyError('Caught UserKeyError in DataLoader worker process 0.'
                       '\nOriginal Traceback (most recent call last):\n'
                       '  File "x.py", line 1\nmmregion.utils.errors.'
                       'UserKeyError: LoadProposals: 5 of the 5 images')
    assert explain_exception(exc) == 'LoadProposals: 5 of the 5 images'
    assert isinstance(exc, KeyError)


def test_resume_from_another_method_is_one_line(tmp_path):
    """issue 26 item 8: `--resume` with a checkpoint of another method
    ended in a 360-730-line torch ValueError."""
    import torch
    from mmengine.optim import OptimWrapper

    def sgd(*sizes):
        return torch.optim.SGD(
            [torch.nn.Parameter(torch.ones(n)) for n in sizes], lr=0.1)

    other_groups = sgd(1)
    other_groups.add_param_group(
        {'params': [torch.nn.Parameter(torch.ones(3))]})
    for other in (sgd(1, 2), other_groups):  # group sizes, group count
        with pytest.raises(ValueError) as info:
            OptimWrapper(sgd(1)).load_state_dict(other.state_dict())
        line = explain_exception(info.value)
        assert line is not None and line.startswith('--resume: the checkpoint')
        assert 'load_from=' in line and '\n' not in line

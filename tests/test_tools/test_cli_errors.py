"""Bad command lines get one clear line on stderr and a non-zero exit."""
import os.path as osp
import subprocess
import sys
import textwrap

import pytest

from mmregion.apis.cli import UserError, check_cfg_options, explain_exception

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

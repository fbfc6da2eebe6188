"""Known errors of ``tools/train.py`` end as one line (issue 26 item 8).

Config type errors, cross-method resumes and guard stops used to print
390-730 lines (mmengine's environment + config dump, then a traceback)
above the clear last line.
"""
import logging
import math
import os
import subprocess
import sys
import uuid

import pytest
import torch
from mmengine.config import Config

from mmregion.apis.cli import check_config_values, explain_exception, run_cli
from mmregion.apis.quiet_runner import QuietRunner
from mmregion.apis.resume_check import check_resume_checkpoint
from mmregion.utils.errors import UserError


@pytest.mark.parametrize('cfg, key', [
    (dict(model=dict(feat_dim='128')), 'model.feat_dim'),
    (dict(model=dict(detector=dict(num_queries=0))),
     'model.detector.num_queries'),
    (dict(optim_wrapper=dict(optimizer=dict(lr='0.1'))),
     'optim_wrapper.optimizer.lr'),
    (dict(optim_wrapper=dict(optimizer=dict(lr=math.nan))),
     'optim_wrapper.optimizer.lr'),
    (dict(train_cfg=dict(max_iters=-1)), 'train_cfg.max_iters'),
    (dict(model=dict(img_queue_len=True)), 'model.img_queue_len'),
    (dict(custom=[dict(batch_size=2.5)]), 'custom.0.batch_size'),
])
def test_config_values_of_wrong_type_or_range_name_the_key(cfg, key):
    with pytest.raises(UserError, match=key.replace('.', r'\.')):
        check_config_values(Config(cfg))


def test_config_values_accept_normal_configs():
    check_config_values(
        Config(
            dict(
                model=dict(feat_dim=128, detector=dict(num_queries=300)),
                optim_wrapper=dict(optimizer=dict(lr=0.03, weight_decay=0)),
                train_cfg=dict(max_iters=10, max_epochs=None))))


def _state(queue_len=8):
    return dict(w=torch.zeros(3, 2), queue=torch.zeros(queue_len, 4))


def test_resume_of_another_model_names_checkpoint_and_key():
    check_resume_checkpoint(_state(), dict(state_dict=_state()), 'c.pth')
    # mmengine strips a DDP prefix when it loads: so do we
    check_resume_checkpoint(
        _state(),
        dict(state_dict={
            f'module.{k}': v
            for k, v in _state().items()
        }), 'c.pth')
    other = dict(
        state_dict=dict(neck=torch.zeros(1)),
        meta=dict(experiment_name='plrc_x'))
    with pytest.raises(UserError) as e:
        check_resume_checkpoint(_state(), other, 'work/iter_2.pth')
    msg = str(e.value)
    assert 'work/iter_2.pth (written by run plrc_x) is of another model' \
        in msg and "'neck'" in msg and 'load_from=' in msg
    assert '\n' not in msg


def test_changed_queue_length_is_an_error_naming_the_key():
    """It used to resume with a re-initialised queue and a warning."""
    with pytest.raises(UserError) as e:
        check_resume_checkpoint(
            _state(16), dict(state_dict=_state(8)), 'iter_2.pth')
    msg = str(e.value)
    assert "'queue' has shape [8, 4] there but [16, 4]" in msg
    assert 'iter_2.pth' in msg and 're-initialise' in msg


def test_guard_stop_is_one_line(capsys, monkeypatch):
    monkeypatch.delenv('MMREGION_DEBUG', raising=False)
    text = ('Non-finite loss: loss_x=nan at iteration 3 (runner.iter=2)\n'
            '(loss terms: loss_x=nan). Resume ...')
    assert explain_exception(FloatingPointError(text)).startswith(
        'Non-finite loss: loss_x=nan at iteration 3')

    def main(argv):
        raise FloatingPointError(text)

    with pytest.raises(SystemExit) as e:
        run_cli(main)
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith('error: Non-finite loss: loss_x=nan') and \
        'Resume' in err[0]
    assert len(err) == 1
    # another FloatingPointError is not ours: its traceback stays
    with pytest.raises(FloatingPointError):
        run_cli(lambda argv: (_ for _ in ()).throw(FloatingPointError('x')))
    # MMREGION_DEBUG=1 gives the traceback back
    monkeypatch.setenv('MMREGION_DEBUG', '1')
    with pytest.raises(FloatingPointError):
        run_cli(main)


def _quiet_runner(tmp_path, toy):
    return QuietRunner(
        model=toy.ToyModel(),
        work_dir=str(tmp_path),
        experiment_name=f'quiet_{uuid.uuid4().hex[:8]}',
        cfg=Config(dict(marker_key='CONFIG_DUMP_MARKER')))


def test_quiet_runner_keeps_the_config_dump_in_the_log_file(
        tmp_path, toy, monkeypatch):
    monkeypatch.delenv('MMREGION_DEBUG', raising=False)
    runner = _quiet_runner(tmp_path, toy)
    consoles = [
        h for h in runner.logger.handlers if type(h) is logging.StreamHandler
    ]
    assert consoles
    log_file = [
        h.baseFilename for h in runner.logger.handlers
        if isinstance(h, logging.FileHandler)
    ][0]
    for h in runner.logger.handlers:
        h.flush()
    text = open(log_file).read()
    assert 'CONFIG_DUMP_MARKER' in text and 'System environment' in text
    assert 'Hooks will be executed' in text
    # the console handlers drop the dump and the hook table, nothing else
    for msg, shown in [('Config:\nmarker_key = 1', True),
                       ('Hooks will be executed in the following order:',
                        False), ('Iter(train) [1/2]', True)]:
        record = logging.LogRecord('x', logging.INFO, '', 0, msg, None, None)
        assert all(h.filter(record) for h in consoles) is shown, msg


@pytest.mark.slow
def test_train_py_resume_errors_are_one_line(tmp_path, toy_coco,
                                             toy_proposals):
    """End to end: tools/train.py trains the toy CCOP for 2 iterations,
    then ``--resume`` with a changed queue length and with the MoCo v2
    config each end as one line after the runner's first lines (no config
    dump, no traceback)."""
    import os.path as osp
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    data = dict(
        batch_size=2,
        num_workers=0,
        persistent_workers=False,
        dataset=dict(data_root=f'{toy_coco}/'))
    cfgs = {}
    for name, base in [('ccop', 'ccop_r18_toy.py'),
                       ('moco', 'mocov2_r18_toy.py')]:
        path = tmp_path / f'{name}.py'
        base = osp.join(root, 'configs', 'mmregion', base)
        path.write_text(f'_base_ = {base!r}\n'
                        f'train_dataloader = dict({data!r})\n'
                        'train_cfg = dict(max_iters=2)\n'
                        'default_hooks = dict(checkpoint=dict(interval=2))\n')
        cfgs[name] = str(path)
    props = ('train_dataloader.dataset.pipeline.1.proposal_file='
             f'{toy_proposals}')
    env = dict(os.environ, MMREGION_DEBUG='0')

    def train(*args):
        return subprocess.run(
            [sys.executable,
             osp.join(root, 'tools', 'train.py'), *args],
            capture_output=True,
            text=True,
            cwd=root,
            env=env,
            timeout=600)

    work = str(tmp_path / 'w')
    out = train(cfgs['ccop'], '--work-dir', work, '--cfg-options', props)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'Config:' not in out.stdout and 'marker' not in out.stdout
    assert 'System environment and config written to' in out.stdout
    assert len(out.stdout.splitlines()) < 40, out.stdout
    ckpt = osp.join(work, 'iter_2.pth')
    for args, needle in [
        ((cfgs['ccop'], '--work-dir', work, '--resume', '--cfg-options', props,
          'model.img_queue_len=16'), "'img_queue.queue' has shape"),
        ((cfgs['moco'], '--work-dir', str(tmp_path / 'w2'), '--resume', ckpt),
         'is of another model than this config builds'),
    ]:
        out = train(*args)
        assert out.returncode == 1
        assert 'Traceback' not in out.stderr, out.stderr[-3000:]
        err = out.stderr.strip().splitlines()
        assert err[-1].startswith(f'error: --resume: checkpoint {ckpt}')
        assert needle in err[-1]
        assert len(out.stdout.splitlines()) + len(err) < 12, out.stdout

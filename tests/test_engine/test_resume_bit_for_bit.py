"""Train straight vs. SIGKILL mid-run + ``--resume``: same losses, same
weights.

For every algorithm's tiny config. The final checkpoints are compared key by
key, which covers the online and momentum encoders, the queues, the EMA
teacher and the curriculum state (all of them live in the state dict).
"""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch
from tool_utils import TOY_CONFIGS, toy_data_options

from mmregion.utils import load_checkpoint_safely

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN = osp.join(ROOT, 'tools', 'train.py')
MAX_ITERS, INTERVAL = 4, 2  # killed after iteration 2, resumed for 2

CONFIGS = TOY_CONFIGS
_data_options = toy_data_options


def _cmd(config, work, data_opts, resume=False):
    cmd = [
        sys.executable, TRAIN,
        osp.join(ROOT, config), '--work-dir',
        str(work), '--cfg-options', *data_opts,
        f'train_cfg.max_iters={MAX_ITERS}',
        f'default_hooks.checkpoint.interval={INTERVAL}',
        'default_hooks.logger.interval=1', 'log_processor.window_size=1',
        'randomness.seed=0'
    ]
    return cmd + (['--resume'] if resume else [])


# one thread per process: the straight run and the run to kill go side by
# side on the two cores
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def _losses(work):
    """iteration -> logged total loss, from every run in ``work``."""
    out = {}
    for path in sorted(work.glob('*/vis_data/scalars.json')):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if 'loss' in rec and 'iter' in rec:
                out[rec['iter']] = rec['loss']
    return out


@pytest.mark.slow
@pytest.mark.parametrize('config', CONFIGS)
def test_resume_is_bit_for_bit(config, toy_coco, toy_proposals, tmp_path):
    data_opts = _data_options(config, toy_coco, toy_proposals)
    straight, killed = tmp_path / 'straight', tmp_path / 'killed'

    # the straight run and the run to kill share the two cores
    straight_log = open(tmp_path / 'straight.log', 'w')
    run = subprocess.Popen(
        _cmd(config, straight, data_opts),
        cwd=ROOT,
        env=ENV,
        stdout=straight_log,
        stderr=subprocess.STDOUT)
    log = open(tmp_path / 'killed.log', 'w')
    proc = subprocess.Popen(
        _cmd(config, killed, data_opts),
        cwd=ROOT,
        env=ENV,
        stdout=log,
        stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 600
        # mmengine writes `last_checkpoint` right after the checkpoint itself;
        # --resume finds the checkpoint through it
        while not (killed / 'last_checkpoint').exists():
            assert proc.poll() is None, (tmp_path /
                                         'killed.log').read_text()[-3000:]
            assert time.time() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        assert not (killed / f'iter_{MAX_ITERS}.pth').exists()
        assert run.wait(timeout=600) == 0, (tmp_path /
                                            'straight.log').read_text()[-3000:]
    finally:
        # a failed assertion above must not leave either run behind
        for p in (run, proc):
            if p.poll() is None:
                p.kill()
                p.wait()
        straight_log.close()
        log.close()

    resumed = subprocess.run(
        _cmd(config, killed, data_opts, resume=True),
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed epoch' in resumed.stdout + resumed.stderr

    # the loss curves agree on every iteration both runs logged
    a, b = _losses(straight), _losses(killed)
    assert set(range(1, MAX_ITERS + 1)) <= set(a)
    assert MAX_ITERS in b
    for it in sorted(set(a) & set(b)):
        assert a[it] == pytest.approx(b[it], rel=1e-5, abs=1e-6), it

    # the final weights, buffers (queues, momentum/EMA copies, curriculum)
    sd_a = load_checkpoint_safely(
        str(straight / f'iter_{MAX_ITERS}.pth'), 'cpu')['state_dict']
    sd_b = load_checkpoint_safely(
        str(killed / f'iter_{MAX_ITERS}.pth'), 'cpu')['state_dict']
    assert sd_a.keys() == sd_b.keys()
    for key in sd_a:
        ta, tb = sd_a[key], sd_b[key]
        if ta.is_floating_point():
            assert torch.allclose(ta, tb, rtol=1e-5, atol=1e-6), key
        else:
            assert torch.equal(ta, tb), key

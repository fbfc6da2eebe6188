"""Launchers on CPU: ``--launcher slurm`` from SLURM_* variables, and
``tools/slurm_train.sh`` (through a fake ``srun`` starting 2 local tasks)
killed and resumed against an uninterrupted ``tools/dist_train.sh`` run."""
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from distributed_helpers import free_port

from mmregion.apis import cli
from mmregion.apis.cli import slurm_dist_env
from mmregion.utils.errors import UserError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
DIST_VARS = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')

# starts --ntasks copies of the command with the SLURM_* variables srun sets
FAKE_SRUN = r'''#!/usr/bin/env bash
echo "$@" > "$FAKE_SRUN_LOG"
n=1
while [ $# -gt 0 ]; do
    case "$1" in
        --ntasks=*) n=${1#--ntasks=}; shift ;;
        -p) shift 2 ;;
        -*) shift ;;
        *) break ;;
    esac
done
pids=()
for ((i = 0; i < n; i++)); do
    SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NTASKS=$n \
        SLURM_NODELIST=localhost "$@" &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
'''


def _clean_env(**extra):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in DIST_VARS and not k.startswith('SLURM_')
    }
    env.update(PYTHONPATH=ROOT, OMP_NUM_THREADS='1', **extra)
    return env


def test_first_slurm_host(monkeypatch):
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    assert cli._first_slurm_host('node7') == 'node7'
    assert cli._first_slurm_host('node7,node8') == 'node7'
    assert cli._first_slurm_host('gpu-[03-05,9],cpu1') == 'gpu-03'
    assert cli._first_slurm_host('a[7],b[1-2]') == 'a7'


def test_slurm_dist_env(monkeypatch):
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    slurm = dict(
        SLURM_PROCID='3',
        SLURM_NTASKS='8',
        SLURM_LOCALID='1',
        SLURM_NODELIST='n[1-2]')
    assert slurm_dist_env(slurm) == dict(
        RANK='3',
        WORLD_SIZE='8',
        LOCAL_RANK='1',
        MASTER_ADDR='n1',
        MASTER_PORT='29500')
    env = slurm_dist_env(dict(slurm, MASTER_ADDR='h', MASTER_PORT='1234'))
    assert (env['MASTER_ADDR'], env['MASTER_PORT']) == ('h', '1234')
    with pytest.raises(UserError, match='SLURM_PROCID, SLURM_NTASKS'):
        slurm_dist_env({'SLURM_NODELIST': 'n1'})


@pytest.mark.slow
def test_launcher_slurm_on_cpu_one_task():
    """Failed before with 'environment variable RANK expected'."""
    code = ('from mmengine.config import Config\n'
            'import torch.distributed as d\n'
            'from mmregion.apis.cli import setup_cpu_distributed\n'
            'cfg = Config(dict())\n'
            'setup_cpu_distributed(cfg, "slurm")\n'
            'print(d.get_rank(), d.get_world_size(), d.get_backend(),\n'
            '      cfg.model_wrapper_cfg.device_ids)\n')
    env = _clean_env(
        SLURM_PROCID='0',
        SLURM_NTASKS='1',
        SLURM_LOCALID='0',
        SLURM_NODELIST='localhost',
        MASTER_PORT=str(free_port()))
    out = subprocess.run([sys.executable, '-c', code],
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ['0', '1', 'gloo', 'None']


def _train_opts(toy_coco, toy_proposals):
    return [
        '--cfg-options', f'train_dataloader.dataset.data_root={toy_coco}/',
        f'train_dataloader.dataset.pipeline.1.proposal_file={toy_proposals}',
        'train_dataloader.batch_size=2', 'train_cfg.max_iters=4',
        'default_hooks.checkpoint.interval=2'
    ]


@pytest.mark.slow
def test_two_rank_slurm_run_killed_and_resumed(toy_coco, toy_proposals,
                                               tmp_path):
    """CCOP toy, 2 ranks: killed after its iteration-2 checkpoint and
    resumed through slurm_train.sh, it ends with the weights, queues and
    EMA teacher of an uninterrupted 2-rank dist_train.sh run."""
    config = osp.join(ROOT, 'configs', 'mmregion', 'ccop_r18_toy.py')
    opts = _train_opts(toy_coco, toy_proposals)
    ref = tmp_path / 'ref'
    out = subprocess.run([
        'bash',
        osp.join(TOOLS, 'dist_train.sh'), config, '2', '--work-dir',
        str(ref), *opts
    ],
                         env=_clean_env(
                             PORT=str(free_port()), PYTHON=sys.executable),
                         cwd=ROOT,
                         capture_output=True,
                         text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]

    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(FAKE_SRUN)
    (bin_dir / 'srun').chmod(0o755)
    srun_log = tmp_path / 'srun_args.txt'
    env = _clean_env(
        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
        FAKE_SRUN_LOG=str(srun_log),
        GPUS='2',
        GPUS_PER_NODE='0',
        TASKS_PER_NODE='2',
        MASTER_PORT=str(free_port()),
        PYTHON=sys.executable)
    work = tmp_path / 'slurm'
    cmd = [
        'bash',
        osp.join(TOOLS, 'slurm_train.sh'), 'cpu', 'ccop', config,
        str(work), *opts
    ]
    log = open(tmp_path / 'killed.log', 'w')
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True)
    deadline = time.time() + 600
    while not (work / 'last_checkpoint').exists():
        assert proc.poll() is None, (tmp_path / 'killed.log').read_text()
        assert time.time() < deadline, 'no checkpoint after 600 s'
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # srun and both tasks
    proc.wait()
    log.close()
    assert not (work / 'iter_4.pth').exists(), 'finished before the kill'
    args = srun_log.read_text()
    assert '--gres' not in args and '--ntasks=2' in args

    out = subprocess.run(
        cmd + ['--resume'],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'resumed epoch' in out.stdout + out.stderr

    from mmregion.utils import load_checkpoint_safely
    a = load_checkpoint_safely(str(ref / 'iter_4.pth'))
    b = load_checkpoint_safely(str(work / 'iter_4.pth'))
    assert a['meta']['rng_state']['per_rank_torch'][1] is not None
    state_a, state_b = a['state_dict'], b['state_dict']
    assert set(state_a) == set(state_b)
    for k in state_a:
        torch.testing.assert_close(
            state_b[k], state_a[k], rtol=0, atol=0, msg=lambda m: f'{k}: {m}')


def test_sync_bn_to_bn_counts_and_converts():
    from mmengine.config import Config
    cfg = Config(
        dict(
            sync_bn='torch',
            model=dict(
                backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=1)),
                heads=[dict(norm_cfg=dict(type='mmdet.SyncBN'))],
                neck=dict(norm_cfg=dict(type='BN')))))
    assert cli.sync_bn_to_bn(cfg) == 3
    assert cfg.model.backbone.norm_cfg == dict(type='BN', requires_grad=1)
    assert cfg.model.heads[0].norm_cfg.type == 'BN'
    assert cfg.sync_bn is None
    assert cli.sync_bn_to_bn(cfg) == 0


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU path')
@pytest.mark.parametrize('nproc', [1, 2])
def test_dist_train_and_test_with_a_finetuning_config_on_cpu(
        nproc, toy_coco, tmp_path):
    """The SyncBN fine-tuning config through dist_train.sh / dist_test.sh
    on CPU (stopped with 'SyncBatchNorm layers only work with GPU
    modules' before), 1 and 2 processes, 2 iterations."""
    config = osp.join(ROOT, 'configs', 'benchmarks',
                      'mask-rcnn_r18_fpn_toy.py')
    root = f'{toy_coco}/'
    ann = f'{root}annotations/instances_val.json'
    opts = [
        '--cfg-options', f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}',
        'model.backbone.init_cfg=None', 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2'
    ]
    work = tmp_path / 'w'
    env = _clean_env(PORT=str(free_port()), PYTHON=sys.executable)
    out = subprocess.run([
        'bash',
        osp.join(TOOLS, 'dist_train.sh'), config,
        str(nproc), '--work-dir',
        str(work), *opts
    ],
                         env=env,
                         cwd=ROOT,
                         capture_output=True,
                         text=True,
                         timeout=900)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert (work / 'iter_2.pth').is_file()
    # one line, from rank 0 only
    assert log.count('SyncBN norm_cfg(s) in the config become BN') == 1
    assert 'SyncBatchNorm layers only work' not in log

    env = _clean_env(PORT=str(free_port()), PYTHON=sys.executable)
    out = subprocess.run([
        'bash',
        osp.join(TOOLS, 'dist_test.sh'), config,
        str(work / 'iter_2.pth'),
        str(nproc), '--work-dir',
        str(tmp_path / 't'), *opts
    ],
                         env=env,
                         cwd=ROOT,
                         capture_output=True,
                         text=True,
                         timeout=900)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert 'coco/bbox_mAP' in log

"""tools/train.py killed mid-run and restarted with --resume continues."""
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN = osp.join(ROOT, 'tools', 'train.py')
CONFIG = osp.join(ROOT, 'configs', 'mmregion', 'mocov2_r18_toy.py')


def _cmd(work, data_root, *extra):
    return [
        sys.executable, TRAIN, CONFIG, '--work-dir',
        str(work), '--cfg-options',
        f'train_dataloader.dataset.data_root={data_root}',
        'train_cfg.max_iters=12', 'default_hooks.checkpoint.interval=4',
        'param_scheduler.0.T_max=12', *extra
    ]


@pytest.mark.slow
def test_sigkill_then_resume_continues(toy_coco, tmp_path):
    work = tmp_path / 'work'
    first_log = tmp_path / 'first_run.log'
    with open(first_log, 'w') as log_file:
        proc = subprocess.Popen(
            _cmd(work, toy_coco),
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    # `last_checkpoint` (read by --resume) is written right after iter_4.pth
    while not (work / 'last_checkpoint').exists():
        assert proc.poll() is None, 'training died before the 1st ' \
            'checkpoint:\n' + first_log.read_text()[-3000:]
        assert time.time() < deadline, 'no checkpoint after 300 s'
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (work / 'iter_12.pth').exists(), 'finished before the kill'

    out = subprocess.run(
        _cmd(work, toy_coco) + ['--resume'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    m = re.search(r'resumed epoch: \d+, iter: (\d+)', log)
    assert m is not None, log[-3000:]
    assert int(m.group(1)) >= 4
    assert (work / 'iter_12.pth').exists()
    # the resumed run logged only the remaining iterations
    iters = [
        int(i) for i in re.findall(r'Iter\(train\)\s+\[\s*(\d+)/12\]', log)
    ]
    assert iters and min(iters) > int(m.group(1)) and max(iters) == 12


@pytest.mark.slow
def test_dist_train_one_process_on_cpu(toy_coco, tmp_path):
    """tools/dist_train.sh CONFIG 1 runs with torch.distributed.run (gloo)."""
    work = tmp_path / 'dist'
    env = dict(os.environ, PORT=str(29600 + os.getpid() % 300))
    out = subprocess.run([
        'bash',
        osp.join(ROOT, 'tools', 'dist_train.sh'), CONFIG, '1', '--work-dir',
        str(work), '--cfg-options',
        f'train_dataloader.dataset.data_root={toy_coco}',
        'train_cfg.max_iters=2', 'param_scheduler.0.T_max=2'
    ],
                         cwd=ROOT,
                         capture_output=True,
                         text=True,
                         timeout=300,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    # the environment dump goes to the log file only (QuietRunner)
    import glob
    log_files = glob.glob(str(work / '*' / '*.log'))
    assert log_files and 'Distributed training: True' in open(
        log_files[0]).read()
    assert re.search(r'Iter\(train\)\s+\[2/2\]', log)

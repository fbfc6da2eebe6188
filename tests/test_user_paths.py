"""Every documented way to run a config, from a wheel and from an editable
install, each trained for 2 iterations (not only parsed).

Tools: our ``tools/train.py`` (on a user config that inherits
``_base_ = 'mmregion::mmregion/ccop_r18_toy.py'``, the README's example),
mmdet's and mmpretrain's own ``tools/train.py`` (on the installed config)
and ``mim train mmregion ccop_r18_toy.py`` (the config found by name).
Install modes: a wheel of this checkout installed with ``pip --target``, and
``pip install -e`` of a copy of this checkout into a throw-away virtual
environment (``--system-site-packages``, for the stack), whose
``mmregion/.mim`` links setup.py makes. Nothing is downloaded.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from test_packaging import _build_wheel, _clean_pip_env  # noqa: E402

pytestmark = pytest.mark.slow

TOOLS = ('tools/train.py', 'mmdet train.py', 'mmpretrain train.py',
         'mim train')
USER_CFG = """_base_ = 'mmregion::mmregion/{name}.py'
train_dataloader = dict(batch_size=2)
train_cfg = dict(max_iters=2)
default_hooks = dict(checkpoint=dict(interval=2))
"""


class Install:
    """An installed mmregion: its python, environment and package folder."""

    def __init__(self, python: str, env: dict, package: str):
        self.python, self.env, self.package = python, env, package

    def run(self, args, cwd, timeout=600):
        return subprocess.run([self.python, *args],
                              cwd=cwd,
                              env=self.env,
                              capture_output=True,
                              text=True,
                              timeout=timeout)


def _work_dir(base: Path, toy_coco, toy_proposals) -> Path:
    """A folder away from the checkout with the toy data where the toy
    configs read it (``data/toy_coco``)."""
    work = base / 'work'
    (work / 'data' / 'toy_coco').mkdir(parents=True)
    for item in toy_coco.iterdir():
        os.symlink(item, work / 'data' / 'toy_coco' / item.name)
    (work / 'data' / 'toy_coco' / 'proposals').mkdir()
    os.symlink(toy_proposals,
               work / 'data' / 'toy_coco' / 'proposals' / 'train')
    return work


@pytest.fixture(scope='module')
def wheel_install(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('wheel')
    wheel = _build_wheel(tmp)
    target = tmp / 'site'
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
        '--no-index', '--target',
        str(target),
        str(wheel)
    ],
                   check=True,
                   env=_clean_pip_env(),
                   timeout=300)
    env = _clean_pip_env(PYTHONPATH=str(target), OMP_NUM_THREADS='1')
    return Install(sys.executable, env, str(target / 'mmregion'))


@pytest.fixture(scope='module')
def editable_install(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('editable')
    src = tmp / 'src'
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns('.git', 'build', 'dist', 'work_dirs',
                                      'data', '*.egg-info', '__pycache__',
                                      '.pytest_cache', '.mim'))
    venv = tmp / 'venv'
    subprocess.run([
        sys.executable, '-m', 'venv', '--system-site-packages',
        '--without-pip',
        str(venv)
    ],
                   check=True,
                   timeout=120)
    python = str(venv / 'bin' / 'python')
    out = subprocess.run([
        sys.executable, '-m', 'pip', '--python', python, 'install', '-q',
        '--no-deps', '--no-build-isolation', '--no-index', '-e',
        str(src)
    ],
                         capture_output=True,
                         text=True,
                         env=_clean_pip_env(),
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    mim_dir = src / 'mmregion' / '.mim'
    for item in ('configs', 'tools', 'benchmarks', 'model-index.yml'):
        assert (mim_dir / item).is_symlink(), item
        assert (mim_dir / item).resolve() == (src / item).resolve()
    env = _clean_pip_env(
        OMP_NUM_THREADS='1',
        VIRTUAL_ENV=str(venv),
        PATH=f'{venv / "bin"}{os.pathsep}{os.environ["PATH"]}')
    return Install(python, env, str(src / 'mmregion'))


def _library_train_script(library: str) -> str:
    lib = __import__(library)
    script = osp.join(osp.dirname(lib.__file__), '.mim', 'tools', 'train.py')
    assert osp.isfile(script), script
    return script


def _run_tool(install: Install, tool: str, work: Path, name: str):
    """Train ``name`` (a shipped toy config) for 2 iterations with ``tool``;
    return (process, work_dir).

    Our train.py reads a user config inheriting ``mmregion::...`` (it
    imports mmregion first, which tells mmengine the ``mmregion`` scope);
    mmdet's / mmpretrain's train.py read the installed config by its path
    (mmengine resolves ``pkg::`` only for the packages it knows or that are
    imported, and those scripts import mmregion only from the config);
    ``mim train`` finds it by name.
    """
    out_dir = work / f'w_{tool.split()[0].replace("/", "_")}_{name}'
    iters = [
        '--cfg-options', 'train_cfg.max_iters=2',
        'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2'
    ]
    shipped = osp.join(install.package, '.mim', 'configs', 'mmregion',
                       f'{name}.py')
    if tool == 'mim train':
        mim = shutil.which('mim')
        if mim is None:
            pytest.skip('openmim is not installed')
        args = [
            mim, 'train', 'mmregion', f'{name}.py', '--work-dir',
            str(out_dir), *iters
        ]
    elif tool == 'tools/train.py':
        cfg = work / f'my_{name}.py'
        cfg.write_text(USER_CFG.format(name=name))
        script = osp.join(install.package, '.mim', 'tools', 'train.py')
        args = [script, str(cfg), '--work-dir', str(out_dir)]
    else:
        script = _library_train_script(tool.split()[0])
        args = [script, shipped, '--work-dir', str(out_dir), *iters]
    return install.run(args, cwd=work), out_dir


def _assert_two_iterations(out, out_dir: Path, install: Install):
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert (out_dir / 'iter_2.pth').is_file(), log[-3000:]
    # the installed copy ran, not a checkout on the path
    assert install.package in log or 'mim train' not in log


@pytest.mark.parametrize('tool', TOOLS)
def test_wheel(wheel_install, tool, tmp_path, toy_coco, toy_proposals):
    work = _work_dir(tmp_path, toy_coco, toy_proposals)
    out, out_dir = _run_tool(wheel_install, tool, work, 'ccop_r18_toy')
    _assert_two_iterations(out, out_dir, wheel_install)


@pytest.mark.parametrize('tool', TOOLS)
def test_editable(editable_install, tool, tmp_path, toy_coco, toy_proposals):
    work = _work_dir(tmp_path, toy_coco, toy_proposals)
    out, out_dir = _run_tool(editable_install, tool, work, 'ccop_r18_toy')
    _assert_two_iterations(out, out_dir, editable_install)


@pytest.mark.parametrize(
    'name',
    ['plrc_r18_toy', 'proseco_deformable-detr_r18_toy', 'mocov2_r18_toy'])
def test_wheel_other_toy_configs_through_inheritance(wheel_install, name,
                                                     tmp_path, toy_coco,
                                                     toy_proposals):
    """The README's inheritance example with every other toy config (each
    stopped at iteration 1 with ``default_collate() got an unexpected
    keyword argument '_scope_'``)."""
    work = _work_dir(tmp_path, toy_coco, toy_proposals)
    out, out_dir = _run_tool(wheel_install, 'tools/train.py', work, name)
    _assert_two_iterations(out, out_dir, wheel_install)


@pytest.mark.parametrize('mode', ['wheel', 'editable'])
def test_mim_search_and_check_gpu_from_the_package(mode, request, tmp_path):
    """``mim search`` reads the shipped metafiles and ``mim run mmregion
    check_gpu`` imports the shipped benchmarks/ scripts."""
    install = request.getfixturevalue(f'{mode}_install')
    mim = shutil.which('mim')
    if mim is None:
        pytest.skip('openmim is not installed')
    out = install.run([mim, 'search', 'mmregion', '--valid-config'],
                      cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'ccop_r50_coco' in out.stdout
    out = install.run([
        mim, 'run', 'mmregion', 'check_gpu', '--device', 'cpu', '--tiny',
        '--iters', '1', '--warmup', '0'
    ],
                      cwd=tmp_path,
                      timeout=900)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert 'No module named' not in log

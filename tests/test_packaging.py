"""Packaging: ranges not pins, the wheel's ``.mim``, metafiles, project files.

The slow tests build a real wheel of this checkout and install it
*non-editably*: into a bare virtual environment that holds an older torch
(metadata only, with a newer torch offered next to the wheel), to show that
pip keeps the user's torch; and into a ``--target`` folder, to show that
``mmregion::`` config inheritance, ``mim train mmregion`` and
``mim search mmregion`` work from the installed package. Nothing is
downloaded: pip runs with ``--no-index`` and without the machine's pip
configuration.
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import yaml

from mmregion import dependency

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
STACK = ('torch', 'torchvision', 'mmcv', 'mmengine', 'mmdet', 'mmpretrain')


def _requirement_names(fname):
    names = []
    for line in open(osp.join(ROOT, fname)):
        line = line.split('#', 1)[0].strip()
        if line and not line.startswith('-'):
            names.append(re.split(r'[<>=!~; \[]', line, 1)[0].lower())
    return names


def test_install_requires_has_no_stack_pins():
    runtime = _requirement_names('requirements/runtime.txt')
    assert not set(runtime) & set(STACK), runtime
    setup_cfg = open(osp.join(ROOT, 'setup.cfg')).read()
    assert not re.search(r'^\s*(torch|mmcv|mmengine|mmdet|mmpretrain)\s*[=<>]',
                         setup_cfg, re.M)


def test_requirement_ranges_match_dependency_py():
    """mminstall.txt + runtime.txt ranges == mmregion/dependency.py's."""
    ranges = {}
    for fname in ('mminstall.txt', 'runtime.txt'):
        for line in open(osp.join(ROOT, 'requirements', fname)):
            line = line.split('#', 1)[0].strip()
            if line:
                name = re.split(r'[<>=]', line, 1)[0]
                ranges[name] = (re.search(r'>=([\w.]+)',
                                          line), re.search(r'<([\w.]+)', line))
    expected = {**dependency.SUPPORTED, **dependency.INSTALL_RANGES}
    assert set(expected) <= set(ranges), set(expected) - set(ranges)
    for name, (got_lo, got_hi) in ranges.items():
        lo, hi = expected.get(name, (None, None))
        assert (got_lo.group(1) if got_lo else None) == lo, name
        assert (got_hi.group(1) if got_hi else None) == hi, name


def test_old_torch_is_reported_with_the_range(monkeypatch):
    real = dependency._installed
    monkeypatch.setattr(dependency, '_installed', lambda n: '1.13.1'
                        if n == 'torch' else real(n))
    problems = dependency.find_dependency_problems()
    assert any(
        p.startswith('torch==1.13.1') and '>=2.0.0' in p
        for p in problems), problems


def test_version_order():
    v = dependency.version_tuple
    assert v('2.0.0rc4') < v('2.0.0') < v('2.1.0+cu121') < v('2.13.0')
    assert v('0.10.7') < v('0.11.0')


def _metafile_configs():
    index = yaml.safe_load(open(osp.join(ROOT, 'model-index.yml')))
    configs = []
    for meta in index['Import']:
        models = yaml.safe_load(open(osp.join(ROOT, meta)))['Models']
        configs += [m['Config'] for m in models]
    return configs


def test_every_config_has_a_metafile_entry():
    configs = _metafile_configs()
    assert len(configs) == len(set(configs))
    shipped = sorted(
        osp.relpath(p, ROOT) for sub in ('mmregion', 'benchmarks')
        for p in Path(ROOT, 'configs', sub).glob('*.py'))
    assert sorted(configs) == shipped


def test_project_files():
    assert 'Apache License' in open(osp.join(ROOT, 'LICENSE')).read(400)
    hooks = yaml.safe_load(open(osp.join(ROOT, '.pre-commit-config.yaml')))
    ids = {h['id'] for repo in hooks['repos'] for h in repo['hooks']}
    assert {'flake8', 'isort', 'yapf'} <= ids
    assert '## [Unreleased]' in open(osp.join(ROOT, 'CHANGELOG.md')).read()
    out = subprocess.run(
        ['git', 'grep', '-lE', r'^# Copyright \(c\) OpenMMLab'],
        cwd=ROOT,
        capture_output=True,
        text=True)
    if out.returncode in (0, 1):  # 1: no match (128: not a git checkout)
        assert out.stdout.split() == []


# ---------------------------------------------------------------- slow --


def _clean_pip_env(**extra):
    """The environment without the machine's pip configuration."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith('PIP_') and k != 'PYTHONPATH'
    }
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK='1',
        PIP_NO_INPUT='1',
        **extra)
    return env


def _build_wheel(tmp_path: Path) -> Path:
    """A wheel of this checkout, built from a clean copy (no stale build/)."""
    src = tmp_path / 'src'
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns('.git', 'build', 'dist', 'work_dirs',
                                      'data', '*.egg-info', '__pycache__',
                                      '.pytest_cache'))
    out = tmp_path / 'wheels'
    subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
        '--no-build-isolation', '--no-index', '-w',
        str(out),
        str(src)
    ],
                   check=True,
                   env=_clean_pip_env(),
                   timeout=300)
    (wheel, ) = out.glob('mmregion-*.whl')
    return wheel


def _fake_dist(site: Path, name: str, version: str) -> None:
    """Installed-package metadata only (what pip's resolver reads)."""
    info = site / f'{name.replace("-", "_")}-{version}.dist-info'
    info.mkdir(parents=True)
    (info / 'METADATA'
     ).write_text(f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n')
    (info / 'INSTALLER').write_text('pip\n')
    (info / 'RECORD').write_text('')


def _fake_wheel(folder: Path, name: str, version: str) -> None:
    """A metadata-only wheel: pip *could* pick it to change ``name``."""
    dist = f'{name.replace("-", "_")}-{version}'
    with zipfile.ZipFile(folder / f'{dist}-py3-none-any.whl', 'w') as z:
        z.writestr(
            f'{dist}.dist-info/METADATA',
            f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n')
        z.writestr(
            f'{dist}.dist-info/WHEEL', 'Wheel-Version: 1.0\n'
            'Generator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n')
        z.writestr(f'{dist}.dist-info/RECORD', '')


# what a cluster user might have: torch 2.3 with a prebuilt mmcv 2.1.0
OLD_ENV = {
    'torch': '2.3.0',
    'torchvision': '0.18.0',
    'mmcv': '2.1.0',
    'mmengine': '0.10.4',
    'mmdet': '3.3.0',
    'mmpretrain': '1.2.0',
    'numpy': '1.26.4',
    'opencv-contrib-python-headless': '4.10.0.84',
    'pycocotools': '2.0.7',
    'scipy': '1.13.1',
    'setuptools': '69.5.1'
}


@pytest.mark.slow
def test_wheel_installs_without_touching_an_older_torch(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert 'mmregion/.mim/model-index.yml' in names
    assert 'mmregion/.mim/configs/mmregion/ccop_r50_coco.py' in names
    assert 'mmregion/.mim/tools/train.py' in names

    venv = tmp_path / 'venv'  # bare: no --system-site-packages
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip',
                    str(venv)],
                   check=True,
                   timeout=120)
    (site, ) = venv.glob('lib/python3*/site-packages')
    for name, version in OLD_ENV.items():
        _fake_dist(site, name, version)
    offered = tmp_path / 'offered'
    offered.mkdir()
    for name, version in (('torch', '2.13.0'), ('torchvision', '0.28.0'),
                          ('mmcv', '2.1.0'), ('mmengine', '0.10.7')):
        _fake_wheel(offered, name, version)

    report = tmp_path / 'report.json'
    py = str(next(venv.glob('bin/python')))
    out = subprocess.run([
        sys.executable, '-m', 'pip', '--python', py, 'install', '--no-index',
        '--find-links',
        str(wheel.parent), '--find-links',
        str(offered), '--report',
        str(report), 'mmregion'
    ],
                         capture_output=True,
                         text=True,
                         env=_clean_pip_env(),
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    installed = [(i['metadata']['name'], i['metadata']['version'])
                 for i in json.loads(report.read_text())['install']]
    from mmregion.version import __version__
    assert installed == [('mmregion', __version__)], installed
    versions = dict(p.name[:-len('.dist-info')].split('-', 1)
                    for p in site.glob('*.dist-info'))
    assert versions['torch'] == '2.3.0' and versions['mmcv'] == '2.1.0'
    assert (site / 'mmregion' / '.mim' / 'configs').is_dir()

    # tools/install.sh on that environment: keeps the older torch and
    # mmengine (in range), plans what differs from the lock (scipy 1.13.1
    # etc.); --no-install refuses and lists them
    def install_sh(flag):
        return subprocess.run(['bash', 'tools/install.sh', flag],
                              cwd=ROOT,
                              env=dict(os.environ, PYTHON=py),
                              capture_output=True,
                              text=True,
                              timeout=300)

    out = install_sh('--dry-run')
    assert out.returncode == 0, out.stdout + out.stderr
    assert '[install] torch 2.3.0 found (supported >=2.0.0): keeping it' \
        in out.stdout
    assert '[install] mmengine 0.10.4 found' in out.stdout
    planned = [ln for ln in out.stdout.splitlines() if 'would install' in ln]
    assert planned and not any('torch' in ln for ln in planned), planned
    out = install_sh('--no-install')
    assert out.returncode == 1
    assert 'missing (--no-install)' in out.stderr and 'scipy' in out.stderr


@pytest.mark.slow
def test_installed_package_serves_configs_to_mmengine_and_mim(
        tmp_path, toy_coco, toy_proposals):
    """``mmregion::`` inheritance, ``mim train`` and ``mim search``."""
    mim = shutil.which('mim')
    if mim is None:
        pytest.skip('openmim is not installed (tools/install.sh installs it)')
    wheel = _build_wheel(tmp_path)
    target = tmp_path / 'site'
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
        '--no-index', '--target',
        str(target),
        str(wheel)
    ],
                   check=True,
                   env=_clean_pip_env(),
                   timeout=300)
    # a working directory away from the checkout, with the toy data where
    # the toy configs read it
    work = tmp_path / 'work'
    (work / 'data' / 'toy_coco').mkdir(parents=True)
    for item in toy_coco.iterdir():
        os.symlink(item, work / 'data' / 'toy_coco' / item.name)
    os.symlink(toy_proposals, work / 'data' / 'toy_coco' / 'proposals')
    env = _clean_pip_env(PYTHONPATH=str(target), OMP_NUM_THREADS='1')

    # 1. a user config inheriting from the installed package
    (work / 'my_ccop.py').write_text(
        "_base_ = 'mmregion::mmregion/ccop_r18_toy.py'\n"
        'train_cfg = dict(max_iters=3)\n')
    probe = textwrap.dedent("""
        import mmregion
        from mmengine.config import Config
        cfg = Config.fromfile('my_ccop.py')
        print(mmregion.__file__)
        print(cfg.model.type, cfg.train_cfg.max_iters, cfg.filename)
    """)
    out = subprocess.run([sys.executable, '-c', probe],
                         cwd=work,
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.split('\n')
    assert lines[0].startswith(str(target)), lines
    assert lines[1].startswith('CCOP 3 '), lines

    # 2. mim search reads the shipped model-index.yml and metafiles
    out = subprocess.run([mim, 'search', 'mmregion', '--valid-config'],
                         cwd=work,
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'ccop_r50_coco' in out.stdout and 'plrc_r50_coco' in out.stdout

    # 3. mim train finds the config by name and runs the shipped train.py
    out = subprocess.run([
        mim, 'train', 'mmregion', 'mocov2_r18_toy.py', '--work-dir',
        str(work / 'w'), '--cfg-options', 'train_cfg.max_iters=2',
        'default_hooks.checkpoint.interval=2'
    ],
                         cwd=work,
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert str(target / 'mmregion' / '.mim' / 'tools' / 'train.py') in \
        out.stdout
    assert (work / 'w' / 'iter_2.pth').is_file()

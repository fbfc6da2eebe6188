"""The lock (requirements/constraints.txt), the ranges and the installer agree.

The lock must satisfy every range that the requirement files,
``mmregion/dependency.py`` and docs/get_started.md state, and
``tools/install.py`` must replace an out-of-range numpy while keeping an
in-range stack. The network-bound resolution check (``tools/lock_stack.py
--check``) runs in ``.ci/run``, not here.
"""
import os
import os.path as osp
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from mmregion import dependency

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools'))
import lock_stack  # noqa: E402

LOCK = lock_stack.read_lock()
REQUIREMENT_FILES = lock_stack.TOP_LEVEL + ('mminstall.txt', 'optional.txt')


def _requirements(fname):
    for line in open(osp.join(ROOT, 'requirements', fname)):
        line = line.split('#')[0].strip()
        if line and not line.startswith('-'):
            yield Requirement(line)


def test_lock_pins_the_stack_exactly():
    for name in lock_stack.HAND_PINNED:
        assert name in LOCK, name
    text = open(lock_stack.LOCK).read()
    # the registry's torch build, never a local '+cpu' wheel
    assert re.search(r'^torch===\S+$', text, re.M)
    assert re.search(r'^torchvision===\S+$', text, re.M)
    assert not any(
        name.startswith('opencv') and name != 'opencv-contrib-python-headless'
        for name in LOCK)


@pytest.mark.parametrize('fname', REQUIREMENT_FILES)
def test_lock_satisfies_every_requirement_range(fname):
    for req in _requirements(fname):
        name = lock_stack.canonical(req.name)
        assert name in LOCK, f'{fname}: {req} is not in the lock'
        assert req.specifier.contains(LOCK[name], prereleases=True), \
            f'{fname}: {req} excludes the locked {LOCK[name]}'


def test_lock_is_inside_the_supported_ranges():
    ranges = {**dependency.SUPPORTED, **dependency.INSTALL_RANGES}
    v = dependency.version_tuple
    for name, (lo, hi) in ranges.items():
        pin = LOCK[name]
        assert not lo or v(pin) >= v(lo), (name, pin, lo)
        assert not hi or v(pin) < v(hi), (name, pin, hi)
    assert v(LOCK['numpy']) < v('2')  # mmcv 2.1's adjust_hue (#20)


def test_linters_are_the_locked_ones():
    for req in _requirements('lint.txt'):
        (spec, ) = req.specifier
        assert spec.operator == '==' and spec.version == LOCK[req.name], req


def test_docs_table_shows_the_locked_versions():
    page = open(osp.join(ROOT, 'docs', 'get_started.md')).read()
    table = page[page.index('## Supported stack'):]
    rows = {
        m.group(1).strip(): m.group(2).strip()
        for m in re.finditer(r'^\| ([^|]+) \| ([^|]+) \|', table, re.M)
    }
    assert rows['torch / torchvision'].startswith(
        f"{LOCK['torch']} / {LOCK['torchvision']}")
    for name in ('mmcv', 'mmengine', 'mmdet', 'mmpretrain', 'numpy',
                 'opencv-contrib-python-headless', 'setuptools'):
        assert rows[name].split(',')[0].strip() == LOCK[name], (name,
                                                                rows[name])
    # the ranges the page states are the checked ones
    assert '< 2' in table.split('| numpy |')[1].split('\n')[0]
    assert '< 81' in table.split('| setuptools |')[1].split('\n')[0]
    assert '< 4.12' in table.split('| opencv-contrib-python-headless |')[1]


def test_unmet_requirements_of_no_deps_packages():
    meta = [{
        'name':
        'mmengine',
        'version':
        '0.10.7',
        'requires_dist': [
            'addict', 'numpy>=2', 'opencv-python>=3', 'absent',
            'regex; sys_platform == "win32"', 'pytest; extra == "tests"'
        ]
    }]
    problems = lock_stack.unmet_requirements(meta, {
        'addict': '2.4.0',
        'numpy': '1.26.4'
    })
    assert len(problems) == 2, problems
    assert 'numpy>=2, the lock pins 1.26.4' in problems[0]
    assert 'absent, which the lock does not pin' in problems[1]


def test_read_lock_rejects_a_range(tmp_path):
    bad = tmp_path / 'constraints.txt'
    bad.write_text('numpy==1.26.4\nscipy>=1\n')
    with pytest.raises(ValueError, match=r'constraints.txt:2: .*scipy>=1'):
        lock_stack.read_lock(str(bad))


def _fake_dist(site: Path, name: str, version: str) -> None:
    info = site / f'{name.replace("-", "_")}-{version}.dist-info'
    info.mkdir(parents=True)
    (info / 'METADATA'
     ).write_text(f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n')
    (info / 'RECORD').write_text('')


def test_installer_replaces_numpy_2_and_keeps_an_in_range_stack(tmp_path):
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip',
                    str(venv)],
                   check=True,
                   timeout=120)
    (site, ) = venv.glob('lib/python3*/site-packages')
    for name, version in (('numpy', '2.4.6'), ('torch', '2.3.0'),
                          ('torchvision', '0.18.0'), ('mmcv', '2.1.0'),
                          ('opencv-contrib-python-headless',
                           '4.14.0.94'), ('setuptools', '80.10.2')):
        _fake_dist(site, name, version)
    out = subprocess.run(
        [str(next(venv.glob('bin/python'))), 'tools/install.py', '--dry-run'],
        cwd=ROOT,
        env={
            k: v
            for k, v in os.environ.items() if k != 'PYTHONPATH'
        },
        capture_output=True,
        text=True,
        timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert ('[install] numpy 2.4.6 is outside the supported range numpy<2: '
            f"replacing it by the tested {LOCK['numpy']}") in lines
    assert any('opencv-contrib-python-headless 4.14.0.94 is outside' in ln
               for ln in lines)
    assert '[install] torch 2.3.0 found (supported >=2.0.0): keeping it' \
        in lines
    planned = [ln for ln in lines if 'would install' in ln]
    assert planned and not any('torch' in ln for ln in planned), planned
    assert not any('mmcv' in ln for ln in planned), planned  # in range
    # --no-install: the same plan is a refusal that names what is missing
    out = subprocess.run([
        str(next(venv.glob('bin/python'))), 'tools/install.py', '--no-install'
    ],
                         cwd=ROOT,
                         capture_output=True,
                         text=True,
                         timeout=120)
    assert out.returncode == 1
    assert 'missing (--no-install)' in out.stderr and 'numpy' in out.stderr

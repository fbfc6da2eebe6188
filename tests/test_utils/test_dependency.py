import os
import os.path as osp
import subprocess
import sys

import pytest

from mmregion import dependency


def test_supported_stack_has_no_problems():
    assert dependency.find_dependency_problems() == []


def test_out_of_range_version_is_reported(monkeypatch):
    real = dependency._installed

    def fake(name):
        return {
            'mmcv': '2.2.0',
            'transformers': '4.57.0'
        }.get(name, real(name))

    monkeypatch.setattr(dependency, '_installed', fake)
    monkeypatch.setattr(sys, 'excepthook', sys.excepthook)  # restored
    problems = dependency.find_dependency_problems()
    assert any('mmcv==2.2.0' in p and '<2.2.0' in p for p in problems)
    assert any(p.startswith('transformers==4.57.0') for p in problems)
    with pytest.raises(ImportError, match='tools/install.sh'):
        dependency.check_dependencies()


def test_missing_package_is_reported(monkeypatch):
    real = dependency._installed
    monkeypatch.setattr(dependency, '_installed', lambda n: None
                        if n == 'mmdet' else real(n))
    assert any('mmdet is not installed' in p
               for p in dependency.find_dependency_problems())


def test_numpy_2_stops_the_import_with_one_line(monkeypatch):
    """numpy 2 breaks mmcv 2.1's adjust_hue (#20): one line, range and fix."""
    real = dependency._installed
    monkeypatch.setattr(dependency, '_installed', lambda n: '2.4.6'
                        if n == 'numpy' else real(n))
    monkeypatch.setattr(sys, 'excepthook', sys.excepthook)  # restored
    with pytest.raises(dependency.UnsupportedEnvironmentError) as err:
        dependency.check_dependencies()
    msg = str(err.value)
    assert '\n' not in msg
    assert 'numpy==2.4.6 is installed, mmregion supports numpy<2' in msg
    assert 'pip install "numpy<2"' in msg and 'tools/install.sh' in msg


def test_setuptools_81_is_reported(monkeypatch):
    real = dependency._installed
    monkeypatch.setattr(dependency, '_installed', lambda n: '81.0.0'
                        if n == 'setuptools' else real(n))
    assert any(
        p.startswith('setuptools==81.0.0') and '<81' in p
        for p in dependency.find_dependency_problems())


def test_import_on_numpy_2_prints_one_line_and_exits_1(tmp_path):
    """What a user sees: ``python -c 'import mmregion'`` with numpy 2.x
    metadata in front prints one line (no traceback) and exits 1."""
    venv = tmp_path / 'venv'
    subprocess.run([
        sys.executable, '-m', 'venv', '--without-pip',
        '--system-site-packages',
        str(venv)
    ],
                   check=True,
                   timeout=120)
    (site, ) = venv.glob('lib/python3*/site-packages')
    info = site / 'numpy-2.4.6.dist-info'
    info.mkdir()
    (info / 'METADATA'
     ).write_text('Metadata-Version: 2.1\nName: numpy\nVersion: 2.4.6\n')
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    out = subprocess.run(
        [str(venv / 'bin' / 'python'), '-c', 'import mmregion'],
        cwd=str(tmp_path),
        env=dict(os.environ, PYTHONPATH=root),
        capture_output=True,
        text=True,
        timeout=120)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith('mmregion: unsupported environment: '
                               'numpy==2.4.6 is installed')

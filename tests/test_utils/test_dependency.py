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
    with pytest.raises(ImportError) as err:
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

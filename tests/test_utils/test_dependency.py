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

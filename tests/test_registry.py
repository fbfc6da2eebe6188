"""Registries: children of mmengine's roots, lazy locations, cross-scope
use."""
import subprocess
import sys
import textwrap

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmregion import registry


def test_registries_are_children_of_mmengine_roots():
    from mmengine import registry as root
    assert registry.MODELS.scope == 'mmregion'
    assert registry.MODELS.parent is root.MODELS
    assert registry.TRANSFORMS.parent is root.TRANSFORMS
    assert registry.HOOKS.parent is root.HOOKS
    assert root.MODELS.children['mmregion'] is registry.MODELS


def test_default_scope_builds_without_manual_import():
    """`locations=` imports mmregion.models lazily; nothing imported by
    hand."""
    code = textwrap.dedent("""
        import sys
        from mmengine.registry import MODELS, DefaultScope
        assert 'mmregion.models' not in sys.modules
        with DefaultScope.overwrite_default_scope('mmregion'):
            loss = MODELS.build(dict(type='InfoNCELoss', temperature=0.2))
        assert type(loss).__module__.startswith('mmregion.models.losses')
        print('OK', type(loss).__name__)
    """)
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'OK InfoNCELoss' in out.stdout


def test_mmdet_scoped_config_with_custom_imports():
    pytest.importorskip('mmdet')
    from mmdet.registry import MODELS as MMDET_MODELS
    cfg = Config.fromstring(
        textwrap.dedent("""
        custom_imports = dict(imports=['mmregion'], allow_failed_imports=False)
        default_scope = 'mmdet'
        model = dict(type='mmregion.InfoNCELoss', temperature=0.1)
        """), '.py')
    with DefaultScope.overwrite_default_scope('mmdet'):
        loss = MMDET_MODELS.build(cfg.model)
    assert type(loss).__name__ == 'InfoNCELoss'
    assert loss.temperature == 0.1


def test_unknown_type_fails_with_registry_name():
    with DefaultScope.overwrite_default_scope('mmregion'):
        with pytest.raises(KeyError, match='not in the mmregion::model'):
            registry.MODELS.build(dict(type='NoSuchThing'))


def test_register_all_modules_sets_scope():
    from mmregion.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    assert DefaultScope.get_current_instance().scope_name == 'mmregion'
    assert 'InfoNCELoss' in registry.MODELS.module_dict

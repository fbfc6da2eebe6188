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


def _registered_in_mmregion():
    """``{registry name: [module names]}`` of every mmregion registry."""
    from mmengine.registry import Registry

    from mmregion.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    out = {}
    for attr in dir(registry):
        reg = getattr(registry, attr)
        if isinstance(reg, Registry) and reg.scope == 'mmregion' \
                and reg.module_dict:
            out[reg.name] = sorted(reg.module_dict)
    return out


def test_every_registered_module_has_a_direct_test():
    """Each name registered in scope mmregion appears in a test file other
    than this one (a word match in the source of tests/**/test_*.py)."""
    import glob
    import os.path as osp
    import re
    here = osp.abspath(__file__)
    tests = osp.dirname(here)
    sources = [
        open(p, encoding='utf-8').read()
        for p in glob.glob(osp.join(tests, '**', 'test_*.py'), recursive=True)
        if osp.abspath(p) != here
    ]
    registered = _registered_in_mmregion()
    assert {'model', 'transform', 'hook'} <= set(registered), registered
    missing = [
        f'{reg}.{name}' for reg, names in registered.items() for name in names
        if not any(re.search(rf'\b{re.escape(name)}\b', s) for s in sources)
    ]
    assert not missing, f'registered without a test: {missing}'

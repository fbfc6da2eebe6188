"""mmregion algorithms build in their own scope from a foreign config."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet'])
def test_ccop_builds_under_a_foreign_default_scope(scope):
    import mmdet.registry  # noqa: F401
    import mmpretrain.registry  # noqa: F401
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    model_cfg = Config.fromfile(
        osp.join(ROOT, 'configs/mmregion/ccop_r18_toy.py')).model
    model_cfg.type = 'mmregion.CCOP'
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(model_cfg)
        # the caller's scope is back after the build
        assert DefaultScope.get_current_instance().scope_name == scope
    assert type(model).__name__ == 'CCOP'
    assert type(model.img_neck).__name__ == 'LinearProjNeck'
    assert type(model.neck).__name__ == 'FPN'

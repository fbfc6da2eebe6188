"""The README's worked config examples load, and their modules build."""
import os.path as osp
import re

from mmengine.config import Config
from mmengine.registry import DefaultScope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _mixing_examples():
    text = open(osp.join(ROOT, 'README.md')).read()
    section = text.split('## Mixing mmregion into mmdet / mmpretrain '
                         'configs')[1].split('\n## ')[0]
    return re.findall(r'```python\n(.*?)```', section, flags=re.S)


def test_readme_mixing_examples_load_and_build():
    blocks = _mixing_examples()
    assert len(blocks) == 3
    det_cfg = Config.fromstring(blocks[0], '.py')
    assert det_cfg.custom_imports.imports == ['mmregion']
    assert det_cfg.model.backbone.init_cfg.type == 'Pretrained'
    assert det_cfg.model.type == 'MaskRCNN'

    pre_cfg = Config.fromstring(blocks[1], '.py')
    assert pre_cfg.model.type == 'MoCo'
    # the `_scope_` of the mmpretrain:: base goes to region_collate, which
    # takes it (default_collate would not)
    assert pre_cfg.train_dataloader.collate_fn.type == \
        'mmregion.region_collate'
    from mmcv.transforms import Compose
    with DefaultScope.overwrite_default_scope(pre_cfg.default_scope):
        pipeline = Compose(pre_cfg.train_dataloader.dataset.pipeline)
    names = [type(t).__name__ for t in pipeline.transforms]
    assert names == [
        'LoadImageFromFile', 'LoadProposals', 'MultiViewRegions',
        'PackRegionInputs'
    ]

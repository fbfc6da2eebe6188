"""The docs: worked config examples load and build, relative links
resolve, the Sphinx build has no warnings."""
import os
import os.path as osp
import re

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _mixing_examples():
    section = open(osp.join(ROOT, 'docs', 'mixing.md')).read()
    return re.findall(r'```python\n(.*?)```', section, flags=re.S)


def test_mixing_examples_load_and_build():
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


# ------------------------------------------------------ links and build --

MD_FILES = sorted([osp.join(ROOT, 'README.md')] + [
    osp.join(ROOT, 'docs', f)
    for f in os.listdir(osp.join(ROOT, 'docs')) if f.endswith('.md')
] + [
    osp.join(d, f) for sub in ('mmregion', 'benchmarks')
    for d in [osp.join(ROOT, 'configs', sub)]
    for f in os.listdir(d) if f.endswith('.md')
])


@pytest.mark.parametrize('path', MD_FILES, ids=lambda p: osp.relpath(p, ROOT))
def test_relative_links_resolve(path):
    """Every relative Markdown link points to a file that exists."""
    text = re.sub(r'```.*?```', '', open(path).read(), flags=re.S)
    broken = []
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
        if re.match(r'[a-z]+:', target) or target.startswith('#'):
            continue
        file = target.split('#')[0]
        if not osp.exists(osp.normpath(osp.join(osp.dirname(path), file))):
            broken.append(target)
    assert not broken, f'{osp.relpath(path, ROOT)}: {broken}'


def test_every_docs_page_is_in_the_toctree():
    index = open(osp.join(ROOT, 'docs', 'index.md')).read()
    pages = {
        f
        for f in os.listdir(osp.join(ROOT, 'docs'))
        if f.endswith('.md') and f != 'index.md'
    }
    assert {p for p in pages if p not in index} == set()


def test_metafile_readmes_ship_with_the_configs():
    """The model index links each collection to a README beside its
    configs (configs/ ships in the wheel as mmregion/.mim/configs)."""
    import yaml
    index = yaml.safe_load(open(osp.join(ROOT, 'model-index.yml')))
    for meta in index['Import']:
        data = yaml.safe_load(open(osp.join(ROOT, meta)))
        for entry in data.get('Collections', []) + data['Models']:
            readme = entry.get('README')
            if readme is None:
                continue
            assert readme.startswith('configs/'), (meta, readme)
            assert osp.isfile(osp.join(ROOT, readme)), (meta, readme)


def test_docs_build_without_warnings(tmp_path):
    """``sphinx-build -W`` (warnings are errors), no network."""
    pytest.importorskip(
        'sphinx',
        reason='sphinx is not installed (docs build needs sphinx '
        'and myst-parser)')
    pytest.importorskip(
        'myst_parser',
        reason='myst-parser is not installed (docs build '
        'needs sphinx and myst-parser)')
    import subprocess
    import sys
    out = subprocess.run([
        sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-b', 'html',
        '-q',
        osp.join(ROOT, 'docs'),
        str(tmp_path / 'html')
    ],
                         capture_output=True,
                         text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / 'html' / 'get_started.html').is_file()

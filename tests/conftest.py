"""Shared pytest fixtures: a tiny toy COCO set and a proposal store for it."""
import importlib.util
import os.path as osp
import sys
from pathlib import Path

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if importlib.util.find_spec('mmregion') is None:
    sys.path.insert(0, REPO_ROOT)


def _restoring_default_scope():
    """Yield, then put back the :class:`DefaultScope` instances of before.

    ``Runner``, ``init_default_scope`` and mmdet's ``register_all_modules``
    create :class:`DefaultScope` instances that stay current for the rest of
    the process; a later test building ``mmregion`` modules would then look
    them up in e.g. the ``mmdet`` registry.
    """
    from mmengine.registry import DefaultScope
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


@pytest.fixture(autouse=True, scope='session')
def _no_default_scope_from_collection():
    """Start the session without a default scope left by test imports."""
    from mmengine.registry import DefaultScope
    DefaultScope._instance_dict.clear()
    yield


@pytest.fixture(autouse=True, scope='module')
def _isolate_default_scope_per_module(_no_default_scope_from_collection):
    """A module's fixtures (e.g. one setting the mmdet scope) stay in it."""
    yield from _restoring_default_scope()


@pytest.fixture(autouse=True)
def _isolate_default_scope(_isolate_default_scope_per_module):
    """Each test gets back the scope state of before it."""
    yield from _restoring_default_scope()


@pytest.fixture(scope='session')
def toy_coco(tmp_path_factory) -> Path:
    """Root of a tiny toy COCO set (8 train / 4 val images of 128 px).

    Layout: ``train/*.jpg``, ``val/*.jpg``,
    ``annotations/instances_{train,val}.json`` (``docs/design.md`` sec. 5).
    """
    from mmregion.testing.toy_data import make_toy_coco
    root = tmp_path_factory.mktemp('toy_coco')
    make_toy_coco(str(root), num_train=8, num_val=4, size=128, seed=0)
    return root


@pytest.fixture(scope='session')
def toy_proposals(toy_coco, tmp_path_factory) -> Path:
    """A proposal store (directory) for the train split of ``toy_coco``.

    Keys are the ``file_name`` of ``annotations/instances_train.json``
    (e.g. ``000000.jpg``); boxes come from selective search in its fast
    'single' mode.
    """
    from mmregion.proposals import generate_proposals
    out = tmp_path_factory.mktemp('toy_proposals') / 'proposals'
    generate_proposals(
        str(toy_coco / 'annotations' / 'instances_train.json'),
        str(out),
        img_root=str(toy_coco / 'train'),
        method='selective_search',
        mode='single',
        workers=1,
        progress=False)
    return out

"""Load a ``tools/*.py`` script as a module, to call its ``main`` and
helpers in the test process (``from tool_utils import load_tool``)."""
import importlib.util
import os.path as osp
from types import ModuleType

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(name: str) -> ModuleType:
    """Execute ``tools/<name>.py`` as a fresh module.

    Args:
        name (str): The script's path under ``tools/`` without ``.py``,
            e.g. ``'extract_backbone'``, ``'analysis_tools/analyze_logs'``.

    Returns:
        module: The executed script (``__name__`` is ``name`` with ``/``
        replaced by ``_``, so ``if __name__ == '__main__'`` does not run).
    """
    spec = importlib.util.spec_from_file_location(
        name.replace('/', '_'), osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the four toy pre-training configs the end-to-end engine tests train
TOY_CONFIGS = [
    'configs/mmregion/ccop_r18_toy.py',
    'configs/mmregion/plrc_r18_toy.py',
    'configs/mmregion/proseco_deformable-detr_r18_toy.py',
    'configs/mmregion/mocov2_r18_toy.py',
]


def toy_data_options(config: str, toy_coco, toy_proposals) -> list:
    """``--cfg-options`` pointing a toy config's data at the test fixtures
    (the ``toy_coco`` set and its ``toy_proposals`` store)."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, config))
    opts = [f'train_dataloader.dataset.data_root={toy_coco}/']
    for i, t in enumerate(cfg.train_dataloader.dataset.pipeline):
        if 'proposal_file' in t:
            opts.append(f'train_dataloader.dataset.pipeline.{i}.'
                        f'proposal_file={toy_proposals}')
    return opts

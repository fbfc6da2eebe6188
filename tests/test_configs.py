"""Every config under configs/ parses, and the shared blocks stay shared."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    osp.relpath(p, ROOT) for p in glob.glob(
        osp.join(ROOT, 'configs', '**', '*.py'), recursive=True))
PHOTOMETRIC = 'configs/_base_/pipelines/mocov2_photometric.py'


@pytest.mark.parametrize('path', CONFIGS)
def test_config_parses(path):
    cfg = Config.fromfile(osp.join(ROOT, path)).to_dict()
    assert cfg, path
    if 'train_dataloader' in cfg and 'pipeline' in cfg['train_dataloader'][
            'dataset']:
        assert cfg['train_dataloader']['dataset']['pipeline']


def test_photometric_block_is_written_once():
    """Only the pipelines base spells out MoCo v2's colour jitter."""
    spelled = [
        p for p in CONFIGS
        if "type='mmpretrain.ColorJitter'" in open(osp.join(ROOT, p)).read()
    ]
    assert spelled == [PHOTOMETRIC]


def test_views_take_the_shared_block():
    block = Config.fromfile(osp.join(
        ROOT, PHOTOMETRIC)).to_dict()['mocov2_photometric']
    plrc = Config.fromfile(
        osp.join(ROOT, 'configs/mmregion/plrc_r50_coco.py')).to_dict()
    assert plrc['view_pipeline'][1:-1] == block
    toy = Config.fromfile(osp.join(
        ROOT, 'configs/mmregion/plrc_r18_toy.py')).to_dict()
    assert toy['view_pipeline'][1:-1] == block[:2]
    # CCOP: MoCo v2's block with saturation 0.2, the rest the same
    ccop = Config.fromfile(
        osp.join(ROOT, 'configs/_base_/datasets/coco_regions_2view.py'))
    jitter = ccop.view_pipeline[1].transforms[0]
    assert jitter.saturation == 0.2 and jitter.brightness == 0.4
    assert ccop.to_dict()['view_pipeline'][2:-1] == block[1:]


def test_toy_regions_override_only_the_view_size():
    coco = Config.fromfile(
        osp.join(ROOT, 'configs/_base_/datasets/coco_regions_2view.py'))
    toy = Config.fromfile(
        osp.join(ROOT, 'configs/_base_/datasets/toy_regions_2view.py'))
    crop_coco, crop_toy = coco.view_pipeline[0], toy.view_pipeline[0]
    assert (crop_toy.scale, crop_toy.min_area) == (96, 26)
    others = [k for k in crop_coco if k not in ('scale', 'min_area')]
    assert all(crop_toy[k] == crop_coco[k] for k in others)
    assert toy.to_dict()['view_pipeline'][1:] == \
        coco.to_dict()['view_pipeline'][1:]
    assert toy.train_pipeline[1].proposal_file == \
        'data/toy_coco/proposals/train'

"""The PLRC R-50 COCO config: the release's defaults and a scaled schedule."""
import os.path as osp
import shutil

import pytest
from mmengine.config import Config

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
R50 = 'configs/mmregion/plrc_r50_coco.py'


def _load(path=None):
    return Config.fromfile(path or osp.join(REPO, R50))


def _multiview(cfg):
    return next(t for t in cfg.train_pipeline
                if t['type'] == 'MultiViewRegions')


def test_r50_defaults_are_the_release():
    cfg = _load()
    model = cfg.model
    assert model.img_neck is None  # image embedding = mean of point_neck
    assert model.regions_per_image == 1
    assert model.num_views == 3 and not model.symmetric
    assert model.head.num_distill_points is None
    assert model.head.num_prototypes == model.dino_neck.num_prototypes
    # issue 24: overlap() pairs in the release's normalised frame
    assert (model.head.distill_pos_ratio,
            model.head.distill_pair_frame) == (0.5, 'normalized')
    assert model.teacher_heads_in_shuffle
    assert model.backbone.norm_cfg == dict(type='BN')
    assert model.img_feat_dim == model.point_neck.out_channels == 128
    mv = _multiview(cfg)
    assert mv.num_views == model.num_views
    assert tuple(mv.region_views) == (0, 1)
    assert [tuple(p) for p in mv.overlap_pairs] == [(0, 2)]
    assert mv.min_overlap == 0.5
    crop = cfg.view_pipeline[0]
    assert crop.type == 'RegionRandomResizedCrop' and crop.backend == 'pillow'
    assert cfg.optim_wrapper.on_nonfinite == 'raise'


@pytest.mark.parametrize('max_epochs', [800, 200])
def test_schedule_and_teacher_warmup_scale_with_max_epochs(
        tmp_path, max_epochs):
    """Official: warm-up 30 of 100 epochs; here 30 % of max_epochs, and the
    cosine schedule spans the run, whatever max_epochs is set to."""
    shutil.copytree(osp.join(REPO, 'configs'), tmp_path / 'configs')
    # max_epochs is set once, in the schedule the config inherits
    path = tmp_path / 'configs/_base_/schedules/sgd_coslr_800e_plrc.py'
    text = path.read_text()
    assert 'max_epochs = 800' in text
    path.write_text(
        text.replace('max_epochs = 800', f'max_epochs = {max_epochs}'))
    cfg = _load(str(tmp_path / R50))
    assert cfg.train_cfg.max_epochs == max_epochs
    assert cfg.param_scheduler[0].T_max == max_epochs
    assert cfg.param_scheduler[0].end == max_epochs
    warmup = cfg.model.head.loss_distill.warmup_epochs
    assert warmup == max_epochs * 30 // 100

    from mmregion.models.losses import PointAffinityDistillationLoss
    loss_cfg = dict(cfg.model.head.loss_distill)
    loss_cfg.pop('type')
    loss = PointAffinityDistillationLoss(out_dim=4, **loss_cfg)
    loss.progress = warmup / 2
    assert loss.teacher_temperature == pytest.approx((0.04 + 0.07) / 2)
    loss.progress = warmup
    assert loss.teacher_temperature == pytest.approx(0.07)


def test_toy_config_follows_the_r50_view_setup():
    toy = Config.fromfile(osp.join(REPO, 'configs/mmregion/plrc_r18_toy.py'))
    mv = _multiview(toy)
    assert toy.model.num_views == mv.num_views == 3
    assert toy.model.img_neck is None and toy.model.regions_per_image == 1
    assert toy.optim_wrapper.on_nonfinite == 'raise'

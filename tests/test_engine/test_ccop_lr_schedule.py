"""The CCOP R-50 learning-rate schedule against mmcv's formula (issue 24)."""
import math
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _mmcv_lr(base, it, max_iters, warmup_iters, ratio):
    """CCOP r50_d2.py lr_config: mmcv CosineAnnealing (min_lr 0) over the
    whole run, the linear warm-up multiplying it (per iteration here)."""
    regular = base * (1 + math.cos(math.pi * it / max_iters)) / 2
    if it >= warmup_iters:
        return regular
    return regular * (1 - (1 - it / warmup_iters) * (1 - ratio))


def test_cosine_runs_over_the_whole_schedule():
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'mmregion', 'ccop_r50_coco.py'))
    (warm, cos), base = cfg.param_scheduler, cfg.optim_wrapper.optimizer.lr
    epochs, per_epoch = cfg.train_cfg.max_epochs, 2  # scaled down run
    assert (cos.begin, cos.end, cos.T_max) == (0, epochs, epochs)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    kw = dict(by_epoch=False)
    s1 = LinearLR(
        opt,
        start_factor=warm.start_factor,
        begin=0,
        end=warm.end * per_epoch,
        **kw)
    s2 = CosineAnnealingLR(
        opt,
        T_max=cos.T_max * per_epoch,
        eta_min=0.,
        begin=0,
        end=cos.end * per_epoch,
        **kw)
    total, wu = epochs * per_epoch, warm.end * per_epoch
    for it in range(total):
        lr = opt.param_groups[0]['lr']
        ref = _mmcv_lr(base, it, total, wu, warm.start_factor)
        if it >= wu:  # after the warm-up: the cosine of the whole run
            assert math.isclose(lr, ref, rel_tol=1e-6, abs_tol=1e-12), it
        else:  # (mmengine's LinearLR ends one iteration earlier)
            assert ref * 0.99 <= lr <= _mmcv_lr(base, it, total, 0, 1.)
        opt.step()
        s1.step()
        s2.step()

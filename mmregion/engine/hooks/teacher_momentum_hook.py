"""Cosine schedule of the EMA teacher's momentum (SCE, BYOL)."""
import math
from typing import List, Optional, Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmregion.models.utils.momentum_teacher import MomentumTeacher
from mmregion.registry import HOOKS

__all__ = ['CosineTeacherMomentumHook']


@HOOKS.register_module()
class CosineTeacherMomentumHook(Hook):
    """Anneal the momentum of every :class:`MomentumTeacher` by a cosine.

    Momentum in mmengine's convention (``teacher = (1 - m) * teacher + m *
    online``; MoCo's 0.999 is ``m = 0.001``). The EMA step taken during
    training iteration ``k`` (0-based, ``K = runner.max_iters``) uses

    ``m_k = end + (start - end) * (1 + cos(pi * t / (K - 1))) / 2``,
    ``t = max(k - 1, 0)``,

    ``start`` being the teacher's configured ``momentum``. This is SCE's
    ``scheduler_momentum='cosine'`` (CEA-LIST/SCE
    ``sce/models/siamese/momentum_base.py``: ``1 - (1 - m0) * (cos(pi *
    step / (max_steps - 1)) + 1) / 2``, its ImageNet config
    ``initial_momentum: 0.99``): SCE updates the teacher at the end of batch
    ``k - 1``, our algorithms at the start of iteration ``k`` (before the
    teacher's pass), hence ``t = k - 1``; with ``end=0`` (SCE's momentum 1)
    the teacher stops moving at the end of the run.

    mmpretrain's ``CosineEMA`` (BYOL) computes the same kind of schedule
    inside an EMA model class, per parameter, from the EMA's own step count
    (``steps / max_iters``); our teachers are :class:`MomentumTeacher`
    (named sub-modules, eval mode), so a hook sets their momentum instead
    and the same schedule serves CCOP, PLRC and ProSeCo. It keeps no state:
    a resumed run gets the value of its iteration.

    Args:
        end_momentum (float): momentum at the end of the run, mmengine
            convention. Defaults to 0. (SCE: momentum 1).
    """

    priority = 'NORMAL'

    def __init__(self, end_momentum: float = 0.) -> None:
        if not 0. <= end_momentum < 1.:
            raise ValueError('CosineTeacherMomentumHook: end_momentum must be '
                             'in [0, 1) (mmengine convention: 0 == momentum 1'
                             f'), got {end_momentum}.')
        self.end_momentum = end_momentum
        self.start: Optional[List[float]] = None

    @staticmethod
    def teachers(runner) -> List[MomentumTeacher]:
        """The :class:`MomentumTeacher` modules of the runner's model."""
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        found = [m for m in model.modules() if isinstance(m, MomentumTeacher)]
        if not found:
            raise TypeError(
                'CosineTeacherMomentumHook: the model has no MomentumTeacher '
                '(CCOP, PLRC or ProSeCo with a contrast loss); remove the '
                'hook from custom_hooks.')
        return found

    def momentum_at(self, start: float, k: int, max_iters: int) -> float:
        """The momentum of the EMA step of iteration ``k``."""
        t = min(max(k - 1, 0), max(max_iters - 1, 1))
        cosine = (1. + math.cos(math.pi * t / max(max_iters - 1, 1))) / 2.
        return self.end_momentum + (start - self.end_momentum) * cosine

    def before_train(self, runner) -> None:
        # the configured momenta (not saved in checkpoints: a resumed run
        # starts from the config too)
        self.start = [t.momentum for t in self.teachers(runner)]

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[Sequence[dict]] = None) -> None:
        teachers = self.teachers(runner)
        if self.start is None:
            self.before_train(runner)
        for teacher, start in zip(teachers, self.start):
            teacher.momentum = self.momentum_at(start, runner.iter,
                                                runner.max_iters)

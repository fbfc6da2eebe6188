"""The momentum (EMA) teacher shared by CCOP, PLRC and ProSeCo.

Momentum convention (mmengine's :class:`ExponentialMovingAverage`, also
mmpretrain's MoCo): ``teacher = (1 - momentum) * teacher + momentum *
online``, so MoCo's ``m = 0.999`` is written ``momentum=0.001``.
"""
from typing import Mapping, Tuple

import torch
import torch.nn as nn
from mmengine.model import ExponentialMovingAverage

__all__ = ['MomentumTeacher']


class MomentumTeacher(ExponentialMovingAverage):
    """Frozen EMA copies of named online modules of one model.

    The copies live in ``self.module`` (an ``nn.ModuleDict`` keyed by the
    online attribute names), so a model holding the teacher as
    ``momentum_encoder`` stores them under ``momentum_encoder.module.<name>.``
    and the step count under ``momentum_encoder.steps`` (mmengine's EMA
    layout, unchanged checkpoint keys). The copies never require gradients;
    they change only in :meth:`update`, whose first call copies the online
    weights (so a re-initialised online model is synced) and later calls
    take one EMA step of the parameters (buffers are copied).

    Args:
        online (Mapping[str, nn.Module]): The online modules by attribute
            name, e.g. ``{'backbone': model.backbone, 'neck': model.neck}``.
        momentum (float): EMA momentum in ``(0, 1)``, mmengine convention.
            It can be changed later (:class:`CosineTeacherMomentumHook`
            anneals it by a cosine, SCE's schedule); every value set is
            validated.
        eval_mode (bool): Keep the teacher in eval mode whatever the
            parent's mode (no dropout, BN running statistics), as ProSeCo's
            teacher. False lets it follow the parent (MoCo: BN batch
            statistics). Defaults to False.
    """

    def __init__(self,
                 online: Mapping[str, nn.Module],
                 momentum: float,
                 eval_mode: bool = False) -> None:
        self.check_momentum(momentum)
        super().__init__(nn.ModuleDict(dict(online)), momentum=momentum)
        self.names: Tuple[str, ...] = tuple(online)
        self.eval_mode = eval_mode

    @staticmethod
    def check_momentum(momentum: float,
                       owner: str = 'MomentumTeacher',
                       allow_zero: bool = False) -> None:
        """Raise ``ValueError`` unless ``0 < momentum < 1`` (``0 <=`` with
        ``allow_zero``: a frozen teacher, the end of a schedule)."""
        if not (0. <= momentum < 1. if allow_zero else 0. < momentum < 1.):
            span = '[0, 1)' if allow_zero else '(0, 1)'
            raise ValueError(
                f'{owner}: momentum must be in {span} (mmengine convention: '
                f'0.001 == MoCo 0.999), got {momentum}.')

    @property
    def momentum(self) -> float:
        """float: the EMA momentum (validated when set; a schedule such as
        :class:`CosineTeacherMomentumHook` may set 0, a frozen teacher)."""
        return self._momentum

    @momentum.setter
    def momentum(self, value: float) -> None:
        self.check_momentum(value, allow_zero=True)
        self._momentum = value

    def __getitem__(self, name: str) -> nn.Module:
        """The teacher copy of the online module ``name``."""
        return self.module[name]

    def train(self, mode: bool = True) -> 'MomentumTeacher':
        """Follow ``mode`` unless ``eval_mode`` pins the teacher to eval."""
        return super().train(mode and not self.eval_mode)

    @torch.no_grad()
    def update(self, parent: nn.Module) -> None:
        """One EMA step towards ``getattr(parent, name)`` for every name.

        Args:
            parent (nn.Module): The model holding the online modules.
        """
        self.update_parameters(
            nn.ModuleDict({n: getattr(parent, n)
                           for n in self.names}))

"""Point-affinity distillation of PLRC (DINO-style, centred teacher)."""
from typing import Optional

import torch
import torch.nn.functional as F
from mmengine import dist
from torch import Tensor

from mmregion.registry import MODELS
from .utils import BaseLoss, weighted_reduce

__all__ = ['PointAffinityDistillationLoss', 'point_affinity_distillation_loss']


def point_affinity_distillation_loss(
        student: Tensor,
        teacher: Tensor,
        center: Tensor,
        student_temperature: float = 0.1,
        teacher_temperature: float = 0.07,
        weight: Optional[Tensor] = None,
        reduction: str = 'none',
        avg_factor: Optional[float] = None) -> Tensor:
    """Per-point cross-entropy between the centred teacher and the student.

    ``l_i = sum_d -softmax((t_i - c) / tau_t)_d * log_softmax(s_i / tau_s)_d``;
    the teacher side carries no gradient.

    Args:
        student (Tensor): ``(M, D)`` student vectors (affinities to the
            reference points, then prototype logits).
        teacher (Tensor): ``(M, D)`` teacher vectors, built alike.
        center (Tensor): ``(1, D)`` or ``(D,)`` running teacher centre.
        student_temperature (float): tau_s.
        teacher_temperature (float): tau_t.
        weight (Tensor, optional): ``(M,)`` per-point weights.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'none'.
        avg_factor (float, optional): divisor of the 'mean'; defaults to
            ``weight.sum()`` (the plain mean without ``weight``).

    Returns:
        Tensor: ``(M,)`` per-point loss for 'none', else a scalar.
    """
    t = F.softmax(
        (teacher.detach() - center.view(1, -1)) / teacher_temperature, -1)
    loss = -(t * F.log_softmax(student / student_temperature, -1)).sum(-1)
    return weighted_reduce(loss, weight, reduction, avg_factor)


@MODELS.register_module()
class PointAffinityDistillationLoss(BaseLoss):
    """DINO-style distillation of point-affinity vectors (PLRC).

    The teacher temperature is warmed up linearly from
    ``warmup_teacher_temperature`` to ``teacher_temperature`` over
    ``warmup_epochs`` epochs of training progress;
    :class:`PLRCTeacherTempHook` writes the progress (in epochs, fractional)
    to :attr:`progress` before every iteration. Without the hook
    ``progress`` stays 0 (warm-up start).

    Args:
        out_dim (int): ``D``, length of a student/teacher vector (reference
            points + prototypes; ``56 * 56 + 4096`` in the official code).
        student_temperature (float): Defaults to 0.1 (``student_temp`` of
            ``SelfDistillation`` in ``PLRC/models/plrc_loss.py``).
        teacher_temperature (float): final teacher temperature. Defaults to
            0.07 (``teacher_temp``).
        warmup_teacher_temperature (float): initial one. Defaults to 0.04
            (``warmup_teacher_temp``).
        warmup_epochs (float): warm-up length. Defaults to 30 (of 100).
        center_momentum (float): EMA momentum of the teacher centre.
            Defaults to 0.9.
        reduction (str): Defaults to 'mean'.
        loss_weight (float): Defaults to 1.0.
    """

    def __init__(self,
                 out_dim: int,
                 student_temperature: float = 0.1,
                 teacher_temperature: float = 0.07,
                 warmup_teacher_temperature: float = 0.04,
                 warmup_epochs: float = 30,
                 center_momentum: float = 0.9,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__(reduction, loss_weight)
        self.student_temperature = student_temperature
        self.final_teacher_temperature = teacher_temperature
        self.warmup_teacher_temperature = warmup_teacher_temperature
        self.out_dim = out_dim
        self.warmup_epochs = warmup_epochs
        self.center_momentum = center_momentum
        self.progress = 0.0
        self.register_buffer('center', torch.zeros(1, out_dim))

    @property
    def teacher_temperature(self) -> float:
        """Teacher temperature at the current :attr:`progress`."""
        if self.warmup_epochs <= 0:
            return self.final_teacher_temperature
        r = min(max(self.progress / self.warmup_epochs, 0.), 1.)
        return self.warmup_teacher_temperature + r * (
            self.final_teacher_temperature - self.warmup_teacher_temperature)

    @torch.no_grad()
    def update_center(self, teacher: Tensor, weight: Tensor) -> None:
        """EMA update of the centre with the (all-ranks) weighted mean.

        Args:
            teacher (Tensor): ``(M, D)``.
            weight (Tensor): ``(M,)`` 0/1 weights of the counted rows.
        """
        stats = torch.cat([(teacher * weight[:, None]).sum(0),
                           weight.sum()[None]]).float()
        if dist.get_world_size() > 1:
            dist.all_reduce(stats, op='sum')
        if stats[-1] <= 0:
            return
        batch_center = (stats[:-1] / stats[-1]).to(self.center.dtype)
        self.center.mul_(self.center_momentum).add_(batch_center[None] *
                                                    (1 - self.center_momentum))

    def forward(self,
                student: Tensor,
                teacher: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss (and update the centre in training).

        Args:
            student (Tensor): ``(M, D)``.
            teacher (Tensor): ``(M, D)``.
            weight (Tensor, optional): ``(M,)`` per-point weights (0 masks a
                row out of the loss and the centre).
            avg_factor (float, optional): divisor of the mean; defaults to
                ``weight.sum()``.
            reduction_override (str, optional): overrides ``reduction``.

        Returns:
            Tensor: the loss.
        """
        if student.shape != teacher.shape or student.size(-1) != self.out_dim:
            raise ValueError(
                'PointAffinityDistillationLoss: student/teacher must be '
                f'(M, out_dim={self.out_dim}), got {tuple(student.shape)} and '
                f'{tuple(teacher.shape)}')
        reduction = self.get_reduction(reduction_override)
        if weight is None:
            weight = student.new_ones(student.size(0))
        weight = weight.to(student.dtype)
        loss = point_affinity_distillation_loss(
            student,
            teacher,
            self.center,
            self.student_temperature,
            self.teacher_temperature,
            weight=weight,
            reduction=reduction,
            avg_factor=avg_factor)
        if self.training:
            self.update_center(teacher.detach(), weight)
        return self.loss_weight * loss

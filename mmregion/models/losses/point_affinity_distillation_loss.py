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
        avg_factor: Optional[float] = None,
        pair_index: Optional[Tensor] = None) -> Tensor:
    """Per-pair cross-entropy between the centred teacher and the student.

    ``l_m = sum_d -softmax((t_j - c) / tau_t)_d * log_softmax(s_i / tau_s)_d``
    for pair ``m = (i, j)``; the teacher side carries no gradient. Without
    ``pair_index`` pair ``m`` is row ``m`` of both. With it, a row that
    takes part in several pairs is normalised once and the 'mean' / 'sum'
    are computed as ``sum_i log_softmax(s_i) . (A softmax(t))_i`` with the
    sparse ``(Ms, Mt)`` pair matrix ``A`` (``A_ij`` = the pair's weight):
    the same value without building ``(M, D)`` per-pair matrices.

    Args:
        student (Tensor): ``(Ms, D)`` student vectors (affinities to the
            reference points, then prototype logits).
        teacher (Tensor): ``(Mt, D)`` teacher vectors, built alike
            (``Mt == Ms`` without ``pair_index``).
        center (Tensor): ``(1, D)`` or ``(D,)`` running teacher centre.
        student_temperature (float): tau_s.
        teacher_temperature (float): tau_t.
        weight (Tensor, optional): ``(M,)`` per-pair weights.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'none'.
        avg_factor (float, optional): divisor of the 'mean'; defaults to
            ``weight.sum()`` (the plain mean without ``weight``).
        pair_index (Tensor, optional): ``(2, M)`` long, the student row and
            the teacher row of each pair. Defaults to row ``m`` with row
            ``m``.

    Returns:
        Tensor: ``(M,)`` per-pair loss for 'none', else a scalar.
    """
    t = F.softmax(
        (teacher.detach() - center.view(1, -1)) / teacher_temperature, -1)
    log_s = F.log_softmax(student / student_temperature, -1)
    if pair_index is None:
        return weighted_reduce(-(t * log_s).sum(-1), weight, reduction,
                               avg_factor)
    if reduction == 'none':  # per pair: (M, D) rows are needed here
        loss = -(t[pair_index[1]] * log_s[pair_index[0]]).sum(-1)
        return weighted_reduce(loss, weight, reduction)
    w = t.new_ones(pair_index.size(1)) if weight is None else weight.to(
        t.dtype)
    pairs = torch.sparse_coo_tensor(
        pair_index, w, (log_s.size(0), t.size(0)), check_invariants=False)
    total = -(torch.sparse.mm(pairs, t) * log_s).sum()
    if reduction == 'mean' and avg_factor is None:
        avg_factor = w.sum()
    return weighted_reduce(total.view(1), None, reduction, avg_factor)


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
            weight (Tensor): ``(M,)`` weights of the rows (0/1, or how many
                counted pairs a row takes part in).
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
                reduction_override: Optional[str] = None,
                pair_index: Optional[Tensor] = None) -> Tensor:
        """Compute the loss (and update the centre in training).

        Args:
            student (Tensor): ``(Ms, D)``.
            teacher (Tensor): ``(Mt, D)``.
            weight (Tensor, optional): ``(M,)`` per-pair weights (0 masks a
                pair out of the loss and the centre).
            avg_factor (float, optional): divisor of the mean; defaults to
                ``weight.sum()``.
            reduction_override (str, optional): overrides ``reduction``.
            pair_index (Tensor, optional): ``(2, M)`` student and teacher
                row of each pair (:func:`point_affinity_distillation_loss`);
                the centre is then the mean over the pairs (a teacher row
                counted once per pair). Defaults to row ``m`` with row ``m``.

        Returns:
            Tensor: the loss.
        """
        if (student.size(-1) != self.out_dim
                or teacher.size(-1) != self.out_dim
                or (pair_index is None and student.shape != teacher.shape)):
            raise ValueError(
                'PointAffinityDistillationLoss: student/teacher must be '
                f'(M, out_dim={self.out_dim}), got {tuple(student.shape)} and '
                f'{tuple(teacher.shape)}')
        reduction = self.get_reduction(reduction_override)
        num_pairs = student.size(0) if pair_index is None else pair_index.size(
            1)
        if weight is None:
            weight = student.new_ones(num_pairs)
        weight = weight.to(student.dtype)
        loss = point_affinity_distillation_loss(
            student,
            teacher,
            self.center,
            self.student_temperature,
            self.teacher_temperature,
            weight=weight,
            reduction=reduction,
            avg_factor=avg_factor,
            pair_index=pair_index)
        if self.training:
            row_weight = weight if pair_index is None else weight.new_zeros(
                teacher.size(0)).index_add_(0, pair_index[1], weight)
            self.update_center(teacher.detach(), row_weight)
        return self.loss_weight * loss

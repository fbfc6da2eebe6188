"""LocSCE: the location-aware SCE loss of ProSeCo.

Bouniot et al., "Proposal-Contrastive Pretraining for Object Detection from
Fewer Data", ICLR 2023. For proposals j, m of images i, n (N_b images, N
proposals each; teacher proposal m of image n is paired with the student
prediction sigma_n(m) matched to it), as printed in the ProSeCo poster::

    w_(in,jm) = lambda * 1[i = n] * 1[IoU_i(j, m) >= delta]
                + (1 - lambda) * s_(in,jm)
    L = - 1 / (N_b N) sum_(i,n,j,m) w_(in,jm) * log p'_(in, j sigma_n(m))

with ``s`` the teacher-vs-teacher similarity distribution (temperature
tau_m, self excluded, as in SCE) and ``p'`` a softmax of the student-vs-
teacher similarities (temperature tau). Overlapping proposals of the same
image are extra positives instead of negatives; with ``delta = 1.0`` and
distinct boxes the positives reduce to the identity, i.e. to SCE. Here
``tau = student_temperature``, ``tau_m = teacher_temperature`` and ``delta =
pos_iou_thr``.

ProSeCo's code is not public and its poster leaves two points open, so both
are options (``docs/fidelity.md``, audit items 8 and 9):

* ``normalize_target`` -- the poster uses ``w`` directly, so a row with P
  overlapping positives weighs ``lambda * P + 1 - lambda``: proposals in
  crowded regions count more. SCE's code L1-normalises each target row,
  which there is a no-op (one positive per row). Defaults to False (the
  printed formula); True = SCE's normalisation (every row weighs 1).
* ``anchor`` -- the printed log term ``p'_(in, j sigma_n(m))`` pairs teacher
  proposal j of image i with the student prediction matched to teacher
  proposal m of image n; read literally the teacher proposal is the anchor
  (row) and the softmax runs over the matched student predictions (columns),
  so the gradient reaches a student prediction through every teacher row
  it appears in. ``'teacher'`` (default) is that reading; ``'student'`` is
  SCE's orientation (row = student prediction, softmax over the teacher
  columns), the form this project used before 2026-12-03.

In both orientations the target row is the same (anchored at teacher
proposal (i, j)); the relational part ``s`` only uses the teacher.
Negatives are the proposals of the GPU's batch unless ``gather_negatives``
(the paper's N_b may be the global batch: UNVERIFIED, so per-GPU stays the
default).
"""
from typing import Optional

import torch
from mmdet.structures.bbox import bbox_overlaps
from torch import Tensor

from mmregion.registry import MODELS
from .sce_loss import SCELoss, sce_loss

__all__ = ['LocSCELoss', 'loc_sce_loss', 'same_image_iou_positives']


def same_image_iou_positives(boxes: Tensor, pos_iou_thr: float) -> Tensor:
    """Positives of LocSCE: same image and IoU >= ``pos_iou_thr``.

    Args:
        boxes (Tensor): (N_b, N, 4) xyxy boxes (any consistent unit).
        pos_iou_thr (float): delta.

    Returns:
        Tensor: (N_b * N, N_b * N) bool, block diagonal; the diagonal is
        always True (a zero-area box is still its own positive).
    """
    num_imgs, num = boxes.shape[:2]
    iou = bbox_overlaps(boxes.float(), boxes.float())  # (N_b, N, N)
    pos = boxes.new_zeros((num_imgs, num, num_imgs, num), dtype=torch.bool)
    idx = torch.arange(num_imgs, device=boxes.device)
    pos[idx, :, idx, :] = iou >= pos_iou_thr
    pos = pos.view(num_imgs * num, num_imgs * num)
    return pos | torch.eye(
        num_imgs * num, dtype=torch.bool, device=boxes.device)


def loc_sce_loss(student: Tensor,
                 teacher: Tensor,
                 boxes: Tensor,
                 valid: Optional[Tensor] = None,
                 coeff: float = 0.5,
                 student_temperature: float = 0.1,
                 teacher_temperature: float = 0.05,
                 pos_iou_thr: float = 0.5,
                 normalize_target: bool = False,
                 anchor: str = 'teacher',
                 gather_negatives: bool = False,
                 weight: Optional[Tensor] = None,
                 reduction: str = 'none',
                 avg_factor: Optional[float] = None) -> Tensor:
    """Per-proposal LocSCE loss over the whole batch at once.

    Args:
        student (Tensor): (N_b, N, D) student embeddings, row (i, j) matched
            to teacher proposal (i, j).
        teacher (Tensor): (N_b, N, D) teacher embeddings (detached).
        boxes (Tensor): (N_b, N, 4) xyxy teacher proposal boxes.
        valid (Tensor, optional): (N_b, N) bool; invalid proposals take no
            part (neither as rows nor as columns).
        coeff (float): lambda_SCE.
        student_temperature (float): tau.
        teacher_temperature (float): tau_m.
        pos_iou_thr (float): delta: proposals of the same image with an IoU
            of at least this are positives (mmdet's ``pos_iou_thr``).
        normalize_target (bool): L1-normalise the target rows (SCE).
            Defaults to False (the printed formula).
        anchor (str): ``'teacher'`` (the printed formula) or ``'student'``
            (SCE). Defaults to ``'teacher'``.
        gather_negatives (bool): Columns from the whole global batch (see
            :func:`sce_loss`). Defaults to False.
        weight (Tensor, optional): (N_b * N,) per-proposal weights.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'none'.
        avg_factor (float, optional): Divisor of the 'mean'. Defaults to the
            (weighted) number of valid proposals.

    Returns:
        Tensor: (N_b * N,) per-proposal loss (0 for invalid proposals) for
        'none', else a scalar.
    """
    if student.dim() != 3 or student.shape != teacher.shape or \
            boxes.shape[:2] != student.shape[:2] or boxes.size(-1) != 4:
        raise ValueError(
            'loc_sce_loss: expected student/teacher (N_b, N, D) and boxes '
            f'(N_b, N, 4), got {tuple(student.shape)}, '
            f'{tuple(teacher.shape)}, {tuple(boxes.shape)}')
    num_imgs, num, dim = student.shape
    pos = same_image_iou_positives(boxes.detach(), pos_iou_thr)
    flat_valid = None if valid is None else valid.reshape(-1)
    return sce_loss(
        student.reshape(-1, dim),
        teacher.reshape(-1, dim),
        pos,
        flat_valid,
        coeff,
        student_temperature,
        teacher_temperature,
        normalize_target,
        anchor,
        gather_negatives,
        weight=weight,
        reduction=reduction,
        avg_factor=avg_factor)


@MODELS.register_module()
class LocSCELoss(SCELoss):
    """LocSCE loss module.

    Args:
        coeff (float): lambda_SCE. Defaults to 0.5 (SCE default; ProSeCo
            follows SCE).
        student_temperature (float): tau. Defaults to 0.1 (SCE).
        teacher_temperature (float): tau_m. Defaults to 0.05 (SCE class
            default).
        pos_iou_thr (float): delta, IoU threshold of the positives. Defaults
            to 0.5 (best in ProSeCo's ablation).
        normalize_target (bool): L1-normalise the target rows as SCE does.
            Defaults to False (the poster's formula; see the module doc).
        anchor (str): ``'teacher'`` (the poster's ``p'_(in, j sigma_n(m))``)
            or ``'student'`` (SCE). Defaults to ``'teacher'``.
        gather_negatives (bool): In distributed training take the negatives
            from the global batch (all-gathered detached teacher embeddings
            and boxes; with ``anchor='teacher'`` also the student columns,
            whose gradient returns to their rank); the rows stay local.
            Defaults to False (per-GPU, as before; UNVERIFIED either way).
        reduction (str): 'none', 'mean' (over valid proposals) or 'sum'.
        loss_weight (float): Multiplier. Defaults to 1.0.
    """

    def __init__(self,
                 coeff: float = 0.5,
                 student_temperature: float = 0.1,
                 teacher_temperature: float = 0.05,
                 pos_iou_thr: float = 0.5,
                 normalize_target: bool = False,
                 anchor: str = 'teacher',
                 gather_negatives: bool = False,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        if not 0.0 <= pos_iou_thr <= 1.0:
            raise ValueError('LocSCELoss: pos_iou_thr must be in [0, 1], got '
                             f'{pos_iou_thr}')
        super().__init__(coeff, student_temperature, teacher_temperature,
                         normalize_target, anchor, gather_negatives, reduction,
                         loss_weight)
        self.pos_iou_thr = pos_iou_thr

    def forward(self,
                student: Tensor,
                teacher: Tensor,
                boxes: Tensor,
                valid: Optional[Tensor] = None,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Args: student, teacher (N_b, N, D); boxes (N_b, N, 4) xyxy;
        valid (N_b, N) bool and weight (N_b * N,), optional."""
        return self.loss_weight * loc_sce_loss(
            student,
            teacher,
            boxes,
            valid,
            pos_iou_thr=self.pos_iou_thr,
            weight=weight,
            reduction=self.get_reduction(reduction_override),
            avg_factor=avg_factor,
            **self.sce_options)

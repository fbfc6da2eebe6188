"""Similarity Contrastive Estimation (SCE) loss, in-batch form.

Denize et al., "Similarity Contrastive Estimation for Self-Supervised Soft
Contrastive Learning", WACV 2023 (github CEA-LIST/SCE,
``sce/models/siamese/sce.py``). The official code contrasts a query with its
key and a queue; here the negatives are the other samples of the batch (the
form ProSeCo's LocSCE builds on), and the one-hot positive may be replaced by
a multi-positive mask (used by :func:`loc_sce_loss`).

For a student (online) embedding ``q_i`` and teacher (momentum) embeddings
``k_1..k_M`` (all L2-normalised)::

    s_ik   = softmax_{k != i}(k_i . k_k / tau_m)    (self-similarity excluded)
    w_ik   = normalize_L1(lambda * pos_ik + (1 - lambda) * s_ik)
    p_ik   = log_softmax_k(q_i . k_k / tau)
    loss_i = - sum_k w_ik * p_ik

with ``tau = student_temperature`` and ``tau_m = teacher_temperature`` (the
official code's ``temp`` and ``temp_m``).

Options (used by ProSeCo's LocSCE, see :mod:`.loc_sce_loss`):
``normalize_target=False`` drops the L1 normalisation of the target rows,
``anchor='teacher'`` swaps the roles (row = teacher embedding, softmax over
the paired student embeddings), ``gather_negatives=True`` takes the columns
from the whole global batch in distributed training.

Note on the self-similarity: the docstring formula of the official code
excludes ``k = i`` from ``s`` (indicator ``1_{i != k}``); its implementation
puts a zero logit in the positive slot instead. We follow the formula (as
printed in the SCE paper, and in the ProSeCo paper's LocSCE) and exclude it.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmregion.registry import MODELS
from .utils import BaseLoss, weighted_reduce

__all__ = [
    'SCELoss', 'sce_loss', 'masked_softmax', 'soft_contrast_rows',
    'check_anchor'
]


def masked_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    """Row softmax over the entries where ``mask`` is True.

    Masked entries get probability 0; a row without any unmasked entry is
    all zeros (never NaN).

    Args:
        logits (Tensor): (M, K) logits.
        mask (Tensor): (M, K) bool, True where an entry takes part.

    Returns:
        Tensor: (M, K) probabilities.
    """
    lg = logits.masked_fill(~mask, float('-inf'))
    row_max = lg.amax(dim=-1, keepdim=True)
    row_max = torch.where(
        torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    e = torch.exp(lg - row_max)
    return e / e.sum(dim=-1, keepdim=True).clamp(min=torch.finfo(e.dtype).tiny)


_ANCHORS = ('student', 'teacher')


def check_anchor(owner: str, anchor: str) -> None:
    if anchor not in _ANCHORS:
        raise ValueError(f'{owner}: anchor must be one of {_ANCHORS}, got '
                         f'"{anchor}".')


def soft_contrast_rows(anchors: Tensor, candidates: Tensor, t_rows: Tensor,
                       t_cols: Tensor, pos: Tensor, row_valid: Tensor,
                       col_valid: Tensor, self_col: Tensor, coeff: float,
                       student_temperature: float, teacher_temperature: float,
                       normalize_target: bool) -> Tensor:
    """The SCE/LocSCE cross-entropy of each row (the math, vectorised).

    Args:
        anchors (Tensor): (M, D) L2-normalised row embeddings.
        candidates (Tensor): (C, D) L2-normalised column embeddings; the
            prediction of row ``r`` is ``softmax_c(anchors[r] . cand[c] /
            student_temperature)`` over the valid columns.
        t_rows (Tensor): (M, D) normalised teacher embeddings of the rows.
        t_cols (Tensor): (C, D) normalised teacher embeddings of the columns
            (the relational target ``softmax_c(t_rows[r] . t_cols[c] /
            teacher_temperature)``, own column excluded).
        pos (Tensor): (M, C) bool positives (the own column is added).
        row_valid (Tensor): (M,) bool. col_valid (Tensor): (C,) bool.
        self_col (Tensor): (M,) long, the column of each row's own pair.
        coeff, student_temperature, teacher_temperature (float): lambda,
            tau, tau_m.
        normalize_target (bool): L1-normalise each target row.

    Returns:
        Tensor: (M,) loss per row, 0 for invalid rows.
    """
    num, num_cols = anchors.size(0), candidates.size(0)
    own = torch.zeros((num, num_cols), dtype=torch.bool, device=pos.device)
    own[torch.arange(num, device=pos.device), self_col] = True
    col_ok = col_valid[None, :].expand(num, num_cols)
    s_teacher = masked_softmax(t_rows @ t_cols.t() / teacher_temperature,
                               col_ok & ~own)
    target = coeff * ((pos | own) & col_ok).to(anchors.dtype) + \
        (1 - coeff) * s_teacher
    if normalize_target:
        target = F.normalize(target, p=1, dim=-1)
    # a finite fill: a row without any valid column stays finite (no NaN
    # through log_softmax's backward)
    logits = (anchors @ candidates.t() / student_temperature).masked_fill(
        ~col_ok,
        torch.finfo(anchors.dtype).min)
    log_p = F.log_softmax(logits, dim=-1)
    terms = torch.where(target > 0, target * log_p, torch.zeros_like(log_p))
    loss = -terms.sum(dim=-1)
    return torch.where(row_valid, loss, torch.zeros_like(loss))


def sce_loss(student: Tensor,
             teacher: Tensor,
             pos_mask: Optional[Tensor] = None,
             valid: Optional[Tensor] = None,
             coeff: float = 0.5,
             student_temperature: float = 0.1,
             teacher_temperature: float = 0.05,
             normalize_target: bool = True,
             anchor: str = 'student',
             gather_negatives: bool = False,
             weight: Optional[Tensor] = None,
             reduction: str = 'none',
             avg_factor: Optional[float] = None) -> Tensor:
    """Per-sample SCE loss with in-batch negatives (the math, vectorised).

    Args:
        student (Tensor): (M, D) student embeddings; row ``i`` is paired with
            teacher row ``i``. Normalised here.
        teacher (Tensor): (M, D) teacher embeddings (no gradient flows into
            them: they are detached). Normalised here.
        pos_mask (Tensor, optional): (M, M) bool, the positives of each row
            (several allowed). Defaults to the identity (SCE). The diagonal is
            always a positive.
        valid (Tensor, optional): (M,) bool; invalid samples are neither rows
            nor columns (their loss is 0). Defaults to all valid.
        coeff (float): lambda, weight of the positives in the target.
        student_temperature (float): tau, temperature of the student
            similarities.
        teacher_temperature (float): tau_m, temperature of the teacher
            similarities.
        normalize_target (bool): L1-normalise each target row (SCE). False
            keeps the rows as written (``lambda * P + 1 - lambda`` with P
            positives). Defaults to True.
        anchor (str): ``'student'`` (SCE): row = student embedding, softmax
            over the teacher columns; ``'teacher'``: row = teacher embedding,
            softmax over the (paired) student columns. Defaults to
            ``'student'``.
        gather_negatives (bool): In distributed training, take the columns
            (negatives) from the whole global batch: the detached teacher
            embeddings (and, with ``anchor='teacher'``, the student ones,
            whose gradient is routed back to their rank) are all-gathered;
            the rows stay this rank's. Positives never cross ranks (they
            are other images). Defaults to False (per-GPU negatives).
        weight (Tensor, optional): (M,) per-row weights.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'none'.
        avg_factor (float, optional): Divisor of the 'mean'. Defaults to the
            (weighted) number of valid rows.

    Returns:
        Tensor: (M,) per-row loss (0 for invalid rows) for 'none', else a
        scalar.
    """
    if student.shape != teacher.shape or student.dim() != 2:
        raise ValueError('sce_loss: student and teacher must both be (M, D), '
                         f'got {tuple(student.shape)} and '
                         f'{tuple(teacher.shape)}')
    check_anchor('sce_loss', anchor)
    from mmregion.models.utils.dist_utils import all_gather_rows
    num = student.size(0)
    device = student.device
    if valid is None:
        valid = torch.ones(num, dtype=torch.bool, device=device)
    valid = valid.bool()
    q = F.normalize(student, dim=-1)
    k = F.normalize(teacher.detach(), dim=-1)
    k_cols, q_cols, col_valid, offset = k, q, valid, 0
    if gather_negatives:
        k_cols, offset = all_gather_rows(k)
        col_valid = all_gather_rows(valid.to(torch.uint8))[0].bool()
        if anchor == 'teacher':
            q_cols = all_gather_rows(q, with_grad=True)[0]
    rows = torch.arange(num, device=device)
    pos = torch.zeros((num, k_cols.size(0)), dtype=torch.bool, device=device)
    if pos_mask is not None:
        pos[:, offset:offset + num] = pos_mask.bool()
    if anchor == 'student':
        anchors, candidates = q, k_cols
    else:
        anchors, candidates = k, q_cols
    loss = soft_contrast_rows(anchors, candidates, k, k_cols, pos, valid,
                              col_valid, rows + offset, coeff,
                              student_temperature, teacher_temperature,
                              normalize_target)
    return weighted_reduce(loss, weight, reduction, avg_factor, mask=valid)


@MODELS.register_module()
class SCELoss(BaseLoss):
    """SCE loss (in-batch negatives).

    Args:
        coeff (float): lambda between the one-hot (InfoNCE) and relational
            targets. Defaults to 0.5 (SCE, ``SCEModel.coeff``).
        student_temperature (float): tau. Defaults to 0.1 (SCE ``temp``).
        teacher_temperature (float): tau_m. Defaults to 0.05 (SCE class
            default ``temp_m``; 0.07 in its ImageNet config).
        normalize_target (bool): L1-normalise the target rows (SCE's code;
            a no-op with one positive per row). Defaults to True.
        anchor (str): ``'student'`` (SCE) or ``'teacher'``, see
            :func:`sce_loss`. Defaults to ``'student'``.
        gather_negatives (bool): Negatives from the whole global batch in
            distributed training (see :func:`sce_loss`). Defaults to False:
            per-GPU negatives (SCE uses a queue instead; no source for a
            global in-batch form).
        reduction (str): 'none', 'mean' (over valid rows) or 'sum'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 coeff: float = 0.5,
                 student_temperature: float = 0.1,
                 teacher_temperature: float = 0.05,
                 normalize_target: bool = True,
                 anchor: str = 'student',
                 gather_negatives: bool = False,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__(reduction, loss_weight)
        check_anchor(type(self).__name__, anchor)
        self.student_temperature = student_temperature
        self.teacher_temperature = teacher_temperature
        self.coeff = coeff
        self.normalize_target = normalize_target
        self.anchor = anchor
        self.gather_negatives = gather_negatives

    def forward(self,
                student: Tensor,
                teacher: Tensor,
                valid: Optional[Tensor] = None,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Args: student, teacher (M, D); valid, weight (M,), optional."""
        return self.loss_weight * sce_loss(
            student,
            teacher,
            valid=valid,
            weight=weight,
            reduction=self.get_reduction(reduction_override),
            avg_factor=avg_factor,
            **self.sce_options)

    @property
    def sce_options(self) -> dict:
        """dict: the hyper-parameters passed to the functional form."""
        return dict(
            coeff=self.coeff,
            student_temperature=self.student_temperature,
            teacher_temperature=self.teacher_temperature,
            normalize_target=self.normalize_target,
            anchor=self.anchor,
            gather_negatives=self.gather_negatives)

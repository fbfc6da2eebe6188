"""Similarity Contrastive Estimation (SCE) loss, in-batch form.

Denize et al., "Similarity Contrastive Estimation for Self-Supervised Soft
Contrastive Learning", WACV 2023 (github CEA-LIST/SCE,
``sce/models/siamese/sce.py``). The official code contrasts a query with its
key and a queue; here the negatives are the other samples of the batch (the
form ProSeCo's LocSCE builds on), and the one-hot positive may be replaced by
a multi-positive mask (used by :func:`loc_sce_loss`).

For a student (online) embedding ``q_i`` and teacher (momentum) embeddings
``k_1..k_M`` (all L2-normalised)::

    s_ik   = softmax_{k != i}(k_i . k_k / tau_m)       (self-similarity excluded)
    w_ik   = normalize_L1(lambda * pos_ik + (1 - lambda) * s_ik)
    p_ik   = log_softmax_k(q_i . k_k / tau)
    loss_i = - sum_k w_ik * p_ik

Options (used by ProSeCo's LocSCE, see :mod:`.loc_sce_loss`):
``normalize_target=False`` drops the L1 normalisation of the target rows,
``anchor='teacher'`` swaps the roles (row = teacher embedding, softmax over
the paired student embeddings), ``gather_negatives=True`` takes the columns
from the whole global batch in distributed training.

Note on the self-similarity: the docstring formula of the official code
excludes ``k = i`` from ``s`` (indicator ``1_{i != k}``); its implementation
puts a zero logit in the positive slot instead. We follow the formula (and
``methods.md``) and exclude it.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmregion.registry import MODELS

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
                       temp: float, temp_m: float,
                       normalize_target: bool) -> Tensor:
    """The SCE/LocSCE cross-entropy of each row (the math, vectorised).

    Args:
        anchors (Tensor): (M, D) L2-normalised row embeddings.
        candidates (Tensor): (C, D) L2-normalised column embeddings; the
            prediction of row ``r`` is ``softmax_c(anchors[r] . cand[c] /
            temp)`` over the valid columns.
        t_rows (Tensor): (M, D) normalised teacher embeddings of the rows.
        t_cols (Tensor): (C, D) normalised teacher embeddings of the columns
            (the relational target ``softmax_c(t_rows[r] . t_cols[c] /
            temp_m)``, own column excluded).
        pos (Tensor): (M, C) bool positives (the own column is added).
        row_valid (Tensor): (M,) bool. col_valid (Tensor): (C,) bool.
        self_col (Tensor): (M,) long, the column of each row's own pair.
        coeff, temp, temp_m (float): lambda, tau, tau_m.
        normalize_target (bool): L1-normalise each target row.

    Returns:
        Tensor: (M,) loss per row, 0 for invalid rows.
    """
    num, num_cols = anchors.size(0), candidates.size(0)
    own = torch.zeros((num, num_cols), dtype=torch.bool, device=pos.device)
    own[torch.arange(num, device=pos.device), self_col] = True
    col_ok = col_valid[None, :].expand(num, num_cols)
    s_teacher = masked_softmax(t_rows @ t_cols.t() / temp_m, col_ok & ~own)
    target = coeff * ((pos | own) & col_ok).to(anchors.dtype) + \
        (1 - coeff) * s_teacher
    if normalize_target:
        target = F.normalize(target, p=1, dim=-1)
    # a finite fill: a row without any valid column stays finite (no NaN
    # through log_softmax's backward)
    logits = (anchors @ candidates.t() / temp).masked_fill(
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
             temp: float = 0.1,
             temp_m: float = 0.05,
             normalize_target: bool = True,
             anchor: str = 'student',
             gather_negatives: bool = False) -> Tuple[Tensor, Tensor]:
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
        temp (float): tau, temperature of the student similarities.
        temp_m (float): tau_m, temperature of the teacher similarities.
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

    Returns:
        tuple[Tensor, Tensor]: ``loss`` (M,) per-row loss (0 for invalid rows)
        and ``valid`` (M,) bool.
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
                              col_valid, rows + offset, coeff, temp, temp_m,
                              normalize_target)
    return loss, valid


@MODELS.register_module()
class SCELoss(nn.Module):
    """SCE loss (in-batch negatives).

    Args:
        coeff (float): lambda between the one-hot (InfoNCE) and relational
            targets. Defaults to 0.5 (SCE, ``SCEModel.coeff``).
        temp (float): Student temperature tau. Defaults to 0.1 (SCE).
        temp_m (float): Teacher temperature tau_m. Defaults to 0.05 (SCE
            class default; 0.07 in its ImageNet config).
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
                 temp: float = 0.1,
                 temp_m: float = 0.05,
                 normalize_target: bool = True,
                 anchor: str = 'student',
                 gather_negatives: bool = False,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f'SCELoss: unknown reduction {reduction}')
        check_anchor('SCELoss', anchor)
        self.coeff = coeff
        self.temp = temp
        self.temp_m = temp_m
        self.normalize_target = normalize_target
        self.anchor = anchor
        self.gather_negatives = gather_negatives
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self,
                student: Tensor,
                teacher: Tensor,
                valid: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Args: student, teacher (M, D); valid (M,) bool, optional."""
        loss, valid = sce_loss(student, teacher, None, valid, self.coeff,
                               self.temp, self.temp_m, self.normalize_target,
                               self.anchor, self.gather_negatives)
        return self.loss_weight * reduce_rows(
            loss, valid, reduction_override or self.reduction, avg_factor)


def reduce_rows(loss: Tensor,
                valid: Tensor,
                reduction: str,
                avg_factor: Optional[float] = None) -> Tensor:
    """Reduce per-row losses; 'mean' divides by ``avg_factor`` or by the
    number of valid rows (at least 1, so no row gives 0, not NaN)."""
    if reduction == 'none':
        return loss
    if reduction == 'sum':
        return loss.sum()
    if avg_factor is None:
        avg_factor = valid.sum().clamp(min=1).to(loss.dtype)
    return loss.sum() / avg_factor

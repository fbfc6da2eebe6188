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

__all__ = ['SCELoss', 'sce_loss', 'masked_softmax']


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
    row_max = torch.where(torch.isfinite(row_max), row_max,
                          torch.zeros_like(row_max))
    e = torch.exp(lg - row_max)
    return e / e.sum(dim=-1, keepdim=True).clamp(min=torch.finfo(e.dtype).tiny)


def sce_loss(student: Tensor,
             teacher: Tensor,
             pos_mask: Optional[Tensor] = None,
             valid: Optional[Tensor] = None,
             coeff: float = 0.5,
             temp: float = 0.1,
             temp_m: float = 0.05) -> Tuple[Tensor, Tensor]:
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

    Returns:
        tuple[Tensor, Tensor]: ``loss`` (M,) per-row loss (0 for invalid rows)
        and ``valid`` (M,) bool.
    """
    if student.shape != teacher.shape or student.dim() != 2:
        raise ValueError('sce_loss: student and teacher must both be (M, D), '
                         f'got {tuple(student.shape)} and '
                         f'{tuple(teacher.shape)}')
    num = student.size(0)
    device = student.device
    eye = torch.eye(num, dtype=torch.bool, device=device)
    if valid is None:
        valid = torch.ones(num, dtype=torch.bool, device=device)
    valid = valid.bool()
    pos = eye if pos_mask is None else (pos_mask.bool() | eye)
    col_ok = valid[None, :].expand(num, num)

    q = F.normalize(student, dim=-1)
    k = F.normalize(teacher.detach(), dim=-1)
    # relational part: teacher-vs-teacher, self excluded
    s_teacher = masked_softmax(k @ k.t() / temp_m, col_ok & ~eye)
    target = coeff * (pos & col_ok).to(q.dtype) + (1 - coeff) * s_teacher
    target = F.normalize(target, p=1, dim=-1)
    # prediction: student-vs-teacher over the valid columns
    logits = (q @ k.t() / temp).masked_fill(~col_ok, float('-inf'))
    log_p = F.log_softmax(logits, dim=-1)
    terms = torch.where(target > 0, target * log_p, torch.zeros_like(log_p))
    loss = -terms.sum(dim=-1)
    loss = torch.where(valid, loss, torch.zeros_like(loss))
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
        reduction (str): 'none', 'mean' (over valid rows) or 'sum'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 coeff: float = 0.5,
                 temp: float = 0.1,
                 temp_m: float = 0.05,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f'SCELoss: unknown reduction {reduction}')
        self.coeff = coeff
        self.temp = temp
        self.temp_m = temp_m
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
                               self.temp, self.temp_m)
        return self.loss_weight * reduce_rows(
            loss, valid, reduction_override or self.reduction, avg_factor)


def reduce_rows(loss: Tensor, valid: Tensor, reduction: str,
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

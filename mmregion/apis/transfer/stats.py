"""Statistics of the transfer benchmark: paired tests on per-box
predictions, tests over pre-training seeds, the gate and claim verdicts.

Two backbones probed on the *same* boxes give paired outcomes: McNemar's
exact test (a two-sided binomial test on the discordant pairs) and a paired
bootstrap use that pairing, and the standard error of a difference is the
one of the per-box differences (not the independent-samples formula). A
difference over pre-training seeds uses Welch's t (unequal variances).
"""
import math
from typing import Dict, Sequence, Tuple

import numpy as np


class GateFailed(RuntimeError):
    """The protocol's gate did not pass: later stages would measure noise."""


def _paired(correct_a: Sequence,
            correct_b: Sequence) -> Tuple[np.ndarray, np.ndarray]:
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError('paired statistics need two non-empty 1-D outcome '
                         f'vectors of one length, got shapes {a.shape} and '
                         f'{b.shape}')
    return a, b


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for one value)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError('mean_std: no values')
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def paired_difference(correct_a: Sequence,
                      correct_b: Sequence) -> Dict[str, float]:
    """Accuracy difference ``a - b`` (points) and its paired standard error.

    Args:
        correct_a: ``(N, )`` 0/1 outcomes of backbone a on N boxes.
        correct_b: ``(N, )`` outcomes of backbone b on the same boxes.

    Returns:
        dict: ``diff`` and ``se`` in percentage points (``se`` = std of the
        per-box differences / sqrt(N)), ``n``.
    """
    a, b = _paired(correct_a, correct_b)
    d = a.astype(float) - b.astype(float)
    se = d.std(ddof=1) / math.sqrt(d.size) if d.size > 1 else 0.0
    return dict(diff=100 * float(d.mean()), se=100 * float(se), n=int(d.size))


def mcnemar(correct_a: Sequence, correct_b: Sequence) -> Dict[str, float]:
    """McNemar's exact test on paired outcomes.

    Returns:
        dict: ``a_only`` (boxes only a gets right), ``b_only`` and the
        two-sided exact binomial ``p`` of ``a_only`` out of the discordant
        pairs under p = 1/2 (1.0 without discordant pairs).
    """
    from scipy.stats import binomtest
    a, b = _paired(correct_a, correct_b)
    a_only, b_only = int((a & ~b).sum()), int((b & ~a).sum())
    n = a_only + b_only
    p = 1.0 if n == 0 else float(binomtest(a_only, n, 0.5).pvalue)
    return dict(a_only=a_only, b_only=b_only, p=p)


def paired_bootstrap(correct_a: Sequence,
                     correct_b: Sequence,
                     num_samples: int = 10000,
                     seed: int = 0,
                     level: float = 0.95) -> Dict[str, float]:
    """Paired bootstrap of the accuracy difference ``a - b`` (points).

    Boxes are resampled with replacement, the same indices for a and b.

    Returns:
        dict: ``diff``, the percentile interval ``low``/``high`` at
        ``level`` and a two-sided ``p`` (twice the smaller tail share of
        resampled differences at or beyond 0, at most 1).
    """
    a, b = _paired(correct_a, correct_b)
    d = a.astype(float) - b.astype(float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(num_samples, d.size))
    means = d[idx].mean(1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    p = min(1.0, 2 * min((means <= 0).mean(), (means >= 0).mean()))
    return dict(
        diff=100 * float(d.mean()),
        low=100 * float(low),
        high=100 * float(high),
        p=float(p))


def welch(values_a: Sequence[float],
          values_b: Sequence[float]) -> Dict[str, float]:
    """Welch's t-test of ``mean(a) - mean(b)`` over seeds (two-sided).

    Returns:
        dict: ``diff``, ``t`` and ``p``; ``p`` is NaN when either group has
        fewer than 2 values or both have no spread (no test possible).
    """
    from scipy.stats import ttest_ind
    a = np.asarray(values_a, dtype=float)
    b = np.asarray(values_b, dtype=float)
    diff = float(a.mean() - b.mean()) if a.size and b.size else math.nan
    if a.size < 2 or b.size < 2 or (a.std() == 0 and b.std() == 0):
        return dict(diff=diff, t=math.nan, p=math.nan)
    res = ttest_ind(a, b, equal_var=False)
    return dict(diff=diff, t=float(res.statistic), p=float(res.pvalue))


def check_gate(candidate: Sequence,
               baseline: Sequence,
               min_se: float = 5.0,
               name: str = 'mocov2',
               baseline_name: str = 'random init') -> Dict[str, float]:
    """The protocol's gate: ``candidate`` must beat ``baseline`` on the same
    boxes by at least ``min_se`` paired standard errors.

    Args:
        candidate: ``(N, )`` probe outcomes of the gate's method.
        baseline: ``(N, )`` outcomes of the baseline on the same boxes.
        min_se (float): Required margin in standard errors.

    Returns:
        dict: :func:`paired_difference` plus ``margin_se``.

    Raises:
        GateFailed: With a one-line message when the margin is too small.
    """
    res = paired_difference(candidate, baseline)
    margin = res['diff'] / res['se'] if res['se'] > 0 else (
        math.inf if res['diff'] > 0 else 0.0)
    res['margin_se'] = margin
    if not margin >= min_se:
        raise GateFailed(
            f'gate failed: {name} beats {baseline_name} on the region probe '
            f'by {res["diff"]:+.1f} points = {margin:.1f} SE (needs >= '
            f'{min_se:g} SE, {res["n"]} boxes); pre-training does not learn '
            'under this protocol, so later stages would measure noise: '
            'lengthen pre-training or fix the views before going on')
    return res


def verdict(diff: float, p: float, alpha: float = 0.01) -> str:
    """Verdict on a claim that predicts ``diff > 0``.

    ``reproduced``: ``p < alpha`` and ``diff > 0``; ``not reproduced``:
    ``p < alpha`` and ``diff < 0`` (the data contradict the claim);
    ``inconclusive`` otherwise (including no test: ``p`` NaN).
    """
    if p is None or math.isnan(p) or p >= alpha:
        return 'inconclusive'
    return 'reproduced' if diff > 0 else 'not reproduced'

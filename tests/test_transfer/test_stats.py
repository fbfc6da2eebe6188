"""Paired statistics and the gate of the transfer benchmark against
hand-computed and loop references."""
import math

import numpy as np
import pytest

from mmregion.apis.transfer import stats


def test_mcnemar_exact_against_binomial_sum():
    a = [1, 1, 1, 1, 1, 0, 1, 0, 1, 1]
    b = [0, 0, 0, 0, 1, 0, 1, 1, 1, 0]
    res = stats.mcnemar(a, b)
    assert (res['a_only'], res['b_only']) == (5, 1)
    # two-sided exact: 2 * P(X >= 5 | n=6, p=1/2) = 2 * (6 + 1) / 64
    assert res['p'] == pytest.approx(14 / 64, rel=1e-9)
    assert stats.mcnemar([1, 0], [1, 0])['p'] == 1.0
    with pytest.raises(ValueError, match='one length'):
        stats.mcnemar([1, 0], [1])


def test_paired_difference_se_is_paired():
    a = np.array([1, 1, 0, 1, 0, 1])
    b = np.array([1, 0, 0, 1, 0, 0])
    res = stats.paired_difference(a, b)
    d = a - b
    assert res['diff'] == pytest.approx(100 * d.mean())
    ref_se = math.sqrt(sum((x - d.mean())**2 for x in d) / 5) / math.sqrt(6)
    assert res['se'] == pytest.approx(100 * ref_se)
    # identical outcomes: no spread at all, while the independent-samples
    # formula would give a positive SE
    assert stats.paired_difference(a, a)['se'] == 0.0


def test_paired_bootstrap_matches_loop():
    rng = np.random.default_rng(3)
    a = rng.random(50) < 0.7
    b = rng.random(50) < 0.4
    res = stats.paired_bootstrap(a, b, num_samples=500, seed=1)
    # loop reference with the same index draws
    idx = np.random.default_rng(1).integers(0, 50, size=(500, 50))
    means = []
    for row in idx:
        means.append(sum(float(a[i]) - float(b[i]) for i in row) / 50)
    low, high = np.quantile(means, [0.025, 0.975])
    assert res['low'] == pytest.approx(100 * low)
    assert res['high'] == pytest.approx(100 * high)
    assert res['low'] <= res['diff'] <= res['high']
    assert 0 <= res['p'] <= 1
    assert stats.paired_bootstrap(a, a, num_samples=50)['p'] == 1.0


def test_welch_against_formula():
    a, b = [70.0, 72.0, 71.0], [60.0, 65.0, 61.0, 62.0]
    res = stats.welch(a, b)
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 4
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    assert res['t'] == pytest.approx(t)
    df = (va + vb)**2 / (va**2 / 2 + vb**2 / 3)
    from scipy.stats import t as tdist
    assert res['p'] == pytest.approx(2 * tdist.sf(abs(t), df))
    assert math.isnan(stats.welch([1.0], [2.0, 3.0])['p'])


def test_gate_passes_and_fails_with_one_line():
    base = [1] * 20 + [0] * 180
    good = [1] * 120 + [0] * 80
    res = stats.check_gate(good, base, 5.0)
    assert res['margin_se'] > 5
    with pytest.raises(stats.GateFailed) as err:
        stats.check_gate(base[:190] + [1] * 10, base, 5.0)
    msg = str(err.value)
    assert 'gate failed' in msg and '\n' not in msg and 'SE' in msg


def test_verdict():
    assert stats.verdict(3.0, 0.001) == 'reproduced'
    assert stats.verdict(-3.0, 0.001) == 'not reproduced'
    assert stats.verdict(3.0, 0.2) == 'inconclusive'
    assert stats.verdict(3.0, float('nan')) == 'inconclusive'

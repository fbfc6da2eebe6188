"""kornia-semantics blur and brightness (issue 24 item 6, CCOP's GPU
augmentation) against loop-form references of kornia's formulas."""
import math

import numpy as np
import pytest

from mmregion.datasets.transforms import AdditiveBrightness, KorniaGaussianBlur


def _reflect101(i, n):
    while i < 0 or i >= n:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


def _loop_blur(img, k, sigma):
    """kornia gaussian_blur2d: exp(-x^2/2s^2), x = -k//2..k//2, sum 1, a
    separable 2-D product, torch 'reflect' padding (edge not repeated)."""
    w = [math.exp(-(x - k // 2)**2 / (2 * sigma**2)) for x in range(k)]
    w = [v / sum(w) for v in w]
    h, wd, c = img.shape
    out = np.zeros((h, wd, c))
    for y in range(h):
        for x in range(wd):
            for ch in range(c):
                out[y, x, ch] = sum(w[i] * w[j] *
                                    img[_reflect101(y + i - k // 2, h),
                                        _reflect101(x + j - k // 2, wd), ch]
                                    for i in range(k) for j in range(k))
    return out


@pytest.mark.parametrize('sigma', [0.1, 0.8, 2.0])
def test_blur_is_kornias_fixed_kernel(sigma):
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (6, 9, 3)).astype(np.float32)
    out = KorniaGaussianBlur(kernel_size=7).blur(img, sigma)
    np.testing.assert_allclose(out, _loop_blur(img, 7, sigma), atol=1e-5)
    # a larger sigma still uses the 7x7 kernel (PIL's would grow): a
    # one-pixel impulse spreads over 7x7 pixels at most
    impulse = np.zeros((15, 15, 1), np.float32)
    impulse[7, 7] = 1
    spread = KorniaGaussianBlur(kernel_size=7).blur(impulse, 2.0)[..., 0]
    assert np.count_nonzero(spread > 1e-7) == 49
    # uint8 in, uint8 out, rounded
    u8 = (img * 255).astype(np.uint8)
    out8 = KorniaGaussianBlur().blur(u8, sigma)
    assert out8.dtype == np.uint8
    assert np.abs(out8 - _loop_blur(u8.astype(float), 7, sigma)).max() <= 0.5


def test_blur_draws_sigma_and_applies_with_prob():
    img = np.random.default_rng(1).integers(0, 255, (8, 8, 3), np.uint8)
    t = KorniaGaussianBlur(prob=0.0)
    assert t(dict(img=img.copy()))['img'] is not None
    np.testing.assert_array_equal(t(dict(img=img.copy()))['img'], img)
    np.random.seed(3)
    out = KorniaGaussianBlur(
        sigma_range=(1.5, 1.5), prob=1.0)(dict(img=img.copy()))['img']
    np.testing.assert_array_equal(out, KorniaGaussianBlur().blur(img, 1.5))
    with pytest.raises(ValueError, match='sigma_range'):
        KorniaGaussianBlur(sigma_range=(0, 1))


def test_brightness_is_additive_as_kornia():
    img = np.array([[[0, 100, 250]]], np.uint8)
    t = AdditiveBrightness(brightness=0.4)
    # f = 1.2: + 0.2 * 255 = +51, clipped at 255 (multiplicative: 0,120,255)
    np.testing.assert_array_equal(t.adjust(img, 1.2), [[[51, 151, 255]]])
    # f = 0.8: - 51, clipped at 0
    np.testing.assert_array_equal(t.adjust(img, 0.8), [[[0, 49, 199]]])
    f32 = img.astype(np.float32) / 255
    np.testing.assert_allclose(
        t.adjust(f32, 1.1), np.clip(f32 + 0.1, 0, 1), atol=1e-6)
    # the factor is drawn from U(max(0, 1 - b), 1 + b)
    np.random.seed(0)
    grey = np.full((1, 1, 3), 128, np.uint8)
    shifts = [
        int(t(dict(img=grey.copy()))['img'][0, 0, 0]) - 128 for _ in range(400)
    ]
    assert -102 <= min(shifts) < -80 and 80 < max(shifts) <= 102

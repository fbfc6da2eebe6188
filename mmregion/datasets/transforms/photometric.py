"""Photometric ops with kornia's semantics (CCOP's GPU augmentation).

CCOP (ChenhongyiYang/CCOP ``openselfsup/datasets/pipelines/
kornia_transform.py``, config ``configs/selfsup/ccop/r50_d2.py``) augments
its views on the GPU with kornia (unpinned; the 2021 ``ColorJitter``, today
kornia's ``ColorJiggle``):

- ``K.RandomGaussianBlur(kernel_size=(7, 7), sigma=(0.1, 2.0), p=0.5)``: a
  fixed 7 x 7 kernel, ``exp(-x^2 / (2 sigma^2))`` over ``x = -3..3``
  normalised to sum 1 (kornia ``filters/kernels.py`` ``gaussian``), padded
  with ``reflect`` (the edge pixel not repeated: OpenCV's
  ``BORDER_REFLECT_101``). mmpretrain's ``GaussianBlur`` (our configs'
  default) is PIL's, whose kernel grows with sigma (radius ~ 3 sigma).
- ``ColorJitter(brightness=0.4, ...)``: the factor ``f ~ U(max(0, 1 - b),
  1 + b)`` is *added* as ``f - 1`` to the [0, 1] image, then clipped
  (kornia ``enhance/adjust.py`` ``adjust_brightness(img, f - 1)``);
  mmpretrain's / torchvision's ``ColorJitter`` *multiply* by ``f``.

On our uint8 ``H x W x 3`` images the same arithmetic runs in float and is
rounded back to uint8 (CCOP keeps float [0, 1]: at most 0.5 / 255 apart).
"""
from typing import Optional, Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmregion.registry import TRANSFORMS

__all__ = ['KorniaGaussianBlur', 'AdditiveBrightness', 'kornia_kernel_1d']


def kornia_kernel_1d(kernel_size: int, sigma: float) -> np.ndarray:
    """kornia's normalised 1-D Gaussian window.

    Args:
        kernel_size (int): Window length (>= 1).
        sigma (float): Standard deviation (> 0).

    Returns:
        np.ndarray: (kernel_size,) float64 weights summing to 1.
    """
    x = np.arange(kernel_size, dtype=np.float64) - kernel_size // 2
    if kernel_size % 2 == 0:
        x = x + 0.5
    g = np.exp(-x**2 / (2.0 * sigma**2))
    return g / g.sum()


@TRANSFORMS.register_module()
class KorniaGaussianBlur(BaseTransform):
    """Gaussian blur with a fixed kernel size, as kornia's
    ``RandomGaussianBlur`` (CCOP's views).

    With probability ``prob``, ``sigma ~ U(*sigma_range)`` and the image
    (H, W, C) is convolved separably with :func:`kornia_kernel_1d` along
    both axes, reflect-101 padding.

    Required keys: ``img``. Modified keys: ``img``.

    Args:
        sigma_range (Sequence[float]): Range of sigma. Defaults to
            (0.1, 2.0) (CCOP ``r50_d2.py``).
        kernel_size (int): Kernel side, fixed whatever sigma is. Defaults to
            7 (CCOP ``kernel_size=(7, 7)``).
        prob (float): Probability of blurring. Defaults to 0.5 (CCOP).
    """

    def __init__(self,
                 sigma_range: Sequence[float] = (0.1, 2.0),
                 kernel_size: int = 7,
                 prob: float = 0.5) -> None:
        if not (len(sigma_range) == 2
                and 0 < sigma_range[0] <= sigma_range[1]):
            raise ValueError('KorniaGaussianBlur: sigma_range must be (lo, '
                             f'hi) with 0 < lo <= hi, got {sigma_range}')
        if kernel_size < 1:
            raise ValueError('KorniaGaussianBlur: kernel_size must be >= 1, '
                             f'got {kernel_size}')
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))
        self.kernel_size = int(kernel_size)
        self.prob = float(prob)

    def blur(self, img: np.ndarray, sigma: float) -> np.ndarray:
        """Blur ``img`` (H, W[, C]) with a given ``sigma``; same dtype."""
        k = kornia_kernel_1d(self.kernel_size, sigma)
        out = cv2.sepFilter2D(
            img.astype(np.float32),
            -1,
            k,
            k,
            anchor=(self.kernel_size // 2, self.kernel_size // 2),
            borderType=cv2.BORDER_REFLECT_101)
        if out.ndim < img.ndim:
            out = out[..., None]
        if img.dtype == np.uint8:
            return np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return out.astype(img.dtype)

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        sigma = np.random.uniform(*self.sigma_range)
        results['img'] = self.blur(results['img'], sigma)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(sigma_range={self.sigma_range}, '
                f'kernel_size={self.kernel_size}, prob={self.prob})')


@TRANSFORMS.register_module()
class AdditiveBrightness(BaseTransform):
    """Brightness as kornia's ``ColorJitter``/``ColorJiggle``: additive.

    With probability ``prob``, ``f ~ U(max(0, 1 - brightness), 1 +
    brightness)`` and ``img = clip(img + (f - 1) * max_value, 0,
    max_value)`` (kornia adds ``f - 1`` to a [0, 1] image).

    Required keys: ``img``. Modified keys: ``img``.

    Args:
        brightness (float): Jitter strength. Defaults to 0.4 (CCOP).
        prob (float): Probability of applying it. Defaults to 1.0 (put it
            inside the ``RandomApply`` of the colour jitter for CCOP's 0.8).
        max_value (float, optional): The image's white (255 for uint8, 1.0
            for float). Defaults to None: 255 for uint8, else 1.0.
    """

    def __init__(self,
                 brightness: float = 0.4,
                 prob: float = 1.0,
                 max_value: Optional[float] = None) -> None:
        if brightness < 0:
            raise ValueError('AdditiveBrightness: brightness must be >= 0, '
                             f'got {brightness}')
        self.brightness = float(brightness)
        self.prob = float(prob)
        self.max_value = max_value

    def adjust(self, img: np.ndarray, factor: float) -> np.ndarray:
        """Add ``factor - 1`` (in units of white) to ``img``; same dtype."""
        white = self.max_value if self.max_value is not None else (
            255.0 if img.dtype == np.uint8 else 1.0)
        out = np.clip(
            img.astype(np.float32) + (factor - 1.0) * white, 0, white)
        if img.dtype == np.uint8:
            return np.rint(out).astype(np.uint8)
        return out.astype(img.dtype)

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        factor = np.random.uniform(
            max(0.0, 1.0 - self.brightness), 1.0 + self.brightness)
        results['img'] = self.adjust(results['img'], factor)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(brightness={self.brightness}, '
                f'prob={self.prob})')

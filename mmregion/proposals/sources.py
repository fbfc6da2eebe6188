"""Unsupervised proposal sources for one image.

* :func:`selective_search`: OpenCV-contrib selective search (what CCOP and
  SoCo use), run at a working scale, followed by :func:`filter_boxes`.
* :func:`grid_proposals`: PLRC-style regular n x n grids.
* :func:`random_proposals`: seeded random boxes, for ablations and tests.

All return ``(N, 4)`` float32 xyxy boxes in the pixels of the input image
and are deterministic. The order of selective search is the NMS priority
(CCOP's random scores, or OpenCV's own order, which is not a quality
ranking: see :mod:`mmregion.proposals.filters`).
"""
import ctypes
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from mmregion.utils.images import to_bgr
from .filters import filter_boxes, random_priority

SS_MODES = ('fast', 'quality', 'single')
NMS_PRIORITIES = ('random', 'opencv')

_LIBC = None


def _seed_c_rand(seed: int) -> None:
    """Seed C's ``rand()``, which OpenCV's selective search uses to rank."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(None)
            _LIBC.srand  # noqa: B018 (raises AttributeError if absent)
        except (OSError, AttributeError, TypeError):
            _LIBC = False
    if _LIBC:
        _LIBC.srand(ctypes.c_uint(seed & 0xffffffff))


def _as_bgr(img: np.ndarray) -> np.ndarray:
    img = to_bgr(np.asarray(img))
    if img.ndim != 3 or img.shape[2] != 3 or img.size == 0:
        raise ValueError('selective_search expects an HxWx3 (or HxW) image, '
                         f'got shape {img.shape}')
    if img.dtype != np.uint8:
        raise ValueError(f'selective_search expects uint8, got {img.dtype}')
    return img


def selective_search_raw(img: np.ndarray,
                         mode: str = 'fast',
                         max_side: Optional[int] = 500,
                         single_k: int = 200,
                         single_sigma: float = 0.8,
                         seed: int = 0,
                         squash_size: Optional[int] = None,
                         swap_rb: bool = False) -> np.ndarray:
    """Unfiltered selective-search boxes in the input image's pixels.

    Args:
        img (np.ndarray): uint8 HxWx3 BGR image (HxW gray is accepted).
        mode (str): ``'fast'`` (``switchToSelectiveSearchFast``, CCOP's
            choice), ``'quality'`` (slower, more boxes) or ``'single'``
            (one graph segmentation + one strategy; very fast, for tests).
        max_side (int, optional): The image is downscaled (never upscaled)
            so that its longest side is at most this before the search;
            ``None`` or ``<= 0`` runs at full resolution. Defaults to 500.
        single_k (int): Graph-segmentation ``k`` of the ``'single'`` mode.
        single_sigma (float): Gaussian sigma of the ``'single'`` mode.
        seed (int): Seed of C ``rand()`` which OpenCV uses to rank regions.
        squash_size (int, optional): Resize the image to ``S x S`` (aspect
            ratio not kept, bilinear) before the search instead of the
            ``max_side`` scaling, as DETReg does with 128
            (``datasets/selfdet.py``, ``selective_search(res_size=128)``).
            None or ``<= 0``: off. Defaults to None.
        swap_rb (bool): Feed the image to OpenCV as RGB (DETReg passes a
            PIL RGB array to the BGR-expecting search). Defaults to False.

    Returns:
        np.ndarray: (N, 4) float32 xyxy boxes in OpenCV's order (regions
        sorted by ``rand() * hierarchy level``; not a quality ranking).
    """
    if mode not in SS_MODES:
        raise ValueError(f'selective_search: unknown mode {mode!r}, '
                         f'expected one of {SS_MODES}')
    img = _as_bgr(img)
    h, w = img.shape[:2]
    if swap_rb:
        img = np.ascontiguousarray(img[..., ::-1])
    if squash_size is not None and squash_size > 0:
        size = (int(squash_size), int(squash_size))
        img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
        sx, sy = w / float(size[0]), h / float(size[1])
    elif max_side is not None and max_side > 0 and max(h, w) > max_side:
        scale = max_side / float(max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        sx, sy = w / float(size[0]), h / float(size[1])
    else:
        sx = sy = 1.0
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(np.ascontiguousarray(img))
    if mode == 'fast':
        ss.switchToSelectiveSearchFast()
    elif mode == 'quality':
        ss.switchToSelectiveSearchQuality()
    else:
        ss.switchToSingleStrategy(single_k, single_sigma)
    _seed_c_rand(seed)
    rects = np.asarray(ss.process(), np.float32).reshape(-1, 4)
    boxes = np.empty_like(rects)
    boxes[:, 0] = rects[:, 0] * sx
    boxes[:, 1] = rects[:, 1] * sy
    boxes[:, 2] = (rects[:, 0] + rects[:, 2]) * sx
    boxes[:, 3] = (rects[:, 1] + rects[:, 3]) * sy
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    return boxes


def selective_search(img: np.ndarray,
                     mode: str = 'fast',
                     max_side: Optional[int] = 500,
                     min_size: float = 20.,
                     min_aspect: Optional[float] = 1. / 3.,
                     max_aspect: Optional[float] = 3.,
                     min_rel_area: float = 0.,
                     max_rel_area: float = 1.,
                     nms_iou: Optional[float] = 0.5,
                     topk: Optional[int] = 50,
                     single_k: int = 200,
                     single_sigma: float = 0.8,
                     seed: int = 0,
                     nms_priority: str = 'random',
                     priority_seed: Optional[int] = None,
                     squash_size: Optional[int] = None,
                     swap_rb: bool = False) -> np.ndarray:
    """Selective-search proposals of one image, filtered.

    The search runs at a working scale (longest side ``max_side``) and the
    boxes are mapped back to the input's pixels before filtering, so
    ``min_size`` is in original pixels. Filter arguments are those of
    :func:`filter_boxes` (defaults: CCOP's official filters, see
    ``docs/proposals.md``). Call ``cv2.setNumThreads(1)`` in worker
    processes.

    Args:
        img (np.ndarray): uint8 HxWx3 BGR image.
        mode (str): ``'fast'``, ``'quality'`` or ``'single'``.
        max_side (int, optional): Longest side of the working scale.
        nms_priority (str): ``'random'``: NMS and top-k follow seeded random
            scores, as CCOP (``tools/selective_search.py:89``), a random,
            size-agnostic subset; ``'opencv'``: OpenCV's order, biased
            towards small low-level segments. Defaults to ``'random'``.
        priority_seed (int, optional): Seed of the random scores (the
            generator passes one derived from the image key). Defaults to
            ``seed``.
        squash_size, swap_rb: See :func:`selective_search_raw`.

    Returns:
        np.ndarray: (K, 4) float32 xyxy boxes in priority order,
        ``K <= topk``.
    """
    if nms_priority not in NMS_PRIORITIES:
        raise ValueError(f'selective_search: unknown nms_priority '
                         f'{nms_priority!r}, expected one of '
                         f'{NMS_PRIORITIES}')
    boxes = selective_search_raw(
        img,
        mode=mode,
        max_side=max_side,
        single_k=single_k,
        single_sigma=single_sigma,
        seed=seed,
        squash_size=squash_size,
        swap_rb=swap_rb)
    scores = None
    if nms_priority == 'random':
        scores = random_priority(
            len(boxes), seed if priority_seed is None else priority_seed)
    return filter_boxes(
        boxes,
        img.shape[:2],
        min_size=min_size,
        min_aspect=min_aspect,
        max_aspect=max_aspect,
        min_rel_area=min_rel_area,
        max_rel_area=max_rel_area,
        nms_iou=nms_iou,
        topk=topk,
        scores=scores)


def grid_proposals(
    img_shape: Sequence[int], grid_sizes: Sequence[int] = (4, )
) -> np.ndarray:  # noqa: E125
    """PLRC-style regular grid regions.

    Args:
        img_shape (Sequence[int]): ``(h, w)`` of the image.
        grid_sizes (Sequence[int]): One ``n x n`` grid per entry, in this
            order; cells are listed row-major. Defaults to ``(4, )``.

    Returns:
        np.ndarray: (sum(n * n), 4) float32 xyxy boxes tiling the image.
    """
    h, w = img_shape[:2]
    out = []
    for n in grid_sizes:
        n = int(n)
        if n < 1:
            raise ValueError(f'grid_proposals: grid size must be >= 1, '
                             f'got {n}')
        xs = np.linspace(0, w, n + 1, dtype=np.float32)
        ys = np.linspace(0, h, n + 1, dtype=np.float32)
        gy, gx = np.meshgrid(np.arange(n), np.arange(n), indexing='ij')
        gx, gy = gx.reshape(-1), gy.reshape(-1)
        out.append(np.stack([xs[gx], ys[gy], xs[gx + 1], ys[gy + 1]], 1))
    if not out:
        return np.zeros((0, 4), np.float32)
    return np.concatenate(out).astype(np.float32)


def random_proposals(
    img_shape: Sequence[int],
    num: int = 50,
    seed: int = 0,
    scale: Tuple[float, float] = (0.02, 0.5),
    ratio: Tuple[float, float] = (1. / 3., 3.)
) -> np.ndarray:
    """Seeded random boxes inside the image.

    Args:
        img_shape (Sequence[int]): ``(h, w)`` of the image.
        num (int): Number of boxes. Defaults to 50.
        seed (int): Seed of ``np.random.default_rng``. Defaults to 0.
        scale (tuple[float, float]): Range of the box area relative to the
            image (uniform). Defaults to ``(0.02, 0.5)``.
        ratio (tuple[float, float]): Range of w/h (log-uniform); the box is
            shrunk to fit the image. Defaults to ``(1/3, 3)``.

    Returns:
        np.ndarray: (num, 4) float32 xyxy boxes.
    """
    h, w = img_shape[:2]
    rng = np.random.default_rng(seed)
    area = rng.uniform(scale[0], scale[1], num) * h * w
    log_r = rng.uniform(np.log(ratio[0]), np.log(ratio[1]), num)
    r = np.exp(log_r)
    bw = np.minimum(np.sqrt(area * r), w)
    bh = np.minimum(np.sqrt(area / r), h)
    x0 = rng.uniform(0, 1, num) * (w - bw)
    y0 = rng.uniform(0, 1, num) * (h - bh)
    return np.stack([x0, y0, x0 + bw, y0 + bh], 1).astype(np.float32)

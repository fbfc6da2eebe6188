"""Box filters for unsupervised region proposals (numpy only).

The defaults follow the official CCOP code's ``tools/selective_search.py``
(``docs/fidelity.md``, CCOP + proposals): aspect ratio w/h strictly
inside (1/3, 3), ``sqrt(w * h) > 20`` px, NMS at IoU 0.5 and the first 50
boxes. CCOP runs its NMS with random scores (``np.random.uniform(0.01, 1)``
per box), i.e. it keeps a random, level-agnostic subset; pass such
``scores`` to :func:`filter_boxes` to do the same (seeded, so the result is
deterministic). Without scores the priority is the order of the input. For
selective search that is OpenCV's order, which is *not* a quality ranking:
OpenCV sorts regions by ``rand() * hierarchy level`` ascending, so small
low-level segments tend to come first.
"""
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from mmregion.structures import clip_boxes


def box_iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box (4,) with many (N, 4); returns (N,) float32."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = (x1 - x0).clip(min=0) * (y1 - y0).clip(min=0)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: (N, 4) x (M, 4) -> (N, M) float32."""
    boxes1 = np.asarray(boxes1, np.float32).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, np.float32).reshape(-1, 4)
    lt = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (rb - lt).clip(min=0)
    inter = wh[..., 0] * wh[..., 1]
    a1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    a2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    return inter / np.maximum(a1[:, None] + a2[None] - inter, 1e-12)


def nms_in_order(boxes: np.ndarray,
                 iou_thr: float,
                 max_keep: Optional[int] = None) -> np.ndarray:
    """Greedy NMS that uses the input order as the priority.

    Box ``i`` is kept when its IoU with every kept box before it is
    ``<= iou_thr``. The loop runs once per *kept* box (at most ``max_keep``
    times), each step vectorised over the remaining boxes.

    Args:
        boxes (np.ndarray): (N, 4) xyxy boxes in priority order.
        iou_thr (float): IoU above which a later box is suppressed.
        max_keep (int, optional): Stop after this many kept boxes.

    Returns:
        np.ndarray: (K,) int64 indices of kept boxes, increasing.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    alive = np.ones(n, bool)
    keep = []
    i = 0
    while i < n:
        keep.append(i)
        if max_keep is not None and len(keep) >= max_keep:
            break
        rest = np.arange(i + 1, n)
        rest = rest[alive[i + 1:]]
        if len(rest) == 0:
            break
        iou = box_iou_one_to_many(boxes[i], boxes[rest])
        alive[rest[iou > iou_thr]] = False
        alive[i] = False
        nxt = np.flatnonzero(alive[i + 1:])
        if len(nxt) == 0:
            break
        i = i + 1 + int(nxt[0])
    return np.asarray(keep, np.int64)


def filter_boxes(
    boxes: np.ndarray,
    img_shape: Sequence[int],
    min_size: float = 20.,
    min_aspect: Optional[float] = 1. / 3.,
    max_aspect: Optional[float] = 3.,
    min_rel_area: float = 0.,
    max_rel_area: float = 1.,
    nms_iou: Optional[float] = 0.5,
    topk: Optional[int] = 50,
    return_inds: bool = False,
    scores: Optional[np.ndarray] = None
) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """Filter proposals, in the order of ``scores`` or of the input.

    Steps, in order: clip to the image; keep boxes with aspect ratio
    ``min_aspect < w / h < max_aspect`` (strict, as CCOP); keep
    ``sqrt(w * h) > min_size``; keep ``min_rel_area <= w * h / (W * H) <=
    max_rel_area``; sort by descending ``scores`` (stable; no sort without
    scores); greedy NMS at ``nms_iou`` in that order; the first ``topk``.
    Boxes with zero width or height are always dropped.

    Args:
        boxes (np.ndarray): (N, 4) xyxy boxes in pixels.
        img_shape (Sequence[int]): ``(h, w)`` of the image.
        min_size (float): Minimum ``sqrt(w * h)`` in pixels (exclusive).
            Defaults to 20 (CCOP).
        min_aspect (float, optional): Minimum w/h (exclusive); None: no
            limit. Defaults to 1/3 (CCOP).
        max_aspect (float, optional): Maximum w/h (exclusive); None: no
            limit. Defaults to 3 (CCOP).
        min_rel_area (float): Minimum box area relative to the image.
            Defaults to 0.
        max_rel_area (float): Maximum box area relative to the image.
            Defaults to 1.
        nms_iou (float, optional): NMS IoU threshold; ``None`` disables it.
            Defaults to 0.5 (CCOP).
        topk (int, optional): Keep at most this many boxes; ``None`` keeps
            all. Defaults to 50 (CCOP).
        return_inds (bool): Also return the indices into ``boxes``.
        scores (np.ndarray, optional): (N,) NMS priority (higher first);
            CCOP uses random scores, see :func:`random_priority`. None: the
            input order. Defaults to None.

    Returns:
        np.ndarray | tuple: (K, 4) float32 clipped boxes, in priority
        order, and, with ``return_inds``, their (K,) int64 indices in the
        input.
    """
    h, w = img_shape[:2]
    boxes = clip_boxes(boxes, img_shape)
    bw = boxes[:, 2] - boxes[:, 0]
    bh = boxes[:, 3] - boxes[:, 1]
    valid = (bw > 0) & (bh > 0)
    aspect = bw / np.maximum(bh, 1e-12)
    if min_aspect is not None:
        valid &= aspect > min_aspect
    if max_aspect is not None:
        valid &= aspect < max_aspect
    area = bw * bh
    valid &= np.sqrt(area) > min_size
    rel = area / float(max(h * w, 1))
    valid &= (rel >= min_rel_area) & (rel <= max_rel_area)
    inds = np.flatnonzero(valid)
    if scores is not None:
        scores = np.asarray(scores, np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise ValueError(f'filter_boxes: {len(scores)} scores for '
                             f'{len(boxes)} boxes')
        inds = inds[np.argsort(-scores[inds], kind='stable')]
    if nms_iou is not None and len(inds):
        inds = inds[nms_in_order(boxes[inds], nms_iou, topk)]
    if topk is not None:
        inds = inds[:topk]
    inds = inds.astype(np.int64)
    if return_inds:
        return boxes[inds], inds
    return boxes[inds]


def random_priority(num: int, seed: int) -> np.ndarray:
    """CCOP's random NMS scores, seeded: ``uniform(0.01, 1)`` per box.

    CCOP ``tools/selective_search.py:89`` draws
    ``np.random.uniform(0.01, 1., N)`` unseeded; here the generator is
    seeded (per image, see ``generate._key_seed``) so the store does not
    depend on the worker count or the processing order.

    Args:
        num (int): Number of boxes.
        seed (int): Seed of ``np.random.default_rng``.

    Returns:
        np.ndarray: (num,) float64 scores in ``[0.01, 1)``.
    """
    return np.random.default_rng(seed).uniform(0.01, 1., num)

"""Drawing helpers of the inspection tools (``tools/browse_*.py``).

Only numpy and OpenCV; images are uint8 BGR ``(H, W, 3)`` arrays.
"""
import os.path as osp
from typing import Optional, Sequence

import cv2
import numpy as np

from mmregion.utils.atomic_io import atomic_write

__all__ = ['region_colours', 'draw_boxes', 'write_image']


def region_colours(num: int, seed: int = 0) -> np.ndarray:
    """``num`` distinct bright BGR colours, the same for the same index.

    Args:
        num (int): Number of colours.
        seed (int): Colour table seed. Defaults to 0.

    Returns:
        np.ndarray: ``(num, 3)`` int array in [64, 255].
    """
    rng = np.random.default_rng(seed)
    return rng.integers(64, 256, size=(max(num, 1), 3))


def draw_boxes(img: np.ndarray,
               boxes: np.ndarray,
               colours: Optional[np.ndarray] = None,
               labels: Optional[Sequence[str]] = None,
               thick_first: bool = False) -> np.ndarray:
    """Draw xyxy boxes, box ``i`` in ``colours[i]`` with label ``labels[i]``.

    Box 0 is drawn last (on top).

    Args:
        img (np.ndarray): ``(H, W, 3)`` uint8 BGR image (not modified).
        boxes (np.ndarray): ``(K, 4)`` xyxy pixel boxes.
        colours (np.ndarray, optional): ``(>=K, 3)`` BGR colours. Defaults
            to :func:`region_colours`.
        labels (Sequence[str], optional): Text per box. Defaults to the box
            index.
        thick_first (bool): Draw box 0 with a 2-px line. Defaults to False.

    Returns:
        np.ndarray: A drawn copy of ``img``.
    """
    img = np.ascontiguousarray(img).copy()
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if colours is None:
        colours = region_colours(len(boxes))
    for i in range(len(boxes) - 1, -1, -1):
        x0, y0, x1, y1 = np.round(boxes[i]).astype(int)
        c = tuple(int(v) for v in colours[i])
        cv2.rectangle(img, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), c,
                      2 if (thick_first and i == 0) else 1)
        text = str(i) if labels is None else str(labels[i])
        cv2.putText(img, text, (x0 + 2, y0 + 12), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, c, 1, cv2.LINE_AA)
    return img


def write_image(img: np.ndarray, path: str) -> None:
    """Encode ``img`` by the file extension and write it atomically.

    Raises:
        ValueError: OpenCV cannot encode the image with that extension.
    """
    ext = osp.splitext(path)[1] or '.png'
    ok, buf = cv2.imencode(ext, img)
    if not ok:
        raise ValueError(f'cannot encode an image as {ext} for {path}')
    with atomic_write(path, 'wb') as f:
        f.write(buf.tobytes())

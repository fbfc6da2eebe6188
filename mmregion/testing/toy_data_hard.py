"""A harder synthetic COCO set, where pre-training can matter (``--preset
hard`` of ``tools/make_toy_coco.py``).

In the default toy set (:mod:`mmregion.testing.toy_data`) every category has
its own colour, so a network from random init solves it from colour alone.
Here:

* 10 categories, each a pair (shape, inner pattern) out of 5 shapes
  (ellipse, rectangle, triangle, star, cross) and 5 patterns (stripes, dots,
  checker, rings, grid). Every shape and every pattern occurs in exactly two
  categories, so neither alone identifies a category.
* Colour carries no information: each object is painted with two colours
  drawn uniformly, independently of its category.
* Backgrounds are cluttered: one of the same 5 patterns (random period,
  orientation and colours) blended with smooth noise, plus 3-7 distractor
  fragments (irregular blobs with the same patterns) that are not objects.
* 2-7 objects per image, side 10-50 % of the image, occluding each other
  (each keeps at least half of its area visible); masks and boxes of the
  visible parts as in the default set.

Layout: the default one plus ``annotations/instances_train_labeled.json``, a
seeded subset (``labeled_frac`` of ``train``, at least one image) used for
fine-tuning; the whole ``train`` split is the unlabeled pre-training set.
Deterministic given the seed; ~3000 images of 128 px take well under a
minute on one core.
"""
import json
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np

from mmregion.utils.atomic_io import atomic_write_json
from .toy_data import open_mask, place_objects, write_train_val

SHAPES = ('ellipse', 'rectangle', 'triangle', 'star', 'cross')
PATTERNS = ('stripes', 'dots', 'checker', 'rings', 'grid')
# category k (0-based): shape k % 5, pattern k % 5 (k < 5) or k % 5 + 2
# (mod 5) (k >= 5): a Latin pairing, every shape and pattern twice
_PAIRS = [(k % 5, (k % 5 + 2 * (k // 5)) % 5) for k in range(10)]
HARD_CATEGORIES = [
    dict(id=k + 1, name=f'{SHAPES[s]}_{PATTERNS[p]}', supercategory=SHAPES[s])
    for k, (s, p) in enumerate(_PAIRS)
]
HARD_CLASSES = tuple(c['name'] for c in HARD_CATEGORIES)


def _pattern(kind: int, xx: np.ndarray, yy: np.ndarray, cx: float, cy: float,
             angle: float, period: float) -> np.ndarray:
    """A binary {0, 1} float32 pattern on the grid ``(xx, yy)``.

    Coordinates are taken relative to ``(cx, cy)`` and rotated by ``angle``
    (radians), so the pattern moves and turns with its object.
    """
    dx, dy = xx - cx, yy - cy
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    if kind == 0:  # stripes
        t = np.sin(2 * np.pi * u / period) > 0
    elif kind == 1:  # dots
        fu = np.mod(u, period) - period / 2
        fv = np.mod(v, period) - period / 2
        t = fu * fu + fv * fv < (0.3 * period)**2
    elif kind == 2:  # checker
        t = (np.floor(u / period) + np.floor(v / period)) % 2 > 0
    elif kind == 3:  # concentric rings (around the centre)
        t = np.sin(2 * np.pi * np.hypot(u, v) / period) > 0
    else:  # grid lines
        t = (np.mod(u, period) < 0.3 * period) | (
            np.mod(v, period) < 0.3 * period)
    return t.astype(np.float32)


def _two_colours(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Two BGR colours, uniform and independent of any category, that
    differ enough for the pattern to be visible."""
    a = rng.uniform(0, 255, size=3)
    for _ in range(10):
        b = rng.uniform(0, 255, size=3)
        if np.abs(a - b).sum() > 150:
            break
    return a.astype(np.float32), b.astype(np.float32)


def _fill_pattern(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray,
                  kind: int, grid: Tuple[np.ndarray, np.ndarray]) -> None:
    """Paint ``mask`` (in place) with pattern ``kind`` in two random
    colours, a random period/orientation and pixel noise."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return
    xx, yy = grid[0][ys, xs], grid[1][ys, xs]
    t = _pattern(kind, xx, yy, float(xs.mean()), float(ys.mean()),
                 rng.uniform(0, np.pi), rng.uniform(4, 8))
    a, b = _two_colours(rng)
    tex = a + (b - a) * t[:, None] + rng.normal(0, 6, size=(len(xs), 3))
    img[ys, xs] = np.clip(tex, 0, 255).astype(np.uint8)


def _background(rng: np.random.Generator, size: int,
                grid: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """A cluttered uint8 BGR background of shape (size, size, 3)."""
    xx, yy = grid
    t = _pattern(
        int(rng.integers(len(PATTERNS))), xx, yy, rng.uniform(0, size),
        rng.uniform(0, size), rng.uniform(0, np.pi), rng.uniform(5, 12))
    a, b = _two_colours(rng)
    # low contrast, blended with smooth colour noise
    img = a + (b - a) * 0.5 * t[..., None]
    low = rng.uniform(-60, 60, size=(4, 4, 3)).astype(np.float32)
    img = img + cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    img = img + rng.normal(0, 8, size=img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    # distractor fragments: irregular blobs, patterned like the objects
    for _ in range(int(rng.integers(3, 8))):
        n = int(rng.integers(5, 10))
        radius = rng.uniform(0.04, 0.15) * size * rng.uniform(0.5, 1.0, size=n)
        theta = np.sort(rng.uniform(0, 2 * np.pi, size=n))
        cx, cy = rng.uniform(0, size, size=2)
        pts = np.stack(
            [cx + radius * np.cos(theta), cy + radius * np.sin(theta)], 1)
        mask = np.zeros((size, size), np.uint8)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
        _fill_pattern(rng, img, mask, int(rng.integers(len(PATTERNS))), grid)
    return img


def _shape_mask(rng: np.random.Generator, shape: int, size: int,
                min_scale: float, max_scale: float) -> np.ndarray:
    """Full (unoccluded) uint8 mask of one shape at a random pose."""
    mask = np.zeros((size, size), np.uint8)
    side = rng.uniform(min_scale, max_scale) * size
    aspect = np.exp(rng.uniform(np.log(0.7), np.log(1.4)))
    w, h = side * np.sqrt(aspect), side / np.sqrt(aspect)
    cx = rng.uniform(w / 2, size - w / 2)
    cy = rng.uniform(h / 2, size - h / 2)
    angle = rng.uniform(0, 360)
    centre = (float(cx), float(cy))
    if shape == 0:  # ellipse
        cv2.ellipse(mask, (centre, (float(w), float(h)), float(angle)), 1, -1)
        return open_mask(mask)
    if shape == 1:  # rectangle
        polys = [cv2.boxPoints((centre, (float(w), float(h)), float(angle)))]
    elif shape == 2:  # triangle
        theta = np.deg2rad(angle) + np.array([0, 2, 4]) * np.pi / 3
        polys = [
            np.stack([cx + w / 2 * np.cos(theta), cy + h / 2 * np.sin(theta)],
                     1)
        ]
    elif shape == 3:  # five-pointed star
        theta = np.deg2rad(angle) + np.arange(10) * np.pi / 5
        radius = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        polys = [
            np.stack([
                cx + w / 2 * radius * np.cos(theta),
                cy + h / 2 * radius * np.sin(theta)
            ], 1)
        ]
    else:  # cross: two bars of a third of the side
        polys = [
            cv2.boxPoints((centre, (float(w), float(w) / 3), float(angle))),
            cv2.boxPoints((centre, (float(h) / 3, float(h)), float(angle))),
        ]
    for pts in polys:
        pts = np.clip(pts, 0, size - 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return open_mask(mask)


def make_hard_scene(rng: np.random.Generator,
                    size: int = 128,
                    min_objects: int = 2,
                    max_objects: int = 7,
                    min_scale: float = 0.1,
                    max_scale: float = 0.5,
                    min_visible: float = 0.5) -> Tuple[np.ndarray, List[dict]]:
    """One hard scene: a (size, size, 3) uint8 BGR image and its COCO
    annotations (without ids); category ids index :data:`HARD_CATEGORIES`."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    grid = (xx, yy)
    img = _background(rng, size, grid)

    def paint(r, im, mask, cat_id):
        _fill_pattern(r, im, mask, _PAIRS[cat_id - 1][1], grid)

    def draw(r, cat_id):
        return _shape_mask(r, _PAIRS[cat_id - 1][0], size, min_scale,
                           max_scale)

    num = int(rng.integers(min_objects, max_objects + 1))
    anns = place_objects(rng, img, num, len(HARD_CATEGORIES), draw, paint,
                         min_visible)
    return img, anns


def write_labeled_subset(train_ann: str, out_ann: str, frac: float,
                         seed: int) -> int:
    """Write the COCO json of a seeded ``frac`` subset of ``train_ann``.

    Returns:
        int: The number of images in the subset (at least 1).
    """
    with open(train_ann) as f:
        coco = json.load(f)
    images = coco['images']
    num = max(1, int(round(frac * len(images))))
    order = np.random.default_rng([seed, 7]).permutation(len(images))
    keep = sorted(int(i) for i in order[:num])
    ids = {images[i]['id'] for i in keep}
    sub = dict(
        coco,
        images=[images[i] for i in keep],
        annotations=[a for a in coco['annotations'] if a['image_id'] in ids])
    sub['info'] = dict(coco.get('info', {}), labeled_frac=frac)
    atomic_write_json(out_ann, sub)
    return num


def make_hard_toy_coco(out_dir: str,
                       num_train: int = 3000,
                       num_val: int = 200,
                       size: int = 128,
                       seed: int = 0,
                       labeled_frac: float = 0.03,
                       jpeg_quality: int = 95) -> Dict[str, str]:
    """Write the hard synthetic COCO set (see the module docstring).

    Args:
        out_dir (str): Output root.
        num_train (int): Unlabeled pre-training images (``train/``; their
            annotations are written too). Defaults to 3000.
        num_val (int): Validation images. Defaults to 200.
        size (int): Image side in pixels. Defaults to 128.
        seed (int): Random seed. Defaults to 0.
        labeled_frac (float): Fraction of ``train`` in the labelled split
            ``instances_train_labeled.json``. Defaults to 0.03.
        jpeg_quality (int): JPEG quality. Defaults to 95.

    Returns:
        dict: ``root``, ``train_img_dir``, ``val_img_dir``, ``train_ann``,
        ``val_ann``, ``train_labeled_ann`` paths.
    """
    if size < 64:
        raise ValueError(f'make_hard_toy_coco: size must be >= 64, got {size}')
    if not 0 < labeled_frac <= 1:
        raise ValueError('make_hard_toy_coco: labeled_frac must be in (0, 1]'
                         f', got {labeled_frac}')
    paths = write_train_val(
        out_dir,
        num_train,
        num_val,
        lambda rng: make_hard_scene(rng, size),
        seed=seed,
        categories=HARD_CATEGORIES,
        description='mmregion hard toy COCO set',
        jpeg_quality=jpeg_quality)
    labeled = osp.join(paths['annotations'], 'instances_train_labeled.json')
    write_labeled_subset(paths['train_ann'], labeled, labeled_frac, seed)
    paths['train_labeled_ann'] = labeled
    return paths

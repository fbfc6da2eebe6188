"""A tiny synthetic COCO-format detection set for tests, demos and benchmarks.

Every image is a textured background (noise, gradients, stripes or a
checkerboard) with 2-6 objects of four categories (ellipse, rectangle,
triangle, star), each with its own colour family and texture. Objects are
placed so that each keeps at least ``min_visible`` of its area visible; the
annotation of an occluded object is the mask of its *visible* part (possibly
several polygons) and its box is the extent of those polygons (COCO
convention: vertices are continuous coordinates, so the box equals the
bounding box of the mask pycocotools rasterises from them, within 1 px).

The layout is the one of ``docs/design.md`` section 5::

    OUT/train/000000.jpg ...
    OUT/val/000000.jpg ...
    OUT/annotations/instances_train.json
    OUT/annotations/instances_val.json

This module only needs numpy and OpenCV and is deterministic given the seed.
"""
import os
import os.path as osp
from typing import Callable, Dict, List, Tuple

import cv2
import numpy as np

from mmregion.utils.atomic_io import atomic_write_json

CATEGORIES = [
    dict(id=1, name='ellipse', supercategory='shape'),
    dict(id=2, name='rectangle', supercategory='shape'),
    dict(id=3, name='triangle', supercategory='shape'),
    dict(id=4, name='star', supercategory='shape'),
]

# BGR base colour of every category (jittered per instance)
_BASE_COLOURS = {
    1: (40, 40, 210),  # red
    2: (200, 80, 30),  # blue
    3: (40, 180, 40),  # green
    4: (30, 200, 230),  # yellow
}

_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random textured uint8 BGR background of shape (size, size, 3)."""
    kind = rng.integers(4)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0 = rng.uniform(60, 200, size=3).astype(np.float32)
    c1 = rng.uniform(60, 200, size=3).astype(np.float32)
    if kind == 0:  # smooth noise
        low = rng.uniform(0, 1, size=(8, 8, 3)).astype(np.float32)
        t = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
        img = c0 + (c1 - c0) * np.clip(t, 0, 1)
    elif kind == 1:  # linear gradient
        angle = rng.uniform(0, np.pi)
        t = (np.cos(angle) * xx + np.sin(angle) * yy)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        img = c0 + (c1 - c0) * t[..., None]
    elif kind == 2:  # stripes
        angle = rng.uniform(0, np.pi)
        freq = rng.uniform(4, 12)
        t = np.cos(angle) * xx + np.sin(angle) * yy
        t = 0.5 + 0.5 * np.sin(2 * np.pi * freq * t)
        img = c0 + (c1 - c0) * 0.5 * t[..., None]
    else:  # low-contrast checkerboard
        n = int(rng.integers(4, 10))
        t = ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(np.float32)
        img = c0 + (c1 - c0) * 0.4 * t[..., None]
    img = img + rng.normal(0, 6, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _shape_mask(rng: np.random.Generator, cat_id: int, size: int,
                min_scale: float, max_scale: float) -> np.ndarray:
    """Full (unoccluded) uint8 mask of one random object."""
    mask = np.zeros((size, size), np.uint8)
    side = rng.uniform(min_scale, max_scale) * size
    aspect = np.exp(rng.uniform(np.log(0.6), np.log(1.6)))
    w, h = side * np.sqrt(aspect), side / np.sqrt(aspect)
    cx = rng.uniform(w / 2, size - w / 2)
    cy = rng.uniform(h / 2, size - h / 2)
    angle = rng.uniform(0, 360)
    if cat_id == 1:  # ellipse
        cv2.ellipse(mask, ((float(cx), float(cy)),
                           (float(w), float(h)), float(angle)), 1, -1)
        return open_mask(mask)
    if cat_id == 2:  # rectangle (rotated by a small angle)
        angle = rng.uniform(-20, 20)
        pts = cv2.boxPoints(
            ((float(cx), float(cy)), (float(w), float(h)), float(angle)))
    elif cat_id == 3:  # triangle
        theta = np.deg2rad(angle) + np.array([0, 2, 4]) * np.pi / 3
        theta = theta + rng.uniform(-0.3, 0.3, size=3)
        pts = np.stack(
            [cx + w / 2 * np.cos(theta), cy + h / 2 * np.sin(theta)], 1)
    else:  # five-pointed star
        theta = np.deg2rad(angle) + np.arange(10) * np.pi / 5
        radius = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = np.stack([
            cx + w / 2 * radius * np.cos(theta),
            cy + h / 2 * radius * np.sin(theta)
        ], 1)
    pts = np.clip(pts, 0, size - 1)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return open_mask(mask)


def open_mask(mask: np.ndarray) -> np.ndarray:
    """Remove slivers and sharp tips that polygon rasterisers disagree on."""
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, _KERNEL)


def _paint(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray,
           cat_id: int) -> None:
    """Paint one object (in place) with its category's colour and texture."""
    colour = np.array(_BASE_COLOURS[cat_id], np.float32)
    colour = np.clip(colour + rng.uniform(-30, 30, size=3), 0, 255)
    ys, xs = np.nonzero(mask)
    yy, xx = ys.astype(np.float32), xs.astype(np.float32)
    if cat_id == 1:  # radial shading
        r = np.hypot(xx - xx.mean(), yy - yy.mean())
        t = 1.0 - 0.4 * r / max(float(r.max()), 1.0)
    elif cat_id == 2:  # stripes
        period = rng.uniform(4, 10)
        t = 0.75 + 0.25 * np.sign(np.sin(2 * np.pi * (xx + yy) / period))
    elif cat_id == 3:  # flat
        t = np.ones_like(xx)
    else:  # dots
        period = rng.uniform(5, 9)
        t = 0.8 + 0.2 * (
            np.sin(2 * np.pi * xx / period) * np.sin(2 * np.pi * yy / period)
            > 0.3)
    tex = colour * t[:, None] + rng.normal(0, 4, size=(len(xs), 3))
    img[ys, xs] = np.clip(tex, 0, 255).astype(np.uint8)


def _polygons(mask: np.ndarray) -> List[List[float]]:
    """COCO polygons (lists of x0, y0, x1, y1, ...) of a binary mask."""
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if len(c) < 3 or cv2.contourArea(c) < 4:
            continue
        polys.append([float(v) for v in c.reshape(-1)])
    return polys


def visible_annotations(owner: np.ndarray, cats: List[int]) -> List[dict]:
    """COCO annotations (without ids) of the visible part of every object.

    Args:
        owner (np.ndarray): (H, W) int map, index into ``cats`` of the object
            visible at each pixel (-1: none).
        cats (list[int]): Category id of every object.

    Returns:
        list[dict]: ``category_id``, ``bbox`` (x, y, w, h: the extent of the
        polygons), ``area``, ``segmentation`` (polygons), ``iscrowd``; an
        object with no polygon left after opening is dropped.
    """
    anns = []
    for i, cat_id in enumerate(cats):
        visible = open_mask((owner == i).astype(np.uint8))
        polys = _polygons(visible)
        if not polys:
            continue
        # COCO convention: polygon vertices are continuous coordinates and
        # the box is their extent (what pycocotools' masks span)
        pts = np.concatenate([np.reshape(p, (-1, 2)) for p in polys])
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        x0, y0, w, h = float(x0), float(y0), float(x1 - x0), float(y1 - y0)
        area = sum(
            cv2.contourArea(np.reshape(p, (-1, 1, 2)).astype(np.float32))
            for p in polys)
        anns.append(
            dict(
                category_id=cat_id,
                bbox=[x0, y0, w, h],
                area=float(area),
                segmentation=polys,
                iscrowd=0))
    return anns


def place_objects(rng: np.random.Generator, img: np.ndarray, num: int,
                  num_categories: int,
                  draw_mask: Callable[[np.random.Generator, int], np.ndarray],
                  paint: Callable[
                      [np.random.Generator, np.ndarray, np.ndarray, int],
                      None], min_visible: float) -> List[dict]:
    """Draw ``num`` objects (occluding each other) onto ``img`` in place.

    An object whose placement would leave an earlier one less than
    ``min_visible`` of its area visible is redrawn (20 tries, then dropped).

    Args:
        rng (np.random.Generator): Random source.
        img (np.ndarray): (H, W, 3) uint8 BGR image, painted in place.
        num (int): Number of objects to try to place.
        num_categories (int): Category ids are drawn from 1..num_categories.
        draw_mask (callable): ``(rng, cat_id) -> (H, W) uint8`` full mask.
        paint (callable): ``(rng, img, mask, cat_id)`` paints one object.
        min_visible (float): Minimum visible fraction of every object.

    Returns:
        list[dict]: COCO annotations (without ids) of the visible parts.
    """
    owner = np.full(img.shape[:2], -1, np.int32)  # index of visible object
    full_masks, cats = [], []
    for _ in range(num):
        cat_id = int(rng.integers(1, num_categories + 1))
        for _try in range(20):
            mask = draw_mask(rng, cat_id)
            new_owner = np.where(mask > 0, len(full_masks), owner)
            ok = all(
                (new_owner == i).sum() >= min_visible * full_masks[i].sum()
                for i in range(len(full_masks)))
            if ok and mask.sum() > 0:
                break
        else:
            continue
        paint(rng, img, mask, cat_id)
        owner = new_owner
        full_masks.append(mask)
        cats.append(cat_id)
    return visible_annotations(owner, cats)


def _make_scene(rng: np.random.Generator, size: int, min_objects: int,
                max_objects: int, min_scale: float, max_scale: float,
                min_visible: float) -> Tuple[np.ndarray, List[dict]]:
    """One image and its annotations (without ids)."""
    img = _background(rng, size)
    num = int(rng.integers(min_objects, max_objects + 1))
    anns = place_objects(
        rng, img, num, len(CATEGORIES),
        lambda r, c: _shape_mask(r, c, size, min_scale, max_scale), _paint,
        min_visible)
    return img, anns


def write_coco_split(out_dir: str,
                     split: str,
                     num: int,
                     make_scene: Callable[[np.random.Generator],
                                          Tuple[np.ndarray, List[dict]]],
                     seed: int,
                     split_idx: int,
                     categories: List[dict],
                     description: str,
                     jpeg_quality: int = 95) -> Dict[str, str]:
    """Draw ``num`` scenes and write ``OUT/split/*.jpg`` + its COCO json.

    Image ``i`` is drawn with ``np.random.default_rng([seed, split_idx, i])``
    so that every image is a function of the seed alone (independent of the
    number of images). The json is written atomically, after the images.

    Returns:
        dict: ``{split}_img_dir`` and ``{split}_ann`` paths.
    """
    img_dir = osp.join(out_dir, split)
    ann_dir = osp.join(out_dir, 'annotations')
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    images, annotations = [], []
    for i in range(num):
        img, anns = make_scene(np.random.default_rng([seed, split_idx, i]))
        file_name = f'{i:06d}.jpg'
        ok = cv2.imwrite(
            osp.join(img_dir, file_name), img,
            [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise OSError(f'make_toy_coco: could not write '
                          f'{osp.join(img_dir, file_name)}')
        img_id = i + 1
        h, w = img.shape[:2]
        images.append(dict(id=img_id, file_name=file_name, width=w, height=h))
        for ann in anns:
            ann.update(id=len(annotations) + 1, image_id=img_id)
            annotations.append(ann)
    coco = dict(
        info=dict(description=description, version='1.0', seed=seed),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=categories)
    ann_file = osp.join(ann_dir, f'instances_{split}.json')
    atomic_write_json(ann_file, coco)
    return {f'{split}_img_dir': img_dir, f'{split}_ann': ann_file}


def write_train_val(out_dir: str, num_train: int, num_val: int,
                    make_scene: Callable[[np.random.Generator],
                                         Tuple[np.ndarray, List[dict]]],
                    **kwargs) -> Dict[str, str]:
    """Write the ``train`` and ``val`` splits with :func:`write_coco_split`
    (``kwargs``: its ``seed``, ``categories``, ``description``,
    ``jpeg_quality``).

    Returns:
        dict: ``root``, ``annotations``, ``{train,val}_img_dir`` and
        ``{train,val}_ann`` paths.
    """
    paths = dict(root=out_dir, annotations=osp.join(out_dir, 'annotations'))
    for split_idx, (split, num) in enumerate(
        (('train', num_train), ('val', num_val))):  # noqa: E125
        paths.update(
            write_coco_split(
                out_dir, split, num, make_scene, split_idx=split_idx,
                **kwargs))
    return paths


def make_toy_coco(out_dir: str,
                  num_train: int = 200,
                  num_val: int = 50,
                  size: int = 256,
                  seed: int = 0,
                  min_objects: int = 2,
                  max_objects: int = 6,
                  min_scale: float = 0.15,
                  max_scale: float = 0.5,
                  min_visible: float = 0.5,
                  jpeg_quality: int = 95) -> Dict[str, str]:
    """Write a small synthetic COCO-format detection set.

    Args:
        out_dir (str): Output root.
        num_train (int): Number of training images. Defaults to 200.
        num_val (int): Number of validation images. Defaults to 50.
        size (int): Side of the square images in pixels. Defaults to 256.
        seed (int): Random seed; the output is a function of all arguments.
            Defaults to 0.
        min_objects (int): Minimum number of objects drawn per image.
        max_objects (int): Maximum number of objects drawn per image.
        min_scale (float): Minimum object side relative to the image.
        max_scale (float): Maximum object side relative to the image.
        min_visible (float): Minimum visible fraction of every object.
        jpeg_quality (int): JPEG quality of the written images.

    Returns:
        dict: ``root``, ``train_img_dir``, ``val_img_dir``, ``train_ann``,
        ``val_ann`` paths.
    """
    if size < 32:
        raise ValueError(f'make_toy_coco: size must be >= 32, got {size}')
    return write_train_val(
        out_dir,
        num_train,
        num_val,
        lambda rng: _make_scene(rng, size, min_objects, max_objects, min_scale,
                                max_scale, min_visible),
        seed=seed,
        categories=CATEGORIES,
        description='mmregion toy COCO set',
        jpeg_quality=jpeg_quality)

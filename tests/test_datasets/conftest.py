"""Fixtures of the data-pipeline tests: a fake proposal store, tiny images."""
import json
import os.path as osp
from types import SimpleNamespace

import cv2
import numpy as np
import pytest


class FakeStore:
    """The ``ProposalStore`` API of ``docs/design.md`` sec. 1 over a dict."""

    def __init__(self, boxes: dict) -> None:
        self._boxes = {k: np.asarray(v, np.float32) for k, v in boxes.items()}

    def get(self, key):
        return self._boxes.get(key)

    def keys(self):
        return list(self._boxes)

    def __len__(self):
        return len(self._boxes)

    def __contains__(self, key):
        return key in self._boxes


@pytest.fixture(autouse=True)
def _reset_counters():
    from mmregion.datasets.transforms import LoadProposals, MultiViewRegions
    LoadProposals.reset_counters()
    MultiViewRegions.reset_counters()
    yield


def coord_image(h: int, w: int) -> np.ndarray:
    """uint8 (h, w, 3) image whose channels are x, y and a constant 128."""
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([xs, ys, np.full_like(xs, 128)], -1).astype(np.uint8)


def random_boxes(rng: np.random.Generator, n: int, h: int,
                 w: int) -> np.ndarray:
    """(n, 4) float32 valid xyxy boxes inside an ``h x w`` image."""
    x1 = rng.uniform(0, w - 2, n)
    y1 = rng.uniform(0, h - 2, n)
    x2 = rng.uniform(x1 + 1, w)
    y2 = rng.uniform(y1 + 1, h)
    return np.stack([x1, y1, x2, y2], 1).astype(np.float32)


@pytest.fixture
def helpers():
    """``coord_image``, ``random_boxes`` and ``FakeStore`` for the tests."""
    return SimpleNamespace(
        coord_image=coord_image,
        random_boxes=random_boxes,
        FakeStore=FakeStore)


@pytest.fixture
def tiny_coco(tmp_path):
    """A 3-image COCO json + jpgs (72x96, 80x64, 64x64) under ``tmp_path``.

    Returns:
        tuple[Path, dict]: the root and ``{file_name: boxes}`` proposals.
    """
    rng = np.random.default_rng(0)
    (tmp_path / 'images' / 'sub').mkdir(parents=True)
    images, proposals = [], {}
    for i, (h, w, name) in enumerate([(72, 96, 'a.jpg'), (80, 64, 'b.jpg'),
                                      (64, 64, 'sub/c.jpg')]):
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / 'images' / name), img)
        images.append(dict(id=10 + i, file_name=name, height=h, width=w))
        proposals[name] = random_boxes(rng, 20, h, w)
    ann = tmp_path / 'ann.json'
    ann.write_text(
        json.dumps(dict(images=images, annotations=[], categories=[])))
    assert osp.exists(ann)
    return tmp_path, proposals

"""Join an image with its region proposals (``docs/design.md`` sec. 1-2)."""
import os
import os.path as osp
from typing import Any, Optional, Union

import numpy as np
from mmcv.transforms import BaseTransform

from mmregion import proposals
from mmregion.proposals.sources import grid_proposals
from mmregion.registry import TRANSFORMS
from mmregion.structures import clip_boxes, identity_affine
from mmregion.utils.errors import UserKeyError
from mmregion.utils.log_utils import log_count


@TRANSFORMS.register_module()
class LoadProposals(BaseTransform):
    """Load the proposal boxes of an image from a proposal store.

    Must come after ``LoadImageFromFile`` (it needs the image size). The
    store (``mmregion.proposals.load_proposal_store``) is opened lazily, once
    per process (i.e. per dataloader worker), and never pickled.

    Boxes that are not finite, have zero/negative area, fall outside the
    image, or are under ``min_size`` (width or height, after clipping) are
    dropped; the rest are clipped to the image and the first ``topk`` in the
    store's order are kept (for a selective-search store: its NMS priority,
    a random subset with CCOP's random scores; see ``docs/proposals.md``).

    An image absent from the store, or left without a valid box, gets the
    ``fallback`` boxes; such images are counted per process (class-level
    counters ``num_missing`` / ``num_empty``) and logged when a count reaches
    1, 2, 4, 8, ...

    The key of an image in the store is ``proposal_key`` when the dataset
    gives one (``RegionDataset``: the json ``file_name`` / the path relative
    to the image folder). Otherwise (mmpretrain ``ImageNet`` /
    ``CustomDataset``, mmdet datasets) it is ``img_path`` relative to
    ``key_root``; with ``key_root=None`` the root is found from the first
    image: the longest trailing part of its ``img_path``
    (``n01440764/x.JPEG`` of ``data/imagenet/train/n01440764/x.JPEG``) that
    is a key of the store, i.e. the dataset's image root, then used for
    every image of the process.

    When more than ``max_missing_ratio`` of the images looked up so far in
    this process (once at least ``missing_check_after`` were) are absent
    from the store, a ``KeyError`` (:class:`UserKeyError`: one line from
    the tools) names the first missing key and the
    store: wrong keys must not silently train on whole-image fallbacks.

    Required keys: ``img`` (or ``img_shape``), ``proposal_key`` or
    ``img_path``.

    Added keys:

    - ``proposals`` (np.float32, (N, 4) xyxy in image pixels)
    - ``region_ids`` (np.int64, (N,)): the index of each box in the kept
      list, ``0..N-1``; every later transform keeps it aligned with
      ``proposals`` and it identifies a region across views.
    - ``view_affine`` (np.float32, (4,)): ``[1, 0, 1, 0]``.

    Args:
        proposal_file (str | object): Path given to ``load_proposal_store``
            (proposal directory, mmdet pickle or COCO json); an object with
            a ``get(key)`` method is used as the store directly.
        topk (int, optional): Keep at most the first this many boxes.
            None keeps all. Defaults to None.
        min_size (float): Minimum width and height (pixels, after clipping)
            of a kept box. Defaults to 0.
        fallback (str): For an image absent from the store or without a
            valid box: ``'whole_image'`` (one box ``[0, 0, w, h]``),
            ``'grid'`` (``grid_size x grid_size`` cells, row-major) or
            ``'error'`` (raise). Defaults to ``'whole_image'``.
        grid_size (int): Cells per side for ``fallback='grid'``.
            Defaults to 4.
        key_root (str, optional): Folder that store keys are relative to,
            for datasets without ``proposal_key``. None: inferred from the
            first image (see above). Defaults to None.
        max_missing_ratio (float, optional): Largest tolerated fraction of
            images absent from the store; None: no limit. Defaults to 0.05.
        missing_check_after (int): Images looked up (per process) before
            the ratio is checked. Defaults to 20.
    """
    num_missing = 0
    num_empty = 0

    def __init__(self,
                 proposal_file: Union[str, Any],
                 topk: Optional[int] = None,
                 min_size: float = 0.,
                 fallback: str = 'whole_image',
                 grid_size: int = 4,
                 key_root: Optional[str] = None,
                 max_missing_ratio: Optional[float] = 0.05,
                 missing_check_after: int = 20) -> None:
        if fallback not in ('whole_image', 'grid', 'error'):
            raise ValueError('LoadProposals: fallback must be "whole_image", '
                             f'"grid" or "error", got "{fallback}".')
        if topk is not None and topk < 1:
            raise ValueError(f'LoadProposals: topk must be >= 1, got {topk}.')
        if grid_size < 1:
            raise ValueError(
                f'LoadProposals: grid_size must be >= 1, got {grid_size}.')
        self.proposal_file = proposal_file
        self.topk = topk
        self.min_size = float(min_size)
        self.fallback = fallback
        self.grid_size = grid_size
        if max_missing_ratio is not None and not 0 <= max_missing_ratio <= 1:
            raise ValueError('LoadProposals: max_missing_ratio must be in '
                             f'[0, 1] or None, got {max_missing_ratio}.')
        self.key_root = key_root
        self.max_missing_ratio = max_missing_ratio
        self.missing_check_after = max(1, int(missing_check_after))
        self._store = None
        self._store_pid = None
        self._reset_lookups()

    def _reset_lookups(self) -> None:
        self._lookups = 0
        self._absent = 0
        self._first_absent: Optional[str] = None
        self._found_root: Optional[str] = None

    @classmethod
    def reset_counters(cls) -> None:
        """Reset the fallback counters (tests, new runs)."""
        cls.num_missing = 0
        cls.num_empty = 0

    @property
    def store(self):
        """The proposal store, opened on first use in each process."""
        if not isinstance(self.proposal_file, str):
            return self.proposal_file
        if self._store is None or self._store_pid != os.getpid():
            self._store = proposals.load_proposal_store(self.proposal_file)
            self._store_pid = os.getpid()
            self._reset_lookups()  # counts are per process
        return self._store

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if isinstance(self.proposal_file, str):
            state['_store'] = None
            state['_store_pid'] = None
        return state

    def _key_of(self, img_path: str) -> str:
        """The store key of an image without ``proposal_key``."""
        path = img_path.replace('\\', '/')
        if self.key_root is not None:
            return osp.relpath(path, self.key_root).replace(os.sep, '/')
        store, root, rooted = self.store, self._found_root, None
        if root is not None:
            if root == '':
                rooted = path
            elif path.startswith(root + '/'):
                rooted = path[len(root) + 1:]
            if rooted and store.get(rooted) is not None:
                return rooted
        # the longest trailing part of the path that is a key of the store
        parts = path.split('/')
        for i in range(len(parts)):
            key = '/'.join(parts[i:])
            if key and store.get(key) is not None:
                if root is None:
                    self._found_root = '/'.join(parts[:i])
                return key
        return rooted or parts[-1]  # absent: named in the messages

    def _check_missing(self, key: str, absent: bool, results: dict) -> None:
        """Count the lookup; raise when too many images are absent."""
        self._lookups += 1
        if absent:
            self._absent += 1
            if self._first_absent is None:
                self._first_absent = (
                    f'"{key}" (img_path "{results.get("img_path", "?")}")')
        ratio = self.max_missing_ratio
        if (ratio is not None and self._lookups >= self.missing_check_after
                and self._absent > ratio * self._lookups):
            raise UserKeyError(
                f'LoadProposals: {self._absent} of the {self._lookups} images '
                'looked up in this process are absent from the proposal '
                f'store "{self.proposal_file}" (more than '
                f'max_missing_ratio={ratio}); the first was '
                f'{self._first_absent}. Store keys are image paths relative '
                'to the image root: set key_root= (or proposal_key in the '
                'data infos) to match, or regenerate the store for this '
                'dataset.')

    def _fallback_boxes(self, h: int, w: int) -> np.ndarray:
        if self.fallback == 'grid':
            boxes = grid_proposals((h, w), (self.grid_size, ))
        else:
            boxes = np.array([[0, 0, w, h]], dtype=np.float32)
        return boxes[:self.topk] if self.topk else boxes

    def filter_boxes(self, boxes: Any, h: int, w: int, key: str) -> np.ndarray:
        """Drop degenerate boxes, clip to the image and keep the top-k.

        Args:
            boxes (array-like): (N, 4) xyxy from the store.
            h, w (int): Image size.
            key (str): Image key (for error messages).

        Returns:
            np.ndarray: (M, 4) float32, M <= N (M may be 0).
        """
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.size == 0:
            return np.zeros((0, 4), dtype=np.float32)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(
                f'LoadProposals: the boxes of "{key}" in proposal store '
                f'"{self.proposal_file}" have shape {boxes.shape}, expected '
                '(N, 4) xyxy.')
        if not self.topk:
            return self._valid_boxes(boxes, h, w)
        # the filter is per box, so the first topk valid boxes are found
        # chunk by chunk: 10^7 stored boxes cost what the first chunk costs
        chunk = max(4 * self.topk, 4096)
        kept, found = [], 0
        for start in range(0, len(boxes), chunk):
            kept.append(self._valid_boxes(boxes[start:start + chunk], h, w))
            found += len(kept[-1])
            if found >= self.topk:
                break
        return np.concatenate(kept)[:self.topk]

    def _valid_boxes(self, boxes: np.ndarray, h: int, w: int) -> np.ndarray:
        """Boxes clipped to the image, degenerate ones dropped, in order."""
        finite = np.isfinite(boxes).all(axis=1)
        boxes = np.where(finite[:, None], boxes, 0)
        positive = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes = clip_boxes(boxes, (h, w))
        bw = boxes[:, 2] - boxes[:, 0]
        bh = boxes[:, 3] - boxes[:, 1]
        keep = finite & positive & (bw > 0) & (bh > 0) & \
            (bw >= self.min_size) & (bh >= self.min_size)
        return boxes[keep]

    def transform(self, results: dict) -> dict:
        """Add ``proposals``, ``region_ids`` and ``view_affine``.

        Args:
            results (dict): With ``img`` (or ``img_shape``) and
                ``proposal_key`` (or ``img_path``).

        Returns:
            dict: ``results`` with the region keys.
        """
        if 'img' in results:
            h, w = results['img'].shape[:2]
        elif 'img_shape' in results:
            h, w = results['img_shape'][:2]
        else:
            raise KeyError('LoadProposals needs "img" or "img_shape": put it '
                           'after LoadImageFromFile.')
        key = results.get('proposal_key')
        if key is None:
            if 'img_path' not in results:
                raise KeyError('LoadProposals needs "proposal_key" or '
                               '"img_path" in the results.')
            key = self._key_of(results['img_path'])

        raw = self.store.get(key)
        self._check_missing(key, raw is None, results)
        if raw is None:
            boxes = None
            reason = 'is absent from'
        else:
            boxes = self.filter_boxes(raw, h, w, key)
            reason = f'has no valid box ({len(np.asarray(raw))} given) in'
        if boxes is None or len(boxes) == 0:
            if self.fallback == 'error':
                raise UserKeyError(
                    f'LoadProposals: image "{key}" {reason} the proposal '
                    f'store "{self.proposal_file}" (fallback="error").')
            boxes = self._fallback_boxes(h, w)
            if raw is None:
                LoadProposals.num_missing += 1
                count = LoadProposals.num_missing
            else:
                LoadProposals.num_empty += 1
                count = LoadProposals.num_empty
            log_count(
                count, f'LoadProposals: image "{key}" {reason} the proposal '
                f'store "{self.proposal_file}"; using the "{self.fallback}" '
                'fallback (so far in this process: '
                f'{LoadProposals.num_missing} images absent, '
                f'{LoadProposals.num_empty} without a valid box).')

        results['proposals'] = boxes.astype(np.float32)
        results['region_ids'] = np.arange(len(boxes), dtype=np.int64)
        results['view_affine'] = identity_affine()
        if 'img_shape' not in results:
            results['img_shape'] = (h, w)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(proposal_file='
                f'{self.proposal_file!r}, topk={self.topk}, min_size='
                f'{self.min_size}, fallback={self.fallback!r}, grid_size='
                f'{self.grid_size}, key_root={self.key_root!r}, '
                f'max_missing_ratio={self.max_missing_ratio})')

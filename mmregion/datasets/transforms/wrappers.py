"""Multiple views of one image with aligned regions (``docs/design.md`` 2)."""
import copy
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform, Compose

from mmregion.registry import TRANSFORMS
from mmregion.structures import affine_boxes, clip_boxes, relative_affine
from mmregion.utils.log_utils import log_count

__all__ = ['MultiViewRegions', 'build_pipeline', 'crop_overlap', 'index_of']

Transform = Union[dict, Callable[[dict], dict]]

REGION_KEYS = ('img', 'proposals', 'region_ids', 'view_affine')


def build_pipeline(pipeline: Sequence[Transform]) -> Compose:
    """Compose a pipeline, building config dicts with mmregion's registry.

    Unprefixed types resolve in mmregion (then mmengine); other libraries'
    transforms are reached with their scope, e.g. ``'mmpretrain.ColorJitter'``.
    """
    return Compose(
        [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline])


def crop_overlap(view_a: dict, view_b: dict) -> float:
    """Overlap of the image areas two views show, as in PLRC's data loader.

    Each view's image area is its pixel rectangle mapped back to the
    original image by its ``view_affine``; the overlap is
    ``area(A & B) / max(area(A), area(B))`` (official PLRC
    ``PLRC/datasets/imagenet.py``: ``intersection.area / max(h * w,
    h_2 * w_2)`` of the two crop rectangles).

    Args:
        view_a (dict): Results of one view (``img``, ``view_affine``).
        view_b (dict): Results of the other view.

    Returns:
        float: The overlap in [0, 1].
    """
    rects = []
    for view in (view_a, view_b):
        h, w = view['img'].shape[:2]
        rects.append(
            affine_boxes(
                np.array([0., 0., w, h]),
                np.asarray(view['view_affine'], dtype=np.float64),
                inverse=True).tolist())
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = rects
    inter = max(0.,
                min(ax1, bx1) - max(ax0, bx0)) * max(
                    0.,
                    min(ay1, by1) - max(ay0, by0))
    larger = max((ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0))
    return inter / larger if larger > 0 else 0.


def index_of(ids: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Positions of ``query`` (all present) in the unique array ``ids``."""
    sorter = np.argsort(ids, kind='stable')
    return sorter[np.searchsorted(ids, query, sorter=sorter)]


@TRANSFORMS.register_module()
class MultiViewRegions(BaseTransform):
    """Make ``V`` views of an image and keep the regions seen in all of them.

    Each view pipeline runs on a deep copy of the results (which must hold
    ``proposals``, ``region_ids`` and ``view_affine``, see
    :class:`LoadProposals`). The regions present in every view are kept, in
    increasing ``region_ids`` order, so that row ``k`` of every view is the
    same region. The views are re-sampled (up to ``max_tries`` tries in all)
    until at least ``min_regions`` regions survive; an image that ends with
    fewer (the try with the most regions is used, possibly ``K = 0``) is
    counted per process (``num_short``) and logged at counts 1, 2, 4, ...

    Geometric transforms may also come *before* this wrapper (shared
    geometry, only photometric transforms per view): the boxes are then the
    same in every view and no retry is made (it could not add regions).

    **Companion views** (PLRC's third crop). ``region_views`` names the views
    whose common regions are kept (default: all); a view outside it takes no
    part in the region intersection, and its rows of ``boxes`` are the kept
    regions mapped into it by its ``view_affine`` and clipped to it (zero
    area when the region is outside). ``overlap_pairs`` lists view pairs
    ``(a, c)`` whose image areas must overlap by at least ``min_overlap``
    (:func:`crop_overlap`): both views of a pair are re-drawn together, up to
    ``overlap_tries`` times, as the official PLRC loader re-draws a view and
    its companion crop ``im_2`` (``>= 0.5``, 100 tries, then the last draw is
    used; such images are counted in ``num_low_overlap`` and logged).
    PLRC's three views: ``num_views=3, region_views=(0, 1),
    overlap_pairs=[(0, 2)]``.

    Output keys (replacing ``img``, ``img_shape``, ``region_ids``,
    ``view_affine``; ``proposals`` is removed):

    - ``img``: list of V arrays (H_v, W_v, 3)
    - ``img_shape``: list of V ``(h, w)``
    - ``boxes``: np.float32 (V, K, 4) xyxy in each view's pixels
    - ``region_ids``: np.int64 (K,)
    - ``view_affine``: np.float32 (V, 4)

    Args:
        transforms (list): One pipeline (a list of transform configs or
            callables) used for every view, or a list of pipelines: one per
            view, or a single one repeated ``num_views`` times (like
            mmpretrain's ``MultiView``).
        num_views (int): Number of views V. Defaults to 2.
        min_regions (int): Regions wanted in every view. Defaults to 1.
        max_tries (int): Tries of all views in total. Defaults to 10.
        retry (str): ``'common'`` re-draws all views together until
            ``min_regions`` regions are common to them (the default);
            ``'per_view'`` accepts each view on its own, as CCOP
            (``datasets/contrastive_boxes.py`` ``apply_aug``): a view is
            re-drawn (``max_tries`` times per view) until it keeps
            ``min(min_regions, N)`` of the input's ``N`` regions, else the
            try keeping the most (the later of equals) is used; the common
            regions may then be fewer than ``min_regions`` (counted in
            ``num_short``). Not with ``overlap_pairs``.
        max_regions (int, optional): Keep a random subset (``np.random``,
            order kept) of at most this many regions. Defaults to None.
        region_views (Sequence[int], optional): Views whose common regions
            are kept. Defaults to None (all views).
        overlap_pairs (Sequence[tuple[int, int]]): Disjoint view pairs that
            must overlap by ``min_overlap``. Defaults to () (no constraint).
        min_overlap (float): Defaults to 0.5 (official PLRC).
        overlap_tries (int): Draws of a pair before its last draw is used.
            Defaults to 100 (official PLRC).
    """
    num_short = 0
    num_low_overlap = 0

    def __init__(self,
                 transforms: List[Union[Transform, List[Transform]]],
                 num_views: int = 2,
                 min_regions: int = 1,
                 max_tries: int = 10,
                 retry: str = 'common',
                 max_regions: Optional[int] = None,
                 region_views: Optional[Sequence[int]] = None,
                 overlap_pairs: Sequence[Tuple[int, int]] = (),
                 min_overlap: float = 0.5,
                 overlap_tries: int = 100) -> None:
        if num_views < 1:
            raise ValueError(
                f'MultiViewRegions: num_views must be >= 1, got {num_views}.')
        if max_tries < 1:
            raise ValueError(
                f'MultiViewRegions: max_tries must be >= 1, got {max_tries}.')
        if max_regions is not None and max_regions < 1:
            raise ValueError('MultiViewRegions: max_regions must be >= 1 or '
                             f'None, got {max_regions}.')
        transforms = list(transforms)
        if not transforms or not isinstance(transforms[0], (list, tuple)):
            pipelines = [transforms]  # one pipeline for every view
        else:
            pipelines = transforms
        if len(pipelines) == 1:
            pipelines = pipelines * num_views
        if len(pipelines) != num_views:
            raise ValueError(f'MultiViewRegions: got {len(pipelines)} view '
                             f'pipelines for num_views={num_views}; give one '
                             'pipeline or one per view.')
        built = {}  # build a repeated pipeline once
        self.pipelines = []
        for p in pipelines:
            if id(p) not in built:
                built[id(p)] = build_pipeline(p)
            self.pipelines.append(built[id(p)])
        self.num_views = num_views
        if retry not in ('common', 'per_view') or (retry == 'per_view'
                                                   and overlap_pairs):
            raise ValueError(
                'MultiViewRegions: retry must be "common" or "per_view" (the '
                f'latter without overlap_pairs), got retry="{retry}", '
                f'overlap_pairs={overlap_pairs}.')
        self.min_regions = min_regions
        self.max_tries = max_tries
        self.retry = retry
        self.max_regions = max_regions
        views = range(num_views)
        self.region_views = tuple(
            views if region_views is None else (int(v) for v in region_views))
        self.overlap_pairs = tuple((int(a), int(c)) for a, c in overlap_pairs)
        paired = [v for pair in self.overlap_pairs for v in pair]
        if not self.region_views or \
                any(v not in views for v in self.region_views + tuple(paired)):
            raise ValueError(
                'MultiViewRegions: region_views and overlap_pairs must name '
                f'views in 0..{num_views - 1}, got region_views={region_views}'
                f', overlap_pairs={overlap_pairs}.')
        if len(set(paired)) != len(paired):
            raise ValueError('MultiViewRegions: overlap_pairs must be '
                             f'disjoint pairs of views, got {overlap_pairs}.')
        if not 0 <= min_overlap <= 1 or overlap_tries < 1:
            raise ValueError(
                'MultiViewRegions: min_overlap must be in [0, 1] and '
                f'overlap_tries >= 1, got {min_overlap}, {overlap_tries}.')
        self.min_overlap = float(min_overlap)
        self.overlap_tries = overlap_tries

    @classmethod
    def reset_counters(cls) -> None:
        """Reset the short-image and low-overlap counters (tests, runs)."""
        cls.num_short = 0
        cls.num_low_overlap = 0

    def _run_view(self, v: int, results: dict) -> Optional[dict]:
        out = self.pipelines[v](copy.deepcopy(results))
        if out is None:
            return None
        for key in REGION_KEYS:
            if key not in out:
                raise KeyError(f'MultiViewRegions: view {v} lost "{key}" '
                               'in its pipeline.')
        return out

    def _run_pair(self, a: int, c: int,
                  results: dict) -> Optional[Tuple[dict, dict]]:
        """Draw views ``a`` and ``c`` until they overlap enough."""
        for _ in range(self.overlap_tries):
            view_a = self._run_view(a, results)
            view_c = None if view_a is None else self._run_view(c, results)
            if view_c is None:
                return None
            if crop_overlap(view_a, view_c) >= self.min_overlap:
                return view_a, view_c
        MultiViewRegions.num_low_overlap += 1
        log_count(
            MultiViewRegions.num_low_overlap,
            f'MultiViewRegions: views {a} and {c} of '
            f'"{results.get("img_path")}" overlap by less than '
            f'{self.min_overlap} after {self.overlap_tries} draws (the last '
            f'is used); {MultiViewRegions.num_low_overlap} such image(s) so '
            'far in this process.')
        return view_a, view_c

    def _run_view_alone(self, v: int, results: dict,
                        wanted: int) -> Optional[dict]:
        """CCOP's acceptance of one view (``retry='per_view'``)."""
        best = None
        for _ in range(self.max_tries):
            out = self._run_view(v, results)
            if out is None:
                return None
            n = len(out['region_ids'])
            if n >= wanted:
                return out
            if best is None or n >= len(best['region_ids']):
                best = out
        return best

    def _run_views(self, results: dict) -> Optional[List[dict]]:
        if self.retry == 'per_view':
            wanted = min(self.min_regions, len(results['region_ids']))
            views = [
                self._run_view_alone(v, results, wanted)
                for v in range(self.num_views)
            ]
            return None if any(v is None for v in views) else views
        views: List[Optional[dict]] = [None] * self.num_views
        for a, c in self.overlap_pairs:
            pair = self._run_pair(a, c, results)
            if pair is None:
                return None
            views[a], views[c] = pair
        for v in range(self.num_views):
            if views[v] is None:
                views[v] = self._run_view(v, results)
                if views[v] is None:
                    return None
        return views

    @staticmethod
    def common_ids(views: List[dict]) -> np.ndarray:
        """Sorted region ids present in every view."""
        common = np.asarray(views[0]['region_ids'], dtype=np.int64)
        common = np.unique(common)
        for out in views[1:]:
            common = np.intersect1d(
                common, np.asarray(out['region_ids'], dtype=np.int64))
        return common

    def transform(self, results: dict) -> Optional[dict]:
        """Make the views and align their regions.

        Args:
            results (dict): With ``img``, ``proposals``, ``region_ids`` and
                ``view_affine``.

        Returns:
            dict | None: The multi-view results (None when a view pipeline
            drops the sample, as ``Compose`` does).
        """
        for key in REGION_KEYS:
            if key not in results:
                raise KeyError(f'MultiViewRegions needs "{key}" in the '
                               'results: put LoadImageFromFile and '
                               'LoadProposals before it.')
        ids_in = np.asarray(results['region_ids'], dtype=np.int64)
        if len(np.unique(ids_in)) != len(ids_in):
            raise ValueError('MultiViewRegions: region_ids of '
                             f'"{results.get("img_path")}" are not unique.')
        best_views, best_ids = None, None
        # 'per_view': the views retried on their own, one draw of the set
        for _ in range(self.max_tries if self.retry == 'common' else 1):
            views = self._run_views(results)
            if views is None:
                return None
            ids = self.common_ids([views[v] for v in self.region_views])
            if best_ids is None or len(ids) > len(best_ids):
                best_views, best_ids = views, ids
            # transforms only drop regions: stop when no try can add any
            if len(ids) >= self.min_regions or len(ids) >= len(ids_in):
                break
        views, ids = best_views, best_ids

        if len(ids) < self.min_regions:
            MultiViewRegions.num_short += 1
            log_count(
                MultiViewRegions.num_short,
                f'MultiViewRegions: "{results.get("img_path")}" has '
                f'{len(ids)} region(s) in all {self.num_views} views '
                f'(min_regions={self.min_regions}, {len(ids_in)} before the '
                f'views, {self.max_tries} tries); {MultiViewRegions.num_short}'
                ' such image(s) so far in this process.')
        if self.max_regions is not None and len(ids) > self.max_regions:
            sel = np.random.choice(len(ids), self.max_regions, replace=False)
            ids = ids[np.sort(sel)]

        boxes = np.zeros((self.num_views, len(ids), 4), dtype=np.float32)
        for v, out in enumerate(views):
            if v in self.region_views:
                idx = index_of(
                    np.asarray(out['region_ids'], dtype=np.int64), ids)
                boxes[v] = np.asarray(
                    out['proposals'], dtype=np.float32).reshape(-1, 4)[idx]
            else:
                boxes[v] = self._companion_boxes(results, out, ids)
        results.pop('proposals', None)
        results['img'] = [out['img'] for out in views]
        # a view padded to a canvas (RegionPadToCanvas) keeps its own size
        results['img_shape'] = [
            tuple(out['img_shape'][:2])
            if 'pad_shape' in out else tuple(out['img'].shape[:2])
            for out in views
        ]
        results['boxes'] = boxes
        results['region_ids'] = ids.astype(np.int64)
        results['view_affine'] = np.stack([
            np.asarray(out['view_affine'], dtype=np.float32) for out in views
        ])
        return results

    @staticmethod
    def _companion_boxes(results: dict, view: dict,
                         ids: np.ndarray) -> np.ndarray:
        """Boxes ``ids`` of the input mapped into ``view`` and clipped.

        Args:
            results (dict): The input (``proposals``, ``region_ids`` and
                ``view_affine`` before the views).
            view (dict): The view's results.
            ids (np.ndarray): Kept region ids.

        Returns:
            np.ndarray: (K, 4) float32 xyxy in the view's pixels.
        """
        idx = index_of(np.asarray(results['region_ids'], dtype=np.int64), ids)
        boxes = np.asarray(
            results['proposals'], dtype=np.float32).reshape(-1, 4)[idx]
        # input coords -> original -> view: the view's affine after the
        # inverse of the input's
        rel = relative_affine(results['view_affine'], view['view_affine'])
        boxes = affine_boxes(boxes, rel.astype(np.float32))
        return clip_boxes(boxes, view['img'].shape[:2])

    def __repr__(self) -> str:
        repr_str = (f'{self.__class__.__name__}(num_views={self.num_views}, '
                    f'min_regions={self.min_regions}, retry={self.retry!r}, '
                    f'max_tries='
                    f'{self.max_tries}, max_regions={self.max_regions}, '
                    f'region_views={self.region_views}, overlap_pairs='
                    f'{self.overlap_pairs}, min_overlap={self.min_overlap}')
        for i, p in enumerate(self.pipelines):
            repr_str += f'\nview {i + 1}: {p}'
        return repr_str + ')'

"""Multiple views of one image with aligned regions (``docs/design.md`` 2)."""
import copy
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform, Compose

from mmregion.registry import TRANSFORMS
from .box_utils import log_count

Transform = Union[dict, Callable[[dict], dict]]

REGION_KEYS = ('img', 'proposals', 'region_ids', 'view_affine')


def _build_pipeline(pipeline: Sequence[Transform]) -> Compose:
    """Compose a pipeline, building config dicts with mmregion's registry.

    Unprefixed types resolve in mmregion (then mmengine); other libraries'
    transforms are reached with their scope, e.g. ``'mmpretrain.ColorJitter'``.
    """
    return Compose(
        [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline])


def _index_of(ids: np.ndarray, query: np.ndarray) -> np.ndarray:
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
        max_regions (int, optional): Keep a random subset (``np.random``,
            order kept) of at most this many regions. Defaults to None.
    """
    num_short = 0

    def __init__(self,
                 transforms: List[Union[Transform, List[Transform]]],
                 num_views: int = 2,
                 min_regions: int = 1,
                 max_tries: int = 10,
                 max_regions: Optional[int] = None) -> None:
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
                built[id(p)] = _build_pipeline(p)
            self.pipelines.append(built[id(p)])
        self.num_views = num_views
        self.min_regions = min_regions
        self.max_tries = max_tries
        self.max_regions = max_regions

    @classmethod
    def reset_counters(cls) -> None:
        """Reset the short-image counter (tests, new runs)."""
        cls.num_short = 0

    def _run_views(self, results: dict) -> Optional[List[dict]]:
        views = []
        for v, pipe in enumerate(self.pipelines):
            out = pipe(copy.deepcopy(results))
            if out is None:
                return None
            for key in REGION_KEYS:
                if key not in out:
                    raise KeyError(f'MultiViewRegions: view {v} lost "{key}" '
                                   'in its pipeline.')
            views.append(out)
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
        for _ in range(self.max_tries):
            views = self._run_views(results)
            if views is None:
                return None
            ids = self.common_ids(views)
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
            idx = _index_of(np.asarray(out['region_ids'], dtype=np.int64), ids)
            boxes[v] = np.asarray(
                out['proposals'], dtype=np.float32).reshape(-1, 4)[idx]
        results.pop('proposals', None)
        results['img'] = [out['img'] for out in views]
        results['img_shape'] = [tuple(out['img'].shape[:2]) for out in views]
        results['boxes'] = boxes
        results['region_ids'] = ids.astype(np.int64)
        results['view_affine'] = np.stack([
            np.asarray(out['view_affine'], dtype=np.float32) for out in views
        ])
        return results

    def __repr__(self) -> str:
        repr_str = (f'{self.__class__.__name__}(num_views={self.num_views}, '
                    f'min_regions={self.min_regions}, max_tries='
                    f'{self.max_tries}, max_regions={self.max_regions}')
        for i, p in enumerate(self.pipelines):
            repr_str += f'\nview {i + 1}: {p}'
        return repr_str + ')'

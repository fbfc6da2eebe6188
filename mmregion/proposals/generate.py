"""Generate a proposal directory for a set of images (multiprocess,
resumable). The engine of ``tools/generate_proposals.py``.

Shards are the unit of work and of resumption: the sorted image list is cut
into shards of ``shard_size`` images; finished shards are skipped on a
re-run; the output does not depend on the number of workers (every source is
deterministic per image). Workers (one OpenCV thread each) process images;
the parent writes every shard atomically once all of its images are in.
"""
import json
import multiprocessing as mp
import os
import os.path as osp
import sys
import time
import zlib
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.logging import print_log

from .sources import grid_proposals, random_proposals, selective_search
from .store import ProposalWriter, _load_shard, read_shard_failed

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff',
                  '.ppm', '.pgm')
METHODS = ('selective_search', 'grid', 'random')


def list_images(src: str,
                img_root: Optional[str] = None) -> Tuple[List[str], str]:
    """The sorted image keys of an image folder or a COCO json.

    Args:
        src (str): An image directory (searched recursively) or a COCO json
            (keys are ``images[].file_name``).
        img_root (str, optional): Root the keys are relative to. Defaults to
            ``src`` for a directory; for a json, ``<json dir>/../<split>``
            when the json is named ``instances_<split>.json`` and that folder
            exists, else the json's directory.

    Returns:
        tuple[list[str], str]: Sorted keys and the image root.
    """
    if not osp.exists(src):
        raise FileNotFoundError(f'Image directory or COCO json {src} '
                                'not found')
    if osp.isdir(src):
        root = img_root or src
        keys = []
        for dirpath, _, files in os.walk(src):
            for name in files:
                if name.lower().endswith(IMG_EXTENSIONS):
                    rel = osp.relpath(osp.join(dirpath, name), root)
                    keys.append(rel.replace(os.sep, '/'))
        return sorted(keys), root
    try:
        with open(src) as f:
            coco = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'{src} is neither a directory nor a valid COCO '
                         f'json: {e}') from e
    if not isinstance(coco, dict) or 'images' not in coco:
        raise ValueError(f'{src} is not a COCO json (no "images" list)')
    keys = sorted({im['file_name'] for im in coco['images']})
    if img_root is None:
        json_dir = osp.dirname(osp.abspath(src))
        stem = osp.splitext(osp.basename(src))[0]
        img_root = json_dir
        if stem.startswith('instances_'):
            guess = osp.join(osp.dirname(json_dir), stem[len('instances_'):])
            if osp.isdir(guess):
                img_root = guess
    return keys, img_root


# ----------------------------------------------------------------- workers
_PARAMS: dict = {}


def _init_worker(params: dict) -> None:
    cv2.setNumThreads(1)
    _PARAMS.clear()
    _PARAMS.update(params)


def _key_seed(key: str, seed: int) -> int:
    return (zlib.crc32(key.encode('utf-8')) + seed) & 0x7fffffff


def propose_one(img: np.ndarray, key: str, params: dict) -> np.ndarray:
    """Proposals of one decoded image with the generation ``params``."""
    method = params['method']
    if method == 'selective_search':
        return selective_search(
            img,
            mode=params['mode'],
            max_side=params['max_side'],
            seed=params['seed'],
            **params['filters'])
    if method == 'grid':
        return grid_proposals(img.shape[:2], params['grid_sizes'])
    if method == 'random':
        return random_proposals(
            img.shape[:2],
            num=params['num_random'],
            seed=_key_seed(key, params['seed']))
    raise ValueError(f'Unknown proposal method {method!r}, expected one of '
                     f'{METHODS}')


def _process_chunk(
    tasks: Sequence[Tuple[str, str]]
) -> List[Tuple[str, Optional[np.ndarray], str]]:
    return [_process(t) for t in tasks]


def _parallel_map(tasks: Sequence[Tuple[str, str]], workers: int,
                  params: dict, start_method: Optional[str],
                  chunksize: int) -> Iterator:
    """``map(_process, tasks)`` on ``workers`` processes, results in order.

    At most ``4 * workers`` chunks are in flight (memory stays flat on
    ImageNet-size lists). A worker that dies (killed, out of memory) raises
    a clear error instead of hanging; the shards written so far are kept.
    """
    if start_method is None:
        start_method = 'fork' if 'fork' in mp.get_all_start_methods() \
            else 'spawn'
    chunks = (tasks[i:i + chunksize]
              for i in range(0, len(tasks), chunksize))
    with ProcessPoolExecutor(
            workers,
            mp_context=mp.get_context(start_method),
            initializer=_init_worker,
            initargs=(params, )) as pool:
        window: deque = deque()
        try:
            for chunk in chunks:
                window.append(pool.submit(_process_chunk, chunk))
                if len(window) >= 4 * workers:
                    yield from window.popleft().result()
            while window:
                yield from window.popleft().result()
        except BrokenProcessPool as e:
            raise RuntimeError(
                'A proposal worker process died (killed or out of memory?). '
                'Finished shards are kept: re-run the same command to resume '
                '(fewer --workers if memory is short).') from e
        finally:
            for fut in window:
                fut.cancel()


def _process(task: Tuple[str, str]) -> Tuple[str, Optional[np.ndarray], str]:
    key, path = task
    try:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None or img.size == 0:
            return key, None, 'cv2.imread could not decode it'
        return key, propose_one(img, key, _PARAMS), ''
    except Exception as e:  # keep going: counted and logged by the parent
        return key, None, repr(e)


# ---------------------------------------------------------------- progress
class _Progress:
    """A one-line stderr progress bar with images/s and ETA."""

    def __init__(self,
                 total: int,
                 enabled: bool = True,
                 interval: float = 0.5) -> None:
        self.total = total
        self.enabled = enabled and total > 0
        self.interval = interval
        self.count = 0
        self.start = time.time()
        self._last = 0.

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.time()
        if self.enabled and (now - self._last >= self.interval
                             or self.count >= self.total):
            self._last = now
            elapsed = max(now - self.start, 1e-9)
            rate = self.count / elapsed
            eta = (self.total - self.count) / rate if rate > 0 else 0
            mins, secs = divmod(int(eta), 60)
            eta_str = f'{mins // 60}:{mins % 60:02d}:{secs:02d}'
            sys.stderr.write(f'\r[proposals] {self.count}/{self.total} '
                             f'({100. * self.count / self.total:5.1f}%) '
                             f'{rate:6.1f} img/s ETA {eta_str}')
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write('\n')
            sys.stderr.flush()


# ------------------------------------------------------------------- main
def generate_proposals(src: str,
                       out: str,
                       img_root: Optional[str] = None,
                       method: str = 'selective_search',
                       mode: str = 'fast',
                       max_side: Optional[int] = 500,
                       min_size: float = 20.,
                       min_aspect: float = 1. / 3.,
                       max_aspect: float = 3.,
                       min_rel_area: float = 0.,
                       max_rel_area: float = 1.,
                       nms_iou: Optional[float] = 0.5,
                       topk: Optional[int] = 50,
                       grid_sizes: Sequence[int] = (4, ),
                       num_random: int = 50,
                       seed: int = 0,
                       workers: int = 1,
                       shard_size: int = 1000,
                       overwrite: bool = False,
                       progress: bool = True,
                       start_method: Optional[str] = None,
                       chunksize: int = 1) -> Dict[str, float]:
    """Write a proposal directory for every image of ``src``.

    Args:
        src (str): Image directory (recursive) or COCO json.
        out (str): Output proposal directory.
        img_root (str, optional): See :func:`list_images`.
        method (str): ``'selective_search'``, ``'grid'`` or ``'random'``.
        mode (str): Selective-search mode (``'fast'``, ``'quality'``,
            ``'single'``).
        max_side (int, optional): Working scale of selective search.
        min_size, min_aspect, max_aspect, min_rel_area, max_rel_area,
            nms_iou, topk: Filters of selective search, see
            :func:`mmregion.proposals.filter_boxes`.
        grid_sizes (Sequence[int]): Grids of the ``'grid'`` method.
        num_random (int): Boxes per image of the ``'random'`` method.
        seed (int): Seed (selective-search ranking, random boxes).
        workers (int): Worker processes; 1 runs in this process.
        shard_size (int): Images per shard.
        overwrite (bool): Replace a different earlier run in ``out``.
        progress (bool): Show the progress line on stderr.
        start_method (str, optional): multiprocessing start method
            (default: 'fork' where available, else 'spawn').
        chunksize (int): Images per worker task. Defaults to 1 (an image
            takes ~0.5 s, so the hand-off is negligible and the last
            images spread evenly over the workers).

    Returns:
        dict: ``total``, ``done`` (processed now), ``skipped`` (in shards
        finished earlier), ``failed`` (now), ``failed_total``,
        ``num_stored``, ``num_boxes``, ``mean_boxes``, ``empty`` (stored
        with zero boxes), ``seconds``, ``images_per_s``.
    """
    if method not in METHODS:
        raise ValueError(f'Unknown proposal method {method!r}, expected one '
                         f'of {METHODS}')
    keys, root = list_images(src, img_root)
    if not keys:
        raise ValueError(f'No images found in {src}')
    params = dict(method=method, seed=int(seed))
    if method == 'selective_search':
        params.update(
            mode=mode,
            max_side=max_side,
            filters=dict(
                min_size=float(min_size),
                min_aspect=float(min_aspect),
                max_aspect=float(max_aspect),
                min_rel_area=float(min_rel_area),
                max_rel_area=float(max_rel_area),
                nms_iou=None if nms_iou is None else float(nms_iou),
                topk=None if topk is None else int(topk)))
    elif method == 'grid':
        params.update(grid_sizes=[int(g) for g in grid_sizes])
    else:
        params.update(num_random=int(num_random))
    params = json.loads(json.dumps(params))

    writer = ProposalWriter(
        out, keys, shard_size=shard_size, params=params, overwrite=overwrite)
    pending = [i for i in range(writer.num_shards) if not writer.is_done(i)]
    skipped = len(keys) - sum(len(writer.shard_keys(i)) for i in pending)
    tasks = [(k, osp.join(root, k)) for i in pending
             for k in writer.shard_keys(i)]

    start = time.time()
    bar = _Progress(len(tasks), enabled=progress)
    failed_now = 0
    shard_iter = iter(pending)
    cur = next(shard_iter, None)
    cur_keys = set(writer.shard_keys(cur)) if cur is not None else set()
    boxes_of: Dict[str, np.ndarray] = {}
    failed: List[str] = []

    def _consume(results):
        nonlocal cur, cur_keys, boxes_of, failed, failed_now
        for key, boxes, err in results:
            if boxes is None:
                failed.append(key)
                failed_now += 1
                print_log(
                    f'Skipping unreadable image {osp.join(root, key)}: '
                    f'{err}',
                    logger='current',
                    level=30)
            else:
                boxes_of[key] = boxes
            bar.update()
            if len(boxes_of) + len(failed) == len(cur_keys):
                writer.write_shard(cur, boxes_of, failed)
                boxes_of, failed = {}, []
                cur = next(shard_iter, None)
                cur_keys = set(writer.shard_keys(cur)) \
                    if cur is not None else set()

    try:
        if tasks and workers <= 1:
            old_threads = cv2.getNumThreads()
            _init_worker(params)
            try:
                _consume(map(_process, tasks))
            finally:
                cv2.setNumThreads(old_threads)
        elif tasks:
            _consume(
                _parallel_map(tasks, workers, params, start_method,
                              max(1, chunksize)))
    finally:
        bar.close()
    seconds = time.time() - start

    # totals over every shard (also those finished by earlier runs)
    num_stored = num_boxes = empty = failed_total = 0
    for i in range(writer.num_shards):
        shard = _load_shard(writer.shard_path(i))
        counts = np.diff(shard.offsets)
        num_stored += len(counts)
        num_boxes += int(counts.sum())
        empty += int((counts == 0).sum())
        failed_total += len(read_shard_failed(writer.shard_path(i)))
    stats = dict(
        total=len(keys),
        done=len(tasks) - failed_now,
        skipped=skipped,
        failed=failed_now,
        failed_total=failed_total,
        num_stored=num_stored,
        num_boxes=num_boxes,
        mean_boxes=num_boxes / max(num_stored, 1),
        empty=empty,
        seconds=seconds,
        images_per_s=len(tasks) / max(seconds, 1e-9))
    writer.finalize({
        k: v
        for k, v in stats.items()
        if k in ('total', 'num_stored', 'num_boxes', 'mean_boxes', 'empty',
                 'failed_total')
    })
    return stats

"""Generate a proposal directory for a set of images (multiprocess,
resumable). The engine of ``tools/generate_proposals.py``.

Shards are the unit of work and of resumption: the sorted image list is cut
into shards of ``shard_size`` images; finished shards are skipped on a
re-run; the output does not depend on the number of workers (every source is
deterministic per image). Workers (one OpenCV thread each) process images;
the parent writes every shard atomically once all of its images are in.
"""
import ctypes
import errno
import json
import multiprocessing as mp
import os
import os.path as osp
import signal
import stat
import sys
import threading
import time
import zlib
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.logging import print_log

from mmregion.utils.images import (find_truncation, read_coco_images,
                                   scan_image_folder)
from mmregion.utils.input_checks import InputError, show_value
from mmregion.utils.progress import ProgressBar
from .shard_io import read_shard, read_shard_failed
from .sources import (NMS_PRIORITIES, grid_proposals, random_proposals,
                      selective_search)
from .writer import ProposalDirLock, ProposalWriter

METHODS = ('selective_search', 'grid', 'random')

# Settings of ``tools/generate_proposals.py --preset NAME`` (flags given on
# the command line win). Sources: docs/fidelity.md (ccop-proposals).
PRESETS = {
    # CCOP tools/selective_search.py:74-96: fast SS on the full-resolution
    # cv2.imread image, 1/3 < w/h < 3, sqrt(wh) > 20, NMS 0.5 with random
    # scores uniform(0.01, 1), the first keepnum=50
    'ccop':
    dict(
        method='selective_search',
        mode='fast',
        max_side=None,
        squash_size=None,
        swap_rb=False,
        min_size=20.,
        min_aspect=1. / 3.,
        max_aspect=3.,
        min_rel_area=0.,
        max_rel_area=1.,
        nms_iou=0.5,
        topk=50,
        nms_priority='random'),
    # DETReg datasets/selfdet.py:72-137 (@a4b6363): fast SS on the PIL RGB
    # image squashed to 128x128, boxes scaled back, no filter, no NMS,
    # OpenCV's order, the first max_prop=30 per sample. We store the first
    # 200 so that the pipeline can draw K at random (ProSeCo: "K random
    # boxes"); --topk 30 stores exactly DETReg's set.
    'detreg':
    dict(
        method='selective_search',
        mode='fast',
        max_side=None,
        squash_size=128,
        swap_rb=True,
        min_size=0.,
        min_aspect=None,
        max_aspect=None,
        min_rel_area=0.,
        max_rel_area=1.,
        nms_iou=None,
        topk=200,
        nms_priority='opencv'),
}


def list_images(src: str,
                img_root: Optional[str] = None,
                allow_unsafe_paths: bool = False) -> Tuple[List[str], str]:
    """The sorted image keys of an image folder or a COCO json.

    Args:
        src (str): An image directory (searched recursively) or a COCO json
            (keys are ``images[].file_name``).
        img_root (str, optional): Root the keys are relative to. Defaults to
            ``src`` for a directory; for a json, ``<json dir>/../<split>``
            when the json is named ``instances_<split>.json`` and that folder
            exists, else the json's directory.
        allow_unsafe_paths (bool): Accept absolute and ``..`` file names of
            a json (see :func:`mmregion.utils.input_checks.check_file_name`)
            and, in a folder, symlinks that point outside it. Defaults to
            False.

    Returns:
        tuple[list[str], str]: Sorted keys and the image root.

    Raises:
        InputError: A malformed json or a refused ``file_name``, naming the
            file and the entry.
    """
    if not osp.exists(src):
        raise FileNotFoundError(f'Image directory or COCO json {src} '
                                'not found')
    if osp.isdir(src):
        root = img_root or src
        return scan_image_folder(
            src, root, allow_outside_links=allow_unsafe_paths), root
    images = read_coco_images(src, allow_unsafe_paths=allow_unsafe_paths)
    keys = sorted({im['file_name'] for im in images})
    if img_root is None:
        json_dir = osp.dirname(osp.abspath(src))
        stem = osp.splitext(osp.basename(src))[0]
        img_root = json_dir
        if stem.startswith('instances_'):
            guess = osp.join(osp.dirname(json_dir), stem[len('instances_'):])
            if osp.isdir(guess):
                img_root = guess
    return keys, img_root


# finished shards are held back until this many images are in and the
# failure ratio (max_failed_ratio) is decided
FAILURE_CHECK_AFTER = 50

# ----------------------------------------------------------------- workers
_PARAMS: dict = {}
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _watch_parent(parent_pid: int, interval: float = 1.0) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid:
            os._exit(1)


def die_with_parent(parent_pid: int, interval: float = 1.0) -> None:
    """Make this (worker) process exit when ``parent_pid`` dies.

    On Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` has the kernel kill it
    the moment the parent dies, even by ``kill -9``; everywhere a daemon
    thread also polls ``os.getppid()`` every ``interval`` seconds (the
    fallback; a dead parent makes the worker a child of another process).
    """
    if sys.platform.startswith('linux'):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError, TypeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the prctl
        os._exit(1)
    threading.Thread(
        target=_watch_parent,
        args=(parent_pid, interval),
        name='mmregion-parent-watchdog',
        daemon=True).start()


def _init_worker(params: dict, parent_pid: Optional[int] = None) -> None:
    if parent_pid is not None:
        die_with_parent(parent_pid)
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
            nms_priority=params.get('nms_priority', 'opencv'),
            priority_seed=_key_seed(key, params['seed']),
            squash_size=params.get('squash_size'),
            swap_rb=params.get('swap_rb', False),
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


def _parallel_map(tasks: Sequence[Tuple[str, str]], workers: int, params: dict,
                  start_method: Optional[str], chunksize: int) -> Iterator:
    """``map(_process, tasks)`` on ``workers`` processes, results in order.

    At most ``4 * workers`` chunks are in flight (memory stays flat on
    ImageNet-size lists). A worker that dies (killed, out of memory) raises
    a clear error instead of hanging; the shards written so far are kept.
    Workers die with this process (:func:`die_with_parent`).
    """
    if start_method is None:
        start_method = 'fork' if 'fork' in mp.get_all_start_methods() \
            else 'spawn'
    chunks = (tasks[i:i + chunksize] for i in range(0, len(tasks), chunksize))
    with ProcessPoolExecutor(
            workers,
            mp_context=mp.get_context(start_method),
            initializer=_init_worker,
            initargs=(params, os.getpid())) as pool:
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


def read_image(path: str) -> Tuple[Optional[np.ndarray], str]:
    """Decode an image file as uint8 BGR, or say why it is refused.

    Refused (counted as failed by the caller): a missing file, anything but
    a regular file (a FIFO would block the worker), an empty file, a JPEG or
    PNG without its end marker (OpenCV decodes some truncated JPEGs without
    an error; :func:`find_truncation`), and what OpenCV cannot decode.

    Returns:
        tuple: ``(image, '')`` or ``(None, reason)``.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        return None, f'cannot be read ({type(e).__name__})'
    if not stat.S_ISREG(st.st_mode):
        return None, 'not a regular file'
    with open(path, 'rb') as f:
        data = f.read()
    if not data:
        return None, 'empty file (0 bytes)'
    # the training loader's check
    reason = find_truncation(data)
    if reason is not None:
        return None, reason
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        return None, 'OpenCV could not decode it'
    return img, ''


def _process(task: Tuple[str, str]) -> Tuple[str, Optional[np.ndarray], str]:
    key, path = task
    try:
        img, reason = read_image(path)
        if img is None:
            return key, None, reason
        return key, propose_one(img, key, _PARAMS), ''
    except Exception as e:  # keep going: counted and logged by the parent
        return key, None, repr(e)


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
                       chunksize: int = 1,
                       nms_priority: str = 'random',
                       squash_size: Optional[int] = None,
                       swap_rb: bool = False,
                       allow_unsafe_paths: bool = False,
                       max_failed_ratio: float = 0.5) -> Dict[str, float]:
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
        nms_priority (str): ``'random'`` (CCOP's random-score NMS, seeded
            per image from its key and ``seed``) or ``'opencv'`` (OpenCV's
            order). Defaults to ``'random'``.
        squash_size (int, optional): Search on the image resized to
            ``S x S`` (DETReg: 128) instead of ``max_side``.
        swap_rb (bool): Search on the RGB image (DETReg).
        allow_unsafe_paths (bool): Accept absolute / ``..`` file names in
            a COCO json. Defaults to False.
        max_failed_ratio (float): More unreadable images than this share
            (checked from the 50th image on, before the shard is written)
            stops the run with an :class:`InputError` naming a few (a wrong
            ``img_root``). The first 20 failures are logged one by one,
            the rest counted. Defaults to 0.5.

    ``out`` is locked for the run (:class:`ProposalDirLock`): a second run
    into the same folder fails with the first one's pid and host.

    Returns:
        dict: ``total``, ``done`` (processed now), ``skipped`` (in shards
        finished earlier), ``failed`` (now), ``failed_total``,
        ``num_stored``, ``num_boxes``, ``mean_boxes``, ``empty`` (stored
        with zero boxes), ``seconds``, ``images_per_s``.
    """
    if method not in METHODS:
        raise ValueError(f'Unknown proposal method {method!r}, expected one '
                         f'of {METHODS}')
    if nms_priority not in NMS_PRIORITIES:
        raise ValueError(f'Unknown nms_priority {nms_priority!r}, expected '
                         f'one of {NMS_PRIORITIES}')
    bad = [(name, value) for name, value, ok in [
        ('grid_sizes', list(grid_sizes),
         method != 'grid' or (len(grid_sizes) > 0 and all(
             int(g) >= 1 for g in grid_sizes))),
        ('num_random', num_random, method != 'random' or num_random >= 1),
        ('topk', topk, topk is None or topk >= 1),
        ('shard_size', shard_size, shard_size >= 1),
        ('workers', workers, workers >= 1),
    ] if not ok]
    if bad:
        name, value = bad[0]
        raise InputError(f'generate_proposals: {name}={value!r} must be >= 1'
                         ' (--' + name.replace('_', '-') + ')')
    keys, root = list_images(src, img_root, allow_unsafe_paths)
    if not keys:
        raise ValueError(f'No images found in {src}')
    params = dict(method=method, seed=int(seed))
    if method == 'selective_search':
        params.update(
            mode=mode,
            max_side=max_side if max_side and max_side > 0 else None,
            nms_priority=nms_priority,
            filters=dict(
                min_size=float(min_size),
                min_aspect=None if min_aspect is None else float(min_aspect),
                max_aspect=None if max_aspect is None else float(max_aspect),
                min_rel_area=float(min_rel_area),
                max_rel_area=float(max_rel_area),
                nms_iou=None if nms_iou is None else float(nms_iou),
                topk=None if topk is None else int(topk)))
        if squash_size and squash_size > 0:  # stored only when used
            params.update(squash_size=int(squash_size))
        if swap_rb:
            params.update(swap_rb=True)
    elif method == 'grid':
        params.update(grid_sizes=[int(g) for g in grid_sizes])
    else:
        params.update(num_random=int(num_random))
    params = json.loads(json.dumps(params))

    if osp.isdir(out) and not os.access(out, os.W_OK):
        return _check_read_only(
            out, keys, params, shard_size,
            PermissionError(errno.EACCES, os.strerror(errno.EACCES)))
    try:
        lock = ProposalDirLock(out).acquire()
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        # a finished store in a read-only folder can still be checked
        return _check_read_only(out, keys, params, shard_size, e)
    try:
        return _generate_locked(out, keys, root, params, workers, shard_size,
                                overwrite, progress, start_method, chunksize,
                                max_failed_ratio)
    finally:
        lock.release()


def _check_read_only(out: str, keys: List[str], params: dict, shard_size: int,
                     error: OSError) -> Dict[str, float]:
    """Check, without writing, that the store in the unwritable ``out`` is
    the complete store of this run (its stats are returned); else one
    line naming ``out`` and why."""
    why = f'{out} is not writable ({error.strerror})'
    try:
        writer = ProposalWriter(
            out, keys, shard_size=shard_size, params=params, read_only=True)
        pending = [
            i for i in range(writer.num_shards) if not writer.is_done(i)
        ]
    except ValueError as e:
        raise InputError(f'{why} and {e}: write it elsewhere') from None
    if pending or not writer.meta.get('complete'):
        raise InputError(f'{why} and its store is not complete ('
                         f'{len(pending)} of {writer.num_shards} shards to '
                         'write): make it writable or write elsewhere')
    print_log(
        f'{out}: read-only, the complete store of this run is there '
        '(checked, nothing written)',
        logger='current',
        level=20)
    # as a re-run of a finished store in a writable folder reports it
    return dict(
        writer.meta.get('stats') or {},
        done=0,
        skipped=len(keys),
        failed=0,
        seconds=0.0,
        images_per_s=0.0)


def _generate_locked(out: str,
                     keys: List[str],
                     root: str,
                     params: dict,
                     workers: int,
                     shard_size: int,
                     overwrite: bool,
                     progress: bool,
                     start_method: Optional[str],
                     chunksize: int,
                     max_failed_ratio: float = 0.5,
                     max_logged_failures: int = 20) -> Dict[str, float]:
    """The body of :func:`generate_proposals`, with ``out`` locked."""
    writer = ProposalWriter(
        out, keys, shard_size=shard_size, params=params, overwrite=overwrite)
    pending = [i for i in range(writer.num_shards) if not writer.is_done(i)]
    skipped = len(keys) - sum(len(writer.shard_keys(i)) for i in pending)
    tasks = [(k, osp.join(root, k)) for i in pending
             for k in writer.shard_keys(i)]

    start = time.time()
    bar = ProgressBar(len(tasks), desc='proposals', enabled=progress)
    failed_now = 0
    processed = 0
    first_failures: List[str] = []
    held: list = []  # finished shards not written yet
    # decide on the failure ratio once this many images are in
    min_seen = min(len(tasks), FAILURE_CHECK_AFTER)
    shard_iter = iter(pending)
    cur = next(shard_iter, None)
    cur_keys = set(writer.shard_keys(cur)) if cur is not None else set()
    boxes_of: Dict[str, np.ndarray] = {}
    failed: List[str] = []

    def _consume(results):
        nonlocal cur, cur_keys, boxes_of, failed, failed_now, processed
        for key, boxes, err in results:
            processed += 1
            if boxes is None:
                failed.append(key)
                failed_now += 1
                if len(first_failures) < 3:
                    first_failures.append(f'{show_value(key)} ({err})')
                if failed_now <= max_logged_failures:
                    more = (' (further unreadable images are counted, not '
                            'logged)'
                            if failed_now == max_logged_failures else '')
                    print_log(
                        'Skipping unreadable image '
                        f'{show_value(osp.join(root, key), 300)}: {err}'
                        f'{more}',
                        logger='current',
                        level=30)
            else:
                boxes_of[key] = boxes
            bar.update()
            if processed >= min_seen and \
                    failed_now > max_failed_ratio * processed:
                # before this shard is written: a wrong --img-root leaves
                # no store of failures behind
                raise InputError(
                    f'{failed_now} of the first {processed} images could '
                    f'not be read under {root} (e.g. '
                    f'{", ".join(first_failures)}): is --img-root right? '
                    f'Nothing was stored for them. More than '
                    f'{max_failed_ratio:.0%} failing is an error '
                    '(--max-failed-ratio to change it).')
            if len(boxes_of) + len(failed) == len(cur_keys):
                # held back until the failure ratio is decided
                held.append((cur, boxes_of, failed))
                if processed >= min_seen:
                    for shard in held:
                        writer.write_shard(*shard)
                    held.clear()
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
        shard = read_shard(writer.shard_path(i))
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

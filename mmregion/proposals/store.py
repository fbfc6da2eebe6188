"""Proposal stores: a sharded on-disk format and readers for other formats.

A proposal directory (written by :class:`ProposalWriter` /
``tools/generate_proposals.py``) holds::

    meta.json            # format, version, parameters, shard table, stats
    shard-00000.npz      # keys (U), offsets (int64, n+1), boxes (M, 4) f32,
    shard-00001.npz      # failed (U): images that could not be read
    ...

Shard ``i`` holds images ``i*shard_size ... (i+1)*shard_size - 1`` of the
sorted image list, so a key is found by bisecting the shards' first keys
and then ``np.searchsorted`` inside the shard. Shards are loaded on first
use into memory (the file is closed right away, so a store is safe to use
from forked dataloader workers) and kept in a small LRU cache. Every file is
written atomically (temp file in the same directory, fsync, ``os.replace``).

:func:`load_proposal_store` also reads an mmdet proposal pickle and a
COCO-style json (CCOP's format). See ``docs/proposals.md``.
"""
import bisect
import hashlib
import json
import os
import os.path as osp
import pickle
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log

from mmregion.utils.atomic_io import atomic_write, is_atomic_tmp_file

FORMAT_NAME = 'mmregion-proposals'
FORMAT_VERSION = 1
META_FILE = 'meta.json'


def shard_file_name(index: int) -> str:
    """File name of shard ``index`` inside a proposal directory."""
    return f'shard-{index:05d}.npz'


def atomic_write_json(path: str, obj: dict) -> None:
    """Atomically write ``obj`` as json to ``path``."""
    data = json.dumps(obj, indent=1).encode()
    with atomic_write(path) as f:
        f.write(data)


def image_list_digest(keys: Sequence[str]) -> str:
    """sha1 of a key list (identifies the input of a proposal directory)."""
    h = hashlib.sha1()
    for k in keys:
        h.update(k.encode('utf-8'))
        h.update(b'\0')
    return h.hexdigest()


class PackedBoxes:
    """Variable-length box lists packed into flat arrays, sorted by key.

    Args:
        keys (np.ndarray): (n,) unicode keys, sorted, unique.
        offsets (np.ndarray): (n + 1,) int64; boxes of ``keys[i]`` are
            ``boxes[offsets[i]:offsets[i + 1]]``.
        boxes (np.ndarray): (M, 4) float32 xyxy boxes.
    """

    def __init__(self, keys: np.ndarray, offsets: np.ndarray,
                 boxes: np.ndarray) -> None:
        self.keys = keys
        self.offsets = offsets
        self.boxes = boxes

    @classmethod
    def from_dict(cls, boxes_of: Dict[str, np.ndarray]) -> 'PackedBoxes':
        """Pack a ``{key: (N, 4) boxes}`` dict."""
        keys = sorted(boxes_of)
        arrays = [
            np.asarray(boxes_of[k], np.float32).reshape(-1, 4) for k in keys
        ]
        return cls.from_lists(keys, arrays)

    @classmethod
    def from_lists(cls, keys: Sequence[str],
                   arrays: Sequence[np.ndarray]) -> 'PackedBoxes':
        """Pack keys (sorted, unique) and their (N_i, 4) box arrays."""
        counts = np.array([len(a) for a in arrays], np.int64)
        offsets = np.zeros(len(keys) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        boxes = (
            np.concatenate(arrays).astype(np.float32).reshape(-1, 4)
            if len(arrays) else np.zeros((0, 4), np.float32))
        key_arr = np.array(list(keys), dtype=str)
        if len(key_arr) == 0:
            key_arr = np.zeros(0, dtype='<U1')
        return cls(key_arr, offsets, boxes)

    def index(self, key: str) -> int:
        """Row of ``key`` or -1."""
        i = int(np.searchsorted(self.keys, key))
        if i < len(self.keys) and self.keys[i] == key:
            return i
        return -1

    def get(self, key: str) -> Optional[np.ndarray]:
        i = self.index(key)
        if i < 0:
            return None
        return self.boxes[self.offsets[i]:self.offsets[i + 1]].copy()

    def __len__(self) -> int:
        return len(self.keys)


class ProposalStore:
    """Read access to per-image proposals (``docs/design.md`` section 1).

    Subclasses implement :meth:`get` and :meth:`keys`.
    """

    path: str = ''

    def get(self, key: str) -> Optional[np.ndarray]:
        """(N, 4) float32 xyxy boxes (original pixels, best first) of the
        image ``key`` (its path relative to the data root), or ``None``."""
        raise NotImplementedError

    def keys(self) -> List[str]:
        """All keys, sorted."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.path!r}, {len(self)} images)'


class InMemoryProposalStore(ProposalStore):
    """A store held in memory (used for pickle and COCO-json inputs).

    Args:
        boxes_of (dict): ``{key: (N, 4) xyxy boxes}``.
        path (str): Where it came from (for messages).
    """

    def __init__(self,
                 boxes_of: Dict[str, np.ndarray],
                 path: str = '') -> None:
        self.path = path
        self._packed = PackedBoxes.from_dict(boxes_of)

    def get(self, key: str) -> Optional[np.ndarray]:
        return self._packed.get(key)

    def keys(self) -> List[str]:
        return [str(k) for k in self._packed.keys]

    def __len__(self) -> int:
        return len(self._packed)

    def __contains__(self, key: str) -> bool:
        return self._packed.index(key) >= 0


def _load_shard(path: str) -> PackedBoxes:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys, offsets, boxes = z['keys'], z['offsets'], z['boxes']
    except Exception as e:  # zip/format errors come in many types
        raise ValueError(f'Corrupt proposal shard {path}: {e!r}') from e
    if (offsets.shape != (len(keys) + 1, ) or boxes.ndim != 2
            or boxes.shape[1] != 4 or offsets[-1] != len(boxes)):
        raise ValueError(f'Corrupt proposal shard {path}: inconsistent '
                         f'keys {keys.shape}, offsets {offsets.shape}, '
                         f'boxes {boxes.shape}')
    return PackedBoxes(keys, offsets.astype(np.int64),
                       boxes.astype(np.float32, copy=False))


def read_shard_failed(path: str) -> List[str]:
    """Keys recorded as failed (unreadable images) in one shard."""
    with np.load(path, allow_pickle=False) as z:
        return [str(k) for k in z['failed']] if 'failed' in z else []


class ShardedProposalStore(ProposalStore):
    """A proposal directory written by :class:`ProposalWriter`.

    Args:
        path (str): The directory (holding ``meta.json``).
        cache_shards (int): Number of shards kept in memory (LRU).
            Defaults to 64.
    """

    def __init__(self, path: str, cache_shards: int = 64) -> None:
        self.path = path
        meta_path = osp.join(path, META_FILE)
        try:
            with open(meta_path) as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(
                f'Proposal directory {path} has no {META_FILE}; expected a '
                'directory written by tools/generate_proposals.py') from None
        except json.JSONDecodeError as e:
            raise ValueError(f'Corrupt {meta_path}: {e}') from e
        if meta.get('format') != FORMAT_NAME:
            raise ValueError(f'{meta_path} is not a {FORMAT_NAME} index '
                             f'(format={meta.get("format")!r})')
        if meta.get('version', 0) > FORMAT_VERSION:
            raise ValueError(f'{meta_path} has format version '
                             f'{meta["version"]}, this mmregion reads up to '
                             f'{FORMAT_VERSION}')
        self.meta = meta
        self._shards = meta['shards']
        self._first_keys = [s['first_key'] for s in self._shards]
        self._cache: 'OrderedDict[int, Optional[PackedBoxes]]' = OrderedDict()
        self._cache_shards = max(1, int(cache_shards))
        self._keys: Optional[List[str]] = None
        self.complete = bool(meta.get('complete', False))
        if not self.complete:
            done = sum(
                osp.exists(osp.join(path, s['file'])) for s in self._shards)
            print_log(
                f'Proposal directory {path} is incomplete ({done} of '
                f'{len(self._shards)} shards written); images of missing '
                'shards have no proposals. Re-run tools/generate_proposals.py '
                'to finish it.',
                logger='current',
                level=30)

    def _shard(self, i: int) -> Optional[PackedBoxes]:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        fname = osp.join(self.path, self._shards[i]['file'])
        shard = _load_shard(fname) if osp.exists(fname) else None
        self._cache[i] = shard
        if len(self._cache) > self._cache_shards:
            self._cache.popitem(last=False)
        return shard

    def _shard_of(self, key: str) -> int:
        return bisect.bisect_right(self._first_keys, key) - 1

    def get(self, key: str) -> Optional[np.ndarray]:
        i = self._shard_of(key)
        if i < 0:
            return None
        shard = self._shard(i)
        return None if shard is None else shard.get(key)

    def __contains__(self, key: str) -> bool:
        i = self._shard_of(key)
        if i < 0:
            return False
        shard = self._shard(i)
        return shard is not None and shard.index(key) >= 0

    def keys(self) -> List[str]:
        if self._keys is None:
            keys = []
            for s in self._shards:
                fname = osp.join(self.path, s['file'])
                if osp.exists(fname):
                    keys.extend(str(k) for k in _load_shard(fname).keys)
            self._keys = keys
        return list(self._keys)

    def __len__(self) -> int:
        stats = self.meta.get('stats') or {}
        if self.complete and 'num_stored' in stats:
            return int(stats['num_stored'])
        return len(self.keys())


class ProposalWriter:
    """Writes a proposal directory shard by shard (resumable, atomic).

    Args:
        path (str): Output directory (created).
        keys (Sequence[str]): All image keys; they are sorted and must be
            unique. Shard ``i`` holds sorted keys ``[i*shard_size,
            (i+1)*shard_size)``.
        shard_size (int): Images per shard. Defaults to 1000.
        params (dict, optional): Generation parameters, stored in
            ``meta.json``; resuming with different ones is an error.
        overwrite (bool): Start afresh if ``path`` holds a different run
            (its shards are deleted). Defaults to False.
    """

    def __init__(self,
                 path: str,
                 keys: Sequence[str],
                 shard_size: int = 1000,
                 params: Optional[dict] = None,
                 overwrite: bool = False) -> None:
        if shard_size < 1:
            raise ValueError(f'shard_size must be >= 1, got {shard_size}')
        keys = sorted(keys)
        if len(set(keys)) != len(keys):
            raise ValueError(f'ProposalWriter({path}): duplicate image keys')
        if not keys:
            raise ValueError(f'ProposalWriter({path}): no images')
        self.path = path
        self.keys = keys
        self.shard_size = int(shard_size)
        # json round trip: the comparison on resume sees what was stored
        self.params = json.loads(json.dumps(dict(params or {})))
        self.num_shards = (len(keys) + shard_size - 1) // shard_size
        os.makedirs(path, exist_ok=True)
        self._remove_stale_tmp()
        meta = dict(
            format=FORMAT_NAME,
            version=FORMAT_VERSION,
            num_images=len(keys),
            shard_size=self.shard_size,
            image_list_sha1=image_list_digest(keys),
            params=self.params,
            complete=False,
            shards=[
                dict(
                    file=shard_file_name(i),
                    first_key=keys[i * shard_size],
                    num_images=len(self.shard_keys(i)))
                for i in range(self.num_shards)
            ])
        meta_path = osp.join(path, META_FILE)
        if osp.exists(meta_path):
            old = self._read_meta(meta_path)
            mismatch = self._mismatch(old, meta)
            if mismatch and not overwrite:
                raise ValueError(
                    f'{path} already holds proposals of a different run '
                    f'({mismatch}); use another output directory or '
                    'overwrite=True (--overwrite) to start afresh')
            if mismatch:
                self._remove_shards()
            else:
                meta = old
                meta['complete'] = False
        self.meta = meta
        atomic_write_json(meta_path, meta)

    @staticmethod
    def _read_meta(meta_path: str) -> dict:
        try:
            with open(meta_path) as f:
                return json.load(f)
        except (OSError, json.JSONDecodeError):
            return {}

    @staticmethod
    def _mismatch(old: dict, new: dict) -> str:
        for k in ('format', 'version', 'image_list_sha1', 'shard_size',
                  'params'):
            if old.get(k) != new.get(k):
                return f'{k} differs: {old.get(k)!r} != {new.get(k)!r}'
        return ''

    def _remove_stale_tmp(self) -> None:
        for name in os.listdir(self.path):
            if is_atomic_tmp_file(name):
                try:
                    os.remove(osp.join(self.path, name))
                except OSError:
                    pass

    def _remove_shards(self) -> None:
        for name in os.listdir(self.path):
            if name.startswith('shard-') and name.endswith('.npz'):
                os.remove(osp.join(self.path, name))

    def shard_keys(self, i: int) -> List[str]:
        """Sorted keys of shard ``i``."""
        return self.keys[i * self.shard_size:(i + 1) * self.shard_size]

    def shard_path(self, i: int) -> str:
        return osp.join(self.path, shard_file_name(i))

    def is_done(self, i: int) -> bool:
        """Whether shard ``i`` exists, loads and holds the expected keys."""
        fname = self.shard_path(i)
        if not osp.exists(fname):
            return False
        try:
            shard = _load_shard(fname)
            failed = read_shard_failed(fname)
        except Exception as e:
            print_log(
                f'{fname} is unreadable ({e!r}); it will be regenerated',
                logger='current',
                level=30)
            return False
        return sorted([str(k)
                       for k in shard.keys] + failed) == self.shard_keys(i)

    def write_shard(
        self,
        i: int,
        boxes_of: Dict[str, np.ndarray],
        failed: Iterable[str] = ()) -> None:
        """Atomically write shard ``i``.

        Args:
            i (int): Shard index.
            boxes_of (dict): ``{key: (N, 4) boxes}`` of the images that
                were processed (``N`` may be 0).
            failed (Iterable[str]): Keys of images that could not be read.
        """
        failed = sorted(failed)
        expected = self.shard_keys(i)
        if sorted(list(boxes_of) + failed) != expected:
            raise ValueError(f'write_shard({i}): keys do not match the '
                             'shard\'s image list')
        packed = PackedBoxes.from_dict(boxes_of)
        failed_arr = np.array(
            failed, dtype=str) if failed else np.zeros(
                0, dtype='<U1')

        with atomic_write(self.shard_path(i)) as f:
            np.savez(
                f,
                keys=packed.keys,
                offsets=packed.offsets,
                boxes=packed.boxes,
                failed=failed_arr)

    def finalize(self, stats: Optional[dict] = None) -> None:
        """Mark the directory complete (all shards written) with stats."""
        missing = [
            i for i in range(self.num_shards)
            if not osp.exists(self.shard_path(i))
        ]
        if missing:
            raise RuntimeError(f'{self.path}: shards {missing[:5]} missing, '
                               'cannot finalize')
        self.meta['complete'] = True
        self.meta['stats'] = dict(stats or {})
        atomic_write_json(osp.join(self.path, META_FILE), self.meta)


def _coco_images(ann_file: str) -> dict:
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f'COCO json {ann_file} not found') from None
    except json.JSONDecodeError as e:
        raise ValueError(f'{ann_file} is not valid json: {e}') from e
    if not isinstance(coco, dict) or 'images' not in coco:
        raise ValueError(f'{ann_file} is not a COCO-style json (no '
                         '"images" list)')
    return coco


def _load_coco_json_store(path: str) -> InMemoryProposalStore:
    coco = _coco_images(path)
    cats = coco.get('categories') or []
    if len(cats) > 1:
        print_log(
            f'{path} has {len(cats)} categories: is it a ground-truth '
            'annotation file rather than proposals? Its boxes are used as '
            'proposals.',
            logger='current',
            level=30)
    id_to_key = {}
    for im in coco['images']:
        if 'file_name' not in im or 'id' not in im:
            raise ValueError(f'{path}: an image entry lacks "id" or '
                             f'"file_name": {im}')
        id_to_key[im['id']] = im['file_name']
    lists: Dict[str, list] = {k: [] for k in id_to_key.values()}
    for ann in coco.get('annotations', []):
        key = id_to_key.get(ann.get('image_id'))
        if key is None:
            raise ValueError(f'{path}: annotation {ann.get("id")} refers to '
                             f'unknown image_id {ann.get("image_id")}')
        lists[key].append(ann['bbox'])
    boxes_of = {}
    for key, xywh in lists.items():
        b = np.asarray(xywh, np.float32).reshape(-1, 4)
        b[:, 2:] += b[:, :2]
        boxes_of[key] = b
    return InMemoryProposalStore(boxes_of, path)


def _to_boxes(value, where: str) -> np.ndarray:
    """(N, 4) float32 boxes, best first, from an mmdet-style value."""
    scores = None
    if isinstance(value, dict):
        if 'bboxes' not in value:
            raise ValueError(f'{where}: dict value without "bboxes"')
        scores = value.get('scores')
        value = value['bboxes']
    elif hasattr(value, 'bboxes'):  # mmengine InstanceData
        scores = getattr(value, 'scores', None)
        value = value.bboxes
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value, np.float32)
    if arr.size == 0:
        return np.zeros((0, 4), np.float32)
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise ValueError(f'{where}: expected (N, 4) or (N, 5) boxes, got '
                         f'shape {arr.shape}')
    if arr.shape[1] == 5 and scores is None:
        scores = arr[:, 4]
    boxes = arr[:, :4]
    if scores is not None:
        if hasattr(scores, 'detach'):
            scores = scores.detach().cpu().numpy()
        order = np.argsort(-np.asarray(scores, np.float32), kind='stable')
        boxes = boxes[order]
    return np.ascontiguousarray(boxes)


def _load_tensor_bytes(data: bytes) -> Any:
    """Tensors inside a plain pickle: read with torch's safe loader."""
    import io

    import torch
    return torch.load(io.BytesIO(data), weights_only=True)


class _ProposalUnpickler(pickle.Unpickler):
    """Unpickles proposal files with an allow-list, never arbitrary code.

    Allowed: containers, numpy arrays/scalars/dtypes, torch tensors (their
    bytes go through ``torch.load(weights_only=True)``) and mmengine's
    ``InstanceData`` (mmdet 3.x proposal results).
    """

    _ALLOWED = {
        ('collections', 'OrderedDict'),
        ('numpy', 'ndarray'),
        ('numpy', 'dtype'),
        ('numpy.core.multiarray', '_reconstruct'),
        ('numpy.core.multiarray', 'scalar'),
        ('numpy._core.multiarray', '_reconstruct'),
        ('numpy._core.multiarray', 'scalar'),
        ('mmengine.structures.instance_data', 'InstanceData'),
        ('torch._utils', '_rebuild_tensor_v2'),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ('torch.storage', '_load_from_bytes'):
            return _load_tensor_bytes
        if (module, name) in self._ALLOWED or module == 'numpy.dtypes':
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f'refusing to unpickle {module}.{name}: proposal pickles may '
            'only hold arrays, tensors, lists/dicts and InstanceData')


def _load_pickle_store(path: str,
                       ann_file: Optional[str] = None
                       ) -> InMemoryProposalStore:
    # mmdet proposal files are pickles: read them with an allow-list
    with open(path, 'rb') as f:
        try:
            obj = _ProposalUnpickler(f).load()
        except pickle.UnpicklingError as e:
            raise pickle.UnpicklingError(f'{path}: {e}') from None
        except Exception as e:
            raise ValueError(f'{path}: not a readable pickle: {e!r}') from e
    if isinstance(obj, dict):
        boxes_of = {
            str(k): _to_boxes(v, f'{path}[{k!r}]')
            for k, v in obj.items()
        }
    elif isinstance(obj, (list, tuple)):
        if ann_file is None:
            raise ValueError(
                f'{path} is a list of per-image proposals (mmdet 2.x '
                'style); pass ann_file= (the COCO json whose image order it '
                'follows)')
        images = _coco_images(ann_file)['images']
        if len(images) != len(obj):
            raise ValueError(f'{path} has {len(obj)} entries but {ann_file} '
                             f'has {len(images)} images')
        boxes_of = {
            im['file_name']: _to_boxes(v, f'{path}[{i}]')
            for i, (im, v) in enumerate(zip(images, obj))
        }
    else:
        raise ValueError(f'{path}: unsupported proposal pickle content '
                         f'{type(obj).__name__} (expected a list or dict)')
    return InMemoryProposalStore(boxes_of, path)


def load_proposal_store(path: str,
                        ann_file: Optional[str] = None,
                        cache_shards: int = 64) -> ProposalStore:
    """Open proposals from a directory, an mmdet pickle or a COCO json.

    Args:
        path (str): A proposal directory (``meta.json`` + shards), an mmdet
            proposal pickle (``.pkl``/``.pickle``: a dict ``{file_name:
            boxes}`` or a list aligned with ``ann_file``'s images; values
            (N, 4|5) arrays, dicts or ``InstanceData`` with ``bboxes`` and
            optional ``scores``) or a COCO-style json (xywh ``annotations``,
            ``images[].file_name`` keys, as CCOP writes).
        ann_file (str, optional): COCO json giving the image order of a
            list-style pickle.
        cache_shards (int): LRU size of a sharded store.

    Returns:
        ProposalStore: The store.
    """
    path = str(path)
    if not osp.exists(path):
        raise FileNotFoundError(f'Proposal file/directory {path} not found')
    if osp.isdir(path):
        return ShardedProposalStore(path, cache_shards=cache_shards)
    ext = osp.splitext(path)[1].lower()
    if ext in ('.pkl', '.pickle'):
        return _load_pickle_store(path, ann_file)
    if ext == '.json':
        return _load_coco_json_store(path)
    raise ValueError(f'Unknown proposal format of {path}: expected a '
                     'directory from tools/generate_proposals.py, a .pkl/'
                     '.pickle (mmdet) or a .json (COCO-style) file')

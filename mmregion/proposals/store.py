"""Proposal stores: a sharded on-disk format and readers for other formats.

A proposal directory (written by :class:`ProposalWriter` /
``tools/generate_proposals.py``) holds::

    meta.json            # format, version, parameters, shard table, stats,
                         # run_sha1 (settings + image list)
    shard-00000.npz      # keys (U), offsets (int64, n+1), boxes (M, 4) f32,
    shard-00001.npz      # failed (U): images that could not be read,
    ...                  # run_sha1 (U): the run it was written for

Shard ``i`` holds images ``i*shard_size ... (i+1)*shard_size - 1`` of the
sorted image list, so a key is found by bisecting the shards' first keys
and then ``np.searchsorted`` inside the shard. Shards are loaded on first
use into memory (the file is closed right away, so a store is safe to use
from forked dataloader workers) and kept in a small LRU cache. Every file is
written atomically (temp file in the same directory, fsync, ``os.replace``);
``generate_proposals`` holds a :class:`ProposalDirLock` on the directory.

:func:`load_proposal_store` also reads an mmdet proposal pickle and a
COCO-style json (CCOP's format). See ``docs/proposals.md``.
"""
import bisect
import hashlib
import importlib
import json
import os
import os.path as osp
import pickle
import re
import socket
import stat
import time
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from mmregion.utils.atomic_io import (_pid_alive, atomic_write,
                                      is_atomic_tmp_file)
from mmregion.utils.input_checks import (InputError, check_file_name,
                                         coco_image_entries, read_json_file)

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
        """(N, 4) float32 xyxy boxes (original pixels, in the store's order,
        e.g. the NMS priority of selective search) of the image ``key`` (its
        path relative to the data root), or ``None``."""
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


_SHARD_RE = re.compile(r'shard-\d{5,}\.npz')


def run_digest(meta: dict) -> str:
    """sha1 of what makes shards interchangeable: input list and settings.

    Stored in ``meta.json`` and in every shard (``run_sha1``), so a shard
    written by another run (other ``topk``, other images...) is detected on
    resume and on load.
    """
    ident = {
        k: meta.get(k)
        for k in ('format', 'image_list_sha1', 'shard_size', 'params')
    }
    return hashlib.sha1(
        json.dumps(ident, sort_keys=True).encode()).hexdigest()


def _check_regular_file(path: str) -> None:
    """Refuse FIFOs, devices and folders (reading them could hang)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise InputError(f'Proposal shard {path} cannot be read: '
                         f'{type(e).__name__}') from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f'Proposal shard {path} is not a regular file')


def _load_shard(path: str) -> PackedBoxes:
    _check_regular_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys, offsets, boxes = z['keys'], z['offsets'], z['boxes']
    except Exception as e:  # zip/format errors come in many types
        raise InputError(f'Corrupt proposal shard {path}: '
                         f'{type(e).__name__}: {_show(str(e), 200)}') \
            from None
    if (keys.ndim != 1 or keys.dtype.kind != 'U'
            or offsets.shape != (len(keys) + 1, ) or boxes.ndim != 2
            or boxes.shape[1] != 4 or offsets.dtype.kind not in 'iu'
            or len(offsets) == 0 or offsets[0] != 0
            or offsets[-1] != len(boxes) or np.any(np.diff(offsets) < 0)):
        raise InputError(f'Corrupt proposal shard {path}: inconsistent '
                         f'keys {keys.shape}, offsets {offsets.shape}, '
                         f'boxes {boxes.shape}')
    return PackedBoxes(keys, offsets.astype(np.int64),
                       boxes.astype(np.float32, copy=False))


def read_shard_failed(path: str) -> List[str]:
    """Keys recorded as failed (unreadable images) in one shard."""
    with np.load(path, allow_pickle=False) as z:
        return [str(k) for k in z['failed']] if 'failed' in z else []


def read_shard_digest(path: str) -> Optional[str]:
    """The ``run_sha1`` a shard was written with (None: older shard).

    Only the zip directory and this tiny member are read, so checking every
    shard of a store is cheap. Raises :class:`InputError` naming the shard
    when it is not a readable ``.npz`` with keys/offsets/boxes.
    """
    _check_regular_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {'keys', 'offsets', 'boxes'} - set(z.files)
            digest = str(z['run_sha1']) if 'run_sha1' in z.files else None
    except Exception as e:
        raise InputError(f'Corrupt proposal shard {path}: '
                         f'{type(e).__name__}: {_show(str(e), 200)}') \
            from None
    if missing:
        raise InputError(f'Corrupt proposal shard {path}: no '
                         f'{sorted(missing)} array')
    return digest


def _settings_mismatch_error(shard: str, store: str) -> InputError:
    return InputError(
        f'Proposal shard {shard} was written with other settings or images '
        f'than {osp.join(store, META_FILE)} says (another run wrote into '
        f'{store}?); regenerate it: tools/generate_proposals.py ... '
        '--overwrite')


class ShardedProposalStore(ProposalStore):
    """A proposal directory written by :class:`ProposalWriter`.

    On opening, ``meta.json`` is validated and every shard present is
    checked cheaply (a readable ``.npz`` with its arrays, written with the
    settings of ``meta.json``): a bad shard is a clear error naming it, at
    load instead of deep in a training run.

    Args:
        path (str): The directory (holding ``meta.json``).
        cache_shards (int): Number of shards kept in memory (LRU).
            Defaults to 64.
        verify (bool): Check the shards on opening. Defaults to True.
    """

    def __init__(self,
                 path: str,
                 cache_shards: int = 64,
                 verify: bool = True) -> None:
        self.path = path
        meta_path = osp.join(path, META_FILE)
        if not osp.exists(meta_path):
            raise FileNotFoundError(
                f'Proposal directory {path} has no {META_FILE}; expected a '
                'directory written by tools/generate_proposals.py')
        meta = read_json_file(meta_path)
        if not isinstance(meta, dict) or meta.get('format') != FORMAT_NAME:
            fmt = meta.get('format') if isinstance(meta, dict) else None
            raise InputError(f'{meta_path} is not a {FORMAT_NAME} index '
                             f'(format={_show(fmt)})')
        version = meta.get('version', 0)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise InputError(f'{meta_path} has format version '
                             f'{_show(version)}, this mmregion reads up to '
                             f'{FORMAT_VERSION}')
        shards = meta.get('shards')
        if not isinstance(shards, list) or not all(
                isinstance(s, dict) and isinstance(s.get('file'), str)
                and _SHARD_RE.fullmatch(s['file'])
                and isinstance(s.get('first_key'), str) for s in shards):
            raise InputError(f'{meta_path}: "shards" must be a list of '
                             '{"file": "shard-NNNNN.npz", "first_key": str}')
        self.meta = meta
        self._shards = shards
        self._first_keys = [s['first_key'] for s in self._shards]
        self._cache: 'OrderedDict[int, Optional[PackedBoxes]]' = OrderedDict()
        self._cache_shards = max(1, int(cache_shards))
        self._keys: Optional[List[str]] = None
        self.complete = bool(meta.get('complete', False))
        present = [
            osp.join(path, s['file']) for s in self._shards
            if osp.lexists(osp.join(path, s['file']))
        ]
        if verify:
            expected = meta.get('run_sha1')
            for fname in present:
                digest = read_shard_digest(fname)
                if expected and digest and digest != expected:
                    raise _settings_mismatch_error(fname, path)
        if not self.complete:
            print_log(
                f'Proposal directory {path} is incomplete ({len(present)} of '
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
        shard = _load_shard(fname) if osp.lexists(fname) else None
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
                if osp.lexists(fname):
                    keys.extend(str(k) for k in _load_shard(fname).keys)
            self._keys = keys
        return list(self._keys)

    def __len__(self) -> int:
        stats = self.meta.get('stats') or {}
        if self.complete and isinstance(stats, dict) and isinstance(
                stats.get('num_stored'), int):
            return int(stats['num_stored'])
        return len(self.keys())


LOCK_FILE = '.generate_proposals.lock'


class ProposalDirBusyError(InputError):
    """Another live run holds the lock of a proposal directory."""


class ProposalDirLock:
    """An exclusive lock on a proposal directory (one writer at a time).

    ``fcntl.flock`` on ``<dir>/.generate_proposals.lock``: the kernel drops
    it when the holder dies, even by ``kill -9``, so the lock of a dead run
    is simply taken over. The file records the holder's pid, host and start
    time for the error message. Where ``flock`` is not available (Windows,
    some network file systems) a pid file is used instead: its lock is
    taken over when the pid is dead on this host.

    Args:
        path (str): The proposal directory (created).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock_path = osp.join(path, LOCK_FILE)
        self._fd: Optional[int] = None

    def _holder(self) -> dict:
        try:
            with open(self.lock_path) as f:
                info = json.loads(f.read() or '{}')
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}

    def _busy(self, info: dict) -> ProposalDirBusyError:
        return ProposalDirBusyError(
            f'{self.path} is being written by another generate_proposals '
            f'run (pid {info.get("pid", "?")} on host '
            f'{info.get("host", "?")}, started {info.get("started", "?")}); '
            'wait for it to finish or use another output directory')

    def acquire(self) -> 'ProposalDirLock':
        """Take the lock or raise :class:`ProposalDirBusyError`."""
        os.makedirs(self.path, exist_ok=True)
        me = dict(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=time.strftime('%Y-%m-%d %H:%M:%S'))
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise self._busy(self._holder()) from None
                except OSError:  # no flock on this file system
                    self._check_pid_file()
            else:
                self._check_pid_file()
            old = self._holder()
            if old.get('pid') not in (None, me['pid']):
                print_log(
                    f'{self.path}: taking over the lock of a dead run (pid '
                    f'{old.get("pid")} on {old.get("host")})',
                    logger='current',
                    level=20)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def _check_pid_file(self) -> None:
        info = self._holder()
        pid, host = info.get('pid'), info.get('host')
        if isinstance(pid, int) and pid != os.getpid():
            if host != socket.gethostname() or _pid_alive(pid):
                raise self._busy(info)

    def release(self) -> None:
        """Release the lock (the file stays, emptied)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        os.close(self._fd)  # also drops the flock
        self._fd = None

    def __enter__(self) -> 'ProposalDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class ProposalWriter:
    """Writes a proposal directory shard by shard (resumable, atomic).

    The writer does not lock the directory; ``generate_proposals`` holds a
    :class:`ProposalDirLock` around it.

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
        meta['run_sha1'] = run_digest(meta)
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
                meta['run_sha1'] = run_digest(meta)
                meta['complete'] = False
        self.meta = meta
        atomic_write_json(meta_path, meta)

    @staticmethod
    def _read_meta(meta_path: str) -> dict:
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            return meta if isinstance(meta, dict) else {}
        except (OSError, ValueError):
            return {}

    @staticmethod
    def _mismatch(old: dict, new: dict) -> str:
        for k in ('format', 'version', 'image_list_sha1', 'shard_size',
                  'params'):
            if old.get(k) != new.get(k):
                return f'{k} differs: {old.get(k)!r} != {new.get(k)!r}'
        return ''

    def _remove_stale_tmp(self) -> None:
        """Remove temp files of writers that are not alive on this host.

        A live writer's temp file (another process of this host: a run
        that did not take the lock, or a reader of the same folder) is
        kept, so its rename cannot fail.
        """
        host = re.sub(r'[^A-Za-z0-9_-]', '_', socket.gethostname())[:32]
        for name in os.listdir(self.path):
            if not is_atomic_tmp_file(name):
                continue
            parts = name.rsplit('.', 4)  # .<name>.<host>.<pid>.<hex>.tmp
            try:
                pid = int(parts[-3])
            except (IndexError, ValueError):
                continue
            if parts[-4] == host and pid != os.getpid() and \
                    _pid_alive(pid):
                continue
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
        """Whether shard ``i`` exists, loads and holds the expected keys.

        Raises:
            InputError: The shard was written with other settings (its
                ``run_sha1`` differs from ``meta.json``'s).
        """
        fname = self.shard_path(i)
        if not osp.lexists(fname):
            return False
        try:
            digest = read_shard_digest(fname)
            shard = _load_shard(fname)
            failed = read_shard_failed(fname)
        except Exception as e:
            print_log(
                f'{fname} is unreadable ({e}); it will be regenerated',
                logger='current',
                level=30)
            return False
        if digest is not None and digest != self.meta['run_sha1']:
            raise _settings_mismatch_error(fname, self.path)
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
                failed=failed_arr,
                run_sha1=np.array(self.meta['run_sha1']))

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


def _coco_images(ann_file: str,
                 coco: Any = None,
                 allow_unsafe_paths: bool = False) -> List[dict]:
    """The validated ``images`` of a COCO json (one-line errors)."""
    if coco is None:
        coco = read_json_file(ann_file)
    return coco_image_entries(
        coco, ann_file, allow_unsafe_paths=allow_unsafe_paths, need_id=True)


def _load_coco_json_store(
        path: str, allow_unsafe_paths: bool = False) -> InMemoryProposalStore:
    coco = read_json_file(path)
    images = _coco_images(path, coco, allow_unsafe_paths)
    cats = coco.get('categories') or []
    if isinstance(cats, list) and len(cats) > 1:
        print_log(
            f'{path} has {len(cats)} categories: is it a ground-truth '
            'annotation file rather than proposals? Its boxes are used as '
            'proposals.',
            logger='current',
            level=30)
    id_to_key = {}
    for im in images:
        try:
            id_to_key[im['id']] = im['file_name']
        except TypeError:  # unhashable id
            raise InputError(f'{path}: image id {_show(im["id"])} is not a '
                             'number or string') from None
    lists: Dict[str, list] = {k: [] for k in id_to_key.values()}
    anns = coco.get('annotations', [])
    if not isinstance(anns, list):
        raise InputError(f'{path}: "annotations" is not a list')
    for i, ann in enumerate(anns):
        where = f'{path}: annotations[{i}]'
        if not isinstance(ann, dict) or 'bbox' not in ann:
            raise InputError(f'{where} is not an object with a "bbox"')
        try:
            key = id_to_key.get(ann.get('image_id'))
        except TypeError:
            key = None
        if key is None:
            raise InputError(f'{where} refers to unknown image_id '
                             f'{_show(ann.get("image_id"))}')
        bbox = ann['bbox']
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool)
                for v in bbox)):
            raise InputError(f'{where}: bbox {_show(bbox)} is not 4 numbers '
                             '[x, y, w, h]')
        lists[key].append(bbox)
    boxes_of = {}
    for key, xywh in lists.items():
        b = np.asarray(xywh, np.float32).reshape(-1, 4)
        b[:, 2:] += b[:, :2]
        boxes_of[key] = b
    return InMemoryProposalStore(boxes_of, path)


def _to_boxes(value, where: str) -> np.ndarray:
    """(N, 4) float32 boxes from an mmdet-style value, by score if any."""
    scores = None
    if isinstance(value, dict):
        if 'bboxes' not in value:
            raise InputError(f'{where}: dict value without "bboxes"')
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
        raise InputError(f'{where}: expected (N, 4) or (N, 5) boxes, got '
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


def _latin1_encode(obj: Any, encoding: str = 'utf-8') -> bytes:
    """``_codecs.encode`` for protocol-2 numpy pickles, latin-1 only."""
    if encoding not in ('latin1', 'latin-1') or not isinstance(obj, str):
        raise pickle.UnpicklingError(
            f'refusing _codecs.encode({type(obj).__name__}, '
            f'{_show(encoding)}): only latin-1 text is expected')
    return obj.encode('latin-1')


def _show(value: Any, limit: int = 80) -> str:
    """A hostile name, on one line and short, for messages."""
    text = ascii(value)
    return text if len(text) <= limit else text[:limit] + '...'


class UnsafeProposalFileError(InputError, pickle.UnpicklingError):
    """A proposal pickle asks for a global outside the allow-list."""


class _ProposalUnpickler(pickle.Unpickler):
    """Unpickles proposal files with an allow-list, never arbitrary code.

    Only exact ``(module, name)`` pairs are resolved, never a dotted name
    (protocol 4 allows ``name='a.b.c'``, which walks attributes, e.g.
    ``numpy.dtypes`` + ``__builtins__.get`` reaches ``eval``), and never a
    whole module. Allowed: ``OrderedDict``, numpy arrays/scalars/dtypes
    (their constructors), torch tensors (their bytes go through
    ``torch.load(weights_only=True)``), mmengine's ``InstanceData`` (mmdet
    3.x proposal results) and latin-1 ``_codecs.encode`` (protocol-2 numpy
    pickles). ``persistent_load`` is refused by the base class.
    """

    _ALLOWED = frozenset({
        ('collections', 'OrderedDict'),
        ('numpy', 'ndarray'),
        ('numpy', 'dtype'),
        ('numpy.core.multiarray', '_reconstruct'),
        ('numpy.core.multiarray', 'scalar'),
        ('numpy.core.numeric', '_frombuffer'),
        ('numpy._core.multiarray', '_reconstruct'),
        ('numpy._core.multiarray', 'scalar'),
        ('numpy._core.numeric', '_frombuffer'),
        ('mmengine.structures.instance_data', 'InstanceData'),
        ('torch._utils', '_rebuild_tensor_v2'),
    })
    # replaced by a safe function of ours
    _REPLACED = {
        ('torch.storage', '_load_from_bytes'): '_load_tensor_bytes',
        ('_codecs', 'encode'): '_latin1_encode',
    }

    def find_class(self, module: str, name: str) -> Any:
        pair = (module, name)
        if isinstance(module, str) and isinstance(name, str) and \
                '.' not in name:
            if pair in self._REPLACED:
                return globals()[self._REPLACED[pair]]
            if pair in self._ALLOWED:
                return getattr(importlib.import_module(module), name)
        raise UnsafeProposalFileError(
            f'refusing to unpickle {_show(module)}.{_show(name)}: proposal '
            'pickles may only hold arrays, tensors, lists/dicts and '
            'InstanceData')


def _load_pickle_store(path: str,
                       ann_file: Optional[str] = None,
                       allow_unsafe_paths: bool = False
                       ) -> InMemoryProposalStore:
    # mmdet proposal files are pickles: read them with an allow-list
    with open(path, 'rb') as f:
        try:
            obj = _ProposalUnpickler(f).load()
        except UnsafeProposalFileError as e:
            raise UnsafeProposalFileError(f'{path}: {e}') from None
        except Exception as e:  # truncated, not a pickle, bad arguments...
            raise InputError(f'{path}: not a readable proposal pickle: '
                             f'{type(e).__name__}: {_show(str(e), 200)}') \
                from None
    try:
        if isinstance(obj, dict):
            boxes_of = {
                check_file_name(k, f'key of {path}', allow_unsafe_paths):
                _to_boxes(v, f'{path}[{k!r}]')
                for k, v in obj.items()
            }
        elif isinstance(obj, (list, tuple)):
            if ann_file is None:
                raise InputError(
                    f'{path} is a list of per-image proposals (mmdet 2.x '
                    'style); pass ann_file= (the COCO json whose image order '
                    'it follows)')
            images = _coco_images(ann_file, None, allow_unsafe_paths)
            if len(images) != len(obj):
                raise InputError(f'{path} has {len(obj)} entries but '
                                 f'{ann_file} has {len(images)} images')
            boxes_of = {
                im['file_name']: _to_boxes(v, f'{path}[{i}]')
                for i, (im, v) in enumerate(zip(images, obj))
            }
        else:
            raise InputError(f'{path}: unsupported proposal pickle content '
                             f'{type(obj).__name__} (expected a list or '
                             'dict)')
    except InputError:
        raise
    except Exception as e:  # odd values built from allowed classes
        raise InputError(f'{path}: unusable proposal values: '
                         f'{type(e).__name__}: {_show(str(e), 200)}') \
            from None
    return InMemoryProposalStore(boxes_of, path)


def load_proposal_store(path: str,
                        ann_file: Optional[str] = None,
                        cache_shards: int = 64,
                        allow_unsafe_paths: bool = False) -> ProposalStore:
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
        allow_unsafe_paths (bool): Accept absolute and ``..`` keys in a
            pickle or json (refused by default, see
            :func:`mmregion.utils.input_checks.check_file_name`).

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
        return _load_pickle_store(path, ann_file, allow_unsafe_paths)
    if ext == '.json':
        return _load_coco_json_store(path, allow_unsafe_paths)
    raise InputError(f'Unknown proposal format of {path}: expected a '
                     'directory from tools/generate_proposals.py, a .pkl/'
                     '.pickle (mmdet) or a .json (COCO-style) file')

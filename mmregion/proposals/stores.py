"""Readers of proposals: the store interface and the sharded directory.

:class:`ShardedProposalStore` loads shards on first use and keeps them in a
small LRU cache. See ``docs/design.md`` and ``docs/proposals.md``.
"""
import bisect
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional

import numpy as np
from mmengine.logging import print_log

from mmregion.utils.input_checks import InputError, read_json_file, show_value
from .format import (FORMAT_NAME, FORMAT_VERSION, META_FILE, SHARD_RE,
                     PackedBoxes)
from .shard_io import (read_shard, read_shard_digest, read_shard_num_keys,
                       settings_mismatch_error)

__all__ = ['ProposalStore', 'InMemoryProposalStore', 'ShardedProposalStore']


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
        """Images stored, counted in the shards (``meta.json``'s
        ``num_stored`` is not trusted)."""
        if self._keys is not None:
            return len(self._keys)
        total = 0
        for s in self._shards:
            fname = osp.join(self.path, s['file'])
            if osp.lexists(fname):
                total += read_shard_num_keys(fname)
            elif s['file'] in self._present:
                self._read(s['file'])  # raises: it disappeared
        return total

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
        self._keys = sorted(boxes_of)
        # a dict, not a fixed-width '<U' array: one long key must not make
        # every key as long (20000 keys x 100000 chars = 8 GB)
        self._index = {k: i for i, k in enumerate(self._keys)}
        arrays = [
            np.asarray(boxes_of[k], np.float32).reshape(-1, 4)
            for k in self._keys
        ]
        self._offsets = np.zeros(len(arrays) + 1, np.int64)
        np.cumsum([len(a) for a in arrays], out=self._offsets[1:])
        self._boxes = np.concatenate(arrays) if arrays else np.zeros(
            (0, 4), np.float32)

    def get(self, key: str) -> Optional[np.ndarray]:
        i = self._index.get(key)
        if i is None:
            return None
        return self._boxes[self._offsets[i]:self._offsets[i + 1]].copy()

    def keys(self) -> List[str]:
        return list(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: str) -> bool:
        return key in self._index


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
                             f'(format={show_value(fmt)})')
        version = meta.get('version', 0)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise InputError(
                f'{meta_path} has format version '
                f'{show_value(version)}, this mmregion reads up to '
                f'{FORMAT_VERSION}')
        shards = meta.get('shards')
        if not isinstance(shards, list) or not all(
                isinstance(s, dict) and isinstance(s.get('file'), str)
                and SHARD_RE.fullmatch(s['file'])
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
        # shards present now must stay (a regeneration that removes them
        # while we read is an error, not "no proposals")
        self._present = {osp.basename(f) for f in present}
        expected = meta.get('run_sha1')
        self.run_sha1 = expected if isinstance(expected, str) else None
        if verify:
            for fname in present:
                digest = read_shard_digest(fname)
                if expected and digest and digest != expected:
                    raise settings_mismatch_error(fname, path)
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
        shard = self._read(self._shards[i]['file'])
        self._cache[i] = shard
        if len(self._cache) > self._cache_shards:
            self._cache.popitem(last=False)
        return shard

    def _read(self, name: str) -> Optional[PackedBoxes]:
        """Read a shard of the run the store was opened with, or fail."""
        fname = osp.join(self.path, name)
        if not osp.lexists(fname):
            if name in self._present:
                raise InputError(
                    f'Proposal shard {fname} disappeared while {self.path} '
                    'was being read: the store was regenerated (--overwrite)'
                    '. Restart the reader (training) once '
                    'tools/generate_proposals.py has finished.')
            return None
        return read_shard(fname, expect_run=self.run_sha1, store=self.path)

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
                shard = self._read(s['file'])
                if shard is not None:
                    keys.extend(str(k) for k in shard.keys)
            self._keys = keys
        return list(self._keys)

    def __len__(self) -> int:
        """Images stored, counted in the shards (``meta.json``'s
        ``num_stored`` is not trusted)."""
        if self._keys is not None:
            return len(self._keys)
        total = 0
        for s in self._shards:
            fname = osp.join(self.path, s['file'])
            if osp.lexists(fname):
                total += read_shard_num_keys(fname)
            elif s['file'] in self._present:
                self._read(s['file'])  # raises: it disappeared
        return total

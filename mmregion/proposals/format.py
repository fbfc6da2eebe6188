"""The proposal directory format: names, version, digests, packed boxes.

A proposal directory (written by
:class:`~mmregion.proposals.writer.ProposalWriter` /
``tools/generate_proposals.py``) holds::

    meta.json            # format, version, parameters, shard table, stats,
                         # run_sha1 (settings + image list)
    shard-00000.npz      # keys (U), offsets (int64, n+1), boxes (M, 4) f32,
    shard-00001.npz      # failed (U): images that could not be read,
    ...                  # run_sha1 (U): the run it was written for

Shard ``i`` holds images ``i*shard_size ... (i+1)*shard_size - 1`` of the
sorted image list, so a key is found by bisecting the shards' first keys
and then ``np.searchsorted`` inside the shard (:class:`PackedBoxes`).
See ``docs/proposals.md``.
"""
import hashlib
import json
import re
from typing import Dict, Optional, Sequence

import numpy as np

__all__ = [
    'FORMAT_NAME', 'FORMAT_VERSION', 'META_FILE', 'SHARD_RE',
    'shard_file_name', 'image_list_digest', 'run_digest', 'PackedBoxes'
]

FORMAT_NAME = 'mmregion-proposals'
FORMAT_VERSION = 1
META_FILE = 'meta.json'
SHARD_RE = re.compile(r'shard-\d{5,}\.npz')


def shard_file_name(index: int) -> str:
    """File name of shard ``index`` inside a proposal directory."""
    return f'shard-{index:05d}.npz'


def image_list_digest(keys: Sequence[str]) -> str:
    """sha1 of a key list (identifies the input of a proposal directory)."""
    h = hashlib.sha1()
    for k in keys:
        h.update(k.encode('utf-8'))
        h.update(b'\0')
    return h.hexdigest()


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
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()


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

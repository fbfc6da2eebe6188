"""Writing a proposal directory: :class:`ProposalWriter` (resumable,
atomic shards) and :class:`ProposalDirLock` (one writer at a time)."""
import json
import os
import os.path as osp
import socket
import time
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from mmregion.utils.atomic_io import (atomic_write_json, pid_alive,
                                      remove_stale_tmp_files)
from mmregion.utils.input_checks import InputError
from .format import (FORMAT_NAME, FORMAT_VERSION, META_FILE, image_list_digest,
                     run_digest, shard_file_name)
from .shard_io import (read_shard, read_shard_digest, read_shard_failed,
                       settings_mismatch_error, write_shard,
                       writing_error_names)

__all__ = [
    'LOCK_FILE', 'ProposalDirBusyError', 'ProposalDirLock', 'ProposalWriter'
]

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
            if host != socket.gethostname() or pid_alive(pid):
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
        read_only (bool): Only check an existing store of the same run
            (nothing is created or written; a missing or different
            ``meta.json`` raises ``ValueError``). Defaults to False.
    """

    def __init__(self,
                 path: str,
                 keys: Sequence[str],
                 shard_size: int = 1000,
                 params: Optional[dict] = None,
                 overwrite: bool = False,
                 read_only: bool = False) -> None:
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
        if not read_only:
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
        if read_only and not osp.exists(meta_path):
            raise ValueError(f'{path} holds no proposal store ({META_FILE} '
                             'missing)')
        if osp.exists(meta_path):
            old = self._read_meta(meta_path)
            mismatch = self._mismatch(old, meta)
            if read_only and mismatch:
                raise ValueError(f'{path} holds proposals of a different run'
                                 f' ({mismatch})')
            if read_only:
                self.meta = old
                return
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
        with writing_error_names(meta_path, 'proposal store meta'):
            atomic_write_json(meta_path, meta, indent=1)

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
        remove_stale_tmp_files(self.path, other_hosts=True, own_pid=True)

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
            shard = read_shard(fname)
            failed = read_shard_failed(fname)
        except Exception as e:
            print_log(
                f'{fname} is unreadable ({e}); it will be regenerated',
                logger='current',
                level=30)
            return False
        if digest is not None and digest != self.meta['run_sha1']:
            raise settings_mismatch_error(fname, self.path)
        return sorted([str(k)
                       for k in shard.keys] + failed) == self.shard_keys(i)

    def write_shard(
        self,
        i: int,
        boxes_of: Dict[str, np.ndarray],
        failed: Iterable[str] = ()
    ) -> None:  # noqa: E125
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
        write_shard(
            self.shard_path(i), boxes_of, failed, self.meta['run_sha1'])

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
        meta_path = osp.join(self.path, META_FILE)
        with writing_error_names(meta_path, 'proposal store meta'):
            atomic_write_json(meta_path, self.meta, indent=1)

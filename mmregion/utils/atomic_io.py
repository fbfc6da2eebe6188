"""Atomic file writes: a kill at any moment leaves the previous file intact.

mmengine 0.10.7 writes checkpoints with ``save_checkpoint`` ->
``get_file_backend(path).put(bytes, path)``, whose ``LocalBackend`` does a
plain ``open(path, 'wb')``, and ``CheckpointHook`` writes
``work_dir/last_checkpoint`` with a plain ``open(path, 'w')``. A job killed
during either write leaves a truncated file that ``resume`` then trips over.

Here every write goes to a temporary file in the same directory
(``.<name>.<host>.<pid>.<random>.tmp``: hidden, never ``*.pth``), which is
flushed, fsynced and moved onto the target with :func:`os.replace` (atomic on
POSIX and Windows); the directory is fsynced afterwards so that the rename
survives a power loss. Readers see either the old or the new file, never a
part of one. Temporary files left by killed writers are removed by the next
write of the same target from the same host.

:class:`~mmregion.engine.hooks.SafeCheckpointHook` (``type='CheckpointHook'``
in the ``mmregion`` scope) writes checkpoints through mmengine's extension
points, without patching mmengine: :class:`AtomicLocalBackend` is
registered as the file backend ``'mmregion_atomic_local'`` (an addition to
mmengine's backend table; ``'local'`` is left alone) and the hook passes
``backend_args=dict(backend='mmregion_atomic_local')`` to
``runner.save_checkpoint``; it writes ``last_checkpoint`` with
:func:`atomic_write`.

For our own code: :func:`atomic_write` (context manager) and
:func:`atomic_save` (``torch.save``).
"""
import json
import os
import os.path as osp
import re
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator, List, Optional, Union

import torch
from mmengine.fileio.backends import LocalBackend

__all__ = [
    'AtomicFile', 'atomic_write', 'atomic_write_json', 'atomic_save',
    'fsync_dir', 'AtomicLocalBackend', 'ATOMIC_BACKEND',
    'register_atomic_backend', 'atomic_backend_args', 'is_atomic_tmp_file',
    'remove_stale_tmp_files', 'pid_alive'
]

TMP_SUFFIX = '.tmp'
_WRITE_MODES = ('w', 'wb', 'wt', 'x', 'xb', 'xt')
_HOST = re.sub(r'[^A-Za-z0-9_-]', '_', socket.gethostname())[:32] or 'host'
# .<basename>.<host>.<pid>.<hex8>.tmp
_TMP_RE = re.compile(r'^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)\.'
                     r'(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$')


def fsync_dir(path: Union[str, Path]) -> None:
    """fsync a directory so that a rename inside it is durable.

    A no-op where directories can not be opened (Windows) or synced.

    Args:
        path (str | Path): The directory.
    """
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_atomic_tmp_file(name: str) -> bool:
    """Whether a file name is a temporary file of :class:`AtomicFile`."""
    return _TMP_RE.match(osp.basename(name)) is not None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (or can not be checked).

    Args:
        pid (int): A process id.

    Returns:
        bool: False only when no such process exists.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_tmp_files(dirname: Union[str, Path],
                           basename: Optional[str] = None,
                           other_hosts: bool = False,
                           own_pid: bool = False) -> List[str]:
    """Remove the temporary files of writers that died (this host only).

    A temporary file of :class:`AtomicFile` names its host and process id;
    it is stale when that process no longer exists. Files of other hosts
    (a shared file system) and of live processes are left alone.

    Args:
        dirname (str | Path): The directory to clean.
        basename (str, optional): Only the temporary files of this target
            name. Defaults to None (every target).
        other_hosts (bool): Also remove the files of other hosts (a folder
            only this run writes to, e.g. a locked proposal directory).
            Defaults to False.
        own_pid (bool): Also remove the files of this process. Defaults to
            False.

    Returns:
        list[str]: The names of the removed files.
    """
    try:
        names = os.listdir(dirname)
    except OSError:
        return []
    removed = []
    for name in names:
        m = _TMP_RE.match(name)
        if m is None or (basename is not None and m.group('name') != basename):
            continue
        pid = int(m.group('pid'))
        if m.group('host') != _HOST:
            if not other_hosts:
                continue
        elif not (own_pid and pid == os.getpid()) and pid_alive(pid):
            continue
        try:
            os.remove(osp.join(str(dirname), name))
            removed.append(name)
        except OSError:
            pass
    return removed


class AtomicFile:
    """A file opened for writing that replaces its target only when closed.

    Writes go to a hidden temporary file in the target's directory. On
    :meth:`close` (or a clean exit of the ``with`` block) it is flushed,
    fsynced and renamed onto the target; on an exception inside the ``with``
    block (or :meth:`discard`) it is removed and the target is untouched.
    The temporary file is created with the permissions ``open`` would use.

    Args:
        path (str | Path): The target file. Missing parent directories are
            created.
        mode (str): ``'w'``/``'wt'``/``'wb'`` (``'x'`` variants: fail when
            the target exists). Defaults to ``'wb'``.
        encoding (str, optional): Text encoding (text modes). Defaults to
            None (``'utf-8'`` in text modes).
        newline (str, optional): As in :func:`open`. Defaults to None.
    """

    def __init__(self,
                 path: Union[str, Path],
                 mode: str = 'wb',
                 encoding: Optional[str] = None,
                 newline: Optional[str] = None) -> None:
        if mode not in _WRITE_MODES:
            raise ValueError(f'AtomicFile: mode must be one of {_WRITE_MODES}'
                             f' (a whole-file write), got "{mode}" for '
                             f'{path}.')
        self.path = osp.abspath(osp.expanduser(str(path)))
        self.exclusive = mode.startswith('x')
        if self.exclusive and osp.exists(self.path):
            raise FileExistsError(f'File exists: {self.path}')
        dirname, basename = osp.split(self.path)
        os.makedirs(dirname, exist_ok=True)
        remove_stale_tmp_files(dirname, basename)
        self.tmp_path = osp.join(
            dirname, f'.{basename}.{_HOST}.{os.getpid()}.'
            f'{uuid.uuid4().hex[:8]}{TMP_SUFFIX}')
        binary = 'b' in mode
        if not binary and encoding is None:
            encoding = 'utf-8'
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(
            os, 'O_BINARY', 0)
        fd = os.open(self.tmp_path, flags, 0o666)
        try:
            self.file: IO = os.fdopen(
                fd,
                'wb' if binary else 'w',
                encoding=None if binary else encoding,
                newline=None if binary else newline)
        except BaseException:
            os.close(fd)
            os.remove(self.tmp_path)
            raise
        self.closed = False

    def __getattr__(self, name: str) -> Any:
        # delegate write/flush/tell/seek... to the temporary file
        if 'file' not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__['file'], name)

    def commit(self) -> None:
        """Flush, fsync and rename the temporary file onto the target."""
        if self.closed:
            return
        self.closed = True
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            if self.exclusive and osp.exists(self.path):
                raise FileExistsError(f'File exists: {self.path}')
            os.replace(self.tmp_path, self.path)
        except BaseException:
            self._remove_tmp()
            raise
        fsync_dir(osp.dirname(self.path))

    def discard(self) -> None:
        """Drop what was written; the target is left as it was."""
        if self.closed:
            return
        self.closed = True
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        try:
            self.file.close()
        except Exception:
            pass
        try:
            os.remove(self.tmp_path)
        except OSError:
            pass

    close = commit

    def __enter__(self) -> IO:
        return self.file

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def __del__(self) -> None:
        # an AtomicFile that was never closed (error path without ``with``)
        # must not publish a partial file: drop it
        if not self.__dict__.get('closed', True):
            self.discard()


@contextmanager
def atomic_write(path: Union[str, Path],
                 mode: str = 'wb',
                 encoding: Optional[str] = None,
                 newline: Optional[str] = None) -> Iterator[IO]:
    """Open ``path`` for writing so that it appears complete or not at all.

    Example:
        >>> with atomic_write('out/meta.json', 'w') as f:
        ...     json.dump(meta, f)

    Args:
        path (str | Path): Target file.
        mode (str): ``'wb'``, ``'w'``, ``'wt'`` or an ``'x'`` variant.
            Defaults to ``'wb'``.
        encoding (str, optional): Text encoding. Defaults to None.
        newline (str, optional): As in :func:`open`. Defaults to None.

    Yields:
        file object: The temporary file; it replaces ``path`` when the block
        exits without an exception and is removed otherwise.
    """
    f = AtomicFile(path, mode, encoding=encoding, newline=newline)
    with f as fileobj:
        yield fileobj


def atomic_write_json(path: Union[str, Path], obj: Any, **kwargs) -> None:
    """``json.dump(obj)`` to ``path``, written atomically (utf-8).

    Args:
        path (str | Path): Target file.
        obj: What to dump.
        **kwargs: Passed to :func:`json.dumps` (``indent``...).
    """
    data = json.dumps(obj, **kwargs).encode()
    with atomic_write(path, 'wb') as f:
        f.write(data)


def atomic_save(obj: Any, path: Union[str, Path], **kwargs) -> None:
    """``torch.save(obj, path)`` written atomically.

    Args:
        obj: What to save.
        path (str | Path): Target file.
        **kwargs: Passed to :func:`torch.save`.
    """
    with atomic_write(path, 'wb') as f:
        torch.save(obj, f, **kwargs)


class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put``/``put_text`` are atomic."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write bytes to ``filepath`` atomically (parents created)."""
        with atomic_write(filepath, 'wb') as f:
            f.write(obj)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically (parents created)."""
        with atomic_write(filepath, 'w', encoding=encoding) as f:
            f.write(obj)


ATOMIC_BACKEND = 'mmregion_atomic_local'


def register_atomic_backend() -> None:
    """Register :class:`AtomicLocalBackend` as ``'mmregion_atomic_local'``.

    Idempotent, and only an addition: mmengine's ``'local'`` backend is
    unchanged.
    """
    from mmengine.fileio.backends import backends, register_backend
    if ATOMIC_BACKEND not in backends:
        register_backend(ATOMIC_BACKEND, AtomicLocalBackend)


def atomic_backend_args() -> dict:
    """``backend_args`` that make mmengine write a local path atomically.

    Example:
        >>> from mmengine.runner.checkpoint import save_checkpoint
        >>> save_checkpoint(ckpt, 'work/iter_1.pth',
        ...                 backend_args=atomic_backend_args())

    Returns:
        dict: ``dict(backend='mmregion_atomic_local')`` (registered first).
    """
    register_atomic_backend()
    return dict(backend=ATOMIC_BACKEND)

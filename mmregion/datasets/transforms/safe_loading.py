"""Image loading that skips bad files instead of crashing a long run."""
import os
import os.path as osp
import stat
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio

from mmregion.registry import TRANSFORMS
from mmregion.utils.images import to_bgr
from mmregion.utils.log_utils import log_count

_JPEG_SOI = b'\xff\xd8'
_JPEG_EOI = b'\xff\xd9'
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_PNG_IEND = b'IEND'
# largest image file read (bytes): a bound so that a huge or endless file
# (a device, a growing log) cannot exhaust memory; COCO images are < 1 MB
DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024


def read_regular_file(path: str, max_bytes: int) -> bytes:
    """Read a local file that must be a regular file of at most ``max_bytes``.

    The file is opened with ``O_NONBLOCK`` and checked with ``fstat`` on the
    open descriptor, so a FIFO, socket or device neither blocks the open nor
    the read, and a file swapped after a check can not slip through.

    Args:
        path (str): The file.
        max_bytes (int): Size bound.

    Returns:
        bytes: The content.

    Raises:
        FileNotFoundError, PermissionError, IsADirectoryError: As ``open``.
        OSError: Not a regular file, or larger than ``max_bytes`` (the
            message says which).
    """
    flags = os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0) | getattr(
        os, 'O_BINARY', 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f'{path} is a directory')
        if not stat.S_ISREG(st.st_mode):
            kind = ('a FIFO' if stat.S_ISFIFO(st.st_mode) else 'a socket'
                    if stat.S_ISSOCK(st.st_mode) else 'a device'
                    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                    else 'not a regular file')
            raise OSError(f'not a regular file ({kind})')
        if st.st_size > max_bytes:
            raise OSError(f'file too large ({st.st_size} bytes > max_file_'
                          f'bytes={max_bytes})')
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise OSError(f'file too large (grew past max_file_bytes='
                              f'{max_bytes} while read)')
        return b''.join(chunks)
    finally:
        os.close(fd)


def find_truncation(data: bytes, tail: int = 1024) -> Optional[str]:
    """Detect a truncated JPEG or PNG from its bytes (no decoding).

    Some OpenCV/libjpeg builds decode a JPEG cut short without an error
    (the missing part is grey; libjpeg only prints "Premature end of JPEG
    file"; OpenCV 4.11 returns None), so truncation is also checked from the
    end markers, whatever the decoder: a JPEG must hold its EOI marker
    ``FF D9`` in its last ``tail`` bytes (trailing padding/metadata allowed),
    a PNG its ``IEND`` chunk. Other formats are not checked here.

    Args:
        data (bytes): The file's bytes.
        tail (int): How far from the end the end marker may be.
            Defaults to 1024.

    Returns:
        str | None: Why the file looks truncated, or None.
    """
    if data[:2] == _JPEG_SOI:
        if data.rfind(_JPEG_EOI, max(2, len(data) - tail)) < 0:
            return 'truncated JPEG (no end-of-image marker)'
    elif data[:8] == _PNG_SIGNATURE:
        if data.rfind(_PNG_IEND, max(8, len(data) - tail)) < 0:
            return 'truncated PNG (no IEND chunk)'
    return None


@TRANSFORMS.register_module()
class LoadImageFromFileSafe(LoadImageFromFile):
    """``LoadImageFromFile`` that skips unreadable images (counted, logged).

    Always yields a uint8 ``H x W x 3`` BGR image: grayscale, 16-bit and
    RGBA files are converted by OpenCV's ``'color'`` decoding (alpha is
    dropped; a 2-D or 4-channel result of another ``color_type`` is
    converted too).

    A file that is missing, empty, not decodable or truncated (see
    :func:`find_truncation`) makes :meth:`transform` return None: mmengine's
    ``BaseDataset.__getitem__`` then draws another index (up to its
    ``max_refetch`` times; a data set of only bad files therefore ends in
    mmengine's "Cannot find valid image after ..." error, after our log
    lines named the files). Each case is counted per process in the
    class-level counters ``num_missing`` / ``num_corrupt`` and logged, with
    the file name and the reason, when its count reaches 1, 2, 4, 8, ...

    Required keys: ``img_path``. Modified keys: ``img``, ``img_shape``,
    ``ori_shape``.

    Args:
        to_float32 (bool): As in ``LoadImageFromFile``. Defaults to False.
        color_type (str): ``mmcv.imfrombytes`` flag. Defaults to ``'color'``.
        imdecode_backend (str): Decoding backend. Defaults to ``'cv2'``.
        check_truncation (bool): Refuse JPEG/PNG files without their end
            marker. Defaults to True.
        max_file_bytes (int): Local files larger than this are skipped, as
            are FIFOs, sockets and devices (only regular files are read, so
            a FIFO can not hang the data loader). Defaults to 256 MiB.
        backend_args (dict, optional): mmengine file backend arguments.
            Defaults to None.
    """
    num_missing = 0
    num_corrupt = 0

    def __init__(self,
                 to_float32: bool = False,
                 color_type: str = 'color',
                 imdecode_backend: str = 'cv2',
                 check_truncation: bool = True,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                 *,
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(
            to_float32=to_float32,
            color_type=color_type,
            imdecode_backend=imdecode_backend,
            ignore_empty=True,
            backend_args=backend_args)
        self.check_truncation = check_truncation
        if max_file_bytes <= 0:
            raise ValueError('LoadImageFromFileSafe: max_file_bytes must be '
                             f'> 0, got {max_file_bytes}.')
        self.max_file_bytes = max_file_bytes

    def _is_local(self, filename: str) -> bool:
        """Whether ``filename`` is read by mmengine's local file backend."""
        from mmengine.fileio.backends import LocalBackend
        try:
            backend = fileio.get_file_backend(
                filename, backend_args=self.backend_args)
        except Exception:  # unknown prefix: let fileio.get report it
            return False
        return isinstance(backend, LocalBackend)

    def _read(self, filename: str) -> bytes:
        if self._is_local(filename):
            return read_regular_file(filename, self.max_file_bytes)
        return fileio.get(filename, backend_args=self.backend_args)

    @classmethod
    def reset_counters(cls) -> None:
        """Reset the skip counters (tests, new runs)."""
        cls.num_missing = 0
        cls.num_corrupt = 0

    def _skip(self, filename: str, reason: str, missing: bool) -> None:
        cls = LoadImageFromFileSafe
        if missing:
            cls.num_missing += 1
            count = cls.num_missing
        else:
            cls.num_corrupt += 1
            count = cls.num_corrupt
        log_count(
            count,
            f'LoadImageFromFileSafe: skipped image "{filename}": {reason} '
            f'(so far in this process: {cls.num_missing} missing, '
            f'{cls.num_corrupt} unreadable); another image is used.')

    def transform(self, results: dict) -> Optional[dict]:
        """Load the image, or return None for a bad file.

        Args:
            results (dict): With ``img_path``.

        Returns:
            dict | None: ``results`` with ``img`` (uint8 HxWx3 BGR, or
            float32 with ``to_float32``), ``img_shape`` and ``ori_shape``;
            None when the file is missing or unreadable.
        """
        filename = results['img_path']
        try:
            img_bytes = self._read(filename)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
            self._skip(
                filename,
                f'cannot be read ({type(e).__name__})',
                missing=isinstance(e, FileNotFoundError))
            return None
        except OSError as e:
            self._skip(filename, f'cannot be read ({e})', missing=False)
            return None
        if len(img_bytes) == 0:
            self._skip(filename, 'empty file (0 bytes)', missing=False)
            return None
        if self.check_truncation:
            reason = find_truncation(img_bytes)
            if reason is not None:
                self._skip(filename, reason, missing=False)
                return None
        try:
            img = mmcv.imfrombytes(
                img_bytes, flag=self.color_type, backend=self.imdecode_backend)
        except Exception as e:  # decoders raise many types
            self._skip(
                filename, f'cannot be decoded ({e!r})'[:300], missing=False)
            return None
        if img is None or img.size == 0:
            self._skip(
                filename,
                f'cannot be decoded (not an image, {len(img_bytes)} bytes, '
                f'extension "{osp.splitext(filename)[1]}")',
                missing=False)
            return None
        img = to_bgr(img)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(to_float32={self.to_float32}, '
                f"color_type='{self.color_type}', imdecode_backend="
                f"'{self.imdecode_backend}', check_truncation="
                f'{self.check_truncation}, max_file_bytes='
                f'{self.max_file_bytes}, backend_args={self.backend_args})')

"""Image loading that skips bad files instead of crashing a long run.

The file checks (:func:`~mmregion.utils.images.read_regular_file`,
:func:`~mmregion.utils.images.find_truncation`) live in
:mod:`mmregion.utils.images`, shared with proposal generation.
"""
import os.path as osp
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio

from mmregion.registry import TRANSFORMS
from mmregion.utils.images import (DEFAULT_MAX_FILE_BYTES, find_truncation,
                                   read_regular_file, to_bgr)
from mmregion.utils.log_utils import log_count

__all__ = ['LoadImageFromFileSafe']


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

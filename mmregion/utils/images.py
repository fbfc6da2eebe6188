"""Images: listing a data set (an image folder or a COCO json), reading an
image file safely (no FIFO, bounded size, truncation check) and converting
decoded images to 3-channel BGR.

The one place that says which files are images and how image keys are
formed (the path relative to the image root, ``/``-separated): the keys of
:class:`~mmregion.datasets.RegionDataset` (``proposal_key``) and of
:func:`~mmregion.proposals.generate_proposals` must be the same.
"""
import os
import os.path as osp
import stat
from typing import List, Optional, Sequence

import cv2
import numpy as np

from .input_checks import coco_image_entries, read_json_file, show_value

__all__ = [
    'IMG_EXTENSIONS', 'scan_image_folder', 'read_coco_images', 'to_bgr',
    'read_regular_file', 'find_truncation', 'DEFAULT_MAX_FILE_BYTES'
]

# matched case-insensitively with ``str.endswith`` (the order is irrelevant)
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                  '.tiff', '.webp')


def scan_image_folder(folder: str,
                      root: Optional[str] = None,
                      extensions: Sequence[str] = IMG_EXTENSIONS,
                      allow_outside_links: bool = False) -> List[str]:
    """The image files under ``folder`` (recursively), sorted.

    Every entry with an image suffix is listed, also one that is not a
    regular file (a FIFO, a broken link): the readers refuse and count it
    (never a silent skip). Hidden files (``.name``: editor and OS
    leftovers, temporary files of writers) are skipped; linked folders are
    followed, each real folder once: a symlink loop (``ln -s . a``) or a
    folder reached twice is listed once, with a warning. A name that is
    not valid UTF-8 (it could not be stored as a key) is skipped with a
    warning naming it. A symlink (to a file or a folder) whose target lies
    outside ``folder`` is skipped and counted, with a warning naming one,
    unless ``allow_outside_links`` (the same rule as ``..`` in a json
    ``file_name``: nothing is read outside the image root without an
    explicit opt-in).

    Args:
        folder (str): The local folder to scan.
        root (str, optional): The folder the returned paths are relative
            to. Defaults to ``folder``.
        extensions (Sequence[str]): Suffixes of image files, matched
            case-insensitively. Defaults to :data:`IMG_EXTENSIONS`.
        allow_outside_links (bool): Follow symlinks whose target is outside
            ``folder`` (a folder of links to images elsewhere). Defaults to
            False.

    Returns:
        list[str]: ``/``-separated paths relative to ``root``, sorted.
    """
    from mmengine.logging import print_log
    extensions = tuple(e.lower() for e in extensions)
    root = folder if root is None else root
    keys: List[str] = []
    seen = set()
    revisited: List[str] = []
    not_utf8: List[str] = []
    outside: List[str] = []
    real_top = osp.realpath(folder)
    # folders reached without a link first, so that a real path wins over
    # a symlink to the same folder (deterministic keys)
    stack, linked = [folder], []
    while stack or linked:
        path = stack.pop() if stack else linked.pop()
        try:
            st = os.stat(path)
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError:  # vanished or unreadable: its files are not listed
            revisited.append(path)
            continue
        ident = (st.st_dev, st.st_ino)
        if ident in seen:  # a symlink loop or a folder linked twice
            revisited.append(path)
            continue
        seen.add(ident)
        for entry in entries:
            name = entry.name
            if name.startswith('.'):
                continue
            try:
                name.encode('utf-8')
            except UnicodeEncodeError:
                not_utf8.append(entry.path)
                continue
            if entry.is_symlink() and not allow_outside_links:
                target = osp.realpath(entry.path)
                if osp.commonpath([real_top, target]) != real_top:
                    outside.append(entry.path)
                    continue
            try:
                is_dir = entry.is_dir()  # follows links
            except OSError:
                is_dir = False
            if is_dir:
                (linked if entry.is_symlink() else stack).append(entry.path)
            elif name.lower().endswith(extensions):
                rel = osp.relpath(entry.path, root)
                keys.append(rel.replace(os.sep, '/'))
    if revisited:
        print_log(
            f'{folder}: {len(revisited)} folder(s) not scanned again: a '
            'symlink loop or a folder linked twice, or unreadable (e.g. '
            f'{show_value(revisited[0], 200)}); their files are listed once',
            logger='current',
            level=30)
    if not_utf8:
        print_log(
            f'{folder}: {len(not_utf8)} file name(s) that are not valid '
            f'UTF-8 skipped (e.g. {show_value(not_utf8[0], 200)}); rename '
            'them to include them',
            logger='current',
            level=30)
    if outside:
        print_log(
            f'{folder}: {len(outside)} symlink(s) pointing outside the image '
            f'folder skipped (e.g. {show_value(outside[0], 200)} -> '
            f'{show_value(osp.realpath(outside[0]), 200)}); allow them '
            'explicitly with allow_unsafe_paths=True (--allow-unsafe-paths)',
            logger='current',
            level=30)
    return sorted(keys)


def read_coco_images(ann_file: str,
                     allow_unsafe_paths: bool = False,
                     need_id: bool = False,
                     name: Optional[str] = None) -> List[dict]:
    """The validated ``images`` entries of a COCO-style json file.

    Args:
        ann_file (str): A local json file.
        allow_unsafe_paths (bool): Accept absolute and ``..`` file names
            (see :func:`~mmregion.utils.input_checks.check_file_name`).
            Defaults to False.
        need_id (bool): Require an ``id`` in every entry. Defaults to False.
        name (str, optional): How to name the file in messages (e.g. the
            remote path it was fetched from). Defaults to ``ann_file``.

    Returns:
        list[dict]: ``images[]`` (``file_name``, ``id``, ...).

    Raises:
        InputError: A malformed json or a refused entry, naming the file and
            the entry.
    """
    name = str(name or ann_file)
    return coco_image_entries(
        read_json_file(ann_file, name=name),
        name,
        allow_unsafe_paths=allow_unsafe_paths,
        need_id=need_id)


def to_bgr(img: np.ndarray) -> np.ndarray:
    """A decoded image as 3 channels: gray is replicated, alpha dropped.

    Args:
        img (np.ndarray): (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (BGRA).

    Returns:
        np.ndarray: (H, W, 3) BGR, same dtype (``img`` itself when it
        already has 3 channels or an unknown layout).
    """
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 1:
        return cv2.cvtColor(img[..., 0], cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


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
            kind = ('a FIFO' if stat.S_ISFIFO(
                st.st_mode) else 'a socket' if stat.S_ISSOCK(
                    st.st_mode) else 'a device' if stat.S_ISCHR(st.st_mode)
                    or stat.S_ISBLK(st.st_mode) else 'not a regular file')
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

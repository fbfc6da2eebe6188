"""Images: listing a data set (an image folder or a COCO json) and
converting decoded images to 3-channel BGR.

The one place that says which files are images and how image keys are
formed (the path relative to the image root, ``/``-separated): the keys of
:class:`~mmregion.datasets.RegionDataset` (``proposal_key``) and of
:func:`~mmregion.proposals.generate_proposals` must be the same.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence

import cv2
import numpy as np
from mmengine.fileio import list_dir_or_file

from .input_checks import coco_image_entries, read_json_file

__all__ = [
    'IMG_EXTENSIONS', 'scan_image_folder', 'read_coco_images', 'to_bgr'
]

# matched case-insensitively with ``str.endswith`` (the order is irrelevant)
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                  '.tiff', '.webp')


def scan_image_folder(folder: str,
                      root: Optional[str] = None,
                      extensions: Sequence[str] = IMG_EXTENSIONS) -> List[str]:
    """The image files under ``folder`` (recursively), sorted.

    Hidden files (``.name``) are skipped and linked folders are followed,
    as :func:`mmengine.fileio.list_dir_or_file` does.

    Args:
        folder (str): The folder to scan.
        root (str, optional): The folder the returned paths are relative
            to. Defaults to ``folder``.
        extensions (Sequence[str]): Suffixes of image files, matched
            case-insensitively. Defaults to :data:`IMG_EXTENSIONS`.

    Returns:
        list[str]: ``/``-separated paths relative to ``root``, sorted.
    """
    extensions = tuple(e.lower() for e in extensions)
    files = [
        f for f in list_dir_or_file(folder, list_dir=False, recursive=True)
        if f.lower().endswith(extensions)
    ]
    if root is not None and osp.abspath(root) != osp.abspath(folder):
        files = [osp.relpath(osp.join(folder, f), root) for f in files]
    return sorted(f.replace(os.sep, '/') for f in files)


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

"""Unlabeled images for region-level pre-training (``docs/design.md`` sec. 2).
"""
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.dataset import BaseDataset
from mmengine.fileio import get_local_path

from mmregion.registry import DATASETS
from mmregion.utils.images import (IMG_EXTENSIONS, read_coco_images,
                                   scan_image_folder)
from mmregion.utils.input_checks import InputError


@DATASETS.register_module()
class RegionDataset(BaseDataset):
    """Unlabeled images (COCO json or an image folder) for pre-training.

    Two sources, chosen by ``ann_file``:

    - a COCO-style json (``ann_file`` set): only ``images[]`` is read
      (``file_name``, ``id``, ``height``, ``width``); annotations are ignored,
      so an ``instances_*.json`` or an ``image_info_*.json`` both work. Image
      ``i`` is ``data_prefix['img'] / file_name``.
    - an image folder (``ann_file=''``): every image file under
      ``data_prefix['img']`` (recursively, sorted by relative path).

    Each data info holds ``img_path``, ``img_id``, ``ori_shape`` ((h, w),
    json only) and ``proposal_key``: the image path relative to the image
    root (the json's ``file_name``), i.e. the key of the proposal store read
    by :class:`LoadProposals`.

    Args:
        ann_file (str): COCO json, relative to ``data_root`` unless absolute.
            Empty: scan the image folder. Defaults to ''.
        data_root (str): Root joined with ``ann_file`` and ``data_prefix``.
            Defaults to ''.
        data_prefix (dict): ``dict(img=<image folder>)``; mmpretrain's key
            ``img_path`` is read too, so that mmpretrain data configs work
            unchanged. Defaults to ``dict(img='')``.
        extensions (Sequence[str]): Image suffixes of the folder mode
            (case-insensitive). Defaults to common image formats.
        allow_unsafe_paths (bool): Accept json ``file_name``s that are
            absolute or contain ``..`` (they read outside the image root;
            refused by default) and, in folder mode, symlinks that point
            outside the folder (skipped and counted by default). A NUL
            byte, a non-string or an empty name is always refused.
            Defaults to False.
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`
            (``pipeline``, ``indices``, ``serialize_data``, ``lazy_init``...).

    Raises:
        InputError: (a ``ValueError``) When the json lists no image or the
            folder holds none or does not exist, naming the file or folder
            and the fix; when the json is malformed or an
            entry's ``file_name`` is refused
            (:class:`mmregion.utils.input_checks.InputError`, naming the
            file and the entry).
    """

    def __init__(self,
                 ann_file: str = '',
                 data_root: str = '',
                 data_prefix: Optional[dict] = None,
                 extensions: Sequence[str] = IMG_EXTENSIONS,
                 allow_unsafe_paths: bool = False,
                 **kwargs) -> None:
        if data_prefix is None:
            data_prefix = dict(img='')
        data_prefix = dict(data_prefix)
        if 'img' not in data_prefix:
            data_prefix['img'] = data_prefix.pop('img_path', '')
        self.extensions = tuple(e.lower() for e in extensions)
        self.allow_unsafe_paths = allow_unsafe_paths
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            **kwargs)

    @property
    def img_root(self) -> str:
        """The folder that image paths and proposal keys are relative to."""
        return self.data_prefix.get('img', '') or self.data_root or ''

    def load_data_list(self) -> List[dict]:
        """Read the image list from the json or the folder.

        Returns:
            list[dict]: One data info per image.
        """
        if self.ann_file:
            data_list = self._load_coco_images()
            source = f'annotation file "{self.ann_file}"'
            fix = 'list the images in its images[]'
        else:
            data_list = self._scan_folder()
            source = f'image folder "{osp.abspath(self.img_root)}"'
            fix = ('put images there (' + ', '.join(self.extensions) +
                   ') or point data_root / data_prefix.img at the folder '
                   'that holds them')
        if not data_list:
            raise InputError(f'RegionDataset: no image found in {source}: '
                             f'{fix}.')
        return data_list

    def _load_coco_images(self) -> List[dict]:
        with get_local_path(self.ann_file) as local_path:
            images = read_coco_images(
                local_path, self.allow_unsafe_paths, name=self.ann_file)
        data_list = []
        for i, img in enumerate(images):
            info = dict(
                img_path=osp.join(self.img_root, img['file_name']),
                img_id=img.get('id', i),
                proposal_key=img['file_name'])
            if 'height' in img and 'width' in img:
                try:
                    info['ori_shape'] = (int(img['height']), int(img['width']))
                except (TypeError, ValueError):
                    raise ValueError(
                        f'RegionDataset: images[{i}] of "{self.ann_file}" '
                        'has a non-integer height/width') from None
            data_list.append(info)
        return data_list

    def _scan_folder(self) -> List[dict]:
        root = self.img_root
        if not root or not osp.isdir(root):
            raise InputError('RegionDataset: ann_file is empty and the image '
                             f'folder "{root}" does not exist (set '
                             'data_prefix=dict(img=...) or ann_file).')
        files = scan_image_folder(
            root,
            extensions=self.extensions,
            allow_outside_links=self.allow_unsafe_paths)
        return [
            dict(img_path=osp.join(root, f), img_id=i, proposal_key=f)
            for i, f in enumerate(files)
        ]

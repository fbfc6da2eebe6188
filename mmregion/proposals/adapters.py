"""Adapters from other proposal formats to an in-memory store: an mmdet
proposal pickle and a COCO-style json (CCOP's format)."""
from typing import Dict, Optional

import numpy as np
from mmengine.logging import print_log

from mmregion.utils.images import read_coco_images
from mmregion.utils.input_checks import (InputError, check_file_name,
                                         coco_image_entries, read_json_file,
                                         show_value)
from .safe_pickle import load_proposal_pickle
from .stores import InMemoryProposalStore

__all__ = ['load_coco_json_store', 'load_pickle_store', 'to_boxes']


def load_coco_json_store(path: str,
                         allow_unsafe_paths: bool = False
                         ) -> InMemoryProposalStore:
    coco = read_json_file(path)
    images = coco_image_entries(
        coco, path, allow_unsafe_paths=allow_unsafe_paths, need_id=True)
    cats = coco.get('categories') or []
    if isinstance(cats, list) and len(cats) > 1:
        print_log(
            f'{path} has {len(cats)} categories: is it a ground-truth '
            'annotation file rather than proposals? Its boxes are used as '
            'proposals.',
            logger='current',
            level=30)
    id_to_key = {}
    keys = set()
    for i, im in enumerate(images):
        img_id = im['id']
        if isinstance(img_id, bool) or not isinstance(img_id, (int, str)):
            # True == 1 as a dict key: a bool id took another image's boxes
            raise InputError(f'{path}: images[{i}]: image id '
                             f'{show_value(img_id)} is not an int or string')
        if img_id in id_to_key:
            raise InputError(f'{path}: images[{i}]: duplicate image id '
                             f'{show_value(img_id)} (its boxes would go to '
                             'either image)')
        if im['file_name'] in keys:
            raise InputError(f'{path}: images[{i}]: duplicate file_name '
                             f'{show_value(im["file_name"])} (the boxes of '
                             'both entries would be merged)')
        id_to_key[img_id] = im['file_name']
        keys.add(im['file_name'])
    lists: Dict[str, list] = {k: [] for k in id_to_key.values()}
    anns = coco.get('annotations', [])
    if not isinstance(anns, list):
        raise InputError(f'{path}: "annotations" is not a list')
    for i, ann in enumerate(anns):
        where = f'{path}: annotations[{i}]'
        if not isinstance(ann, dict) or 'bbox' not in ann:
            raise InputError(f'{where} is not an object with a "bbox"')
        try:
            image_id = ann.get('image_id')
            key = None if isinstance(image_id,
                                     bool) else id_to_key.get(image_id)
        except TypeError:
            key = None
        if key is None:
            raise InputError(f'{where} refers to unknown image_id '
                             f'{show_value(ann.get("image_id"))}')
        bbox = ann['bbox']
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool)
                for v in bbox)):
            raise InputError(
                f'{where}: bbox {show_value(bbox)} is not 4 numbers '
                '[x, y, w, h]')
        lists[key].append(bbox)
    boxes_of = {}
    for key, xywh in lists.items():
        b = np.asarray(xywh, np.float32).reshape(-1, 4)
        b[:, 2:] += b[:, :2]
        boxes_of[key] = b
    return InMemoryProposalStore(boxes_of, path)


def to_boxes(value, where: str) -> np.ndarray:
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


def load_pickle_store(
        path: str,
        ann_file: Optional[str] = None,
        allow_unsafe_paths: bool = False) -> InMemoryProposalStore:
    # mmdet proposal files are pickles: read as data only (no object of
    # numpy/torch/mmengine is built by the unpickler)
    obj = load_proposal_pickle(path)
    try:
        if isinstance(obj, dict):
            boxes_of = {
                check_file_name(k, f'key of {path}', allow_unsafe_paths):
                to_boxes(v, f'{path}[{k!r}]')
                for k, v in obj.items()
            }
        elif isinstance(obj, (list, tuple)):
            if ann_file is None:
                raise InputError(
                    f'{path} is a list of per-image proposals (mmdet 2.x '
                    'style); pass ann_file= (the COCO json whose image order '
                    'it follows)')
            images = read_coco_images(
                ann_file, allow_unsafe_paths, need_id=True)
            if len(images) != len(obj):
                raise InputError(f'{path} has {len(obj)} entries but '
                                 f'{ann_file} has {len(images)} images')
            boxes_of = {
                im['file_name']: to_boxes(v, f'{path}[{i}]')
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
                         f'{type(e).__name__}: {show_value(str(e), 200)}') \
            from None
    return InMemoryProposalStore(boxes_of, path)

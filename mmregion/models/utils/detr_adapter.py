"""Running an mmdet DETR-family detector on mmregion's multi-view batches
(ProSeCo / DETReg pre-training)."""
import copy
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mmregion.registry import MODELS
from .region_utils import stack_regions

__all__ = [
    'build_pretraining_detector', 'det_samples_for_view', 'run_detector',
    'check_frozen_backbone_init'
]


def build_pretraining_detector(cfg: dict,
                               init_cfg: Optional[dict] = None) -> nn.Module:
    """Build the detector to pre-train and check that it fits.

    Args:
        cfg (dict): mmdet DETR-family detector config.
        init_cfg (dict, optional): The pre-training model's ``init_cfg``
            (see :func:`check_frozen_backbone_init`).

    Raises:
        ValueError: No ``bbox_head``, a head that is not class-agnostic
            (``num_classes != 1``) or a frozen backbone without pretrained
            init.
    """
    detector = MODELS.build(copy.deepcopy(cfg))
    if getattr(detector, 'bbox_head', None) is None:
        raise ValueError('ProSeCo: the detector config has no bbox_head.')
    num_classes = getattr(detector.bbox_head, 'num_classes', 1)
    if num_classes != 1:
        raise ValueError('ProSeCo: the detector bbox_head must be '
                         'class-agnostic (num_classes=1), got '
                         f'num_classes={num_classes}.')
    check_frozen_backbone_init(detector, init_cfg)
    return detector


def det_samples_for_view(data_samples: Sequence,
                         x: Tensor,
                         view: int,
                         num_views: int,
                         with_gt: bool = True) -> list:
    """mmdet ``DetDataSample``s for one view.

    ``img_shape`` is the view's own (unpadded) image size, when the sample
    records it, and ``batch_input_shape`` the padded batch size, as mmdet
    sets them (the transformer masks the padding from ``img_shape`` and the
    head normalises boxes by it). With ``with_gt``, the selective-search
    boxes of the view are class-0 ``gt_instances``.

    Args:
        data_samples (Sequence[DataSample | None]): B samples with
            ``boxes`` (V, K, 4) and per-view ``img_shape`` metainfo.
        x (Tensor): (B, 3, H, W) the view's batch.
        view (int): View index.
        num_views (int): V.
        with_gt (bool): Add ``gt_instances``. Defaults to True.

    Returns:
        list[DetDataSample]: B samples.
    """
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    batch_hw = tuple(int(s) for s in x.shape[-2:])
    boxes = valid = None
    if with_gt:
        boxes, valid = stack_regions(data_samples, num_views)
        boxes, valid = boxes.to(x.device), valid.to(x.device)
    out = []
    for i, sample in enumerate(data_samples):
        img_shape = batch_hw
        sample_meta = {} if sample is None else sample.metainfo
        shapes = sample_meta.get('img_shape', None)
        if isinstance(shapes, (list, tuple)) and \
                len(shapes) == num_views and \
                isinstance(shapes[0], (list, tuple)):
            img_shape = (min(int(shapes[view][0]), batch_hw[0]),
                         min(int(shapes[view][1]), batch_hw[1]))
        meta = dict(
            img_shape=img_shape,
            batch_input_shape=batch_hw,
            pad_shape=batch_hw,
            ori_shape=img_shape,
            scale_factor=(1.0, 1.0))
        if 'img_path' in sample_meta:
            meta['img_path'] = sample_meta['img_path']
        det = DetDataSample(metainfo=meta)
        if boxes is not None:
            gt = boxes[i, view][valid[i]]
            det.gt_instances = InstanceData(
                bboxes=gt,
                labels=torch.zeros(
                    gt.size(0), dtype=torch.long, device=x.device))
        out.append(det)
    return out


def run_detector(detector: nn.Module, x: Tensor,
                 det_samples: list) -> Tuple[tuple, dict, tuple]:
    """Backbone -> neck -> transformer -> head forward.

    Returns:
        tuple: ``backbone_feats``, ``head_inputs`` (dict of
        ``forward_transformer``) and ``outs`` = (all_layers_cls_scores
        (L, B, N, 1), all_layers_bbox_preds (L, B, N, 4) normalised
        cxcywh).
    """
    bb_feats = detector.backbone(x)
    feats = detector.neck(bb_feats) if detector.with_neck else bb_feats
    head_inputs = detector.forward_transformer(feats, det_samples)
    fwd = {
        k: head_inputs[k]
        for k in ('hidden_states', 'references') if k in head_inputs
    }
    outs = detector.bbox_head(**fwd)
    return bb_feats, head_inputs, outs


def check_frozen_backbone_init(detector: nn.Module,
                               init_cfg: Optional[dict]) -> None:
    """A fully frozen backbone must be loaded from a checkpoint.

    Raises:
        ValueError: No backbone parameter is trainable (e.g. mmdet
            ``ResNet(frozen_stages=4)`` with frozen BN) and neither the
            backbone, the detector nor ``init_cfg`` (the model's) has a
            ``Pretrained`` ``init_cfg``: the backbone would stay random.
    """

    def pretrained(cfg) -> bool:
        cfgs = cfg if isinstance(cfg, (list, tuple)) else [cfg]
        return any(
            isinstance(c, dict) and c.get('type') == 'Pretrained'
            for c in cfgs)

    backbone = detector.backbone
    params = list(backbone.parameters())
    if not params or any(p.requires_grad for p in params):
        return
    if any(
            pretrained(c)
            for c in (getattr(backbone, 'init_cfg', None),
                      getattr(detector, 'init_cfg', None), init_cfg)):
        return
    raise ValueError(
        'ProSeCo: the detector backbone is fully frozen (no trainable '
        'parameter, e.g. frozen_stages=4 with frozen BN) but has no '
        'pretrained init, so it would stay random. Set '
        "detector.backbone.init_cfg=dict(type='Pretrained', "
        "checkpoint=...) (DETReg's SwAV checkpoint, or the output of "
        'tools/extract_backbone.py), or unfreeze it '
        '(detector.backbone.frozen_stages < num_stages).')

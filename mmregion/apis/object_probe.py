"""A fast object-level probe of a frozen backbone: k-NN on RoIAlign features.

For every ground-truth box of a labelled set (the memory bank) and of a val
set (the queries), the frozen backbone's C3-C5 maps are RoIAligned at the box
(``roi_size`` x ``roi_size``, averaged), each level L2-normalised, and
concatenated; a val box is classified by a weighted k-NN vote over the bank
(cosine similarity, weights ``exp(sim / T)``, Wu et al. 2018's instance
discrimination k-NN; k = 20, T = 0.07 there, here k = 10 by default for
banks of a few hundred boxes). Seconds per backbone on a CPU for a few
hundred boxes; it reads out how well the features separate *objects*, which
image-level pre-training is not trained for.
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# ImageNet mean / std (RGB), as the toy configs' data preprocessors
_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
_STD = np.array([58.395, 57.12, 57.375], np.float32)


def backbone_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The backbone weights of an exported backbone (``tools/
    extract_backbone.py``) or of a whole detector checkpoint (keys
    ``backbone.*``, e.g. ``tools/convert_proseco_to_ddetr.py``)."""
    from mmregion.utils.checkpoint import load_checkpoint_safely
    ckpt = load_checkpoint_safely(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise ValueError(f'object probe: {path} holds no state dict')
    if any(k.startswith('backbone.') for k in state):
        state = {
            k[len('backbone.'):]: v
            for k, v in state.items() if k.startswith('backbone.')
        }
    return state


def build_resnet(depth: int = 18,
                 checkpoint: Optional[str] = None,
                 seed: int = 0) -> torch.nn.Module:
    """An mmpretrain ResNet (C3-C5 outputs) in eval mode, from
    ``checkpoint`` (strict: every key must match) or from random init."""
    from mmpretrain.models import ResNet
    torch.manual_seed(seed)
    model = ResNet(depth=depth, out_indices=(1, 2, 3))
    model.init_weights()
    if checkpoint is not None:
        missing, unexpected = model.load_state_dict(
            backbone_state_dict(checkpoint), strict=False)
        if missing or unexpected:
            raise ValueError(
                f'object probe: {checkpoint} does not fit a ResNet-{depth}: '
                f'{len(missing)} missing keys (e.g. {missing[:2]}), '
                f'{len(unexpected)} unexpected (e.g. {unexpected[:2]})')
    model.eval()  # mmpretrain's ResNet.train() does not return self
    return model


def load_gt_boxes(ann_file: str,
                  img_dir: str) -> List[Tuple[str, np.ndarray, np.ndarray]]:
    """``[(image path, (N, 4) x1y1x2y2 float32 boxes, (N, ) labels)]`` of a
    COCO json; labels are 0-based indices in the sorted category ids."""
    with open(ann_file) as f:
        coco = json.load(f)
    cat_index = {
        c['id']: i
        for i, c in enumerate(
            sorted(coco['categories'], key=lambda c: c['id']))
    }
    per_img: Dict[int, list] = {im['id']: [] for im in coco['images']}
    for a in coco['annotations']:
        if a.get('iscrowd', 0) or a['image_id'] not in per_img:
            continue
        x, y, w, h = a['bbox']
        if w >= 1 and h >= 1:
            per_img[a['image_id']].append(
                (x, y, x + w, y + h, cat_index[a['category_id']]))
    out = []
    for im in coco['images']:
        rows = per_img[im['id']]
        if rows:
            arr = np.array(rows, np.float32)
            out.append((osp.join(img_dir, im['file_name']), arr[:, :4],
                        arr[:, 4].astype(np.int64)))
    return out


@torch.no_grad()
def roi_features(model: torch.nn.Module,
                 items: Sequence[Tuple[str, np.ndarray, np.ndarray]],
                 scale: float = 2.0,
                 roi_size: int = 3) -> Tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised RoIAlign features of every box.

    Args:
        model (nn.Module): Backbone returning C3, C4, C5 (strides 8-32).
        items: Output of :func:`load_gt_boxes`.
        scale (float): Images (and boxes) are resized by this factor first
            (small synthetic images give C5 maps of a few cells otherwise).
        roi_size (int): RoIAlign output size, averaged afterwards.

    Returns:
        tuple: ``(N, C3 + C4 + C5)`` features and ``(N, )`` labels.
    """
    from torchvision.ops import roi_align
    feats, labels = [], []
    for path, boxes, cats in items:
        img = cv2.imread(path)
        if img is None:
            raise OSError(f'object probe: cannot read image {path}')
        img = cv2.resize(
            img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        x = (img[..., ::-1].astype(np.float32) - _MEAN) / _STD
        x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
        rois = torch.from_numpy(boxes * scale)
        rois = torch.cat([rois.new_zeros(len(rois), 1), rois], 1)
        levels = []
        for level, stride in zip(model(x[None]), (8, 16, 32)):
            pooled = roi_align(
                level,
                rois,
                roi_size,
                1.0 / stride,
                sampling_ratio=2,
                aligned=True)
            levels.append(F.normalize(pooled.mean((2, 3)), dim=1))
        feats.append(torch.cat(levels, 1))
        labels.append(torch.from_numpy(cats))
    return F.normalize(torch.cat(feats), dim=1), torch.cat(labels)


def knn_accuracy(bank: torch.Tensor,
                 bank_labels: torch.Tensor,
                 query: torch.Tensor,
                 query_labels: torch.Tensor,
                 k: int = 10,
                 temperature: float = 0.07) -> float:
    """Top-1 accuracy (%) of a weighted cosine k-NN vote (features are
    L2-normalised rows)."""
    if len(bank) == 0 or len(query) == 0:
        raise ValueError('object probe: empty memory bank or query set')
    num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    sim = query @ bank.t()
    top, idx = sim.topk(min(k, len(bank)), dim=1)
    votes = torch.zeros(len(query), num_classes)
    votes.scatter_add_(1, bank_labels[idx], (top / temperature).exp())
    return float((votes.argmax(1) == query_labels).float().mean() * 100)


def object_probe(checkpoint: Optional[str],
                 bank_ann: str,
                 bank_img_dir: str,
                 query_ann: str,
                 query_img_dir: str,
                 depth: int = 18,
                 k: int = 10,
                 scale: float = 2.0) -> Dict[str, float]:
    """k-NN category accuracy of a frozen backbone's RoI features.

    Args:
        checkpoint (str, optional): Backbone or detector checkpoint; None:
            random init (seed 0).
        bank_ann (str): COCO json of the labelled memory bank.
        bank_img_dir (str): Its image directory.
        query_ann (str): COCO json of the queries (val set).
        query_img_dir (str): Its image directory.
        depth (int): ResNet depth. Defaults to 18.
        k (int): Neighbours. Defaults to 10.
        scale (float): Image resize factor. Defaults to 2.

    Returns:
        dict: ``knn_top1`` (%), ``num_bank``, ``num_query``.
    """
    model = build_resnet(depth, checkpoint)
    bank, bank_labels = roi_features(model,
                                     load_gt_boxes(bank_ann, bank_img_dir),
                                     scale)
    query, query_labels = roi_features(model,
                                       load_gt_boxes(query_ann, query_img_dir),
                                       scale)
    return dict(
        knn_top1=round(
            knn_accuracy(bank, bank_labels, query, query_labels, k), 2),
        num_bank=len(bank),
        num_query=len(query))

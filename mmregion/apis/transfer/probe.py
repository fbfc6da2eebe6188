"""The primary metric of the transfer benchmark: a region-level linear probe
of a frozen backbone, with a k-NN probe beside it.

For every ground-truth box the frozen backbone's C3-C5 maps are RoIAligned
at the box (``roi_size`` x ``roi_size`` bins, *kept*, not averaged) and
concatenated. Before any feature is read, the BN statistics of every
backbone (random init included) are recomputed on the same unlabelled
images (:func:`recompute_bn`), so no backbone is helped or hurt by stale
running statistics. A softmax-regression classifier (standardised features,
L2 penalty chosen on a dev split) is trained on the labelled boxes and
tested on the test boxes; a weighted cosine k-NN (Wu et al. 2018) on the
per-level L2-normalised features is reported beside it.

Results hold the per-box outcomes (0/1) so that two backbones can be
compared on the same boxes (:mod:`.stats`).
"""
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mmregion.apis.object_probe import backbone_state_dict, load_gt_boxes
from .pretrain import stage_channels

# ImageNet mean / std (RGB), as the toy configs' data preprocessors
_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
_STD = np.array([58.395, 57.12, 57.375], np.float32)
STRIDES = (8, 16, 32)  # C3, C4, C5

Items = Sequence[Tuple[str, np.ndarray, np.ndarray]]


def build_backbone(depth: int = 18,
                   base_channels: int = 64,
                   checkpoint: Optional[str] = None,
                   seed: int = 0) -> torch.nn.Module:
    """An mmpretrain ResNet returning C3-C5, from ``checkpoint`` (a
    pre-training or exported checkpoint; every key must fit) or from random
    init (``seed``)."""
    import logging

    from mmengine.logging import MMLogger
    from mmpretrain.models import ResNet
    torch.manual_seed(seed)
    model = ResNet(
        depth=depth, base_channels=base_channels, out_indices=(1, 2, 3))
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs every parameter
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    if checkpoint is not None:
        missing, unexpected = model.load_state_dict(
            backbone_state_dict(checkpoint), strict=False)
        if missing or unexpected:
            raise ValueError(
                f'region probe: {checkpoint} does not fit a ResNet-{depth} '
                f'with base_channels={base_channels}: {len(missing)} missing '
                f'keys (e.g. {missing[:2]}), {len(unexpected)} unexpected '
                f'(e.g. {unexpected[:2]}); set the protocol\'s backbone to '
                'the pre-training one')
    model.eval()
    return model


def load_image(path: str, scale: float) -> torch.Tensor:
    """``(3, H * scale, W * scale)`` normalised RGB tensor of an image."""
    img = cv2.imread(path)
    if img is None:
        raise OSError(f'region probe: cannot read image {path}')
    if scale != 1:
        img = cv2.resize(
            img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    x = (img[..., ::-1].astype(np.float32) - _MEAN) / _STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


@torch.no_grad()
def recompute_bn(model: torch.nn.Module,
                 images: Iterable[torch.Tensor],
                 batch_size: int = 16) -> int:
    """Replace every BN layer's running statistics by their plain average
    over ``images`` (``momentum=None``: a cumulative mean), then eval mode.

    Args:
        model (nn.Module): The backbone (weights are not changed).
        images: ``(3, H, W)`` tensors of one size.
        batch_size (int): Forward batch.

    Returns:
        int: The number of images seen.
    """
    bns = [
        m for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.eval()
    for m in bns:
        m.train()
    seen, batch = 0, []
    for img in images:
        batch.append(img)
        if len(batch) == batch_size:
            model(torch.stack(batch))
            seen, batch = seen + len(batch), []
    if batch:
        model(torch.stack(batch))
        seen += len(batch)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()
    if not seen:
        raise ValueError('region probe: no images to recompute BN on')
    return seen


@torch.no_grad()
def roi_bin_features(model: torch.nn.Module,
                     items: Items,
                     scale: float = 2.0,
                     roi_size: int = 3) -> Tuple[torch.Tensor, torch.Tensor]:
    """RoIAlign features of every box with the spatial bins kept.

    Args:
        model (nn.Module): Backbone returning C3, C4, C5 (strides 8-32).
        items: ``[(image path, (n, 4) x1y1x2y2 boxes, (n, ) labels)]``.
        scale (float): Images and boxes are resized by this factor first.
        roi_size (int): RoIAlign output side (bins kept).

    Returns:
        tuple: ``(N, (C3 + C4 + C5) * roi_size ** 2)`` float features
        (column blocks C3, C4, C5, each channel-major over its bins) and
        ``(N, )`` int64 labels.
    """
    from torchvision.ops import roi_align
    feats, labels = [], []
    for path, boxes, cats in items:
        x = load_image(path, scale)
        rois = torch.from_numpy(np.asarray(boxes, np.float32) * scale)
        rois = torch.cat([rois.new_zeros(len(rois), 1), rois], 1)
        levels = [
            roi_align(
                level,
                rois,
                roi_size,
                1.0 / stride,
                sampling_ratio=2,
                aligned=True).flatten(1)
            for level, stride in zip(model(x[None]), STRIDES)
        ]
        feats.append(torch.cat(levels, 1))
        labels.append(torch.as_tensor(cats, dtype=torch.int64))
    return torch.cat(feats), torch.cat(labels)


def level_normalise(feats: torch.Tensor,
                    widths: Sequence[int]) -> torch.Tensor:
    """Each level's block L2-normalised, then the whole row (k-NN input).

    Args:
        feats: ``(N, sum(widths))`` features.
        widths: Column count of each level's block.
    """
    blocks = torch.split(feats, list(widths), dim=1)
    return F.normalize(
        torch.cat([F.normalize(b, dim=1) for b in blocks], 1), dim=1)


def knn_predict(bank: torch.Tensor,
                bank_labels: torch.Tensor,
                query: torch.Tensor,
                num_classes: int,
                k: int = 20,
                temperature: float = 0.07) -> torch.Tensor:
    """Weighted cosine k-NN vote: each of the ``k`` most similar bank rows
    votes ``exp(sim / T)`` for its label (rows L2-normalised).

    Returns:
        Tensor: ``(Nq, )`` predicted labels.
    """
    if len(bank) == 0 or len(query) == 0:
        raise ValueError('region probe: empty memory bank or query set')
    sim = query @ bank.t()
    top, idx = sim.topk(min(k, len(bank)), dim=1)
    votes = torch.zeros(len(query), num_classes, dtype=sim.dtype)
    votes.scatter_add_(1, bank_labels[idx], (top / temperature).exp())
    return votes.argmax(1)


def train_linear(feats: torch.Tensor,
                 labels: torch.Tensor,
                 num_classes: int,
                 weight_decay: float,
                 max_iter: int = 200) -> torch.nn.Linear:
    """Softmax regression on ``feats`` (already standardised), mean
    cross-entropy + ``weight_decay / 2 * ||W||^2``, full-batch L-BFGS from
    zero weights (deterministic).

    Returns:
        nn.Linear: The trained classifier.
    """
    torch.manual_seed(0)
    clf = torch.nn.Linear(feats.shape[1], num_classes, dtype=feats.dtype)
    torch.nn.init.zeros_(clf.weight)
    torch.nn.init.zeros_(clf.bias)
    opt = torch.optim.LBFGS(
        clf.parameters(),
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(clf(feats), labels) + \
            0.5 * weight_decay * clf.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return clf


def standardise(train: torch.Tensor, *others:
                torch.Tensor) -> List[torch.Tensor]:
    """Z-score every column with the mean / std of ``train``."""
    mean = train.mean(0, keepdim=True)
    std = train.std(0, keepdim=True).clamp_min(1e-6)
    return [(t - mean) / std for t in (train, ) + others]


def linear_probe(train: Tuple[torch.Tensor, torch.Tensor],
                 dev: Tuple[torch.Tensor, torch.Tensor],
                 test: Tuple[torch.Tensor, torch.Tensor],
                 num_classes: int,
                 weight_decays: Sequence[float],
                 max_iter: int = 200) -> Dict[str, object]:
    """Train on ``train``, pick the L2 penalty with the best ``dev``
    accuracy (the first on ties), report on ``test`` once.

    Args:
        train, dev, test: ``(features (N, D), labels (N, ))`` pairs.
        num_classes (int): Number of classes.
        weight_decays: Candidate L2 penalties.

    Returns:
        dict: ``weight_decay``, ``dev_acc`` (per candidate, %), ``acc``
        (test, %), ``correct`` (test, list of 0/1).
    """
    x_tr, x_dev, x_te = standardise(train[0].double(), dev[0].double(),
                                    test[0].double())
    dev_acc, best = {}, None
    for wd in weight_decays:
        clf = train_linear(x_tr, train[1], num_classes, wd, max_iter)
        with torch.no_grad():
            acc = float((clf(x_dev).argmax(1) == dev[1]).double().mean())
        dev_acc[str(wd)] = round(100 * acc, 2)
        if best is None or acc > best[0]:
            best = (acc, wd, clf)
    _, wd, clf = best
    with torch.no_grad():
        correct = (clf(x_te).argmax(1) == test[1]).int()
    return dict(
        weight_decay=wd,
        dev_acc=dev_acc,
        acc=100 * float(correct.double().mean()),
        correct=correct.tolist())


def region_probe(checkpoint: Optional[str],
                 splits: Dict[str, Tuple[str, str]],
                 bn_images: Sequence[str],
                 num_classes: int,
                 depth: int = 18,
                 base_channels: int = 64,
                 scale: float = 2.0,
                 roi_size: int = 3,
                 weight_decays: Sequence[float] = (1e-3, 1e-2, 1e-1),
                 knn_k: int = 20,
                 knn_temperature: float = 0.07,
                 seed: int = 0,
                 export: Optional[str] = None) -> Dict[str, object]:
    """Linear and k-NN region probes of one frozen backbone.

    Args:
        checkpoint (str, optional): Pre-training or exported checkpoint;
            None: random init with ``seed``.
        splits (dict): ``train`` / ``dev`` / ``test`` -> ``(COCO json,
            image dir)``; the classifier is trained on ``train`` boxes.
        bn_images (list[str]): Unlabelled images the BN statistics are
            recomputed on (the same list for every backbone).
        num_classes (int): Number of categories.
        export (str, optional): Also save the backbone with its recomputed
            BN statistics here (``{'state_dict': ...}``, for detection).

    Returns:
        dict: ``linear`` (see :func:`linear_probe`), ``knn`` (``acc``,
        ``correct`` on test, bank = train boxes), ``num_boxes`` per split.
    """
    model = build_backbone(depth, base_channels, checkpoint, seed)
    recompute_bn(model, (load_image(p, scale) for p in bn_images))
    if export:
        from mmregion.utils.atomic_io import atomic_save
        atomic_save(dict(state_dict=model.state_dict()), export)
    data = {
        name: roi_bin_features(model, load_gt_boxes(ann, img), scale, roi_size)
        for name, (ann, img) in splits.items()
    }
    linear = linear_probe(data['train'], data['dev'], data['test'],
                          num_classes, weight_decays)
    widths = [
        c * roi_size**2 for c in stage_channels(depth, base_channels)[1:]
    ]  # C3-C5
    pred = knn_predict(
        level_normalise(data['train'][0], widths), data['train'][1],
        level_normalise(data['test'][0], widths), num_classes, knn_k,
        knn_temperature)
    correct = (pred == data['test'][1]).int()
    return dict(
        linear=linear,
        knn=dict(
            acc=100 * float(correct.double().mean()),
            correct=correct.tolist()),
        num_boxes={
            k: int(len(v[1]))
            for k, v in data.items()
        },
        bn_images=len(bn_images))

"""CCOP: Contrastive Object-level Pre-training with Spatial Noise Curriculum
Learning (Yang, Huang, Crowley, arXiv 2111.13651).

The algorithm runs the encoders, the queues and the box jitter; the
objective is :class:`CCOPHead` (``models/heads/ccop_head.py``).
"""
import math
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.structures import DataSample
from torch import Tensor

from mmregion.registry import MODELS, TASK_UTILS
from ..utils.feature_queue import FeatureQueue
from ..utils.own_scope import in_mmregion_scope
from ..utils.region_utils import check_views, stack_regions
from .base_momentum import BaseMomentumSelfSupervisor

__all__ = ['CCOP']


@MODELS.register_module()
class CCOP(BaseMomentumSelfSupervisor):
    """`CCOP <https://arxiv.org/abs/2111.13651>`_, written from the paper and
    the authors' code (github ChenhongyiYang/CCOP, ``openselfsup/models/
    ccop.py``).

    Online and momentum encoders are ``backbone`` (ResNet) + ``neck`` (FPN,
    P2-P5) + ``img_neck`` (MLP on pooled C5) + ``region_neck``
    (:class:`RoIProjNeck`); the algorithm also owns the image and region
    queues and the curriculum box jitter. The objective is ``head``
    (:class:`CCOPHead`): ``loss_img`` (image-level MoCo v2, through
    :meth:`image_contrast_loss`), ``loss_region`` (hardest-positive
    object-level InfoNCE against the region queue) and ``loss_intra``
    (intra-image discrimination). The selected positive keys are enqueued.

    Everything is batched: the regions of all images are pooled with one
    RoIAlign call per FPN level (rois carry their batch index) and the
    jittered key boxes of all regions are embedded at once; only the valid
    candidates (IoU with their box >= the current threshold, at most
    ``N * (n_jitter + 1)``) go through RoIAlign and the key MLP, since an
    invalid one can never be the positive. Padded regions
    (``stack_regions``) are dropped before pooling and masked in the
    intra-image loss; a batch without regions gives zero region losses.

    Args:
        backbone (dict): Backbone config with ``out_indices`` giving C2-C5.
        neck (dict): FPN config (P2-P5).
        img_neck (dict): Image projection config (on the last backbone
            stage).
        region_neck (dict): :class:`RoIProjNeck` config.
        head (dict): :class:`CCOPHead` config.
        box_jitter (dict): :class:`CurriculumBoxJitter` config.
        img_queue_len (int): Image queue length. Defaults to 65536 (CCOP).
        region_queue_len (int): Region queue length. Defaults to 65536
            (CCOP).
        region_queue_overflow (str): :class:`FeatureQueue` ``overflow`` of
            the region queue (a variable number of keys per step):
            ``'wrap'`` (default) or ``'drop'`` (CCOP's release).
        feat_dim (int): Embedding size of both necks. Defaults to 128.
        momentum (float): EMA momentum, mmengine convention (0.001 ==
            CCOP's 0.999). Defaults to 0.001.
        shuffle_bn (bool): Shuffle-BN for the momentum encoder. Defaults to
            True.
        data_preprocessor (dict, optional): Defaults to
            ``mmpretrain.SelfSupDataPreprocessor``.
        pretrained (str, optional): Checkpoint to initialise from.
        init_cfg (dict, optional): Initialisation config.
    """

    @in_mmregion_scope
    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 img_neck: dict,
                 region_neck: dict,
                 head: dict,
                 box_jitter: dict = dict(type='CurriculumBoxJitter'),
                 img_queue_len: int = 65536,
                 region_queue_len: int = 65536,
                 region_queue_overflow: str = 'wrap',
                 feat_dim: int = 128,
                 momentum: float = 0.001,
                 shuffle_bn: bool = True,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            img_neck=img_neck,
            img_queue_len=img_queue_len,
            img_feat_dim=feat_dim,
            momentum=momentum,
            shuffle_bn=shuffle_bn,
            data_preprocessor=data_preprocessor,
            pretrained=pretrained,
            init_cfg=init_cfg)
        self.region_neck = MODELS.build(region_neck)
        self.box_jitter = TASK_UTILS.build(box_jitter)
        self.region_queue = FeatureQueue(region_queue_len, feat_dim,
                                         region_queue_overflow)
        self.init_momentum_encoder(
            ('backbone', 'neck', 'img_neck', 'region_neck'))

    def _embed_regions(self, fpn: tuple, rois: Tensor, view_size: float,
                       momentum: bool) -> Tensor:
        neck = self.momentum_module(
            'region_neck') if momentum else self.region_neck
        return F.normalize(neck(fpn, rois, view_size)[0], dim=-1)

    def loss(self, inputs: List[Tensor],
             data_samples: List[DataSample]) -> Dict[str, Tensor]:
        """Compute the three CCOP losses.

        Args:
            inputs (list[Tensor]): Two views, each (B, 3, H, W).
            data_samples (list[DataSample]): B samples with ``boxes``
                (2, K_b, 4) aligned across views (``docs/design.md``).

        Returns:
            dict[str, Tensor]: ``loss_img``, ``loss_region``, ``loss_intra``.
        """
        check_views(inputs, 2, 'CCOP.loss')
        im_q, im_k = inputs
        img_h, img_w = im_q.shape[-2:]
        view_size = math.sqrt(img_h * img_w)
        # boxes (B, 2, K, 4) aligned across views, valid (B, K)
        boxes, valid = stack_regions(data_samples, num_views=2)
        boxes = boxes.to(im_q.device)
        valid = valid.to(im_q.device)

        # regions of the whole batch, padding dropped: (N,) indices
        b_idx, r_idx = torch.nonzero(valid, as_tuple=True)
        rois_q = torch.cat([b_idx[:, None].float(), boxes[b_idx, 0, r_idx]],
                           dim=1)  # (N, 5)
        boxes_k = boxes[b_idx, 1, r_idx]  # (N, 4) view-2 boxes

        # online encoder (view 1): C2-C5, P2-P5, (N, D) region queries
        feats_q = self.backbone(im_q)
        fpn_q = self.neck(feats_q)
        q_region = self._embed_regions(
            fpn_q, rois_q, view_size, momentum=False)

        # momentum encoder (view 2)
        self.update_momentum_encoder()
        feats_k, fpn_k = self.forward_momentum(im_k)
        with torch.no_grad():
            # (N, J+1, 4) candidates, the un-jittered box last
            cands, cand_valid = self.box_jitter(boxes_k, (img_h, img_w))
            # only the valid candidates (IoU >= the current threshold) can
            # be the positive: embed just those, in one batched call
            n_idx, c_idx = torch.nonzero(cand_valid, as_tuple=True)
            rois_k = torch.cat(
                [b_idx[n_idx, None].float(), cands[n_idx, c_idx]], dim=1)
            k_valid = self._embed_regions(
                fpn_k, rois_k, view_size, momentum=True)  # (N_valid, D)
            k_cands = k_valid.new_zeros(cand_valid.shape +
                                        k_valid.shape[1:])  # (N, J+1, D)
            k_cands[n_idx, c_idx] = k_valid
            k_pos, k_orig = self.head.select_positives(
                q_region, k_cands, cand_valid)  # (N, D) each

        # image-level MoCo v2 (view 1 query, view 2 key)
        img_q = self.embed_image(feats_q[-1])
        with torch.no_grad():
            img_k = self.embed_image(feats_k[-1], momentum=True)
        losses = dict(loss_img=self.image_contrast_loss([img_q], [img_k]))
        losses.update(
            self.head.loss(q_region, k_pos, k_orig, self.region_queue.features,
                           boxes[:, 1], valid))
        self.region_queue.enqueue(k_pos)
        return losses

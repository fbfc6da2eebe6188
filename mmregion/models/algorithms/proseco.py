"""ProSeCo: proposal-contrastive pre-training of a DETR-family detector.

Bouniot et al., "Proposal-Contrastive Pretraining for Object Detection from
Fewer Data", ICLR 2023 (``/work/shared/design/methods.md`` section 3; the
official code is not public). The same class also gives the DETReg baseline
(Bar et al., CVPR 2022): localisation + object-embedding loss, no contrast.

Per training step, with the two views of ``docs/design.md`` (for ProSeCo the
geometric transforms run before ``MultiViewRegions``, so both views share the
same geometry and the same selective-search boxes; only the photometric
augmentation differs):

1. the student (mmdet detector + :class:`ObjectEmbeddingHead` on the decoder
   query embeddings) sees the strong view, the teacher (an EMA of the
   student, no gradient) the weak view;
2. localisation (DETReg): the student's class-agnostic head regresses the
   selective-search boxes, through the detector's own ``bbox_head.loss_by_feat``
   (Hungarian matching with the configured costs, focal + L1 + GIoU, every
   decoder layer);
3. the teacher's proposals (all its N queries, or its top-k by objectness)
   are Hungarian-matched to the student's predictions
   (:class:`ProposalHungarianMatcher`), and :class:`LocSCELoss` contrasts
   the matched student embeddings with the teacher embeddings over the batch;
4. optionally (DETReg baseline), an L1 loss between the object embedding of
   every student query matched to a selective-search box and the pooled
   (RoIAlign, mean over the bins), detached backbone feature of that box.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModel, ExponentialMovingAverage
from torch import Tensor

from mmregion.registry import MODELS, TASK_UTILS
from ..task_modules.proposal_matcher import cxcywh_to_xyxy
from ..utils.loss_guard import NonFiniteLossGuardMixin
from ..utils.own_scope import in_mmregion_scope

__all__ = ['ProSeCo']


@MODELS.register_module()
class ProSeCo(NonFiniteLossGuardMixin, BaseModel):
    """ProSeCo (and DETReg) pre-training around an mmdet DETR detector.

    Args:
        detector (dict): Config of an mmdet DETR-family detector whose
            ``bbox_head`` is class-agnostic (``num_classes=1``), e.g.
            ``dict(type='mmdet.DeformableDETR', ...)``. Its head must follow
            mmdet's ``forward(hidden_states[, references])`` /
            ``loss_by_feat(cls, box, [enc_cls, enc_box,] gt, metas)`` API
            (DETR, Deformable DETR, Conditional DETR, ...).
        embed_head (dict): Config of the object-embedding projection head
            applied to the last decoder layer's query embeddings.
        matcher (dict): Config of the teacher->student proposal matcher.
        contrast_loss (dict, optional): Contrastive loss (``LocSCELoss`` or
            any loss with the same call signature). None disables the
            teacher (DETReg baseline). Defaults to ``LocSCELoss``.
        embed_loss (dict, optional): DETReg embedding loss between the student
            object embeddings and pooled backbone features of the matched
            selective-search boxes (e.g. ``dict(type='mmdet.L1Loss')``).
            The embedding size must equal the channels of backbone level
            ``embed_feat_level``. Defaults to None.
        loc_loss (bool): Use the localisation loss. Defaults to True.
        teacher_momentum (float): mmengine convention: the teacher becomes
            ``(1 - m) * teacher + m * student`` at every step, so
            ``m = 0.001`` is MoCo's momentum 0.999. Defaults to 0.001.
        teacher_view (int): Index of the weak view (teacher). Defaults to 0.
        student_view (int): Index of the strong view (student). Defaults to 1.
        num_views (int): Number of views in the batch. Defaults to 2.
        num_teacher_proposals (int, optional): Keep only the teacher's top-k
            queries (by objectness) as proposals; None keeps all N.
        embed_feat_level (int): Backbone output level pooled for the DETReg
            embedding target. Defaults to 0 (C3 for ``out_indices=(1, 2, 3)``,
            as DETReg's layer2 target).
        embed_roi_size (int): RoIAlign output size for that target.
        data_preprocessor (dict, optional): e.g.
            ``dict(type='mmpretrain.SelfSupDataPreprocessor', ...)``.
        init_cfg (dict, optional): Initialisation config.
    """

    @in_mmregion_scope
    def __init__(self,
                 detector: dict,
                 embed_head: dict,
                 matcher: dict = dict(type='ProposalHungarianMatcher'),
                 contrast_loss: Optional[dict] = dict(type='LocSCELoss'),
                 embed_loss: Optional[dict] = None,
                 loc_loss: bool = True,
                 teacher_momentum: float = 0.001,
                 teacher_view: int = 0,
                 student_view: int = 1,
                 num_views: int = 2,
                 num_teacher_proposals: Optional[int] = None,
                 embed_feat_level: int = 0,
                 embed_roi_size: int = 7,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        for name, v in (('teacher_view', teacher_view), ('student_view',
                                                          student_view)):
            if not 0 <= v < num_views:
                raise ValueError(f'ProSeCo: {name}={v} is not a view index '
                                 f'(num_views={num_views}).')
        if contrast_loss is None and embed_loss is None and not loc_loss:
            raise ValueError('ProSeCo: contrast_loss, embed_loss and '
                             'loc_loss are all disabled; nothing to train.')
        self.detector = MODELS.build(copy.deepcopy(detector))
        if getattr(self.detector, 'bbox_head', None) is None:
            raise ValueError('ProSeCo: the detector config has no bbox_head.')
        num_classes = getattr(self.detector.bbox_head, 'num_classes', 1)
        if num_classes != 1:
            raise ValueError('ProSeCo: the detector bbox_head must be '
                             'class-agnostic (num_classes=1), got '
                             f'num_classes={num_classes}.')
        self.embed_head = MODELS.build(embed_head)
        self.matcher = TASK_UTILS.build(matcher)
        self.contrast_loss = None if contrast_loss is None else \
            MODELS.build(contrast_loss)
        self.embed_loss = None if embed_loss is None else \
            MODELS.build(embed_loss)
        self.loc_loss = loc_loss
        self.teacher_momentum = teacher_momentum
        self.teacher_view = teacher_view
        self.student_view = student_view
        self.num_views = num_views
        self.num_teacher_proposals = num_teacher_proposals
        self.embed_feat_level = embed_feat_level
        self.embed_roi_size = embed_roi_size
        # the teacher: an EMA copy (no grad) of detector + embed_head
        self.teacher = None
        if self.contrast_loss is not None:
            self.teacher = ExponentialMovingAverage(
                self.student_modules(), momentum=teacher_momentum)

    # ------------------------------------------------------------------
    def student_modules(self) -> nn.ModuleDict:
        """The student as a (temporary) ModuleDict, the EMA's source."""
        return nn.ModuleDict(
            dict(detector=self.detector, embed_head=self.embed_head))

    def train(self, mode: bool = True) -> 'ProSeCo':
        """Set the train mode; the teacher always stays in eval mode
        (no dropout: it gives the targets)."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def update_teacher(self) -> None:
        """One EMA step of the teacher (the first call copies the student)."""
        if self.teacher is not None:
            self.teacher.update_parameters(self.student_modules())

    # ------------------------------------------------------------------
    def forward(self,
                inputs: Union[Tensor, List[Tensor]],
                data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        """mmengine entry: 'loss' -> :meth:`loss`; 'tensor' -> the student
        detector's raw head outputs on the student view."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'tensor':
            x = inputs[self.student_view] if isinstance(inputs,
                                                        (list, tuple)) \
                else inputs
            if data_samples is None:
                data_samples = [None] * x.size(0)
            det_samples = self._det_samples(data_samples, x, None)
            return self._run_detector(self.detector, x, det_samples)[2]
        raise RuntimeError(f'ProSeCo: invalid mode "{mode}"; pre-training '
                           "supports 'loss' and 'tensor' (export the "
                           'detector with tools/convert_proseco_to_ddetr.py '
                           'to predict).')

    def _det_samples(self, data_samples: Sequence, x: Tensor,
                     view: Optional[int]) -> list:
        """mmdet ``DetDataSample``s for one view (gt = selective-search
        boxes as class-0 instances when ``view`` is given)."""
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData
        batch_hw = tuple(int(s) for s in x.shape[-2:])
        boxes = valid = None
        if view is not None:
            from mmregion.models.utils import stack_regions
            boxes, valid = stack_regions(data_samples, self.num_views)
            boxes, valid = boxes.to(x.device), valid.to(x.device)
        out = []
        for i, sample in enumerate(data_samples):
            img_shape = batch_hw
            sample_meta = {} if sample is None else sample.metainfo
            shapes = sample_meta.get('img_shape', None)
            if view is not None and isinstance(shapes, (list, tuple)) and \
                    len(shapes) == self.num_views and \
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

    @staticmethod
    def _run_detector(detector: nn.Module, x: Tensor,
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

    def loss(self, inputs: List[Tensor],
             data_samples: list) -> Dict[str, Tensor]:
        """Pre-training losses.

        Args:
            inputs (list[Tensor]): V view batches (B, 3, H, W).
            data_samples (list[DataSample]): B samples with ``boxes``
                (V, K, 4) view-pixel xyxy selective-search boxes.

        Returns:
            dict[str, Tensor]: the detector's localisation losses
            (``loss_cls``, ``loss_bbox``, ``loss_iou``, ``d{i}.*``),
            ``loss_contrast`` and/or ``loss_embed``.
        """
        if not isinstance(inputs, (list, tuple)) or \
                len(inputs) != self.num_views:
            raise ValueError(f'ProSeCo: expected inputs to be a list of '
                             f'{self.num_views} view batches, got '
                             f'{type(inputs).__name__}.')
        losses: Dict[str, Tensor] = {}
        self.update_teacher()

        x_s = inputs[self.student_view]
        det_s = self._det_samples(data_samples, x_s, self.student_view)
        bb_feats, head_inputs, outs = self._run_detector(
            self.detector, x_s, det_s)
        cls_scores, bbox_preds = outs[0], outs[1]
        hidden = head_inputs['hidden_states'][-1]  # (B, N, C)
        s_embeds = self.embed_head(hidden)  # (B, N, D)

        if self.loc_loss or self.embed_loss is not None:
            gt_instances = [d.gt_instances for d in det_s]
            img_metas = [d.metainfo for d in det_s]
        if self.loc_loss:
            extra = ()
            if 'enc_outputs_class' in head_inputs:
                extra = (head_inputs['enc_outputs_class'],
                         head_inputs['enc_outputs_coord'])
            losses.update(
                self.detector.bbox_head.loss_by_feat(
                    *outs[:2], *extra, gt_instances, img_metas))

        if self.contrast_loss is not None:
            losses['loss_contrast'] = self._contrast(inputs, data_samples,
                                                     s_embeds, bbox_preds[-1])
        if self.embed_loss is not None:
            losses['loss_embed'] = self._embed(bb_feats, s_embeds,
                                               cls_scores[-1], bbox_preds[-1],
                                               gt_instances, img_metas)
        return losses

    def _contrast(self, inputs: List[Tensor], data_samples: list,
                  s_embeds: Tensor, s_boxes: Tensor) -> Tensor:
        """Teacher forward, proposal matching and the contrastive loss."""
        teacher = self.teacher.module
        x_t = inputs[self.teacher_view]
        with torch.no_grad():
            det_t = self._det_samples(data_samples, x_t, None)
            _, t_head_inputs, t_outs = self._run_detector(
                teacher['detector'], x_t, det_t)
            t_embeds = teacher['embed_head'](
                t_head_inputs['hidden_states'][-1])
            t_boxes = t_outs[1][-1]  # (B, N, 4) cxcywh, normalised
            k = self.num_teacher_proposals
            if k is not None and k < t_boxes.size(1):
                top = t_outs[0][-1][..., 0].topk(k, dim=1).indices
                t_boxes = t_boxes.gather(1, top[..., None].expand(-1, -1, 4))
                t_embeds = t_embeds.gather(
                    1, top[..., None].expand(-1, -1, t_embeds.size(-1)))
            pred_inds, _ = self.matcher.match(t_embeds, t_boxes,
                                              s_embeds.detach(),
                                              s_boxes.detach())
        matched = s_embeds.gather(
            1, pred_inds[..., None].expand(-1, -1, s_embeds.size(-1)))
        return self.contrast_loss(matched, t_embeds, cxcywh_to_xyxy(t_boxes))

    def _embed(self, bb_feats: tuple, s_embeds: Tensor, cls_scores: Tensor,
               bbox_preds: Tensor, gt_instances: list,
               img_metas: list) -> Tensor:
        """DETReg embedding loss: student object embedding of each query
        matched to a selective-search box vs. the pooled, detached backbone
        feature of that box."""
        from mmcv.ops import roi_align
        head = self.detector.bbox_head
        with torch.no_grad():
            labels, _, box_tgts, _, _, _ = head.get_targets(
                list(cls_scores), list(bbox_preds), gt_instances, img_metas)
        labels = torch.stack(labels)  # (B, N); 0 = matched (foreground)
        box_tgts = torch.stack(box_tgts)  # (B, N, 4) normalised cxcywh
        pos = labels == 0
        if not pos.any():
            return s_embeds.sum() * 0
        feat = bb_feats[self.embed_feat_level].detach()
        if feat.size(1) != s_embeds.size(-1):
            raise ValueError(
                f'ProSeCo: embed_head out_channels={s_embeds.size(-1)} must '
                f'equal the channels ({feat.size(1)}) of backbone level '
                f'{self.embed_feat_level} for the DETReg embedding loss.')
        h, w = img_metas[0]['batch_input_shape']
        scale = box_tgts.new_tensor([w, h, w, h])
        b_idx = pos.nonzero()[:, 0]
        rois = torch.cat(
            [b_idx[:, None].to(feat.dtype),
             cxcywh_to_xyxy(box_tgts[pos]) * scale], 1)
        pooled = roi_align(feat, rois, (self.embed_roi_size, ) * 2,
                           feat.size(-1) / w, 0, 'avg', True).mean((2, 3))
        return self.embed_loss(
            s_embeds[pos], pooled, avg_factor=max(int(pos.sum()), 1))

"""ProSeCo: proposal-contrastive pre-training of a DETR-family detector.

Bouniot et al., "Proposal-Contrastive Pretraining for Object Detection from
Fewer Data", ICLR 2023 (the official code is not public; the choices it
leaves open are options, ``docs/fidelity.md``). The same class also gives
the DETReg baseline (Bar et al., CVPR 2022): localisation + object-embedding
loss, no contrast.

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
4. optionally (DETReg baseline), an L1 loss (element-wise mean over the
   matched boxes x embedding dims, DETReg ``models/deformable_detr.py:322``)
   between the object embedding of every student query matched to a
   selective-search box and a detached backbone feature of that box: the
   RoIAlign of the backbone level (``embed_target='roi'``) or, as DETReg,
   the global average of that level computed on the box's own crop resized
   to 128 x 128 (``embed_target='crop'``), taken from the view
   ``embed_target_view`` (DETReg: the colour-jittered one, while the
   detector sees the view without colour augmentation).

Predictions that are not finite (a diverged run) are caught before any
Hungarian matching: the step then returns ``loss_nonfinite_<quantity>``
terms (NaN) so that ``FiniteCheckOptimWrapper`` stops or skips it with a
message naming the quantity and the iteration.
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
            selective-search boxes, called as ``loss(pred, target)`` with
            pred/target (num_matched, D), so its own ``reduction`` applies:
            ``dict(type='mmdet.L1Loss')`` ('mean') is exactly DETReg's
            ``F.l1_loss(pred, target, reduction='mean')``. The embedding size
            must equal the channels of backbone level ``embed_feat_level``.
            Defaults to None.
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
        embed_target (str): How that target is pooled: ``'roi'`` (RoIAlign
            ``embed_roi_size`` on the full-image feature, averaged; cheap) or
            ``'crop'`` (DETReg: each box cropped from the view's image and
            resized to ``embed_crop_size``, backbone up to level
            ``embed_feat_level``, global average). Defaults to ``'roi'``.
        embed_crop_size (int): Crop side for ``embed_target='crop'``.
            Defaults to 128 (DETReg ``datasets/selfdet.py``).
        embed_target_view (int, optional): View whose image gives the
            embedding target; None = the student view. Defaults to None.
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
                 embed_target: str = 'roi',
                 embed_crop_size: int = 128,
                 embed_target_view: Optional[int] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        views = [('teacher_view', teacher_view),
                 ('student_view', student_view)]
        if embed_target_view is not None:
            views.append(('embed_target_view', embed_target_view))
        for name, v in views:
            if not 0 <= v < num_views:
                raise ValueError(f'ProSeCo: {name}={v} is not a view index '
                                 f'(num_views={num_views}).')
        if embed_target not in ('roi', 'crop'):
            raise ValueError('ProSeCo: embed_target must be "roi" or "crop", '
                             f'got "{embed_target}".')
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
        self._check_frozen_backbone_init(init_cfg)
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
        self.embed_target = embed_target
        self.embed_crop_size = embed_crop_size
        self.embed_target_view = student_view if embed_target_view is None \
            else embed_target_view
        # the teacher: an EMA copy (no grad) of detector + embed_head
        self.teacher = None
        if self.contrast_loss is not None:
            self.teacher = ExponentialMovingAverage(
                self.student_modules(), momentum=teacher_momentum)

    def _check_frozen_backbone_init(self, init_cfg: Optional[dict]) -> None:
        """A fully frozen backbone must be loaded from a checkpoint.

        Raises:
            ValueError: No backbone parameter is trainable (e.g. mmdet
                ``ResNet(frozen_stages=4)`` with frozen BN) and neither the
                backbone, the detector nor this model has a ``Pretrained``
                ``init_cfg``: the backbone would stay random all along.
        """

        def pretrained(cfg) -> bool:
            cfgs = cfg if isinstance(cfg, (list, tuple)) else [cfg]
            return any(
                isinstance(c, dict) and c.get('type') == 'Pretrained'
                for c in cfgs)

        backbone = self.detector.backbone
        params = list(backbone.parameters())
        if not params or any(p.requires_grad for p in params):
            return
        if any(
                pretrained(c)
                for c in (getattr(backbone, 'init_cfg', None),
                          getattr(self.detector, 'init_cfg', None), init_cfg)):
            return
        raise ValueError(
            'ProSeCo: the detector backbone is fully frozen (no trainable '
            'parameter, e.g. frozen_stages=4 with frozen BN) but has no '
            'pretrained init, so it would stay random. Set '
            "detector.backbone.init_cfg=dict(type='Pretrained', "
            "checkpoint=...) (DETReg's SwAV checkpoint, or the output of "
            'tools/extract_backbone.py), or unfreeze it '
            '(detector.backbone.frozen_stages < num_stages).')

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
            det_samples = self._det_samples(data_samples, x, self.student_view,
                                            False)
            return self._run_detector(self.detector, x, det_samples)[2]
        raise RuntimeError(f'ProSeCo: invalid mode "{mode}"; pre-training '
                           "supports 'loss' and 'tensor' (export the "
                           'detector with tools/convert_proseco_to_ddetr.py '
                           'to predict).')

    def _det_samples(self,
                     data_samples: Sequence,
                     x: Tensor,
                     view: int,
                     with_gt: bool = True) -> list:
        """mmdet ``DetDataSample``s for one view.

        ``img_shape`` is the view's own (unpadded) image size, when the
        sample records it, and ``batch_input_shape`` the padded batch size,
        as mmdet sets them (the transformer masks the padding from
        ``img_shape`` and the head normalises boxes by it). With
        ``with_gt``, the selective-search boxes of the view are class-0
        ``gt_instances``."""
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData
        batch_hw = tuple(int(s) for s in x.shape[-2:])
        boxes = valid = None
        if with_gt:
            from mmregion.models.utils import stack_regions
            boxes, valid = stack_regions(data_samples, self.num_views)
            boxes, valid = boxes.to(x.device), valid.to(x.device)
        out = []
        for i, sample in enumerate(data_samples):
            img_shape = batch_hw
            sample_meta = {} if sample is None else sample.metainfo
            shapes = sample_meta.get('img_shape', None)
            if isinstance(shapes, (list, tuple)) and \
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
        bad = self._nonfinite_terms(
            student_cls_scores=cls_scores,
            student_bbox_preds=bbox_preds,
            student_embeds=s_embeds)
        if bad:
            return bad

        if self.loc_loss or self.embed_loss is not None:
            gt_instances = [d.gt_instances for d in det_s]
            img_metas = [d.metainfo for d in det_s]
        if self.loc_loss:
            extra = ()
            if 'enc_outputs_class' in head_inputs:
                extra = (head_inputs['enc_outputs_class'],
                         head_inputs['enc_outputs_coord'])
            losses.update(
                self.detector.bbox_head.loss_by_feat(*outs[:2], *extra,
                                                     gt_instances, img_metas))

        if self.contrast_loss is not None:
            contrast = self._contrast(inputs, data_samples, s_embeds,
                                      bbox_preds[-1])
            if isinstance(contrast, dict):  # non-finite teacher outputs
                return contrast
            losses['loss_contrast'] = contrast
        if self.embed_loss is not None:
            losses['loss_embed'] = self._embed(inputs, data_samples, bb_feats,
                                               s_embeds, cls_scores[-1],
                                               bbox_preds[-1], det_s)
        return losses

    @staticmethod
    def _nonfinite_terms(**named: Tensor) -> Optional[Dict[str, Tensor]]:
        """Check predictions before any Hungarian matching.

        scipy's ``linear_sum_assignment`` raises ``ValueError: matrix
        contains invalid numeric entries`` on a NaN/inf cost, before any
        loss exists, so a diverged run would never reach the non-finite
        loss guard. Instead, the step returns one term
        ``loss_nonfinite_<name>`` per non-finite prediction (the sum of the
        tensor, NaN/inf, still in the graph): ``NonFiniteLossGuardMixin``
        records it and ``FiniteCheckOptimWrapper`` raises or skips
        (``on_nonfinite``) with a message naming it and the iteration.

        Args:
            **named (Tensor): Predictions by name.

        Returns:
            dict[str, Tensor] | None: None when all are finite (one device
            sync), else the non-finite terms.
        """
        flags = torch.stack(
            [torch.isfinite(t.detach()).all() for t in named.values()])
        if bool(flags.all()):
            return None
        return {
            f'loss_nonfinite_{name}': t.float().sum()
            for (name, t), ok in zip(named.items(), flags.tolist()) if not ok
        }

    def _contrast(self, inputs: List[Tensor], data_samples: list,
                  s_embeds: Tensor,
                  s_boxes: Tensor) -> Union[Tensor, Dict[str, Tensor]]:
        """Teacher forward, proposal matching and the contrastive loss (or
        the ``loss_nonfinite_*`` terms when the teacher's outputs are not
        finite)."""
        teacher = self.teacher.module
        x_t = inputs[self.teacher_view]
        with torch.no_grad():
            det_t = self._det_samples(data_samples, x_t, self.teacher_view,
                                      False)
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
            bad = self._nonfinite_terms(
                teacher_embeds=t_embeds, teacher_bbox_preds=t_boxes)
            if bad:
                # keep the student in the graph (DDP, plain optim wrappers)
                return {k: v + s_embeds.sum() * 0 for k, v in bad.items()}
            pred_inds, _ = self.matcher.match(t_embeds, t_boxes,
                                              s_embeds.detach(),
                                              s_boxes.detach())
        matched = s_embeds.gather(
            1, pred_inds[..., None].expand(-1, -1, s_embeds.size(-1)))
        return self.contrast_loss(matched, t_embeds, cxcywh_to_xyxy(t_boxes))

    def _embed(self, inputs: List[Tensor], data_samples: list, bb_feats: tuple,
               s_embeds: Tensor, cls_scores: Tensor, bbox_preds: Tensor,
               det_s: list) -> Tensor:
        """DETReg embedding loss.

        Each student query Hungarian-matched (the head's assigner, as the
        localisation loss) to a selective-search box is paired with a
        detached backbone feature of that box in view
        ``embed_target_view`` (the rows of every view are the same regions,
        see ``MultiViewRegions``); the loss is ``embed_loss(pred, target)``
        over the matched pairs (num_matched, D).
        """
        from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
        from mmengine.structures import InstanceData

        from mmregion.models.utils import stack_regions
        head = self.detector.bbox_head
        tv = self.embed_target_view
        boxes, valid = stack_regions(data_samples, self.num_views)
        rois = []
        pos = torch.zeros(
            s_embeds.shape[:2], dtype=torch.bool, device=s_embeds.device)
        with torch.no_grad():
            for i, det in enumerate(det_s):
                img_h, img_w = det.metainfo['img_shape']
                factor = bbox_preds.new_tensor([img_w, img_h, img_w, img_h])
                pred = InstanceData(
                    scores=cls_scores[i],
                    bboxes=bbox_cxcywh_to_xyxy(bbox_preds[i]) * factor)
                if len(det.gt_instances) == 0:
                    continue
                gt_inds = head.assigner.assign(
                    pred_instances=pred,
                    gt_instances=det.gt_instances,
                    img_meta=det.metainfo).gt_inds
                matched = (gt_inds > 0).nonzero()[:, 0]
                tgt = boxes[i, tv][valid[i]].to(bbox_preds)
                tgt = tgt[gt_inds[matched] - 1]
                pos[i, matched] = True
                rois.append(
                    torch.cat([tgt.new_full((len(matched), 1), i), tgt], 1))
        if not pos.any():
            return s_embeds.sum() * 0
        # rows of ``rois`` follow ``pos.nonzero()`` (image, then query)
        rois = torch.cat(rois)
        with torch.no_grad():
            target = self._embed_targets(inputs[tv], bb_feats, rois)
        if target.size(1) != s_embeds.size(-1):
            raise ValueError(
                f'ProSeCo: embed_head out_channels={s_embeds.size(-1)} must '
                f'equal the channels ({target.size(1)}) of backbone level '
                f'{self.embed_feat_level} for the DETReg embedding loss.')
        # DETReg models/deformable_detr.py:322: F.l1_loss(..., 'mean'),
        # i.e. the element-wise mean over matched boxes x dims
        return self.embed_loss(s_embeds[pos], target)

    def _embed_targets(self, images: Tensor, bb_feats: tuple,
                       rois: Tensor) -> Tensor:
        """Pooled backbone feature (R, C) of each roi (R, 5) (batch index,
        xyxy pixels of ``images``), see ``embed_target``."""
        from mmcv.ops import roi_align
        level = self.embed_feat_level
        if self.embed_target == 'crop':
            size = (self.embed_crop_size, ) * 2
            out = []
            for chunk in rois.split(64):  # bounded memory
                crops = roi_align(images, chunk, size, 1.0, 1, 'avg', True)
                out.append(
                    self._backbone_level(self.detector.backbone, crops,
                                         level).mean((2, 3)))
            return torch.cat(out)
        if self.embed_target_view == self.student_view:
            feat = bb_feats[level].detach()
        else:
            feat = self.detector.backbone(images)[level]
        return roi_align(feat, rois, (self.embed_roi_size, ) * 2,
                         feat.size(-1) / images.size(-1), 0, 'avg', True).mean(
                             (2, 3))

    @staticmethod
    def _backbone_level(backbone: nn.Module, x: Tensor, level: int) -> Tensor:
        """Output ``level`` of the backbone, stopping after its stage (an
        mmdet/mmpretrain ResNet); any other backbone runs in full."""
        res_layers = getattr(backbone, 'res_layers', None)
        out_indices = getattr(backbone, 'out_indices', None)
        if res_layers is None or out_indices is None or \
                getattr(backbone, 'plugins', None):
            return backbone(x)[level]
        if getattr(backbone, 'deep_stem', False):
            x = backbone.stem(x)
        else:
            x = backbone.relu(backbone.norm1(backbone.conv1(x)))
        x = backbone.maxpool(x)
        found = -1
        for i, name in enumerate(res_layers):
            x = getattr(backbone, name)(x)
            if i in out_indices:
                found += 1
                if found == level:
                    return x
        raise ValueError(f'ProSeCo: backbone has no output level {level}.')

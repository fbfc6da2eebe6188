"""ProSeCo: proposal-contrastive pre-training of a DETR-family detector.

Bouniot et al., "Proposal-Contrastive Pretraining for Object Detection from
Fewer Data", ICLR 2023 (the official code is not public; the choices it
leaves open are options, ``docs/fidelity.md``). The same class also gives
the DETReg baseline (Bar et al., CVPR 2022): localisation + object-embedding
loss, no contrast.

Per training step, with two views sharing geometry and selective-search boxes
(only the photometric augmentation differs, ``docs/design.md``):

1. the student (mmdet detector + :class:`ObjectEmbeddingHead` on the decoder
   query embeddings) sees the strong view, the teacher (a
   :class:`MomentumTeacher` of the student, no gradient) the weak view;
2. localisation (DETReg): the student's class-agnostic head regresses the
   selective-search boxes through the detector's own ``loss_by_feat``
   (Hungarian matching, focal + L1 + GIoU, every decoder layer);
3. contrast (ProSeCo, :class:`ProSeCoHead`): teacher proposals matched to
   the student's predictions, :class:`LocSCELoss` over the batch;
4. optionally (DETReg baseline, :class:`DETRegHead`): an L1 loss between
   the object embedding of every student query matched to a selective-search
   box and a detached backbone feature of that box, taken from the view
   ``embed_target_view``.

The heads are built from the flat config keys (``matcher``,
``contrast_loss``, ``num_teacher_proposals``; ``embed_loss``, ``embed_*``);
there is no ``head`` key. Non-finite predictions end the step with
``loss_nonfinite_<quantity>`` terms (:func:`nonfinite_terms`).
"""
import logging
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModel
from torch import Tensor

from mmregion.registry import MODELS
from ..heads.proseco_head import nonfinite_terms
from ..utils.detr_adapter import (build_pretraining_detector,
                                  det_samples_for_view, run_detector)
from ..utils.loss_guard import NonFiniteLossGuardMixin
from ..utils.momentum_teacher import MomentumTeacher
from ..utils.own_scope import in_mmregion_scope
from ..utils.region_utils import check_views, stack_regions

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
        matcher (dict): Config of the teacher->student proposal matcher
            (:class:`ProSeCoHead`).
        contrast_loss (dict, optional): Contrastive loss of
            :class:`ProSeCoHead` (``LocSCELoss`` or any loss with the same
            call signature). None disables the teacher and the head (DETReg
            baseline). Defaults to ``LocSCELoss``.
        embed_loss (dict, optional): Loss of :class:`DETRegHead` (DETReg
            embedding loss, e.g. ``dict(type='mmdet.L1Loss')``). None
            disables it. Defaults to None.
        loc_loss (bool): Use the localisation loss. Defaults to True.
        momentum (float): mmengine convention: the teacher becomes
            ``(1 - m) * teacher + m * student`` at every step, so
            ``m = 0.001`` is MoCo's momentum 0.999. Defaults to 0.001.
            (``teacher_momentum``, its former name, still works with a
            deprecation warning.)
        teacher_view (int): Index of the weak view (teacher). Defaults to 0.
        student_view (int): Index of the strong view (student). Defaults to 1.
        num_views (int): Number of views in the batch. Defaults to 2.
        num_teacher_proposals (int, optional): :class:`ProSeCoHead`'s
            ``num_proposals`` (teacher top-k; None keeps all N).
        embed_feat_level, embed_roi_size, embed_target, embed_crop_size:
            :class:`DETRegHead`'s ``feat_level`` (default 0), ``roi_size``
            (7), ``target`` (``'roi'``; ``'patch'``: DETReg's patches of the
            pipeline, ``data_samples[i].patches`` from :class:`BoxPatches`,
            normalised here like the views) and ``crop_size`` (128).
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
                 momentum: float = 0.001,
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
                 init_cfg: Optional[dict] = None,
                 teacher_momentum: Optional[float] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if teacher_momentum is not None:
            print_log(
                'ProSeCo: `teacher_momentum` is deprecated, use `momentum` '
                '(same meaning and convention).',
                logger='current',
                level=logging.WARNING)
            momentum = teacher_momentum
        views = [('teacher_view', teacher_view),
                 ('student_view', student_view)]
        if embed_target_view is not None:
            views.append(('embed_target_view', embed_target_view))
        for name, v in views:
            if not 0 <= v < num_views:
                raise ValueError(f'ProSeCo: {name}={v} is not a view index '
                                 f'(num_views={num_views}).')
        if contrast_loss is None and embed_loss is None and not loc_loss:
            raise ValueError('ProSeCo: contrast_loss, embed_loss and '
                             'loc_loss are all disabled; nothing to train.')
        self.detector = build_pretraining_detector(detector, init_cfg)
        self.embed_head = MODELS.build(embed_head)
        self.contrast_head = None if contrast_loss is None else \
            MODELS.build(dict(type='ProSeCoHead', matcher=matcher,
                              loss=contrast_loss,
                              num_proposals=num_teacher_proposals))
        self.detreg_head = None if embed_loss is None else \
            MODELS.build(dict(type='DETRegHead', loss=embed_loss,
                              feat_level=embed_feat_level,
                              roi_size=embed_roi_size, target=embed_target,
                              crop_size=embed_crop_size))
        self.loc_loss = loc_loss
        self.momentum = momentum
        self.teacher_view = teacher_view
        self.student_view = student_view
        self.num_views = num_views
        self.embed_target_view = student_view if embed_target_view is None \
            else embed_target_view
        # the teacher: an EMA copy (no grad, always in eval mode) of
        # detector + embed_head, only needed by the contrast
        self.teacher = None
        if self.contrast_head is not None:
            self.teacher = MomentumTeacher(
                dict(detector=self.detector, embed_head=self.embed_head),
                momentum=momentum,
                eval_mode=True)

    def update_teacher(self) -> None:
        """One EMA step of the teacher (the first call copies the student)."""
        if self.teacher is not None:
            self.teacher.update(self)

    def forward(self,
                inputs: Union[Tensor, List[Tensor]],
                data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        """mmengine entry: 'loss' -> :meth:`loss`; 'tensor' -> the student
        detector's raw head outputs on the student view."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'tensor':
            x = inputs[self.student_view] \
                if isinstance(inputs, (list, tuple)) else inputs
            if data_samples is None:
                data_samples = [None] * x.size(0)
            det_samples = self._det_samples(data_samples, x, self.student_view,
                                            False)
            return run_detector(self.detector, x, det_samples)[2]
        raise RuntimeError(f'ProSeCo: invalid mode "{mode}"; pre-training '
                           "supports 'loss' and 'tensor' (export the "
                           'detector with tools/convert_proseco_to_ddetr.py '
                           'to predict).')

    def _det_samples(self,
                     data_samples: Sequence,
                     x: Tensor,
                     view: int,
                     with_gt: bool = True) -> list:
        """mmdet samples of one view (:func:`det_samples_for_view`)."""
        return det_samples_for_view(data_samples, x, view, self.num_views,
                                    with_gt)

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
        check_views(inputs, self.num_views, 'ProSeCo.loss')
        losses: Dict[str, Tensor] = {}
        self.update_teacher()

        # student: cls (L, B, N, 1), boxes (L, B, N, 4), embeds (B, N, D)
        x_s = inputs[self.student_view]
        det_s = self._det_samples(data_samples, x_s, self.student_view)
        bb_feats, head_inputs, outs = run_detector(self.detector, x_s, det_s)
        cls_scores, bbox_preds = outs[0], outs[1]
        s_embeds = self.embed_head(head_inputs['hidden_states'][-1])
        bad = nonfinite_terms(
            student_cls_scores=cls_scores,
            student_bbox_preds=bbox_preds,
            student_embeds=s_embeds)
        if bad:
            return bad

        if self.loc_loss:  # DETReg localisation: the detector's own loss
            extra = ()
            if 'enc_outputs_class' in head_inputs:
                extra = (head_inputs['enc_outputs_class'],
                         head_inputs['enc_outputs_coord'])
            losses.update(
                self.detector.bbox_head.loss_by_feat(
                    *outs[:2], *extra, [d.gt_instances for d in det_s],
                    [d.metainfo for d in det_s]))

        if self.contrast_head is not None:
            # teacher on its view: scores (B, N), embeds (B, N, D), boxes
            # (B, N, 4), last decoder layer
            x_t = inputs[self.teacher_view]
            with torch.no_grad():
                det_t = self._det_samples(data_samples, x_t, self.teacher_view,
                                          False)
                _, t_head_inputs, t_outs = run_detector(
                    self.teacher['detector'], x_t, det_t)
                t_embeds = self.teacher['embed_head'](
                    t_head_inputs['hidden_states'][-1])
            contrast = self.contrast_head.loss(s_embeds, bbox_preds[-1],
                                               t_outs[0][-1][..., 0], t_embeds,
                                               t_outs[1][-1])
            if 'loss_contrast' not in contrast:  # non-finite teacher
                return contrast
            losses.update(contrast)

        if self.detreg_head is not None:
            tv = self.embed_target_view
            boxes, valid = stack_regions(data_samples, self.num_views)
            tgt_boxes = [boxes[i, tv][valid[i]] for i in range(len(det_s))]
            losses.update(
                self.detreg_head.loss(
                    s_embeds,
                    cls_scores[-1],
                    bbox_preds[-1],
                    det_s,
                    tgt_boxes,
                    inputs[tv],
                    self.detector.backbone,
                    self.detector.bbox_head.assigner,
                    bb_feats if tv == self.student_view else None,
                    patches=self._patches(data_samples)))
        return losses

    def _patches(self, data_samples: list) -> Optional[List[Tensor]]:
        """Per image, its ``patches`` ``(K, 3, S, S)`` (uint8, from
        :class:`BoxPatches`) normalised as the data preprocessor does the
        views (channel order, mean, std); None unless the DETReg target is
        ``'patch'`` and every sample has them."""
        if self.detreg_head.target != 'patch' or any(
                getattr(s, 'patches', None) is None for s in data_samples):
            return None
        dp = self.data_preprocessor
        out = []
        for sample in data_samples:
            x = sample.patches
            if getattr(dp, '_channel_conversion', False):
                x = x[:, [2, 1, 0]]
            x = x.float()
            if getattr(dp, '_enable_normalize', False):
                x = (x - dp.mean) / dp.std
            out.append(x)
        return out

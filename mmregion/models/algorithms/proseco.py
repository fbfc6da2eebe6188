"""ProSeCo: proposal-contrastive pre-training of a DETR-family detector.

Bouniot et al., "Proposal-Contrastive Pretraining for Object Detection from
Fewer Data", ICLR 2023 (the official code is not public; the choices it
leaves open are options, ``docs/fidelity.md``). The same class with a
:class:`DETRegHead` is the DETReg baseline (Bar et al., CVPR 2022):
localisation + object-embedding loss, no teacher.

Per training step, with views sharing geometry and selective-search boxes
(only the photometric augmentation differs, ``docs/design.md``):

1. the student (mmdet detector + :class:`ObjectEmbeddingNeck` on the
   decoder query embeddings) sees the student view;
2. localisation (DETReg): the student's class-agnostic head regresses the
   selective-search boxes through the detector's own ``loss_by_feat``
   (Hungarian matching, focal + L1 + GIoU, every decoder layer);
3. the head: :class:`ProSeCoHead` matches the proposals of the teacher (a
   :class:`MomentumTeacher` of detector + neck, no gradient, on the
   teacher view) to the student's and contrasts them (:class:`LocSCELoss`);
   or :class:`DETRegHead` regresses the embedding of each query matched to
   a box on that box's detached backbone feature (:func:`region_targets`,
   from the view ``target_view``).

Non-finite predictions end the step with ``loss_nonfinite_<quantity>``
terms (:func:`nonfinite_terms`).
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModel
from torch import Tensor

from mmregion.registry import MODELS
from ..utils.detr_adapter import (build_pretraining_detector,
                                  det_samples_for_view, run_detector)
from ..utils.loss_guard import NonFiniteLossGuardMixin, nonfinite_terms
from ..utils.momentum_teacher import MomentumTeacher
from ..utils.own_scope import in_mmregion_scope
from ..utils.region_features import region_targets
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
        neck (dict): Object-embedding projection of the last decoder
            layer's query embeddings (:class:`ObjectEmbeddingNeck`).
        head (dict, optional): The objective: ``ProSeCoHead`` (contrast
            with an EMA teacher) or ``DETRegHead`` (embedding regression).
            A head with ``with_teacher`` gets student and teacher outputs
            (:meth:`ProSeCoHead.loss`), any other the student's and per-box
            targets made as its ``target_cfg`` says
            (:meth:`DETRegHead.loss`). None trains the localisation alone.
            Defaults to ``ProSeCoHead``.
        loc_loss (bool): Use the localisation loss. Defaults to True.
        momentum (float): mmengine convention: the teacher becomes
            ``(1 - m) * teacher + m * student`` at every step, so
            ``m = 0.001`` is MoCo's momentum 0.999. Defaults to 0.001.
        teacher_view (int): Index of the weak view (teacher). Defaults to 0.
        student_view (int): Index of the strong view (student). Defaults to 1.
        num_views (int): Number of views in the batch. Defaults to 2.
        target_view (int, optional): View whose image gives the
            ``DETRegHead`` targets; None = the student view.
        data_preprocessor (dict, optional): e.g.
            ``dict(type='mmpretrain.SelfSupDataPreprocessor', ...)``; it
            also normalises ``target='patch'`` patches.
        init_cfg (dict, optional): Initialisation config.
    """

    @in_mmregion_scope
    def __init__(self,
                 detector: dict,
                 neck: dict,
                 head: Optional[dict] = dict(type='ProSeCoHead'),
                 loc_loss: bool = True,
                 momentum: float = 0.001,
                 teacher_view: int = 0,
                 student_view: int = 1,
                 num_views: int = 2,
                 target_view: Optional[int] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        target_view = student_view if target_view is None else target_view
        views = dict(
            teacher_view=teacher_view,
            student_view=student_view,
            target_view=target_view)
        for name, v in views.items():
            if not 0 <= v < num_views:
                raise ValueError(f'ProSeCo: {name}={v} is not a view index '
                                 f'(num_views={num_views}).')
        if head is None and not loc_loss:
            raise ValueError('ProSeCo: head=None and loc_loss=False: '
                             'nothing to train.')
        self.detector = build_pretraining_detector(detector, init_cfg)
        self.neck = MODELS.build(neck)
        self.head = None if head is None else MODELS.build(head)
        self.loc_loss = loc_loss
        self.momentum = momentum
        self.teacher_view = teacher_view
        self.student_view = student_view
        self.num_views = num_views
        self.target_view = target_view
        # the teacher: an EMA copy (no grad, always in eval mode) of
        # detector + neck, only for a head that contrasts with it
        self.teacher = None
        if getattr(self.head, 'with_teacher', False):
            self.teacher = MomentumTeacher(
                dict(detector=self.detector, neck=self.neck),
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
            (``loss_cls``, ``loss_bbox``, ``loss_iou``, ``d{i}.*``) and the
            head's (``loss_contrast`` or ``loss_embed``).
        """
        check_views(inputs, self.num_views, 'ProSeCo.loss')
        losses: Dict[str, Tensor] = {}
        self.update_teacher()

        # student: cls (L, B, N, 1), boxes (L, B, N, 4), embeds (B, N, D)
        x_s = inputs[self.student_view]
        det_s = self._det_samples(data_samples, x_s, self.student_view)
        bb_feats, head_inputs, outs = run_detector(self.detector, x_s, det_s)
        cls_scores, bbox_preds = outs[0], outs[1]
        s_embeds = self.neck(head_inputs['hidden_states'][-1])
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

        if self.teacher is not None:
            # teacher on its view: scores (B, N), embeds (B, N, D), boxes
            # (B, N, 4), last decoder layer
            x_t = inputs[self.teacher_view]
            with torch.no_grad():
                det_t = self._det_samples(data_samples, x_t, self.teacher_view,
                                          False)
                _, t_head_inputs, t_outs = run_detector(
                    self.teacher['detector'], x_t, det_t)
                t_embeds = self.teacher['neck'](
                    t_head_inputs['hidden_states'][-1])
            contrast = self.head.loss(s_embeds, bbox_preds[-1],
                                      t_outs[0][-1][..., 0], t_embeds,
                                      t_outs[1][-1])
            if 'loss_contrast' not in contrast:  # non-finite teacher
                return contrast
            losses.update(contrast)
        elif self.head is not None:
            tv = self.target_view
            boxes, valid = stack_regions(data_samples, self.num_views)
            targets = region_targets(
                self.detector.backbone,
                inputs[tv],
                [boxes[i, tv][valid[i]] for i in range(len(det_s))],
                feats=bb_feats if tv == self.student_view else None,
                patches=self._patches(data_samples),
                **self.head.target_cfg)
            losses.update(
                self.head.loss(s_embeds, cls_scores[-1], bbox_preds[-1], det_s,
                               targets))
        return losses

    def _patches(self, data_samples: list) -> Optional[List[Tensor]]:
        """Per image, its ``patches`` ``(K, 3, S, S)`` (uint8, from
        :class:`BoxPatches`) normalised as the data preprocessor does the
        views (channel order, mean, std); None unless the head's target is
        ``'patch'`` and every sample has them."""
        if self.head.target_cfg['kind'] != 'patch' or any(
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

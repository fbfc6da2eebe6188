"""The image-level MoCo v2 term, shared by the CCOP and PLRC objectives.

For online embeddings ``q`` of one view, teacher embeddings ``k`` of the
other view and the queue of earlier teacher keys (all L2-normalised), the
term is :class:`InfoNCELoss` (MoCo v2: temperature 0.2, the queue as
negatives); with several directions (PLRC's ``symmetric=True``) it is the
mean over the directions. The queue and the embeddings are the algorithm's
(:meth:`BaseMomentumSelfSupervisor.image_contrast_loss`).
"""
from typing import Dict, Optional, Sequence

from mmengine.model import BaseModule
from torch import Tensor

from mmregion.registry import MODELS

__all__ = ['ImageContrastHead']


@MODELS.register_module()
class ImageContrastHead(BaseModule):
    """MoCo v2's image-level InfoNCE; the base of :class:`CCOPHead` and
    :class:`PLRCHead`, which add their region-level terms.

    Args:
        loss_img (dict): Image-level loss config, built as
            ``self.loss_img_module``. Defaults to
            ``dict(type='InfoNCELoss', temperature=0.2, loss_weight=1.0)``
            (MoCo v2).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 loss_img: dict = dict(
                     type='InfoNCELoss', temperature=0.2, loss_weight=1.0),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.loss_img_module = MODELS.build(loss_img)

    def image_loss(self, query: Sequence[Tensor], key: Sequence[Tensor],
                   queue: Tensor) -> Tensor:
        """InfoNCE of each direction, averaged over the directions.

        Args:
            query (Sequence[Tensor]): per direction, (B, D) online
                embeddings.
            key (Sequence[Tensor]): per direction, (B, D) teacher embeddings
                of the other view (no gradient is taken through them).
            queue (Tensor): (L, D) queued teacher keys (the negatives).

        Returns:
            Tensor: scalar loss.
        """
        if len(query) != len(key) or not query:
            raise ValueError('ImageContrastHead.image_loss: one key per query'
                             f' direction, got {len(query)} queries and '
                             f'{len(key)} keys.')
        losses = [
            self.loss_img_module(q, k.detach(), queue)
            for q, k in zip(query, key)
        ]
        return sum(losses) / len(losses)

    def loss(self, query: Sequence[Tensor], key: Sequence[Tensor],
             queue: Tensor) -> Dict[str, Tensor]:
        """The head as an objective of its own: ``{'loss_img': ...}``
        (arguments as in :meth:`image_loss`)."""
        return dict(loss_img=self.image_loss(query, key, queue))

# Every loss follows one contract (mmdet's), see ``utils.py``.
from .info_nce_loss import InfoNCELoss, info_nce_loss  # noqa
from .intra_image_discrimination_loss import (  # noqa
    IntraImageDiscriminationLoss, intra_image_discrimination_loss)
from .loc_sce_loss import LocSCELoss, loc_sce_loss  # noqa
from .point_affinity_distillation_loss import (  # noqa
    PointAffinityDistillationLoss, point_affinity_distillation_loss)
from .point_infonce_loss import PointInfoNCELoss, point_supcon_loss  # noqa
from .sce_loss import SCELoss, sce_loss  # noqa
from .utils import BaseLoss, weighted_reduce  # noqa

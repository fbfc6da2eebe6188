# Each module adds its own import line below.
from .sce_loss import SCELoss, sce_loss  # noqa
from .loc_sce_loss import LocSCELoss, loc_sce_loss  # noqa
from .point_infonce_loss import PointInfoNCELoss, point_supcon_loss  # noqa
from .point_affinity_distillation_loss import (  # noqa
    PointAffinityDistillationLoss, point_affinity_distillation_loss)
from .info_nce_loss import InfoNCELoss, info_nce_loss  # noqa
from .intra_image_discrimination_loss import (  # noqa
    IntraImageDiscriminationLoss, intra_image_discrimination_loss)

# Each module adds its own import line below.
from .dense_ops import dense_apply, read_upsampled_rows  # noqa
from .detr_adapter import det_samples_for_view, run_detector  # noqa
from .dist_utils import all_gather_rows  # noqa
from .feature_queue import FeatureQueue, gather_variable_length  # noqa
from .loss_guard import NonFiniteLossGuardMixin  # noqa
from .momentum_teacher import MomentumTeacher  # noqa
from .own_scope import in_mmregion_scope  # noqa
from .region_utils import check_views, stack_regions, stack_view_affine  # noqa

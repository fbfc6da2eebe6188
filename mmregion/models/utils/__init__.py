from .dense_ops import dense_apply, read_upsampled_rows
from .detr_adapter import det_samples_for_view, run_detector
from .dist_utils import all_gather_rows
from .feature_queue import FeatureQueue, gather_variable_length
from .loss_guard import NonFiniteLossGuardMixin
from .momentum_teacher import MomentumTeacher
from .own_scope import in_mmregion_scope
from .region_utils import check_views, stack_regions, stack_view_affine

__all__ = [
    'dense_apply', 'read_upsampled_rows', 'det_samples_for_view',
    'run_detector', 'all_gather_rows', 'FeatureQueue',
    'gather_variable_length', 'NonFiniteLossGuardMixin', 'MomentumTeacher',
    'in_mmregion_scope', 'check_views', 'stack_regions', 'stack_view_affine'
]

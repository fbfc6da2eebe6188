# Each module adds its own import line below.
from .proposal_matcher import ProposalHungarianMatcher  # noqa
from .point_sampler import RegionPointSampler  # noqa
from .box_jitter import CurriculumBoxJitter  # noqa

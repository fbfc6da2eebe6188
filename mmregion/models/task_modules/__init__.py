# Each module adds its own import line below.
from .box_jitter import CurriculumBoxJitter  # noqa
from .point_sampler import RegionPointSampler  # noqa
from .proposal_matcher import ProposalHungarianMatcher  # noqa

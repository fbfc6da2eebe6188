from .box_jitter import CurriculumBoxJitter
from .point_sampler import RegionPointSampler
from .proposal_matcher import ProposalHungarianMatcher

__all__ = [
    'CurriculumBoxJitter', 'RegionPointSampler', 'ProposalHungarianMatcher'
]

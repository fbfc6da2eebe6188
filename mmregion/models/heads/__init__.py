from .ccop_head import CCOPHead
from .detreg_head import DETRegHead
from .dino_proj_head import DINOProjHead
from .image_contrast_head import ImageContrastHead
from .plrc_head import PLRCHead
from .proseco_head import ProSeCoHead

__all__ = [
    'CCOPHead', 'DETRegHead', 'DINOProjHead', 'ImageContrastHead', 'PLRCHead',
    'ProSeCoHead'
]

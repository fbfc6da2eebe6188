from .ccop_head import CCOPHead
from .detreg_head import DETRegHead
from .image_contrast_head import ImageContrastHead
from .plrc_head import PLRCHead
from .proseco_head import ProSeCoHead

__all__ = [
    'CCOPHead', 'DETRegHead', 'ImageContrastHead', 'PLRCHead', 'ProSeCoHead'
]

# Each module adds its own import line below.
from .ccop_head import CCOPHead  # noqa
from .detreg_head import DETRegHead  # noqa
from .dino_proj_head import DINOProjHead  # noqa
from .image_contrast_head import ImageContrastHead  # noqa
from .plrc_head import PLRCHead  # noqa
from .proseco_head import ProSeCoHead  # noqa

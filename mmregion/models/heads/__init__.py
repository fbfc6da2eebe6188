# Each module adds its own import line below.
from .object_embedding_head import ObjectEmbeddingHead  # noqa
from .dino_proj_head import DINOProjHead  # noqa
from .plrc_head import PLRCHead  # noqa
from .ccop_head import CCOPHead  # noqa
from .proseco_head import ProSeCoHead  # noqa
from .detreg_head import DETRegHead  # noqa

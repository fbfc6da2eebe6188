from .ccop_head import CCOPHead
from .detreg_head import DETRegHead
from .dino_proj_head import DINOProjHead
from .object_embedding_head import ObjectEmbeddingHead
from .plrc_head import PLRCHead
from .proseco_head import ProSeCoHead

__all__ = [
    'CCOPHead', 'DETRegHead', 'DINOProjHead', 'ObjectEmbeddingHead',
    'PLRCHead', 'ProSeCoHead'
]

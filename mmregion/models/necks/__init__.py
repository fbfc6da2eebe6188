from .dino_proj_neck import DINOProjNeck
from .linear_proj_neck import LinearProjNeck
from .object_embedding_neck import ObjectEmbeddingNeck
from .point_proj_neck import PointProjNeck
from .roi_proj_neck import RoIProjNeck

__all__ = [
    'DINOProjNeck', 'LinearProjNeck', 'ObjectEmbeddingNeck', 'PointProjNeck',
    'RoIProjNeck'
]

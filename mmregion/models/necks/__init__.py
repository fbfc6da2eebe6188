# Each module adds its own import line below.
from .linear_proj_neck import LinearProjNeck  # noqa
from .object_embedding_neck import ObjectEmbeddingNeck  # noqa
from .point_proj_neck import PointProjNeck  # noqa
from .roi_proj_neck import RoIProjNeck  # noqa

# Each module adds its own import line below.
from .point_proj_neck import PointProjNeck  # noqa
from .linear_proj_neck import LinearProjNeck  # noqa
from .roi_proj_neck import RoIProjNeck  # noqa

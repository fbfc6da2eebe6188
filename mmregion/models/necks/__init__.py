from .linear_proj_neck import LinearProjNeck
from .point_proj_neck import PointProjNeck
from .roi_proj_neck import RoIProjNeck

__all__ = ['LinearProjNeck', 'PointProjNeck', 'RoIProjNeck']

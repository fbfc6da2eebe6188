from .region_dataset import RegionDataset  # noqa
from .transforms import *  # noqa: F401,F403

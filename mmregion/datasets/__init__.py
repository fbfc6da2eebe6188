from .transforms import *  # noqa: F401,F403
from .region_dataset import RegionDataset  # noqa

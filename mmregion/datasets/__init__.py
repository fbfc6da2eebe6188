from .collate import region_collate  # noqa
from .region_dataset import RegionDataset  # noqa
from .transforms import *  # noqa: F401,F403

from .collate import region_collate
from .region_dataset import RegionDataset
from .transforms import *  # noqa: F401,F403

__all__ = ['region_collate', 'RegionDataset']

from .formatting import PackRegionInputs
from .geometric import RegionRandomFlip, RegionRandomResizedCrop, RegionResize
from .loading import LoadProposals
from .patches import BoxPatches, KeepSourceRegions
from .safe_loading import LoadImageFromFileSafe
from .wrappers import MultiViewRegions

__all__ = [
    'PackRegionInputs', 'RegionRandomFlip', 'RegionRandomResizedCrop',
    'RegionResize', 'LoadProposals', 'BoxPatches', 'KeepSourceRegions',
    'LoadImageFromFileSafe', 'MultiViewRegions'
]

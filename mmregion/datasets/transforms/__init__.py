from .detr_geometric import (RegionPadToCanvas, RegionRandomChoiceResize,
                             RegionRandomSizeCrop)
from .formatting import PackRegionInputs
from .geometric import RegionRandomFlip, RegionRandomResizedCrop, RegionResize
from .loading import LoadProposals
from .patches import BoxPatches, KeepSourceRegions
from .photometric import AdditiveBrightness, KorniaGaussianBlur
from .safe_loading import LoadImageFromFileSafe
from .wrappers import MultiViewRegions

__all__ = [
    'RegionPadToCanvas', 'RegionRandomChoiceResize', 'RegionRandomSizeCrop',
    'PackRegionInputs', 'RegionRandomFlip', 'RegionRandomResizedCrop',
    'RegionResize', 'LoadProposals', 'BoxPatches', 'KeepSourceRegions',
    'AdditiveBrightness', 'KorniaGaussianBlur', 'LoadImageFromFileSafe',
    'MultiViewRegions'
]

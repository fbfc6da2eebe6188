# Each module adds its own import line below.
from .loading import LoadProposals  # noqa
from .geometric import (RegionRandomFlip, RegionRandomResizedCrop,  # noqa
                        RegionResize)
from .wrappers import MultiViewRegions  # noqa
from .formatting import PackRegionInputs  # noqa
from .safe_loading import LoadImageFromFileSafe  # noqa

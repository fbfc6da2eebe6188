# Each module adds its own import line below.
from .detr_geometric import RegionPadToCanvas  # noqa: F401
from .detr_geometric import RegionRandomChoiceResize, RegionRandomSizeCrop
from .formatting import PackRegionInputs  # noqa
from .geometric import RegionRandomResizedCrop  # noqa
from .geometric import RegionRandomFlip, RegionResize
from .loading import LoadProposals  # noqa
from .patches import BoxPatches, KeepSourceRegions  # noqa: F401
from .photometric import AdditiveBrightness, KorniaGaussianBlur  # noqa
from .safe_loading import LoadImageFromFileSafe  # noqa
from .wrappers import MultiViewRegions  # noqa

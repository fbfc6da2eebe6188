# Each module adds its own import line below.
from .proseco import ProSeCo  # noqa
from .base_momentum import BaseMomentumSelfSupervisor  # noqa
from .plrc import PLRC  # noqa
from .ccop import CCOP  # noqa

# Each module adds its own import line below.
from .base_momentum import BaseMomentumSelfSupervisor  # noqa
from .ccop import CCOP  # noqa
from .plrc import PLRC  # noqa
from .proseco import ProSeCo  # noqa

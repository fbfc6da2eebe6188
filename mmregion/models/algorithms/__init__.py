from .base_momentum import BaseMomentumSelfSupervisor
from .ccop import CCOP
from .plrc import PLRC
from .proseco import ProSeCo

__all__ = ['BaseMomentumSelfSupervisor', 'CCOP', 'PLRC', 'ProSeCo']

from .finite_check_optim_wrapper import (FiniteCheckAmpOptimWrapper,
                                         FiniteCheckOptimWrapper)

__all__ = ['FiniteCheckOptimWrapper', 'FiniteCheckAmpOptimWrapper']
